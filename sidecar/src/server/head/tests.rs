//! The head guard's scan over inputs cut into reads of every size.

use super::*;

/// Scans `input` as one read after another of `step` bytes, answering
/// each dispatch with `framings` in turn; returns what hyper would see.
fn run(input: &[u8], step: usize, framings: &[Scan]) -> Vec<u8> {
    let mut scan = Scan::HEAD;
    let mut framings = framings.iter();
    let mut pending = input.to_vec();
    let mut out = Vec::new();
    while !pending.is_empty() {
        if scan == Scan::Dispatching {
            scan = *framings.next().expect("a framing per head");
        }
        let n = pending.len().min(step);
        let deliver = scan.scan(&pending[..n]);
        out.extend(pending.drain(..deliver));
        if let Scan::Refused { .. } = scan {
            out.extend_from_slice(POISON);
            break;
        }
    }
    out
}

#[test]
fn bare_lfs_end_heads_and_bodies_are_left_alone() {
    let body = Scan::Body { remaining: 6 };
    let chunked = Scan::Chunked(Chunk::Size {
        size: 0,
        digits: true,
    });
    let cases: &[(&[u8], &[Scan], &[u8])] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[],
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\nHost: a\n\n",
            &[],
            b"GET / HTTP/1.1\0\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            &[],
            b"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            &[],
            b"GET / HTTP/1.1\r\nHost: a\r\n\0\r\n\r\n",
        ),
        (b"\nGET / HTTP/1.1\r\n\r\n", &[], b"\0\r\n\r\n"),
        (
            b"\r\n\r\nGET / HTTP/1.1\nX: y\r\n\r\n",
            &[],
            b"\r\n\r\nGET / HTTP/1.1\0\r\n\r\n",
        ),
        (
            b"POST / HTTP/1.1\r\n\r\na\nb\n\nGET / HTTP/1.1\nX: y\r\n\r\n",
            &[body, Scan::HEAD],
            b"POST / HTTP/1.1\r\n\r\na\nb\n\nGET / HTTP/1.1\0\r\n\r\n",
        ),
        (
            b"POST / HTTP/1.1\r\n\r\n3;x=y\r\na\nb\r\n0\r\nT: \n\r\n\r\nGET / HTTP/1.1\nX\r\n\r\n",
            &[chunked, Scan::HEAD],
            b"POST / HTTP/1.1\r\n\r\n3;x=y\r\na\nb\r\n0\r\nT: \n\r\n\r\nGET / HTTP/1.1\0\r\n\r\n",
        ),
        (
            b"GET /ws HTTP/1.1\r\n\r\nany\nbytes\n",
            &[Scan::Off],
            b"GET /ws HTTP/1.1\r\n\r\nany\nbytes\n",
        ),
    ];
    for (input, framings, expected) in cases {
        for step in [1, 2, 3, 7, 1024] {
            assert_eq!(
                run(input, step, framings),
                *expected,
                "{:?} in reads of {step}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn chunk_sizes_that_overflow_stop_the_checks() {
    let mut scan = Scan::Chunked(Chunk::Size {
        size: 0,
        digits: true,
    });
    scan.scan(b"fffffffffffffffff\r\n");
    assert_eq!(scan, Scan::Off);
}

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;

/// The first flight of a real rustls client offering `alpn`.
pub(crate) fn hello_bytes(alpn: &[&[u8]]) -> Vec<u8> {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("reviews.shop.sa.ferry.cluster.local").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// The same handshake bytes, re-framed in records of at most `size` bytes.
fn refragment(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        payload.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let mut out = Vec::new();
    for chunk in payload.chunks(size) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn alpn(parsed: Parsed) -> Vec<Vec<u8>> {
    match parsed {
        Parsed::ClientHello { alpn } => alpn,
        other => panic!("expected a ClientHello, got {other:?}"),
    }
}

#[test]
fn reads_the_alpn_list_of_a_real_client_hello() {
    let bytes = hello_bytes(&[b"ferry.h2", b"ferry.opaque"]);
    assert_eq!(
        alpn(parse(&bytes)),
        vec![b"ferry.h2".to_vec(), b"ferry.opaque".to_vec()]
    );
    assert_eq!(alpn(parse(&hello_bytes(&[]))), Vec::<Vec<u8>>::new());
    // Bytes after the hello (the rest of the flight) do not matter.
    let mut more = hello_bytes(&[b"h2"]);
    more.extend_from_slice(b"\x17\x03\x03\x00\x01x");
    assert_eq!(alpn(parse(&more)), vec![b"h2".to_vec()]);
}

#[test]
fn every_prefix_of_a_hello_is_incomplete() {
    let bytes = hello_bytes(&[b"ferry.opaque"]);
    for end in 0..bytes.len() {
        assert_eq!(parse(&bytes[..end]), Parsed::Incomplete, "prefix of {end}");
    }
}

#[test]
fn a_hello_split_across_records_is_joined() {
    let bytes = hello_bytes(&[b"ferry.h2"]);
    for size in [1, 7, 100, 300] {
        let split = refragment(&bytes, size);
        assert_eq!(alpn(parse(&split)), vec![b"ferry.h2".to_vec()], "{size}");
        assert_eq!(parse(&split[..split.len() - 1]), Parsed::Incomplete);
    }
}

#[test]
fn other_bytes_are_not_a_client_hello() {
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // An alert record, a record of version 2.0, an empty record.
        b"\x15\x03\x03\x00\x02\x02\x28",
        b"\x16\x02\x00\x00\x10",
        b"\x16\x03\x01\x00\x00",
        // A ServerHello where a ClientHello should be.
        b"\x16\x03\x03\x00\x04\x02\x00\x00\x00",
        // A hello claiming more than any real one.
        b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",
        // A whole hello that is too short for its fixed fields.
        b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03",
    ] {
        assert_eq!(parse(bytes), Parsed::NotClientHello, "{bytes:?}");
    }
}

#[test]
fn a_malformed_alpn_extension_is_refused() {
    let good = hello_bytes(&[b"ferry.h2"]);
    let at = good
        .windows(8)
        .position(|w| w == b"ferry.h2")
        .expect("the hello names its protocol");
    // The protocol name's length byte says more than the list holds.
    let mut bad = good.clone();
    bad[at - 1] = 200;
    assert_eq!(parse(&bad), Parsed::NotClientHello);
    // An empty protocol name.
    let mut bad = good;
    bad[at - 1] = 0;
    assert_eq!(parse(&bad), Parsed::NotClientHello);
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let hello = hello_bytes(&[b"ferry.h2", b"ferry.opaque"]);
    for _ in 0..20_000 {
        let mut bytes = if rng.random_bool(0.5) {
            hello.clone()
        } else {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        };
        for _ in 0..rng.random_range(0..4) {
            if !bytes.is_empty() {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
        }
        let end = rng.random_range(0..=bytes.len());
        let _ = parse(&bytes[..end]);
    }
}

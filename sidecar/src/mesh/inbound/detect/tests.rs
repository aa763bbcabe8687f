use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::mesh::inbound::client_hello::tests::hello_bytes;

const TIMEOUT: Duration = Duration::from_millis(300);

/// Connects on loopback, lets `send` write, and detects on the server side.
async fn detect_with<F, Fut>(send: F) -> (Detected, TcpStream)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { send(TcpStream::connect(addr).await.unwrap()).await });
    let (server, _) = listener.accept().await.unwrap();
    (detect(&server, TIMEOUT).await.unwrap(), server)
}

async fn detect_bytes(bytes: Vec<u8>) -> (Detected, TcpStream) {
    detect_with(move |mut tcp| async move {
        tcp.write_all(&bytes).await.unwrap();
        // Hold the connection open past the detection.
        tokio::time::sleep(TIMEOUT * 2).await;
    })
    .await
}

#[tokio::test]
async fn a_hello_offering_a_mesh_alpn_is_mesh_and_is_not_consumed() {
    for alpn in [&[ALPN_HTTP][..], &[b"h2", ALPN_OPAQUE]] {
        let hello = hello_bytes(alpn);
        let (detected, mut server) = detect_bytes(hello.clone()).await;
        assert_eq!(detected, Detected::Mesh);
        let mut again = vec![0; hello.len()];
        server.read_exact(&mut again).await.unwrap();
        assert_eq!(again, hello);
    }
}

#[tokio::test]
async fn other_tls_and_plaintext_are_not_mesh() {
    let (detected, _) = detect_bytes(hello_bytes(&[b"h2", b"http/1.1"])).await;
    assert_eq!(detected, Detected::NotMesh(NotMesh::OtherTls));
    let (detected, _) = detect_bytes(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
    assert_eq!(detected, Detected::NotMesh(NotMesh::Plaintext));
    let (detected, _) = detect_with(|tcp| async move { drop(tcp) }).await;
    assert_eq!(detected, Detected::NotMesh(NotMesh::Closed));
}

#[tokio::test]
async fn a_hello_that_arrives_in_parts_is_waited_for() {
    let hello = hello_bytes(&[ALPN_OPAQUE]);
    let (detected, _) = detect_with(move |mut tcp| async move {
        let (first, rest) = hello.split_at(40);
        tcp.write_all(first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tcp.write_all(rest).await.unwrap();
        tokio::time::sleep(TIMEOUT * 2).await;
    })
    .await;
    assert_eq!(detected, Detected::Mesh);
}

#[tokio::test]
async fn silence_or_half_a_hello_is_not_mesh_after_the_timeout() {
    let started = Instant::now();
    let (detected, _) = detect_bytes(Vec::new()).await;
    assert_eq!(detected, Detected::NotMesh(NotMesh::NoHello));
    assert!(started.elapsed() >= TIMEOUT);
    let hello = hello_bytes(&[ALPN_HTTP]);
    let (detected, _) = detect_bytes(hello[..hello.len() / 2].to_vec()).await;
    assert_eq!(detected, Detected::NotMesh(NotMesh::NoHello));
}

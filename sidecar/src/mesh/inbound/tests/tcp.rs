//! Opaque mesh TCP and what is not mesh traffic.

use super::*;

#[tokio::test]
async fn opaque_to_the_dialled_port_is_spliced_and_to_another_refused() {
    let pod = pod(InboundPolicy::Strict, false, echo_app().await).await;
    let port = pod.app.addr.port();

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(&OpaqueHeader { port }.encode())
        .await
        .unwrap();
    tls.write_all(b"ping\n").await.unwrap();
    let mut echoed = [0; 5];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping\n");
    drop(tls);
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_connections_total",
            &["kind=\"MeshOpaque\"", "ns/web/sa/frontend"]
        ),
        1
    );

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(&OpaqueHeader { port: port + 1 }.encode())
        .await
        .unwrap();
    let _ = tls.write_all(b"ping\n").await;
    assert!(read_to_close(&mut tls).await.is_empty());
    assert_eq!(
        pod.app.accepted.load(Ordering::SeqCst),
        1,
        "only the first reached the app"
    );
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"OpaquePort\""]
        ),
        1
    );

    let mut tls = mesh_connect(&pod, &pod.ca, ALPN_OPAQUE).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(read_to_close(&mut tls).await.is_empty());
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"OpaqueHeader\""]
        ),
        1
    );
}

#[tokio::test]
async fn the_outbound_sides_dialer_reaches_the_app_through_the_inbound_side() {
    let pod = pod(InboundPolicy::Strict, false, echo_app().await).await;
    let mut credentials = pod.ca.credentials(&client_identity());
    credentials.roots = vec![pod.ca.root()];
    let (_tx, rx) = watch::channel(Some(Arc::new(credentials)));
    let metrics = DialMetrics::register(&mut Registry::default());
    let dialer = Dialer::new(rx, Duration::from_secs(1), metrics);
    let port = pod.app.addr.port();
    let mut tls = dialer
        .opaque(pod.addr, &server_identity(), port)
        .await
        .unwrap();
    tls.write_all(b"line\n").await.unwrap();
    let mut echoed = [0; 5];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"line\n");
}

#[tokio::test]
async fn plaintext_passes_in_permissive_mode_and_is_refused_in_strict_mode() {
    let permissive = pod(InboundPolicy::Permissive, false, echo_app().await).await;
    let mut tcp = TcpStream::connect(permissive.addr).await.unwrap();
    tcp.write_all(b"hello\n").await.unwrap();
    let mut echoed = [0; 6];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"hello\n");
    assert_eq!(
        counter(
            &permissive.registry,
            "inbound_connections_total",
            &["kind=\"Passthrough\""]
        ),
        1
    );
    assert_eq!(
        counter(
            &permissive.registry,
            "tcp_open_total",
            &["direction=\"Inbound\""]
        ),
        1
    );

    let strict = pod(InboundPolicy::Strict, false, echo_app().await).await;
    let mut tcp = TcpStream::connect(strict.addr).await.unwrap();
    tcp.write_all(b"hello\n").await.unwrap();
    assert!(read_to_close(&mut tcp).await.is_empty());
    // A server-first client that sends nothing is refused too, after the
    // detection timeout.
    let mut silent = TcpStream::connect(strict.addr).await.unwrap();
    assert!(read_to_close(&mut silent).await.is_empty());
    assert_eq!(strict.app.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter(
            &strict.registry,
            "inbound_refused_total",
            &["reason=\"NotMesh\""]
        ),
        2
    );
}

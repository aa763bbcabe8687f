//! Mesh HTTP: requests reach HTTP/1.1 and h2c apps; bad client certificates
//! are refused; renewal keeps open connections.

use super::*;

#[tokio::test]
async fn mesh_http_reaches_an_http1_app_with_the_identity_only_when_asked() {
    let client = client_identity().to_string();
    for identity_header in [true, false] {
        let pod = pod(InboundPolicy::Strict, identity_header, http_app().await).await;
        let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
            .await
            .unwrap();
        let forged = [
            (CLIENT_IDENTITY_HEADER, FORGED),
            (ORIG_PROTO_HEADER, "HTTP/1.1"),
        ];
        let expected_identity = if identity_header {
            client.as_str()
        } else {
            "-"
        };
        for headers in [&forged[..], &forged[..1]] {
            let (status, text) = get(&mut sender, headers).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                text,
                format!(
                    "HTTP/1.1 reviews.shop:9080 /books identity={expected_identity} orig-proto=-"
                )
            );
        }
        // Both requests over one pooled app connection.
        assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 1);
        let labels = [
            "kind=\"MeshHttp\"",
            &format!("client_identity=\"{client}\""),
        ];
        assert_eq!(
            counter(&pod.registry, "inbound_connections_total", &labels),
            1
        );
    }
}

#[tokio::test]
async fn mesh_http_reaches_an_h2c_app_in_http2() {
    let pod = pod(InboundPolicy::Permissive, true, http_app().await).await;
    let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, text) = get(&mut sender, &[(ORIG_PROTO_HEADER, "HTTP/2")])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            format!(
                "HTTP/2.0 reviews.shop:9080 /books identity={} orig-proto=-",
                client_identity()
            )
        );
    }
    assert_eq!(
        pod.app.accepted.load(Ordering::SeqCst),
        1,
        "one multiplexed h2c connection"
    );
    let (status, _) = get(&mut sender, &[(ORIG_PROTO_HEADER, "SPDY/3")])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_app_that_is_down_is_a_502() {
    let app = http_app().await;
    let pod = pod(
        InboundPolicy::Permissive,
        false,
        App {
            addr: "127.0.0.1:1".parse().unwrap(),
            ..app
        },
    )
    .await;
    let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    for proto in ["HTTP/1.1", "HTTP/2"] {
        let (status, _) = get(&mut sender, &[(ORIG_PROTO_HEADER, proto)])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto}");
    }
}

/// What a refused mesh client sees: TLS 1.3 lets the client finish its
/// side, so the refusal shows on the first exchange.
async fn assert_refused(pod: &Pod, config: Arc<ClientConfig>) {
    if let Ok(tls) = connect(pod, config).await {
        let exchange = async { get(&mut h2(tls).await?, &[]).await };
        assert!(exchange.await.is_err(), "a request went through");
    }
    assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter(&pod.registry, "inbound_tls_handshake_failures_total", &[]),
        1
    );
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"Handshake\""]
        ),
        1
    );
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    let other = TestCa::new();
    let mut credentials = other.credentials(&client_identity());
    credentials.roots = vec![pod.ca.root()];
    assert_refused(&pod, client_config(&credentials, ALPN_HTTP).unwrap()).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    let roots = Arc::new(root_store(&[pod.ca.root()]).unwrap());
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(roots)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP.to_vec()];
    assert_refused(&pod, Arc::new(config)).await;
}

#[tokio::test]
async fn renewal_keeps_open_connections_and_serves_new_ones_with_the_new_certificate() {
    let pod = pod(InboundPolicy::Strict, false, http_app().await).await;
    let mut open = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    assert_eq!(get(&mut open, &[]).await.unwrap().0, StatusCode::OK);

    // Renewed by a new CA, trusting both during the overlap.
    let next = TestCa::new();
    let mut renewed = next.credentials(&server_identity());
    renewed.roots.push(pod.ca.root());
    pod.credentials.send_replace(Some(Arc::new(renewed)));

    assert_eq!(get(&mut open, &[]).await.unwrap().0, StatusCode::OK);
    // A client that trusts only the old CA no longer accepts the server…
    assert!(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.is_err());
    // …one that trusts the new CA does, with a certificate of either.
    let mut credentials = pod.ca.credentials(&client_identity());
    credentials.roots = vec![next.root()];
    let tls = connect(&pod, client_config(&credentials, ALPN_HTTP).unwrap())
        .await
        .unwrap();
    assert_eq!(
        get(&mut h2(tls).await.unwrap(), &[]).await.unwrap().0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn mesh_traffic_before_the_first_certificate_is_refused() {
    let pod = pod(InboundPolicy::Permissive, false, http_app().await).await;
    pod.credentials.send_replace(None);
    let result = mesh_connect(&pod, &pod.ca, ALPN_HTTP).await;
    assert!(result.is_err());
    assert_eq!(
        counter(
            &pod.registry,
            "inbound_refused_total",
            &["reason=\"NoCredentials\""]
        ),
        1
    );
}

#[tokio::test]
async fn a_plain_connect_from_another_proxy_is_refused() {
    let pod = pod(InboundPolicy::Strict, false, http_app().await).await;
    let mut sender = h2(mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap())
        .await
        .unwrap();
    let req = Request::connect("db.internal:5432")
        .header(ORIG_PROTO_HEADER, "HTTP/1.1")
        .body(body::empty())
        .unwrap();
    let rsp = sender.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::NOT_IMPLEMENTED);
    assert_eq!(rsp.headers()["ferry-error"], "connect");
    assert_eq!(pod.app.accepted.load(Ordering::SeqCst), 0);
}

/// A client proxy that completes its handshake and sends nothing is closed
/// at the header read timeout; an HTTP/2 connection left idle after a
/// request is sent a GOAWAY at the idle timeout.
#[tokio::test]
async fn silent_and_idle_mesh_connections_are_closed() {
    let limits = ServerParams {
        detect_timeout: Duration::from_millis(200),
        header_read_timeout: Duration::from_millis(300),
        http2_idle_timeout: Duration::from_millis(500),
        ..ServerParams::sidecar()
    };
    let pod = pod_with(InboundPolicy::Strict, false, http_app().await, limits).await;
    let mut quiet = mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap();
    read_to_close(&mut quiet).await;

    let tls = mesh_connect(&pod, &pod.ca, ALPN_HTTP).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let (status, _) = get(&mut sender, &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let closed = tokio::time::timeout(Duration::from_secs(3), conn).await;
    assert!(matches!(closed, Ok(Ok(Ok(())))), "{closed:?}");
}

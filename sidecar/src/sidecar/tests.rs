use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::await_ready::{self, AwaitArgs};

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn admin_default() -> SocketAddr {
    "127.0.0.1:4191".parse().unwrap()
}

#[test]
fn settings_come_from_the_injectors_variables() {
    let defaults = SidecarSettings::from_env(env(&[]), admin_default()).unwrap();
    assert_eq!(defaults.inbound, "0.0.0.0:4143".parse().unwrap());
    assert_eq!(defaults.outbound, "127.0.0.1:4140".parse().unwrap());
    assert_eq!(defaults.admin, admin_default());
    assert!(defaults.app_probes.0.is_empty());

    let vars = env(&[
        ("FERRY_INBOUND_PORT", "5143"),
        ("FERRY_OUTBOUND_PORT", "5140"),
        ("FERRY_ADMIN_ADDR", "0.0.0.0:4191"),
        (
            "FERRY_DISCOVERY_ADDR",
            "ferry-control.ferry-system.svc:8090",
        ),
        ("FERRY_POD_NAMESPACE", "shop"),
        ("FERRY_OPAQUE_PORTS", "5432, 6379"),
        ("FERRY_DETECT_TIMEOUT", "300ms"),
        ("FERRY_TARGET_IDLE", "1m"),
        (
            "FERRY_APP_PROBES",
            r#"{"/app-probe/web/readiness":{"port":8080,"path":"/ready","scheme":"HTTPS",
                "httpHeaders":[{"name":"Host","value":"web"}]}}"#,
        ),
    ]);
    let settings = SidecarSettings::from_env(vars, admin_default()).unwrap();
    assert_eq!(settings.inbound.port(), 5143);
    assert_eq!(settings.outbound.port(), 5140);
    assert_eq!(settings.admin, "0.0.0.0:4191".parse().unwrap());
    let probe = settings.app_probes.get("/app-probe/web/readiness").unwrap();
    assert_eq!((probe.port, probe.scheme), (8080, Scheme::Https));
    assert_eq!(probe.http_headers[0].name, "Host");
    let discovery = settings.discovery.unwrap();
    assert_eq!(
        (discovery.addr.as_str(), discovery.namespace.as_str()),
        ("ferry-control.ferry-system.svc:8090", "shop")
    );
    assert_eq!(discovery.idle_after, Duration::from_secs(60));
    assert_eq!(discovery.first_view_wait, Duration::from_secs(2));
    assert_eq!(settings.opaque_ports, [5432, 6379].into());
    assert_eq!(settings.server.detect_timeout, Duration::from_millis(300));
    assert!(defaults.discovery.is_none() && defaults.opaque_ports.is_empty());

    for (name, value) in [
        ("FERRY_INBOUND_PORT", "0"),
        ("FERRY_OUTBOUND_PORT", "x"),
        ("FERRY_ADMIN_ADDR", "4191"),
        ("FERRY_APP_PROBES", "{\"/p\": {\"path\": \"/\"}}"),
        ("FERRY_OPAQUE_PORTS", "5432,http"),
        ("FERRY_DETECT_TIMEOUT", "0s"),
        ("FERRY_DETECT_TIMEOUT", "soon"),
    ] {
        let error = SidecarSettings::from_env(env(&[(name, value)]), admin_default()).unwrap_err();
        assert_eq!(error.name, name, "{error}");
    }
    let bad_addr = env(&[
        ("FERRY_DISCOVERY_ADDR", "ferry control"),
        ("FERRY_POD_NAMESPACE", "shop"),
    ]);
    let error = SidecarSettings::from_env(bad_addr, admin_default()).unwrap_err();
    assert_eq!(error.name, "FERRY_DISCOVERY_ADDR", "{error}");
    let no_namespace = env(&[("FERRY_DISCOVERY_ADDR", "ferry-control:8090")]);
    let error = SidecarSettings::from_env(no_namespace, admin_default()).unwrap_err();
    assert_eq!(error.name, "FERRY_POD_NAMESPACE", "{error}");
}

#[test]
fn targets_of_redirected_connections() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let outbound = addr("127.0.0.1:4140");
    let inbound = addr("10.0.0.5:4143");
    assert_eq!(
        target(Direction::Outbound, outbound, addr("10.96.0.12:9080")),
        Some(addr("10.96.0.12:9080"))
    );
    assert_eq!(
        target(Direction::Inbound, inbound, addr("10.0.0.5:8080")),
        Some(addr("127.0.0.1:8080"))
    );
    assert_eq!(
        target(
            Direction::Inbound,
            addr("[fd00::5]:4143"),
            addr("[fd00::5]:8080")
        ),
        Some(addr("[::1]:8080"))
    );
    // Not redirected (a direct connection to the listener): no loop.
    assert_eq!(target(Direction::Outbound, outbound, outbound), None);
    assert_eq!(target(Direction::Inbound, inbound, inbound), None);
    assert_eq!(
        target(Direction::Inbound, inbound, addr("10.0.0.6:4143")),
        None
    );
}

/// A one-request-per-connection HTTP/1.1 app on loopback over `accept`'s
/// streams: `/fail` answers 500, a request without `x-probe: yes` 400,
/// anything else 200.
async fn app<S, F, Fut>(listener: TcpListener, wrap: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<S>> + Send,
{
    while let Ok((tcp, _)) = listener.accept().await {
        let Ok(mut io) = wrap(tcp).await else {
            continue;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let status = if head.starts_with("get /fail ") {
            "500 Internal Server Error"
        } else if !head.contains("\r\nx-probe: yes\r\n") {
            "400 Bad Request"
        } else {
            "200 OK"
        };
        let rsp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = io.write_all(rsp.as_bytes()).await;
        let _ = io.shutdown().await;
    }
}

fn probe(port: u16, path: &str, scheme: &str) -> serde_json::Value {
    serde_json::json!({"port": port, "path": path, "scheme": scheme,
                       "httpHeaders": [{"name": "x-probe", "value": "yes"}]})
}

async fn get(admin: &SidecarAdmin, path: &str) -> (StatusCode, String) {
    let rsp = admin.handle(&Request::get(path).body(()).unwrap()).await;
    let status = rsp.status();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["app.local".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn admin_serves_the_apps_probes_over_http_and_https() {
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(app(plain, |tcp| async move { Ok(tcp) }));
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    let acceptor = tls_acceptor();
    tokio::spawn(app(tls, move |tcp| acceptor.clone().accept(tcp)));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);

    let probes = serde_json::json!({
        "/app-probe/web/readiness": probe(plain_port, "/healthz", "HTTP"),
        "/app-probe/web/liveness": probe(plain_port, "/fail", "HTTP"),
        "/app-probe/web/startup": probe(tls_port, "/healthz", "HTTPS"),
        "/app-probe/gone/readiness": probe(closed_port, "/", "HTTP"),
    });
    let vars = env(&[("FERRY_APP_PROBES", &probes.to_string())]);
    let settings = SidecarSettings::from_env(vars, admin_default()).unwrap();
    let admin = SidecarAdmin::new(Arc::new(settings), Arc::default());

    assert_eq!(
        get(&admin, "/app-probe/web/readiness").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&admin, "/app-probe/web/liveness").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get(&admin, "/app-probe/web/startup").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&admin, "/app-probe/gone/readiness").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&admin, "/app-probe/web/other").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, config) = get(&admin, "/config").await;
    assert_eq!(status, StatusCode::OK);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["mode"], "sidecar");
    assert_eq!(config["appProbes"].as_array().unwrap().len(), 4);
    assert_eq!(config["outbound"]["targets"], serde_json::json!([]));
    assert_eq!(config["identity"], serde_json::Value::Null);
}

#[tokio::test]
async fn await_returns_once_ready_and_fails_after_its_timeout() {
    let settings = SidecarSettings::from_env(env(&[]), admin_default()).unwrap();
    let admin = SidecarAdmin::new(Arc::new(settings), Arc::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(admin.clone().serve(listener));
    assert_eq!(get(&admin, "/live").await.0, StatusCode::OK);
    assert_eq!(
        get(&admin, "/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let args = AwaitArgs {
        admin_port: port,
        timeout: Duration::from_millis(300),
        interval: Duration::from_millis(20),
    };
    let error = await_ready::run(&args).await.unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");

    let waiting = tokio::spawn({
        let args = AwaitArgs {
            timeout: Duration::from_secs(10),
            ..args
        };
        async move { await_ready::run(&args).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    admin.set_ready();
    waiting.await.unwrap().unwrap();
    assert_eq!(
        await_ready::parse_duration("30s"),
        Ok(Duration::from_secs(30))
    );
    assert_eq!(
        await_ready::parse_duration("1500ms"),
        Ok(Duration::from_millis(1500))
    );
    assert!(await_ready::parse_duration("3h").is_err());
}

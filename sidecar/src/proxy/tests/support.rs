//! Test support: echo backends on real sockets, hand-built configs, and a
//! proxy stack driven with `oneshot` or bound to a real listener.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::model::{
    Backend, BackendId, BackendProtocol, Endpoint, Filter, HostPattern, PathMatch, PortConfig,
    PortProtocol, ProxyConfig, RequestMatcher, RouteAction, RouteEntry, RouteTable, RuleRef,
    Timeouts, VirtualHost, WeightedBackend,
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::body::{self, Body};
use crate::config::{Compiled, ConfigRx, Publisher};
use crate::listeners::Listeners;
use crate::mesh::client::MeshClient;
use crate::metrics::Metrics;
use crate::proxy::balance::Balancer;
use crate::proxy::client::{Client, ClientParams};
use crate::proxy::retry::{BudgetParams, Budgets};
use crate::proxy::{ConnInfo, ProxyService, StackParams, gateway_stack};
use crate::server::{HttpServer, ServerMetrics, ServerParams};

pub(super) const PORT: u16 = 8080;

/// How an echo backend answers.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Behavior {
    pub(super) status: Option<StatusCode>,
    pub(super) delay: Option<Duration>,
}

/// An echo backend: answers with `x-backend: NAME`, and a body listing the
/// request line and headers. Accepts WebSocket-style upgrades and echoes
/// bytes on them.
pub(super) struct EchoBackend {
    pub(super) addr: SocketAddr,
    pub(super) hits: Arc<AtomicUsize>,
}

/// A proxy stack over a config that tests can replace.
pub(super) struct Proxy {
    pub(super) service: ProxyService,
    pub(super) publisher: Publisher,
    pub(super) config: ConfigRx,
    pub(super) registry: Registry,
}

/// A response with its body read.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) body: String,
}

// === impl EchoBackend ===

impl EchoBackend {
    pub(super) async fn start(name: &'static str) -> Self {
        Self::with(name, Behavior::default()).await
    }

    pub(super) async fn with(name: &'static str, behavior: Behavior) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        echo(name, behavior, req)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }

    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(super) fn backend(&self) -> Backend {
        Backend {
            endpoints: vec![Endpoint::Addr(self.addr)],
            protocol: BackendProtocol::Http1,
        }
    }
}

async fn echo(
    name: &'static str,
    behavior: Behavior,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if let Some(delay) = behavior.delay {
        tokio::time::sleep(delay).await;
    }
    if req.headers().contains_key(http::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(body::empty())
            .unwrap());
    }
    let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
    for (name, value) in req.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    let received = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("body: {}\n", String::from_utf8_lossy(&received)));
    Ok(Response::builder()
        .status(behavior.status.unwrap_or(StatusCode::OK))
        .header("x-backend", name)
        .body(body::full(text))
        .unwrap())
}

// === config builders ===

pub(super) fn id(name: &str) -> BackendId {
    BackendId {
        namespace: "default".into(),
        name: name.into(),
        port: 80,
    }
}

pub(super) fn weighted(weight: u32, target: Option<BackendId>) -> WeightedBackend {
    WeightedBackend {
        weight,
        target,
        filters: Vec::new(),
    }
}

pub(super) fn action(
    index: usize,
    backends: Vec<WeightedBackend>,
    filters: Vec<Filter>,
) -> RouteAction {
    RouteAction {
        rule: RuleRef {
            kind: "HTTPRoute".into(),
            namespace: "default".into(),
            name: "route".into(),
            index,
            section: None,
        },
        filters,
        backends,
        timeouts: Timeouts::default(),
        retry: None,
    }
}

pub(super) fn entry(path: PathMatch, action: RouteAction) -> RouteEntry {
    RouteEntry {
        matcher: RequestMatcher {
            path,
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        },
        action: Arc::new(action),
    }
}

pub(super) fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.to_string())
}

/// One HTTP port with `entries` under `host`, and `backends`.
pub(super) fn config(
    host: Option<&str>,
    entries: Vec<RouteEntry>,
    backends: Vec<(BackendId, Backend)>,
) -> ProxyConfig {
    ProxyConfig {
        ports: vec![PortConfig {
            port: PORT,
            protocol: PortProtocol::Http,
            certificates: Vec::new(),
            routes: RouteTable {
                virtual_hosts: vec![VirtualHost {
                    hostname: HostPattern::parse(host),
                    entries,
                }],
            },
        }],
        backends: backends.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

// === impl Proxy ===

impl Proxy {
    pub(super) fn new(config: ProxyConfig) -> Self {
        Self::with_budget(config, BudgetParams::default())
    }

    pub(super) fn with_budget(config: ProxyConfig, budget: BudgetParams) -> Self {
        let (mut publisher, config_rx, _errors) = Publisher::channel();
        publisher.publish(Compiled {
            config,
            status: serde_json::Value::Null,
        });
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let service = gateway_stack(StackParams {
            config: config_rx.clone(),
            metrics,
            budgets: Budgets::new(budget),
            balancer: Balancer::new(Duration::from_secs(5)),
            client: MeshClient::plain(
                Client::new(ClientParams::default()),
                ClientParams::default().idle_timeout,
            ),
        });
        Self {
            service,
            publisher,
            config: config_rx,
            registry,
        }
    }

    pub(super) fn replace(&mut self, config: ProxyConfig) {
        self.publisher.publish(Compiled {
            config,
            status: serde_json::Value::Null,
        });
    }

    /// Sends `req` through the stack as if it arrived on [`PORT`].
    pub(super) async fn send(&self, mut req: Request<Body>) -> Answer {
        req.extensions_mut().insert(ConnInfo {
            peer: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 9), 40000)),
            port: PORT,
            tls: false,
        });
        let rsp = self.service.clone().oneshot(req).await.unwrap();
        Answer::read(rsp).await
    }

    pub(super) async fn get(&self, host: &str, path: &str) -> Answer {
        self.send(request(host, path)).await
    }

    /// Binds the config's ports on 127.0.0.1 with real listeners.
    pub(super) fn listen(&self) {
        self.listen_with(ServerParams::default());
    }

    pub(super) fn listen_with(&self, params: ServerParams) {
        let listeners = Listeners::new(
            Ipv4Addr::LOCALHOST.into(),
            self.service.clone(),
            HttpServer::new(params, ServerMetrics::default()),
            self.config.clone(),
        );
        tokio::spawn(listeners.run());
    }
}

pub(super) fn request(host: &str, path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", host)
        .body(body::empty())
        .unwrap()
}

// === impl Answer ===

impl Answer {
    pub(super) async fn read<B>(rsp: Response<B>) -> Self
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub(super) fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }

    /// A header the backend received, from the echo body.
    pub(super) fn echoed(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// The request line the backend received.
    pub(super) fn echoed_line(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// A free port on 127.0.0.1 (racy, good enough for tests).
pub(super) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

pub(super) fn header_pair(
    name: &'static str,
    value: &'static str,
) -> (http::HeaderName, http::HeaderValue) {
    (
        http::HeaderName::from_static(name),
        http::HeaderValue::from_static(value),
    )
}

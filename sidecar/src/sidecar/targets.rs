//! On-demand discovery of outbound targets: the first connection to an
//! `IP:port` subscribes to ferry-control for it; every later connection
//! shares that subscription and sees its updates as they come. A view is
//! kept when the control plane goes away. The cache holds at most
//! `max_targets` targets (the least recently used goes first) and drops a
//! target nobody connected to for `idle_after` once no connection of it
//! is open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_api::client::{ClientError, ConnectOptions, OutboundClient, OutboundConfig};
use ferry_core::model::{BackendId, BackendProtocol, PortConfig, PortProtocol, ProxyConfig};
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::{ConfigRx, Snapshot};
use crate::mesh::client::{BadIdentity, EndpointIdentities};
use crate::proxy::ProxyService;

/// What is known of a target.
#[derive(Clone, Debug)]
pub enum TargetState {
    /// No answer yet.
    Pending,
    /// Discovery failed before any view arrived (the last error); it is
    /// retried, and connections wait for its answer as for a first one.
    Unavailable(Arc<str>),
    /// Not a mesh Service: forward untouched.
    Passthrough,
    /// A mesh Service port.
    Service(Arc<ServiceView>),
}

/// The applied view of a mesh Service port.
#[derive(Debug)]
pub struct ServiceView {
    /// The server's version of the view.
    pub version: u64,
    /// The Service port called.
    pub service: BackendId,
    /// Its protocol, from `appProtocol`.
    pub protocol_hint: BackendProtocol,
    /// `appProtocol` marks the port opaque TCP.
    pub opaque: bool,
    /// The routes, as a config with one port: the target's.
    pub config: Arc<ProxyConfig>,
    /// The expected identity of each meshed endpoint.
    pub identities: EndpointIdentities,
}

/// Turns a subscription into a stream of views; a function so tests can
/// feed views without a server.
pub type Subscribe = Arc<
    dyn Fn(
            SocketAddr,
        ) -> futures_util::stream::BoxStream<'static, Result<OutboundConfig, ClientError>>
        + Send
        + Sync,
>;

/// The subscribed targets.
#[derive(Clone)]
pub struct Targets {
    inner: Arc<Inner>,
}

struct Inner {
    subscribe: Subscribe,
    max_targets: usize,
    idle_after: Duration,
    entries: Mutex<HashMap<SocketAddr, Arc<Target>>>,
}

/// One subscribed target, shared by its connections.
pub struct Target {
    /// The original destination.
    pub addr: SocketAddr,
    state: watch::Receiver<TargetState>,
    config: ConfigRx,
    last_used: Mutex<Instant>,
    watch: AbortHandle,
    stack: Mutex<Option<ProxyService>>,
}

// === impl Targets ===

impl Targets {
    /// A cache subscribing through `subscribe`.
    pub fn new(subscribe: Subscribe, max_targets: usize, idle_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                subscribe,
                max_targets: max_targets.max(1),
                idle_after,
                entries: Mutex::default(),
            }),
        }
    }

    /// Subscriptions to ferry-control at `addr`, as called from
    /// `namespace`, all on one connection.
    pub fn discovery(addr: &str, namespace: String) -> Result<Subscribe, ClientError> {
        Self::discovery_with(addr, namespace, &ConnectOptions::default())
    }

    /// Like [`Self::discovery`], connecting with `options` (TLS with the
    /// proxy's certificate for an `https://` address).
    pub fn discovery_with(
        addr: &str,
        namespace: String,
        options: &ConnectOptions,
    ) -> Result<Subscribe, ClientError> {
        let client = OutboundClient::with_options(addr, options)?;
        Ok(Arc::new(move |target: SocketAddr| {
            client.watch(target.to_string(), namespace.clone()).boxed()
        }))
    }

    /// The target `addr`, subscribed to on first use.
    pub fn get(&self, addr: SocketAddr) -> Arc<Target> {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(target) = entries.get(&addr) {
            *target.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            return target.clone();
        }
        if entries.len() >= self.inner.max_targets
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, t)| *t.last_used.lock().unwrap_or_else(|e| e.into_inner()))
                .map(|(addr, _)| *addr)
        {
            tracing::debug!(target = %oldest, "Dropping the least recently used target");
            entries.remove(&oldest);
        }
        let target = Arc::new(Target::subscribe(addr, (self.inner.subscribe)(addr)));
        entries.insert(addr, target.clone());
        target
    }

    /// The subscribed targets, by address.
    pub fn snapshot(&self) -> Vec<Arc<Target>> {
        let entries = self.inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut targets: Vec<_> = entries.values().cloned().collect();
        targets.sort_by_key(|t| t.addr);
        targets
    }

    /// Drops targets idle for `idle_after` with no open connection, every
    /// quarter of that, until the task is dropped.
    pub async fn sweep(self) {
        let period = (self.inner.idle_after / 4).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(period).await;
            self.sweep_once();
        }
    }

    fn sweep_once(&self) {
        let now = Instant::now();
        let mut entries = self.inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|addr, target| {
            let idle =
                now.duration_since(*target.last_used.lock().unwrap_or_else(|e| e.into_inner()));
            let keep = idle < self.inner.idle_after || Arc::strong_count(target) > 1;
            if !keep {
                tracing::debug!(target = %addr, ?idle, "Unsubscribing from an idle target");
            }
            keep
        });
    }
}

// === impl Target ===

impl Target {
    fn subscribe<S>(addr: SocketAddr, views: S) -> Self
    where
        S: Stream<Item = Result<OutboundConfig, ClientError>> + Send + 'static,
    {
        let (state_tx, state) = watch::channel(TargetState::Pending);
        let (config_tx, config) = watch::channel(None);
        let task = tokio::spawn(apply_views(addr, views, state_tx, config_tx));
        Self {
            addr,
            state,
            config,
            last_used: Mutex::new(Instant::now()),
            watch: task.abort_handle(),
            stack: Mutex::default(),
        }
    }

    /// What is known now.
    pub fn state(&self) -> TargetState {
        self.state.borrow().clone()
    }

    /// What is known after waiting up to `wait` for an answer: a view, or
    /// that the target is not meshed. A failed attempt is no answer (its
    /// retry may bring one within the wait), so a passing hiccup of the
    /// control plane does not send connections around the mesh.
    pub async fn first_state(&self, wait: Duration) -> TargetState {
        let mut state = self.state.clone();
        let answered = tokio::time::timeout(
            wait,
            state.wait_for(|s| matches!(s, TargetState::Service(_) | TargetState::Passthrough)),
        );
        match answered.await {
            Ok(Ok(state)) => state.clone(),
            _ => self.state(),
        }
    }

    /// The target's request path, built by `build` from the target's
    /// routes on first use and shared by its connections.
    pub fn stack(&self, build: impl FnOnce(ConfigRx) -> ProxyService) -> ProxyService {
        let mut stack = self.stack.lock().unwrap_or_else(|e| e.into_inner());
        stack
            .get_or_insert_with(|| build(self.config.clone()))
            .clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// Applies the views of `addr` as they come; errors before the first view
/// make it [`TargetState::Unavailable`] (with the latest error), later ones
/// keep the last view.
async fn apply_views<S>(
    addr: SocketAddr,
    views: S,
    state: watch::Sender<TargetState>,
    config: watch::Sender<Option<Arc<Snapshot>>>,
) where
    S: Stream<Item = Result<OutboundConfig, ClientError>> + Send,
{
    let mut views = std::pin::pin!(views);
    let mut failing = false;
    let mut applied = 0u64;
    while let Some(item) = views.next().await {
        let view = match item {
            Ok(view) => view,
            Err(error) => {
                if !failing {
                    tracing::warn!(target = %addr, %error, "Discovery of outbound target failed; keeping what is known");
                }
                failing = true;
                state.send_if_modified(|s| {
                    let unanswered =
                        matches!(s, TargetState::Pending | TargetState::Unavailable(_));
                    if unanswered {
                        *s = TargetState::Unavailable(ferry_core::errors::chain(&error).into());
                    }
                    unanswered
                });
                continue;
            }
        };
        failing = false;
        match service_view(addr, view) {
            Ok(None) => {
                config.send_replace(None);
                state.send_replace(TargetState::Passthrough);
            }
            Ok(Some(view)) => {
                applied += 1;
                let view = Arc::new(view);
                // Identities first: a request routed with the new config
                // finds the identities of its endpoints.
                state.send_replace(TargetState::Service(view.clone()));
                config.send_replace(Some(Arc::new(Snapshot {
                    version: applied,
                    config: view.config.clone(),
                    status: serde_json::Value::Null,
                })));
            }
            Err(error) => {
                tracing::warn!(target = %addr, %error, "Ignoring an outbound view");
            }
        }
    }
}

/// The view to apply, or `None` for a passthrough target.
fn service_view(
    addr: SocketAddr,
    view: OutboundConfig,
) -> Result<Option<ServiceView>, Box<BadIdentity>> {
    let OutboundConfig::Service {
        version,
        service,
        protocol_hint,
        opaque,
        routes,
        backends,
    } = view
    else {
        return Ok(None);
    };
    let identities =
        EndpointIdentities::parse(backends.iter().map(|(id, b, e)| (id, b, e.as_slice())))?;
    let by_id = backends.into_iter().map(|(id, b, _)| (id, b)).collect();
    let config = ProxyConfig {
        ports: vec![PortConfig {
            port: addr.port(),
            protocol: PortProtocol::Http,
            certificates: Vec::new(),
            routes,
        }],
        backends: by_id,
    };
    Ok(Some(ServiceView {
        version,
        service,
        protocol_hint,
        opaque,
        config: Arc::new(config),
        identities,
    }))
}

#[cfg(test)]
mod tests;

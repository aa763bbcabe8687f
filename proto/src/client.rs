//! The proxy's side of discovery: streams of compiled configuration that
//! reconnect by themselves.
//!
//! [`watch_gateway`] never ends. It yields every view the server sends, and
//! an error for every failed connection or broken stream, then reconnects
//! with backoff and resyncs from the server's new first message. A proxy
//! applies the `Ok` items and logs the errors, so it keeps serving its last
//! configuration while the control plane is away.
//!
//! `host:port` and `http://` addresses are plaintext: the server trusts
//! whatever the caller claims (standalone and development installs). An
//! `https://` address needs [`ConnectOptions::with_tls`]: the server is
//! checked against the trust anchors, and the proxy presents its current
//! certificate at every (re)connection, so the server authorizes each
//! watch by the caller's identity.

use std::time::Duration;

use ferry_core::model::ProxyConfig;
use futures_util::Stream;
use tonic::transport::{Channel, Endpoint};

mod outbound;

pub use outbound::{OutboundClient, OutboundConfig, watch_outbound, watch_outbound_with};

use crate::identity::tls::{self, ConfigSource, TlsSetupError};

use crate::convert::{ConvertError, ExpectedIdentities};
use crate::pb;
use crate::pb::discovery_client::DiscoveryClient;

/// First delay before reconnecting after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Largest message accepted: the full view of a Gateway with tens of
/// thousands of routes is tens of MiB.
const MAX_MESSAGE: usize = 256 << 20;
/// Longest delay between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One view of a Gateway, as the proxy applies it.
#[derive(Debug)]
pub struct GatewayConfig {
    /// The server's version of the view.
    pub version: u64,
    /// What to serve; `None` while the Gateway does not exist or is not of
    /// a Ferry class (serve nothing).
    pub config: Option<ProxyConfig>,
    /// The Gateway's computed status as JSON (empty when unknown).
    pub status_json: String,
    /// The expected identity of each backend's endpoints (meshed pods),
    /// for a proxy that calls them over mTLS; empty without a config.
    pub identities: ExpectedIdentities,
}

/// How a client reaches discovery. The default is plaintext.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    tls: Option<ConfigSource>,
}

/// Why an item of a watch is not a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The discovery address is not a valid URI.
    #[error("failed to parse discovery address {addr}")]
    Address {
        /// The address given.
        addr: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connecting to the server failed.
    #[error("failed to connect to discovery at {addr}")]
    Connect {
        /// The address.
        addr: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// An `https://` address without TLS options, or TLS that cannot be
    /// set up.
    #[error("failed to set up TLS to discovery at {addr}")]
    Tls {
        /// The address.
        addr: String,
        /// Cause; `None` when no TLS options were given.
        #[source]
        source: Option<TlsSetupError>,
    },
    /// The server refused the watch or the stream broke.
    #[error("failed to watch {what} at {addr}: {status}")]
    Stream {
        /// What was watched (`Gateway ns/name`).
        what: String,
        /// The address.
        addr: String,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// The server sent a configuration the proxy cannot apply.
    #[error("failed to apply the view of {what} version {version}")]
    Convert {
        /// What was watched.
        what: String,
        /// The view's version.
        version: u64,
        /// Cause.
        #[source]
        source: ConvertError,
    },
}

struct State {
    addr: String,
    options: ConnectOptions,
    request: pb::GatewayWatch,
    stream: Option<tonic::Streaming<pb::GatewayUpdate>>,
    /// The last view received on the current stream, and its version.
    view: Option<(u64, pb::ProxyConfig)>,
    backoff: Duration,
    delay: Option<Duration>,
}

/// The URI of a discovery address: `host:port` means plaintext HTTP/2.
pub fn endpoint(addr: &str) -> Result<Endpoint, ClientError> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri)
        .map(|e| {
            e.connect_timeout(Duration::from_secs(2))
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
        })
        .map_err(|source| ClientError::Address {
            addr: addr.to_string(),
            source,
        })
}

/// A discovery client connected to `addr`.
async fn connect(
    addr: &str,
    options: &ConnectOptions,
) -> Result<DiscoveryClient<Channel>, ClientError> {
    let endpoint = endpoint(addr)?;
    let connected = match options.tls_for(addr)? {
        Some(configs) => tls::connect_with(&endpoint, configs)
            .await
            .map_err(|source| ClientError::Tls {
                addr: addr.to_string(),
                source: Some(source),
            })?,
        None => endpoint.connect().await,
    };
    let channel = connected.map_err(|source| ClientError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    Ok(DiscoveryClient::new(channel).max_decoding_message_size(MAX_MESSAGE))
}

/// Watches Gateway `namespace/name` at `addr` (`host:port` or a URI),
/// forever, in plaintext.
pub fn watch_gateway(
    addr: impl Into<String>,
    namespace: impl Into<String>,
    name: impl Into<String>,
) -> impl Stream<Item = Result<GatewayConfig, ClientError>> + Send + 'static {
    watch_gateway_with(addr, namespace, name, ConnectOptions::default())
}

/// Like [`watch_gateway`], connecting with `options` (TLS for `https://`).
pub fn watch_gateway_with(
    addr: impl Into<String>,
    namespace: impl Into<String>,
    name: impl Into<String>,
    options: ConnectOptions,
) -> impl Stream<Item = Result<GatewayConfig, ClientError>> + Send + 'static {
    let state = State {
        addr: addr.into(),
        options,
        request: pb::GatewayWatch {
            namespace: namespace.into(),
            name: name.into(),
        },
        stream: None,
        view: None,
        backoff: MIN_BACKOFF,
        delay: None,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        let item = s.next().await;
        Some((item, s))
    })
}

// === impl ConnectOptions ===

impl ConnectOptions {
    /// TLS for `https://` addresses, with the client config `configs`
    /// gives at each connection (anchors and the current certificate; see
    /// [`tls::client_config`]).
    pub fn with_tls(configs: ConfigSource) -> Self {
        Self { tls: Some(configs) }
    }

    /// The TLS configs for `addr`: `None` for plaintext addresses, an
    /// error for `https://` without TLS options.
    fn tls_for(&self, addr: &str) -> Result<Option<ConfigSource>, ClientError> {
        if !addr.starts_with("https://") {
            return Ok(None);
        }
        match &self.tls {
            Some(configs) => Ok(Some(configs.clone())),
            None => Err(ClientError::Tls {
                addr: addr.to_string(),
                source: None,
            }),
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

// === impl State ===

impl State {
    fn what(&self) -> String {
        format!("Gateway {}/{}", self.request.namespace, self.request.name)
    }

    async fn next(&mut self) -> Result<GatewayConfig, ClientError> {
        if let Some(delay) = self.delay.take() {
            tokio::time::sleep(delay).await;
        }
        if self.stream.is_none() {
            match self.connect().await {
                Ok(stream) => self.stream = Some(stream),
                Err(error) => return Err(self.failed(error)),
            }
        }
        loop {
            let message = match self.stream.as_mut() {
                Some(stream) => stream.message().await,
                None => Ok(None),
            };
            match message {
                // Parts of a large view: apply them all, then yield.
                Ok(Some(update)) if update.partial => {
                    self.apply(update, false)?;
                }
                Ok(Some(update)) => {
                    self.backoff = MIN_BACKOFF;
                    return self
                        .apply(update, true)?
                        .ok_or_else(|| ClientError::Stream {
                            what: self.what(),
                            addr: self.addr.clone(),
                            status: Box::new(tonic::Status::internal("no view")),
                        });
                }
                Ok(None) => {
                    let status = tonic::Status::unavailable("the server ended the stream");
                    return Err(self.broken(status));
                }
                Err(status) => return Err(self.broken(status)),
            }
        }
    }

    async fn connect(&self) -> Result<tonic::Streaming<pb::GatewayUpdate>, ClientError> {
        let mut client = connect(&self.addr, &self.options).await?;
        let response = client
            .watch_gateway(self.request.clone())
            .await
            .map_err(|status| ClientError::Stream {
                what: self.what(),
                addr: self.addr.clone(),
                status: Box::new(status),
            })?;
        Ok(response.into_inner())
    }

    /// Applies a full view or a delta to the current view.
    /// With `complete`, also converts the view into the model.
    fn apply(
        &mut self,
        update: pb::GatewayUpdate,
        complete: bool,
    ) -> Result<Option<GatewayConfig>, ClientError> {
        use pb::gateway_update::View;
        let version = update.version;
        match update.view {
            Some(View::Full(full)) => self.view = Some((version, full)),
            Some(View::Delta(delta)) => match &mut self.view {
                Some((current, view)) if *current == update.base_version => {
                    let applied = crate::delta::apply(view, delta);
                    if let Err(error) = applied {
                        let status = tonic::Status::data_loss(error.to_string());
                        return Err(self.broken(status));
                    }
                    *current = version;
                }
                _ => {
                    let status = tonic::Status::data_loss("a delta for a version never received");
                    return Err(self.broken(status));
                }
            },
            Some(View::Absent(_)) | None => self.view = None,
        }
        if !complete {
            return Ok(None);
        }
        let converted = self
            .view
            .as_ref()
            .map(|(_, view)| -> Result<_, ConvertError> {
                let identities = crate::convert::expected_identities(&view.backends)?;
                Ok((ProxyConfig::try_from(view.clone())?, identities))
            })
            .transpose()
            .map_err(|source| ClientError::Convert {
                what: self.what(),
                version,
                source,
            })?;
        let (config, identities) = match converted {
            Some((config, identities)) => (Some(config), identities),
            None => (None, ExpectedIdentities::new()),
        };
        Ok(Some(GatewayConfig {
            version,
            config,
            status_json: update.status_json,
            identities,
        }))
    }

    /// The stream broke: reconnect at once the first time.
    fn broken(&mut self, status: tonic::Status) -> ClientError {
        self.stream = None;
        self.view = None;
        self.delay = Some(Duration::ZERO);
        ClientError::Stream {
            what: self.what(),
            addr: self.addr.clone(),
            status: Box::new(status),
        }
    }

    /// Connecting failed: wait longer each time.
    fn failed(&mut self, error: ClientError) -> ClientError {
        self.delay = Some(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        error
    }
}

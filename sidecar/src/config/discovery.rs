//! The discovery config source: the compiled view of one Gateway streamed
//! by ferry-control, with the identity expected of each meshed endpoint.
//! While ferry-control is away the last view stays in force; the client
//! reconnects and resyncs on its own.

use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::{Compiled, Publisher};
use crate::mesh::client::EndpointIdentities;

/// Applies every view of Gateway `namespace/name` served at `addr`,
/// connecting with `options`; each view's endpoint identities go to
/// `identities` before its config is published, so a request routed with
/// the new config finds the identities of its endpoints.
pub async fn run(
    addr: String,
    namespace: String,
    name: String,
    options: ferry_api::ConnectOptions,
    identities: watch::Sender<EndpointIdentities>,
    mut publisher: Publisher,
) {
    let views = ferry_api::watch_gateway_with(addr, namespace, name, options);
    let mut views = std::pin::pin!(views);
    while let Some(view) = views.next().await {
        match view {
            Ok(view) => {
                // Status is shown on /config only; a view is served without it.
                let status = match serde_json::from_str(&view.status_json) {
                    Ok(status) => status,
                    Err(error) if !view.status_json.is_empty() => {
                        tracing::warn!(%error, "Discovery sent unreadable status; /config omits it");
                        serde_json::Value::Null
                    }
                    Err(_) => serde_json::Value::Null,
                };
                let config = view.config.unwrap_or_default();
                let expected = config.backends.iter().filter_map(|(id, backend)| {
                    Some((id, backend, view.identities.get(id)?.as_slice()))
                });
                match EndpointIdentities::parse(expected) {
                    Ok(parsed) => {
                        identities.send_replace(parsed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, version = view.version, "Ignoring a view from discovery");
                        continue;
                    }
                }
                tracing::info!(version = view.version, "Applied config from discovery");
                publisher.publish(Compiled { config, status });
            }
            Err(error) => {
                tracing::warn!(%error, "Discovery unavailable; keeping the last config");
            }
        }
    }
}

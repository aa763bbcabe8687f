//! The discovery config source: the compiled view of one Gateway streamed
//! by ferry-control. While ferry-control is away the last view stays in
//! force; the client reconnects and resyncs on its own.

use futures_util::StreamExt as _;

use super::{Compiled, Publisher};

/// Applies every view of Gateway `namespace/name` served at `addr`.
pub async fn run(addr: String, namespace: String, name: String, mut publisher: Publisher) {
    let views = ferry_api::watch_gateway(addr, namespace, name);
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
                tracing::info!(version = view.version, "Applied config from discovery");
                publisher.publish(Compiled {
                    config: view.config.unwrap_or_default(),
                    status,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "Discovery unavailable; keeping the last config");
            }
        }
    }
}

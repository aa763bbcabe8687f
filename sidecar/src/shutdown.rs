//! Stopping without failing calls. Kubernetes sends SIGTERM to every
//! container of a pod at once, while the pod's endpoints are still being
//! removed from the views of its callers: for a moment, new calls still
//! arrive. So on the signal the proxy keeps serving everything for the
//! drain period (`FERRY_DRAIN`, default 5 s, well inside the pod's default
//! 30 s grace), then stops; a second signal stops it at once. A sidecar
//! also keeps the app's outbound calls working while the app itself shuts
//! down.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;

/// How long the proxy serves after SIGTERM when `FERRY_DRAIN` is not set.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Runs `serving` until it fails, or until `signals` yields and `drain`
/// has passed since (or `signals` yields again).
pub async fn serve_until_drained<S, F>(
    serving: S,
    drain: Duration,
    mut signals: impl FnMut() -> F,
) -> anyhow::Result<()>
where
    S: Future<Output = anyhow::Result<()>>,
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return result,
        signal = signals() => signal?,
    }
    tracing::info!(
        ?drain,
        "Draining: serving on until the pod's callers have let go"
    );
    tokio::select! {
        result = &mut serving => result,
        () = tokio::time::sleep(drain) => {
            tracing::info!("Shutting down");
            Ok(())
        }
        signal = signals() => {
            signal?;
            tracing::info!("Shutting down at once on a second signal");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to listen for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn serves_through_the_drain_then_stops() {
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        let serving = async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        };
        let term = Arc::new(Notify::new());
        let signals = {
            let term = term.clone();
            move || {
                let term = term.clone();
                async move {
                    term.notified().await;
                    Ok(())
                }
            }
        };
        let start = Instant::now();
        let sender = term.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender.notify_one();
        });
        serve_until_drained(serving, Duration::from_secs(5), signals)
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        // Still serving after the signal: ~10 ticks before it, ~50 during.
        assert!(served.load(Ordering::Relaxed) >= 55, "{served:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_or_a_failure_ends_it_at_once() {
        let start = Instant::now();
        let serving = std::future::pending::<anyhow::Result<()>>();
        serve_until_drained(serving, Duration::from_secs(5), || async { Ok(()) })
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);

        let failing = async { anyhow::bail!("listener stopped") };
        let pending = || std::future::pending::<anyhow::Result<()>>();
        let error = serve_until_drained(failing, Duration::from_secs(5), pending)
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "listener stopped");
    }
}

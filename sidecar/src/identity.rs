//! The proxy's own workload identity: the certificate it presents to other
//! proxies and the trust anchors it checks theirs against.
//!
//! [`Credentials`] is the value the identity machinery publishes (a new one
//! at every renewal) and the mesh's TLS configs are built from; readers hold
//! a [`CredentialsRx`] and pick up the latest on each new connection, so a
//! renewal never touches connections already open.
//!
//! [`spawn`] starts the client that produces them (sidecar and gateway
//! proxies alike), configured by [`IdentitySettings`] from the injector's
//! variables: it makes a P-256 key in process (it never leaves the pod),
//! sends a CSR naming `spiffe://<td>/ns/<ns>/sa/<sa>` with the projected
//! ServiceAccount token (read afresh each time: the kubelet rotates it) to
//! the CA in ferry-control ([`ferry_api::identity::certify`]), checks the
//! answer ([`verify`]: exactly our URI SAN, valid now, chain leading to the
//! mounted or returned anchors), publishes it, and renews at ~70% of the
//! remaining lifetime with jitter ([`renew`]); failures are retried with
//! capped backoff while the last credentials stay published. [`summary`] is
//! what the admin `/config` page shows.
//!
//! The CA is reached at `FERRY_IDENTITY_ADDR` when set: an `https://`
//! address is ferry-control's TLS port, checked against the mounted
//! anchors, so the token never crosses the network in clear. Otherwise the
//! plaintext gRPC port of `FERRY_DISCOVERY_ADDR` is used (the injector sets
//! `FERRY_IDENTITY_ADDR` when the install gives ferry-control's TLS
//! address). The CA needs no client certificate: it is how a proxy gets
//! its first. Discovery at an `https://` address is authenticated with the
//! latest credentials ([`discovery_options`]).

use std::sync::Arc;
use std::time::SystemTime;

pub mod renew;
pub mod request;
mod settings;
pub mod verify;

pub use request::RequestError;
pub use settings::{IdentitySettings, IdentitySettingsError};

use ferry_core::identity::Identity;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A signed identity and what to trust.
#[derive(Debug)]
pub struct Credentials {
    /// Who this proxy is.
    pub identity: Identity,
    /// The leaf certificate first, then any intermediates (the issuer).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, made in this process; it never leaves it.
    pub key: PrivateKeyDer<'static>,
    /// The trust anchors peers' chains must lead to. During a rotation both
    /// the old and the new anchor are here.
    pub roots: Vec<CertificateDer<'static>>,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
}

/// The latest credentials; `None` until the first certificate is signed.
pub type CredentialsRx = tokio::sync::watch::Receiver<Option<Arc<Credentials>>>;

/// What the admin `/config` page shows of the proxy's certificate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySummary {
    /// The identity, once a certificate is held.
    pub identity: Option<String>,
    /// The leaf's `notAfter`, seconds since the Unix epoch.
    pub not_after_unix: Option<u64>,
    /// Seconds until it expires (0 when expired).
    pub expires_in_secs: Option<u64>,
    /// How many trust anchors are trusted.
    pub trust_anchors: usize,
}

/// Starts the identity client: a task that gets this proxy's certificate
/// from the CA, renews it at ~70% of its lifetime (with jitter), retries
/// failures with capped backoff, and keeps the last credentials until new
/// ones arrive. The task ends when every receiver is dropped.
pub fn spawn(settings: IdentitySettings) -> CredentialsRx {
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(keep_renewed(settings, tx));
    rx
}

/// The summary of `credentials` at `now`.
pub fn summary(credentials: Option<&Credentials>, now: SystemTime) -> IdentitySummary {
    match credentials {
        None => IdentitySummary {
            identity: None,
            not_after_unix: None,
            expires_in_secs: None,
            trust_anchors: 0,
        },
        Some(c) => IdentitySummary {
            identity: Some(c.identity.to_string()),
            not_after_unix: c
                .not_after
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            expires_in_secs: Some(
                c.not_after
                    .duration_since(now)
                    .unwrap_or_default()
                    .as_secs(),
            ),
            trust_anchors: c.roots.len(),
        },
    }
}

async fn keep_renewed(
    settings: IdentitySettings,
    tx: tokio::sync::watch::Sender<Option<Arc<Credentials>>>,
) {
    let identity = &settings.identity;
    let mut failures = 0u32;
    loop {
        let delay = match request::request(&settings).await {
            Ok(credentials) => {
                failures = 0;
                let jitter = rand::random_range(-1.0..=1.0);
                let delay = renew::renew_in(credentials.not_after, SystemTime::now(), jitter);
                tracing::info!(
                    %identity,
                    not_after = ?credentials.not_after,
                    renew_in = ?delay,
                    "Got a certificate"
                );
                tx.send_replace(Some(credentials));
                delay
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let remaining = tx.borrow().as_ref().map(|c| {
                    c.not_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                });
                let delay = renew::backoff(failures, remaining);
                tracing::warn!(
                    %identity,
                    %error,
                    retry_in = ?delay,
                    "Failed to get a certificate"
                );
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return,
        }
    }
}

/// Options for discovery connections that present the latest credentials:
/// at an `https://` address, every (re)connection checks ferry-control
/// against the current anchors and presents the current certificate; none
/// is attempted before the first certificate is signed.
pub fn discovery_options(credentials: CredentialsRx) -> ferry_api::ConnectOptions {
    use ferry_api::identity::tls::{TlsSetupError, client_config};
    ferry_api::ConnectOptions::with_tls(Arc::new(move || {
        let current = credentials
            .borrow()
            .clone()
            .ok_or_else(|| TlsSetupError::NoCredentials("discovery".to_owned()))?;
        client_config(
            &current.roots,
            Some((current.chain.clone(), current.key.clone_key())),
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn summary_shows_identity_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(summary(None, now).identity, None);
        let credentials = Credentials {
            identity: "spiffe://cluster.local/ns/shop/sa/reviews".parse().unwrap(),
            chain: Vec::new(),
            key: PrivateKeyDer::Pkcs8(Vec::new().into()),
            roots: vec![CertificateDer::from(vec![1])],
            not_after: now + Duration::from_secs(60),
        };
        let json = serde_json::to_value(summary(Some(&credentials), now)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "identity": "spiffe://cluster.local/ns/shop/sa/reviews",
                "notAfterUnix": 1_060,
                "expiresInSecs": 60,
                "trustAnchors": 1,
            })
        );
    }
}

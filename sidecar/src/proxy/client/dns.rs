//! Names of FQDN endpoints (ExternalName Services, FQDN EndpointSlices)
//! resolved in the proxy with hickory-resolver: the system's
//! `/etc/resolv.conf` (search domains, `ndots`) and hosts file, answers
//! cached for their TTL, and no blocking thread per lookup as
//! `getaddrinfo` needs. Without a readable `resolv.conf` the hosts file is
//! all there is: other names fail with a clear error rather than going to
//! resolvers nobody configured.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use hyper_util::client::legacy::connect::dns::Name;

use crate::proxy::BoxFuture;

/// A shared, caching resolver, set up on the first lookup (a proxy whose
/// endpoints are all addresses never pays for it).
#[derive(Clone, Default)]
pub(crate) struct Resolver {
    inner: Arc<OnceLock<TokioResolver>>,
}

/// A name that did not resolve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    /// The lookup failed (no such name, no answer in time, ...).
    #[error("failed to resolve {host}")]
    Resolve {
        /// The name.
        host: String,
        /// Cause.
        #[source]
        source: ResolveError,
    },
    /// The name exists but has no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The name.
        host: String,
    },
}

// === impl Resolver ===

impl Resolver {
    /// A resolver configured like the system's, once it is first used.
    pub(crate) fn from_system() -> Self {
        Self::default()
    }

    fn resolver(&self) -> &TokioResolver {
        self.inner.get_or_init(|| {
            let builder = TokioResolver::builder_tokio().unwrap_or_else(|error| {
                tracing::warn!(%error, "No usable /etc/resolv.conf: FQDN endpoints resolve from the hosts file only");
                TokioResolver::builder_with_config(
                    ResolverConfig::new(),
                    TokioConnectionProvider::default(),
                )
            });
            builder.build()
        })
    }

    /// The addresses of `host` (a name or an IP literal), each with `port`.
    pub(crate) async fn lookup(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, LookupError> {
        let ips = self
            .resolver()
            .lookup_ip(host)
            .await
            .map_err(|source| LookupError::Resolve {
                host: host.to_owned(),
                source,
            })?;
        let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(LookupError::NoAddress {
                host: host.to_owned(),
            });
        }
        Ok(addrs)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// The resolver of hyper-util's connector (the h2c pool); the connector
/// sets the port.
impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = LookupError;
    type Future = BoxFuture<Self::Response, LookupError>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move { Ok(resolver.lookup(name.as_str(), 0).await?.into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_from_the_hosts_file_and_ip_literals_resolve() {
        let resolver = Resolver::from_system();
        let addrs = resolver.lookup("localhost", 8080).await.unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        let addrs = resolver.lookup("192.0.2.7", 80).await.unwrap();
        assert_eq!(addrs, [SocketAddr::from(([192, 0, 2, 7], 80))]);
    }
}

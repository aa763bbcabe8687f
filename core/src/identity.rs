//! Workload identities: `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`.
//!
//! A proxy proves its identity with a certificate whose one URI SAN is the
//! identity; the CA signs only the identity of the ServiceAccount token it
//! was shown. Between proxies the expected identity also travels as the
//! TLS server name ([`Identity::server_name`]), a DNS name that maps back
//! one to one ([`Identity::from_server_name`]): one client TLS config then
//! checks every connection against the identity it was dialled for.

use std::fmt;
use std::str::FromStr;

/// The label that ends every server name Ferry derives from an identity,
/// before the trust domain: `<sa>.<ns>.sa.ferry.<trust-domain>`.
const SERVER_NAME_MARK: &str = "sa.ferry";

/// A workload's SPIFFE identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// The trust domain (`cluster.local` by default).
    pub trust_domain: String,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: String,
}

/// A string that is not a Ferry SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid identity {value:?}: {reason}")]
pub struct IdentityError {
    /// The string given.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

// === impl Identity ===

impl Identity {
    /// The identity of a ServiceAccount, after checking every part is a
    /// DNS label (trust domain: DNS name) so the identity round-trips.
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let identity = Self {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        };
        identity.check()?;
        Ok(identity)
    }

    /// The DNS name standing for this identity in TLS between proxies:
    /// `<sa>.<ns>.sa.ferry.<trust-domain>`.
    pub fn server_name(&self) -> String {
        format!(
            "{}.{}.{SERVER_NAME_MARK}.{}",
            self.service_account, self.namespace, self.trust_domain
        )
    }

    /// The identity a [`Self::server_name`] stands for.
    pub fn from_server_name(name: &str) -> Result<Self, IdentityError> {
        let error = |reason| IdentityError {
            value: name.to_owned(),
            reason,
        };
        let mut parts = name.splitn(3, '.');
        let (Some(sa), Some(ns), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(error("expected <sa>.<ns>.sa.ferry.<trust-domain>"));
        };
        let Some(trust_domain) = rest
            .strip_prefix(SERVER_NAME_MARK)
            .and_then(|r| r.strip_prefix('.'))
        else {
            return Err(error("expected <sa>.<ns>.sa.ferry.<trust-domain>"));
        };
        Self::new(trust_domain, ns, sa).map_err(|e| error(e.reason))
    }

    fn check(&self) -> Result<(), IdentityError> {
        let error = |reason| IdentityError {
            value: self.to_string(),
            reason,
        };
        if !is_dns_label(&self.namespace) {
            return Err(error("the namespace is not a DNS label"));
        }
        if !is_dns_label(&self.service_account) {
            return Err(error("the ServiceAccount is not a DNS label"));
        }
        if self.trust_domain.is_empty()
            || self.trust_domain.len() > 253
            || !self.trust_domain.split('.').all(is_dns_label)
        {
            return Err(error("the trust domain is not a DNS name"));
        }
        Ok(())
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| IdentityError {
            value: value.to_owned(),
            reason,
        };
        let rest = value
            .strip_prefix("spiffe://")
            .ok_or_else(|| error("expected the spiffe:// scheme"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [trust_domain, "ns", namespace, "sa", service_account] = parts[..] else {
            return Err(error("expected spiffe://<trust-domain>/ns/<ns>/sa/<sa>"));
        };
        Self::new(trust_domain, namespace, service_account).map_err(|e| error(e.reason))
    }
}

/// RFC 1123 label: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_uri_and_server_name() {
        let id = Identity::new("cluster.local", "shop", "reviews").unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/reviews");
        assert_eq!(id.to_string().parse::<Identity>().unwrap(), id);
        assert_eq!(id.server_name(), "reviews.shop.sa.ferry.cluster.local");
        assert_eq!(Identity::from_server_name(&id.server_name()).unwrap(), id);
    }

    #[test]
    fn refuses_what_is_not_an_identity() {
        for bad in [
            "https://cluster.local/ns/shop/sa/reviews",
            "spiffe://cluster.local/ns/shop/sa",
            "spiffe://cluster.local/ns/shop/sa/reviews/extra",
            "spiffe://cluster.local/sa/reviews/ns/shop",
            "spiffe:///ns/shop/sa/reviews",
            "spiffe://cluster.local/ns/Shop/sa/reviews",
            "spiffe://cluster.local/ns/shop/sa/re.views",
            "spiffe://cluster..local/ns/shop/sa/reviews",
        ] {
            assert!(bad.parse::<Identity>().is_err(), "{bad} parsed");
        }
        for bad in [
            "reviews.shop.cluster.local",
            "reviews.shop.sa.ferry",
            "reviews.sa.ferry.cluster.local",
            "Reviews.shop.sa.ferry.cluster.local",
        ] {
            assert!(Identity::from_server_name(bad).is_err(), "{bad} parsed");
        }
    }
}

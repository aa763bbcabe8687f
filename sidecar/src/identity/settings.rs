//! The identity client's settings, read from the variables the injector
//! sets (a function of a map, so tests need no environment mutation).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferry_core::identity::Identity;

/// Where the proxy gets its certificate, and for whom.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// The identity to ask for (`FERRY_TRUST_DOMAIN`, `FERRY_POD_NAMESPACE`,
    /// `FERRY_SERVICE_ACCOUNT`).
    pub identity: Identity,
    /// The CA's address: `FERRY_IDENTITY_ADDR` when set (`https://…` for
    /// ferry-control's TLS port, checked against the mounted anchors), else
    /// the plaintext gRPC port of `FERRY_DISCOVERY_ADDR`.
    pub ca_addr: String,
    /// The projected ServiceAccount token, read afresh for every request
    /// since the kubelet rotates it (`FERRY_IDENTITY_TOKEN`).
    pub token_path: PathBuf,
    /// The trust anchors mounted from ConfigMap `ferry-trust-anchors`
    /// (`FERRY_TRUST_ANCHORS`); a signed chain must lead to one of them
    /// when the file is readable.
    pub anchors_path: Option<PathBuf>,
}

/// A variable the identity client needs is missing or invalid.
#[derive(Debug, thiserror::Error)]
pub enum IdentitySettingsError {
    /// The variable is not set (or empty).
    #[error("{0} is not set: the proxy cannot ask for its identity")]
    Missing(&'static str),
    /// The identity's parts do not form a valid identity.
    #[error("failed to form the proxy's identity from the environment")]
    Identity(#[source] ferry_core::identity::IdentityError),
}

// === impl IdentitySettings ===

impl IdentitySettings {
    /// Reads the injector's variables from `vars`.
    pub fn from_env<I>(vars: I) -> Result<Self, IdentitySettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let get = |name: &'static str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(IdentitySettingsError::Missing(name))
        };
        let identity = Identity::new(
            get("FERRY_TRUST_DOMAIN")?,
            get("FERRY_POD_NAMESPACE")?,
            get("FERRY_SERVICE_ACCOUNT")?,
        )
        .map_err(IdentitySettingsError::Identity)?;
        Ok(Self {
            identity,
            ca_addr: get("FERRY_IDENTITY_ADDR").or_else(|_| get("FERRY_DISCOVERY_ADDR"))?,
            token_path: get("FERRY_IDENTITY_TOKEN")?.into(),
            anchors_path: get("FERRY_TRUST_ANCHORS").ok().map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ALL: &[(&str, &str)] = &[
        ("FERRY_TRUST_DOMAIN", "cluster.local"),
        ("FERRY_POD_NAMESPACE", "shop"),
        ("FERRY_SERVICE_ACCOUNT", "reviews"),
        (
            "FERRY_DISCOVERY_ADDR",
            "ferry-control.ferry-system.svc:8090",
        ),
        (
            "FERRY_IDENTITY_TOKEN",
            "/var/run/secrets/ferry/identity/token",
        ),
        ("FERRY_TRUST_ANCHORS", "/var/run/ferry/trust/ca.pem"),
    ];

    #[test]
    fn reads_the_injector_contract() {
        let settings = IdentitySettings::from_env(vars(ALL)).unwrap();
        assert_eq!(
            settings.identity.to_string(),
            "spiffe://cluster.local/ns/shop/sa/reviews"
        );
        assert_eq!(settings.ca_addr, "ferry-control.ferry-system.svc:8090");
        let mut tls = vars(ALL);
        tls.push((
            "FERRY_IDENTITY_ADDR".into(),
            "https://ferry-control.ferry-system.svc:8443".into(),
        ));
        let settings = IdentitySettings::from_env(tls).unwrap();
        assert_eq!(
            settings.ca_addr,
            "https://ferry-control.ferry-system.svc:8443"
        );
        assert_eq!(
            settings.anchors_path,
            Some(PathBuf::from("/var/run/ferry/trust/ca.pem"))
        );
    }

    #[test]
    fn names_what_is_missing_or_invalid() {
        let without: Vec<_> = ALL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "FERRY_IDENTITY_TOKEN")
            .collect();
        let err = IdentitySettings::from_env(vars(&without)).unwrap_err();
        assert!(err.to_string().contains("FERRY_IDENTITY_TOKEN"), "{err}");
        let mut bad = ALL.to_vec();
        bad[1] = ("FERRY_POD_NAMESPACE", "Shop");
        assert!(matches!(
            IdentitySettings::from_env(vars(&bad)),
            Err(IdentitySettingsError::Identity(_))
        ));
    }
}

//! The `ferry.dev/` pod annotations the injector reads and writes, parsed
//! and checked before anything is built, so a typo becomes a clear admission
//! error instead of a pod the apiserver rejects later.

use std::collections::BTreeMap;

use crate::InjectError;
use crate::config::{InjectConfig, ProxyResources};

/// `enabled` | `disabled`: `disabled` opts a pod out.
pub const INJECT: &str = "ferry.dev/inject";
/// Set by the injector to the Ferry version that injected the pod.
pub const INJECTED: &str = "ferry.dev/injected";
/// Comma list of inbound ports the proxy does not intercept.
pub const SKIP_INBOUND_PORTS: &str = "ferry.dev/skip-inbound-ports";
/// Comma list of outbound ports the proxy does not intercept.
pub const SKIP_OUTBOUND_PORTS: &str = "ferry.dev/skip-outbound-ports";
/// Comma list of ports the proxy treats as opaque TCP (no protocol detection).
pub const OPAQUE_PORTS: &str = "ferry.dev/opaque-ports";
/// Overrides the default proxy `requests.cpu`.
pub const PROXY_CPU_REQUEST: &str = "ferry.dev/proxy-cpu-request";
/// Overrides the default proxy `requests.memory`.
pub const PROXY_MEMORY_REQUEST: &str = "ferry.dev/proxy-memory-request";
/// Overrides the default proxy `limits.cpu`.
pub const PROXY_CPU_LIMIT: &str = "ferry.dev/proxy-cpu-limit";
/// Overrides the default proxy `limits.memory`.
pub const PROXY_MEMORY_LIMIT: &str = "ferry.dev/proxy-memory-limit";
/// `permissive` | `strict`: what the proxy does with inbound connections
/// that are not mutual TLS from another proxy (forwards them to the app, or
/// refuses them); passed as `FERRY_INBOUND_POLICY`. Unset: the proxy's
/// default, permissive.
pub const INBOUND_POLICY: &str = "ferry.dev/inbound-policy";
/// `true` | `false`: whether the app gets the client's verified SPIFFE
/// identity in the `ferry-client-identity` request header (the proxy always
/// removes a header of that name it did not set); passed as
/// `FERRY_INBOUND_IDENTITY_HEADER`. Unset: the proxy's default, false.
pub const INBOUND_IDENTITY_HEADER: &str = "ferry.dev/inbound-identity-header";
/// Overrides the default `FERRY_LOG`.
pub const PROXY_LOG_LEVEL: &str = "ferry.dev/proxy-log-level";
/// Label key marking Ferry's own pods, which are never injected.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// The settings of one pod after defaults and annotations are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodSettings {
    pub(crate) skip_inbound: Vec<u16>,
    pub(crate) skip_outbound: Vec<u16>,
    pub(crate) opaque: Vec<u16>,
    pub(crate) resources: ProxyResources,
    pub(crate) log_level: String,
    /// `permissive` or `strict`, when the pod sets it.
    pub(crate) inbound_policy: Option<&'static str>,
    /// `true` or `false`, when the pod sets it.
    pub(crate) inbound_identity_header: Option<&'static str>,
}

// PodSettings

impl PodSettings {
    /// Merges the config's defaults with the pod's annotations.
    pub(crate) fn from_annotations(
        annotations: &BTreeMap<String, String>,
        config: &InjectConfig,
    ) -> Result<Self, InjectError> {
        let quantity = |key: &str, default: &Option<String>| -> Result<_, InjectError> {
            match annotations.get(key) {
                Some(value) => parse_quantity(key, value).map(Some),
                None => Ok(default.clone()),
            }
        };
        let defaults = &config.resources;
        let log_level = match annotations.get(PROXY_LOG_LEVEL).map(|v| v.trim()) {
            Some("") => return Err(invalid(PROXY_LOG_LEVEL, "", "expected a log level")),
            Some(level) => level.to_owned(),
            None => config.log_level.clone(),
        };
        let inbound_policy = match annotations.get(INBOUND_POLICY).map(|v| v.trim()) {
            None => None,
            Some("permissive") => Some("permissive"),
            Some("strict") => Some("strict"),
            Some(other) => {
                return Err(invalid(
                    INBOUND_POLICY,
                    other,
                    "expected permissive or strict",
                ));
            }
        };
        let inbound_identity_header =
            match annotations.get(INBOUND_IDENTITY_HEADER).map(|v| v.trim()) {
                None => None,
                Some("true") => Some("true"),
                Some("false") => Some("false"),
                Some(other) => {
                    return Err(invalid(
                        INBOUND_IDENTITY_HEADER,
                        other,
                        "expected true or false",
                    ));
                }
            };
        Ok(Self {
            skip_inbound: ports(annotations, SKIP_INBOUND_PORTS)?,
            skip_outbound: ports(annotations, SKIP_OUTBOUND_PORTS)?,
            opaque: ports(annotations, OPAQUE_PORTS)?,
            resources: ProxyResources {
                cpu_request: quantity(PROXY_CPU_REQUEST, &defaults.cpu_request)?,
                memory_request: quantity(PROXY_MEMORY_REQUEST, &defaults.memory_request)?,
                cpu_limit: quantity(PROXY_CPU_LIMIT, &defaults.cpu_limit)?,
                memory_limit: quantity(PROXY_MEMORY_LIMIT, &defaults.memory_limit)?,
            },
            log_level,
            inbound_policy,
            inbound_identity_header,
        })
    }
}

/// Joins ports as the proxy's flags and env vars expect them: `22,8080`.
pub(crate) fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a comma list of ports (`22, 8080`), sorted and without duplicates.
fn ports(annotations: &BTreeMap<String, String>, key: &str) -> Result<Vec<u16>, InjectError> {
    let Some(value) = annotations.get(key) else {
        return Ok(Vec::new());
    };
    let mut ports = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u16>() {
            Ok(port) if port > 0 => ports.push(port),
            _ => {
                return Err(invalid(
                    key,
                    value,
                    "expected a comma list of ports 1-65535",
                ));
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// Checks the shape of a Kubernetes quantity (`100m`, `0.5`, `64Mi`, `1e3`).
fn parse_quantity(key: &str, value: &str) -> Result<String, InjectError> {
    const SUFFIXES: &[&str] = &[
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let value = value.trim();
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = SUFFIXES.contains(&suffix)
        || suffix
            .strip_prefix(['e', 'E'])
            .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    if number_ok && suffix_ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            key,
            value,
            "expected a Kubernetes quantity such as 100m or 64Mi",
        ))
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> InjectError {
    InjectError::InvalidAnnotation {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ports_are_sorted_and_deduplicated() {
        let a = annotations(&[(SKIP_INBOUND_PORTS, "8080, 22,8080,")]);
        let s = PodSettings::from_annotations(&a, &InjectConfig::new("v1")).unwrap();
        assert_eq!(s.skip_inbound, vec![22, 8080]);
    }

    #[test]
    fn bad_values_are_rejected_with_the_key() {
        for (key, value) in [
            (OPAQUE_PORTS, "http"),
            (SKIP_OUTBOUND_PORTS, "0"),
            (PROXY_CPU_LIMIT, "lots"),
            (PROXY_MEMORY_REQUEST, "64MB"),
            (PROXY_LOG_LEVEL, " "),
            (INBOUND_POLICY, "Strict"),
            (INBOUND_IDENTITY_HEADER, "yes"),
        ] {
            let err = PodSettings::from_annotations(
                &annotations(&[(key, value)]),
                &InjectConfig::new("v1"),
            )
            .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn quantities_in_kubernetes_shapes_pass() {
        for q in ["100m", "0.5", "64Mi", "1e3", "2", "1.5Gi"] {
            assert_eq!(parse_quantity("k", q).unwrap(), q);
        }
    }
}

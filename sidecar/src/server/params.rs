//! The limits every listener applies to its clients: one set of named
//! settings, read from the same `FERRY_*` variables in both modes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::sidecar::SettingsError;

/// Limit of a request head on the admin servers (probes, Prometheus),
/// which speak only HTTP/1: hyper's timer starts at accept, so it also
/// closes a connection that never speaks.
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits applied to client connections and requests. Gateway mode uses
/// [`ServerParams::default`]; sidecar mode [`ServerParams::sidecar`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerParams {
    /// How long a mesh listener waits for a connection's first bytes before
    /// deciding what it is without them: opaque TCP outbound, not the
    /// mesh's inbound (`FERRY_DETECT_TIMEOUT`, 1 s).
    pub detect_timeout: Duration,
    /// Limit of a TLS handshake (`FERRY_TLS_HANDSHAKE_TIMEOUT`, 10 s).
    pub tls_handshake_timeout: Duration,
    /// Limit of a request's head. For a connection's first request it
    /// counts from the connection's start (or its TLS handshake's end), so
    /// it also bounds telling HTTP/1 from the HTTP/2 preface; on an HTTP/1
    /// keep-alive connection it also bounds the wait for the next request
    /// (`FERRY_HEADER_READ_TIMEOUT`, 10 s).
    pub header_read_timeout: Duration,
    /// Largest request head accepted, in bytes (`FERRY_MAX_HEADER_BYTES`,
    /// 64 KiB).
    pub max_header_bytes: usize,
    /// An HTTP/2 connection without a request in flight for this long is
    /// closed with a GOAWAY (`FERRY_HTTP2_IDLE_TIMEOUT`, 90 s: longer than
    /// the mesh client's 60 s pool idle timeout, so a client proxy lets go
    /// of an idle connection before it could race the GOAWAY).
    pub http2_idle_timeout: Duration,
    /// Interval of the PINGs sent on HTTP/2 connections
    /// (`FERRY_HTTP2_KEEPALIVE_INTERVAL`, 20 s).
    pub http2_keep_alive_interval: Duration,
    /// An HTTP/2 connection whose PING is not acknowledged within this is
    /// closed (`FERRY_HTTP2_KEEPALIVE_TIMEOUT`, 20 s).
    pub http2_keep_alive_timeout: Duration,
    /// Limits of request bodies.
    pub body: BodyLimits,
}

/// How fast a request body must arrive while its response has not
/// started. Waiting for the backend to read (backpressure) does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// The longest wait for a body's next bytes, and the time every body
    /// may spend waiting in total before `min_rate` extends it
    /// (`FERRY_BODY_TIMEOUT`: 10 s in gateway mode, off in sidecar mode;
    /// `0s` turns both limits off).
    pub timeout: Option<Duration>,
    /// Each `min_rate` bytes received allow one more second of waiting in
    /// total (`FERRY_BODY_MIN_RATE`, bytes per second, 1024; `0` leaves
    /// only the wait for the next bytes).
    pub min_rate: u32,
}

// === impl ServerParams ===

impl Default for ServerParams {
    /// Gateway mode's limits: its clients are anyone.
    fn default() -> Self {
        Self {
            detect_timeout: Duration::from_secs(1),
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            http2_idle_timeout: Duration::from_secs(90),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
            body: BodyLimits {
                timeout: Some(Duration::from_secs(10)),
                min_rate: 1024,
            },
        }
    }
}

impl ServerParams {
    /// Sidecar mode's limits: the gateway's, without the request body
    /// limits. A sidecar's clients are its own app (outbound) and other
    /// meshed workloads (inbound), whose client-streaming calls may pause
    /// for longer than an edge allows.
    pub fn sidecar() -> Self {
        Self {
            body: BodyLimits {
                timeout: None,
                ..Self::default().body
            },
            ..Self::default()
        }
    }

    /// `defaults` with what `vars` sets: `FERRY_DETECT_TIMEOUT`,
    /// `FERRY_TLS_HANDSHAKE_TIMEOUT`, `FERRY_HEADER_READ_TIMEOUT`,
    /// `FERRY_MAX_HEADER_BYTES`, `FERRY_HTTP2_IDLE_TIMEOUT`,
    /// `FERRY_HTTP2_KEEPALIVE_INTERVAL`, `FERRY_HTTP2_KEEPALIVE_TIMEOUT`,
    /// `FERRY_BODY_TIMEOUT` and `FERRY_BODY_MIN_RATE` (durations as
    /// `500ms`, `10s`, `2m`).
    pub fn from_env(
        vars: &BTreeMap<String, String>,
        defaults: Self,
    ) -> Result<Self, SettingsError> {
        let error = |name: &'static str, reason: &str| SettingsError {
            name,
            value: vars.get(name).cloned().unwrap_or_default(),
            reason: reason.to_owned(),
        };
        let duration = |name: &'static str| -> Result<Option<Duration>, SettingsError> {
            vars.get(name)
                .map(|value| ferry_core::flags::parse_duration(value.trim()))
                .transpose()
                .map_err(|_| error(name, "expected a duration such as 500ms, 10s or 2m"))
        };
        let positive = |name: &'static str, default: Duration| match duration(name)? {
            None => Ok(default),
            Some(d) if !d.is_zero() => Ok(d),
            Some(_) => Err(error(name, "expected a positive duration")),
        };
        let number = |name: &'static str, default: u64| match vars.get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| error(name, "expected a whole number")),
        };
        let max_header_bytes = number("FERRY_MAX_HEADER_BYTES", defaults.max_header_bytes as u64)?;
        let min_rate = number("FERRY_BODY_MIN_RATE", u64::from(defaults.body.min_rate))?;
        Ok(Self {
            detect_timeout: positive("FERRY_DETECT_TIMEOUT", defaults.detect_timeout)?,
            tls_handshake_timeout: positive(
                "FERRY_TLS_HANDSHAKE_TIMEOUT",
                defaults.tls_handshake_timeout,
            )?,
            header_read_timeout: positive(
                "FERRY_HEADER_READ_TIMEOUT",
                defaults.header_read_timeout,
            )?,
            max_header_bytes: usize::try_from(max_header_bytes)
                .ok()
                .filter(|n| (1024..=16 << 20).contains(n))
                .ok_or_else(|| error("FERRY_MAX_HEADER_BYTES", "expected 1024 to 16777216"))?,
            http2_idle_timeout: positive("FERRY_HTTP2_IDLE_TIMEOUT", defaults.http2_idle_timeout)?,
            http2_keep_alive_interval: positive(
                "FERRY_HTTP2_KEEPALIVE_INTERVAL",
                defaults.http2_keep_alive_interval,
            )?,
            http2_keep_alive_timeout: positive(
                "FERRY_HTTP2_KEEPALIVE_TIMEOUT",
                defaults.http2_keep_alive_timeout,
            )?,
            body: BodyLimits {
                timeout: match duration("FERRY_BODY_TIMEOUT")? {
                    None => defaults.body.timeout,
                    Some(d) => Some(d).filter(|d| !d.is_zero()),
                },
                min_rate: u32::try_from(min_rate)
                    .map_err(|_| error("FERRY_BODY_MIN_RATE", "too large"))?,
            },
        })
    }
}

#[cfg(test)]
mod tests;

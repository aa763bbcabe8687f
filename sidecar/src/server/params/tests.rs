//! Limits read from the environment.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_limit_is_read_from_the_environment() {
    let defaults = ServerParams::default();
    assert_eq!(
        ServerParams::from_env(&vars(&[]), defaults).unwrap(),
        defaults
    );
    assert_eq!(ServerParams::sidecar().body.timeout, None);
    let set = ServerParams::from_env(
        &vars(&[
            ("FERRY_DETECT_TIMEOUT", "300ms"),
            ("FERRY_TLS_HANDSHAKE_TIMEOUT", "2s"),
            ("FERRY_HEADER_READ_TIMEOUT", "3s"),
            ("FERRY_MAX_HEADER_BYTES", "8192"),
            ("FERRY_HTTP2_IDLE_TIMEOUT", "2m"),
            ("FERRY_HTTP2_KEEPALIVE_INTERVAL", "5s"),
            ("FERRY_HTTP2_KEEPALIVE_TIMEOUT", "6s"),
            ("FERRY_BODY_TIMEOUT", "4s"),
            ("FERRY_BODY_MIN_RATE", "0"),
        ]),
        ServerParams::sidecar(),
    )
    .unwrap();
    assert_eq!(
        set,
        ServerParams {
            detect_timeout: Duration::from_millis(300),
            tls_handshake_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(3),
            max_header_bytes: 8192,
            http2_idle_timeout: Duration::from_secs(120),
            http2_keep_alive_interval: Duration::from_secs(5),
            http2_keep_alive_timeout: Duration::from_secs(6),
            body: BodyLimits {
                timeout: Some(Duration::from_secs(4)),
                min_rate: 0,
            },
        }
    );
    let off = ServerParams::from_env(&vars(&[("FERRY_BODY_TIMEOUT", "0s")]), defaults);
    assert_eq!(off.unwrap().body.timeout, None);
    for (name, value) in [
        ("FERRY_HEADER_READ_TIMEOUT", "0s"),
        ("FERRY_HTTP2_IDLE_TIMEOUT", "soon"),
        ("FERRY_MAX_HEADER_BYTES", "12"),
        ("FERRY_BODY_MIN_RATE", "-1"),
    ] {
        let error = ServerParams::from_env(&vars(&[(name, value)]), defaults).unwrap_err();
        assert_eq!(error.name, name, "{error}");
    }
}

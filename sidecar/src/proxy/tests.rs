//! Component tests of the gateway stack against echo backends on real
//! sockets.

mod support;
mod transport;

use std::time::Duration;

use ferry_core::model::{
    Backend, BackendProtocol, Cors, Filter, HeaderMatch, HeaderModifier, Mirror, PathModifier,
    Redirect, RetryPolicy, Rewrite, Timeouts, ValueMatch,
};
use http::{HeaderName, HeaderValue, StatusCode};

use self::support::*;
use crate::body;

fn header_pair(name: &'static str, value: &'static str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

#[tokio::test]
async fn weighted_split_within_three_points() {
    let a = EchoBackend::start("a").await;
    let b = EchoBackend::start("b").await;
    let action = action(
        0,
        vec![weighted(80, Some(id("a"))), weighted(20, Some(id("b")))],
        vec![],
    );
    let proxy = Proxy::new(config(
        None,
        vec![entry(prefix("/"), action)],
        vec![(id("a"), a.backend()), (id("b"), b.backend())],
    ));
    let mut to_a = 0;
    for _ in 0..2000 {
        let answer = proxy.get("example.com", "/").await;
        assert_eq!(answer.status, StatusCode::OK);
        if answer.backend() == Some("a") {
            to_a += 1;
        }
    }
    let share = f64::from(to_a) / 2000.0;
    assert!((share - 0.8).abs() <= 0.03, "share of a was {share}");
    assert_eq!(a.hits() + b.hits(), 2000);
}

#[tokio::test]
async fn header_match_and_host_mismatch() {
    let a = EchoBackend::start("a").await;
    let b = EchoBackend::start("b").await;
    let mut canary = entry(
        prefix("/"),
        action(0, vec![weighted(1, Some(id("b")))], vec![]),
    );
    canary.matcher.headers.push(HeaderMatch {
        name: HeaderName::from_static("x-canary"),
        value: ValueMatch::Exact("yes".into()),
    });
    let stable = entry(
        prefix("/"),
        action(1, vec![weighted(1, Some(id("a")))], vec![]),
    );
    let proxy = Proxy::new(config(
        Some("shop.example.com"),
        vec![canary, stable],
        vec![(id("a"), a.backend()), (id("b"), b.backend())],
    ));
    let mut req = request("shop.example.com", "/cart");
    req.headers_mut()
        .insert("x-canary", HeaderValue::from_static("yes"));
    assert_eq!(proxy.send(req).await.backend(), Some("b"));
    assert_eq!(
        proxy.get("shop.example.com:8080", "/cart").await.backend(),
        Some("a")
    );
    let miss = proxy.get("other.example.com", "/cart").await;
    assert_eq!(miss.status, StatusCode::NOT_FOUND);
    assert_eq!(miss.header("ferry-error"), Some("no-route"));
}

#[tokio::test]
async fn redirect_answers_without_backend() {
    let redirect = Filter::Redirect(Redirect {
        scheme: Some("https".into()),
        hostname: Some("secure.example.com".into()),
        port: None,
        path: Some(PathModifier::ReplacePrefixMatch("/new".into())),
        status: 301,
    });
    let proxy = Proxy::new(config(
        None,
        vec![entry(prefix("/old"), action(0, vec![], vec![redirect]))],
        vec![],
    ));
    let answer = proxy.get("example.com", "/old/page?x=1").await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.header("location"),
        Some("https://secure.example.com/new/page?x=1")
    );

    let keep_port = Filter::Redirect(Redirect {
        scheme: None,
        hostname: Some("other.example.com".into()),
        port: None,
        path: None,
        status: 302,
    });
    let proxy = Proxy::new(config(
        None,
        vec![entry(prefix("/"), action(0, vec![], vec![keep_port]))],
        vec![],
    ));
    let answer = proxy.get("example.com", "/a").await;
    assert_eq!(
        answer.header("location"),
        Some("http://other.example.com:8080/a")
    );
}

#[tokio::test]
async fn prefix_rewrite_and_header_modifiers() {
    let a = EchoBackend::start("a").await;
    let filters = vec![
        Filter::Rewrite(Rewrite {
            hostname: Some("internal.example.com".into()),
            path: Some(PathModifier::ReplacePrefixMatch("/v2".into())),
        }),
        Filter::RequestHeaders(HeaderModifier {
            set: vec![header_pair("x-set", "set")],
            add: vec![header_pair("x-added", "added")],
            remove: vec![HeaderName::from_static("x-remove-me")],
        }),
        Filter::ResponseHeaders(HeaderModifier {
            set: vec![],
            add: vec![header_pair("x-response", "yes")],
            remove: vec![HeaderName::from_static("x-backend")],
        }),
    ];
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/api"),
            action(0, vec![weighted(1, Some(id("a")))], filters),
        )],
        vec![(id("a"), a.backend())],
    ));
    let mut req = request("example.com", "/api/users?page=2");
    req.headers_mut()
        .insert("x-remove-me", HeaderValue::from_static("1"));
    req.headers_mut()
        .insert("x-added", HeaderValue::from_static("original"));
    let answer = proxy.send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.echoed_line(), "GET /v2/users?page=2 HTTP/1.1");
    assert_eq!(answer.echoed("host"), Some("internal.example.com"));
    assert_eq!(answer.echoed("x-set"), Some("set"));
    assert_eq!(answer.echoed("x-remove-me"), None);
    assert!(
        answer.body.contains("x-added: original\nx-added: added\n"),
        "{}",
        answer.body
    );
    assert_eq!(answer.header("x-response"), Some("yes"));
    assert_eq!(answer.backend(), None);

    let root = proxy.get("example.com", "/api").await;
    assert_eq!(root.echoed_line(), "GET /v2 HTTP/1.1");
}

#[tokio::test]
async fn hygiene_headers() {
    let a = EchoBackend::start("a").await;
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        vec![(id("a"), a.backend())],
    ));
    let mut req = request("Example.com", "/");
    let headers = req.headers_mut();
    headers.insert("connection", HeaderValue::from_static("close, x-hop"));
    headers.insert("x-hop", HeaderValue::from_static("1"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
    let answer = proxy.send(req).await;
    assert_eq!(answer.echoed("host"), Some("Example.com"));
    assert_eq!(answer.echoed("x-hop"), None);
    assert_eq!(answer.echoed("keep-alive"), None);
    assert_eq!(
        answer.echoed("x-forwarded-for"),
        Some("192.0.2.1, 10.0.0.9")
    );
    assert_eq!(answer.echoed("x-forwarded-proto"), Some("http"));
    assert_eq!(answer.echoed("x-forwarded-host"), Some("Example.com"));
}

#[tokio::test]
async fn invalid_and_empty_backends() {
    let proxy = Proxy::new(config(
        None,
        vec![
            entry(
                prefix("/invalid"),
                action(0, vec![weighted(1, None)], vec![]),
            ),
            entry(
                prefix("/zero"),
                action(1, vec![weighted(0, Some(id("a")))], vec![]),
            ),
            entry(prefix("/none"), action(2, vec![], vec![])),
            entry(
                prefix("/empty"),
                action(3, vec![weighted(1, Some(id("empty")))], vec![]),
            ),
            entry(
                prefix("/refused"),
                action(4, vec![weighted(1, Some(id("refused")))], vec![]),
            ),
        ],
        vec![
            (
                id("empty"),
                Backend {
                    endpoints: vec![],
                    protocol: BackendProtocol::Http1,
                },
            ),
            (
                id("refused"),
                Backend {
                    endpoints: vec![ferry_core::model::Endpoint::Addr(
                        ([127, 0, 0, 1], free_port()).into(),
                    )],
                    protocol: BackendProtocol::Http1,
                },
            ),
        ],
    ));
    for (path, status, cause) in [
        ("/invalid", 500, "invalid-backend"),
        ("/zero", 500, "invalid-backend"),
        ("/none", 500, "no-backends"),
        ("/empty", 503, "no-endpoints"),
        ("/refused", 502, "connect-failed"),
    ] {
        let answer = proxy.get("example.com", path).await;
        assert_eq!(answer.status.as_u16(), status, "{path}");
        assert_eq!(answer.header("ferry-error"), Some(cause), "{path}");
        assert!(!answer.body.is_empty());
    }
}

#[tokio::test]
async fn refused_endpoint_is_avoided() {
    let a = EchoBackend::start("a").await;
    let dead = ferry_core::model::Endpoint::Addr(([127, 0, 0, 1], free_port()).into());
    let backend = Backend {
        endpoints: vec![ferry_core::model::Endpoint::Addr(a.addr), dead],
        protocol: BackendProtocol::Http1,
    };
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        vec![(id("a"), backend)],
    ));
    let mut failures = 0;
    for _ in 0..50 {
        if proxy.get("example.com", "/").await.status != StatusCode::OK {
            failures += 1;
        }
    }
    assert!(
        failures <= 1,
        "{failures} requests went to the refusing endpoint"
    );
}

#[tokio::test]
async fn request_timeout_gives_504() {
    let slow = EchoBackend::with(
        "slow",
        Behavior {
            delay: Some(Duration::from_millis(500)),
            ..Behavior::default()
        },
    )
    .await;
    let mut act = action(0, vec![weighted(1, Some(id("slow")))], vec![]);
    act.timeouts = Timeouts {
        request: Some(Duration::from_millis(50)),
        backend_request: None,
    };
    let mut backend_act = action(1, vec![weighted(1, Some(id("slow")))], vec![]);
    backend_act.timeouts = Timeouts {
        request: None,
        backend_request: Some(Duration::from_millis(50)),
    };
    let proxy = Proxy::new(config(
        None,
        vec![
            entry(prefix("/request"), act),
            entry(prefix("/backend"), backend_act),
        ],
        vec![(id("slow"), slow.backend())],
    ));
    let answer = proxy.get("example.com", "/request").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.header("ferry-error"), Some("request-timeout"));
    let answer = proxy.get("example.com", "/backend").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.header("ferry-error"), Some("backend-timeout"));
}

#[tokio::test]
async fn retries_listed_codes_within_budget() {
    let failing = EchoBackend::with(
        "failing",
        Behavior {
            status: Some(StatusCode::SERVICE_UNAVAILABLE),
            ..Behavior::default()
        },
    )
    .await;
    let mut act = action(0, vec![weighted(1, Some(id("failing")))], vec![]);
    act.retry = Some(RetryPolicy {
        codes: vec![503],
        attempts: 2,
        backoff: Some(Duration::from_millis(1)),
    });
    let budget = crate::proxy::retry::BudgetParams {
        ttl: Duration::from_secs(10),
        min_per_sec: 1,
        ratio: 0.0,
    };
    let proxy = Proxy::with_budget(
        config(
            None,
            vec![entry(prefix("/"), act)],
            vec![(id("failing"), failing.backend())],
        ),
        budget,
    );
    let answer = proxy.get("example.com", "/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failing.hits(), 3, "first attempt and two retries");
    for _ in 0..20 {
        proxy.get("example.com", "/").await;
    }
    // The budget allows about 10 retries (1/s over 10s) and no more.
    let retries = failing.hits() - 21;
    assert!(retries <= 12, "{retries} retries despite the budget");
}

#[tokio::test]
async fn retry_reaches_a_healthy_backend() {
    let a = EchoBackend::start("a").await;
    let mut act = action(
        0,
        vec![weighted(1, Some(id("a"))), weighted(1, Some(id("refused")))],
        vec![],
    );
    act.retry = Some(RetryPolicy {
        codes: vec![],
        attempts: 20,
        backoff: Some(Duration::from_millis(1)),
    });
    let refused = Backend {
        endpoints: vec![ferry_core::model::Endpoint::Addr(
            ([127, 0, 0, 1], free_port()).into(),
        )],
        protocol: BackendProtocol::Http1,
    };
    let proxy = Proxy::new(config(
        None,
        vec![entry(prefix("/"), act)],
        vec![(id("a"), a.backend()), (id("refused"), refused)],
    ));
    for _ in 0..20 {
        assert_eq!(proxy.get("example.com", "/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn mirror_copies_without_affecting_the_real_request() {
    let a = EchoBackend::start("a").await;
    let copy = EchoBackend::start("copy").await;
    let mirrors = vec![
        Filter::Mirror(Mirror {
            target: Some(id("copy")),
            percent: 100.0,
        }),
        Filter::Mirror(Mirror {
            target: Some(id("gone")),
            percent: 100.0,
        }),
    ];
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], mirrors),
        )],
        vec![(id("a"), a.backend()), (id("copy"), copy.backend())],
    ));
    let mut req = request("example.com", "/m");
    *req.method_mut() = http::Method::POST;
    *req.body_mut() = body::full("payload");
    let answer = proxy.send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.echoed("body"), Some("payload"));
    for _ in 0..100 {
        if copy.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(copy.hits(), 1);
}

#[tokio::test]
async fn cors_preflight_and_response() {
    let a = EchoBackend::start("a").await;
    let cors = Filter::Cors(Cors {
        allow_origins: vec!["https://*.example.com".into()],
        allow_methods: vec!["GET".into(), "PUT".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-backend".into()],
        max_age: Some(600),
        allow_credentials: true,
    });
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![cors]),
        )],
        vec![(id("a"), a.backend())],
    ));
    let mut preflight = request("api.example.com", "/x");
    *preflight.method_mut() = http::Method::OPTIONS;
    preflight.headers_mut().insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    preflight.headers_mut().insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    let answer = proxy.send(preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.backend(), None);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert_eq!(a.hits(), 0);

    let mut simple = request("api.example.com", "/x");
    simple
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.test"));
    let answer = proxy.send(simple).await;
    assert_eq!(answer.backend(), Some("a"));
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn config_change_applies_to_next_request() {
    let a = EchoBackend::start("a").await;
    let b = EchoBackend::start("b").await;
    let backends = vec![(id("a"), a.backend()), (id("b"), b.backend())];
    let mut proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        backends.clone(),
    ));
    assert_eq!(proxy.get("example.com", "/").await.backend(), Some("a"));
    proxy.replace(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("b")))], vec![]),
        )],
        backends,
    ));
    assert_eq!(proxy.get("example.com", "/").await.backend(), Some("b"));
}

#[tokio::test]
async fn metrics_count_by_route_backend_and_code() {
    let a = EchoBackend::start("a").await;
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![]),
        )],
        vec![(id("a"), a.backend())],
    ));
    proxy.get("example.com", "/").await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &proxy.registry).unwrap();
    assert!(
        text.contains(r#"ferry_requests_total{route="HTTPRoute default/route rule 0",backend="default/a:80",code="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("ferry_request_duration_seconds_bucket"));
}

#[test]
fn replace_prefix_match_paths() {
    use crate::proxy::filters::replace_path;
    let m = |r: &str| PathModifier::ReplacePrefixMatch(r.into());
    assert_eq!(
        replace_path(&m("/one"), "/prefix/one/two", Some("/prefix/one")),
        "/one/two"
    );
    assert_eq!(
        replace_path(&m("/"), "/strip/three", Some("/strip")),
        "/three"
    );
    assert_eq!(replace_path(&m("/"), "/strip", Some("/strip")), "/");
    assert_eq!(replace_path(&m("/x"), "/abc", Some("/")), "/x/abc");
    assert_eq!(replace_path(&m("/bar/"), "/foo", Some("/foo")), "/bar/");
    assert_eq!(
        replace_path(
            &PathModifier::ReplaceFullPath("/full".into()),
            "/a/b",
            Some("/a")
        ),
        "/full"
    );
}

#[tokio::test]
async fn balancer_prefers_the_faster_endpoint() {
    let fast = EchoBackend::start("fast").await;
    let slow = EchoBackend::with(
        "slow",
        Behavior {
            delay: Some(Duration::from_millis(40)),
            ..Behavior::default()
        },
    )
    .await;
    let backend = Backend {
        endpoints: vec![
            ferry_core::model::Endpoint::Addr(fast.addr),
            ferry_core::model::Endpoint::Addr(slow.addr),
        ],
        protocol: BackendProtocol::Http1,
    };
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("svc")))], vec![]),
        )],
        vec![(id("svc"), backend)],
    ));
    for _ in 0..100 {
        assert_eq!(proxy.get("example.com", "/").await.status, StatusCode::OK);
    }
    assert!(slow.hits() < 20, "slow endpoint got {} of 100", slow.hits());
}

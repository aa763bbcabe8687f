//! Routing and filters: splits, matches, redirects, rewrites, header
//! modifiers, CORS, hygiene, config changes and metrics.

use ferry_core::model::{
    Cors, Filter, HeaderMatch, HeaderModifier, PathModifier, Redirect, Rewrite, ValueMatch,
};
use http::{HeaderName, HeaderValue, StatusCode};

use super::support::*;

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

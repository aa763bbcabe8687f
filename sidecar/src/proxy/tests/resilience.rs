//! Failure handling: invalid backends, refused and slow endpoints,
//! timeouts, retries and their budget, mirrors.

use std::time::Duration;

use ferry_core::model::{Backend, BackendProtocol, Filter, Mirror, RetryPolicy, Timeouts};
use http::StatusCode;

use super::support::*;
use crate::body;

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

#[tokio::test]
async fn slow_mirror_never_delays_the_real_request() {
    let a = EchoBackend::start("a").await;
    let slow = EchoBackend::with(
        "slow",
        Behavior {
            delay: Some(Duration::from_secs(3)),
            ..Behavior::default()
        },
    )
    .await;
    let mirror = Filter::Mirror(Mirror {
        target: Some(id("slow")),
        percent: 100.0,
    });
    let proxy = Proxy::new(config(
        None,
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id("a")))], vec![mirror]),
        )],
        vec![(id("a"), a.backend()), (id("slow"), slow.backend())],
    ));
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let mut req = request("example.com", "/");
        *req.method_mut() = http::Method::PUT;
        *req.body_mut() = body::full("x".repeat(256 * 1024));
        let answer = proxy.send(req).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn in_flight_requests_survive_a_config_change() {
    let slow = EchoBackend::with(
        "slow",
        Behavior {
            delay: Some(Duration::from_millis(300)),
            ..Behavior::default()
        },
    )
    .await;
    let b = EchoBackend::start("b").await;
    let backends = vec![(id("slow"), slow.backend()), (id("b"), b.backend())];
    let route = |to: &str| {
        vec![entry(
            prefix("/"),
            action(0, vec![weighted(1, Some(id(to)))], vec![]),
        )]
    };
    let mut proxy = Proxy::new(config(None, route("slow"), backends.clone()));
    let service = proxy.service.clone();
    let in_flight = tokio::spawn(async move {
        let mut req = request("example.com", "/");
        req.extensions_mut().insert(crate::proxy::ConnInfo {
            peer: ([10, 0, 0, 9], 40000).into(),
            port: PORT,
            tls: false,
        });
        Answer::read(tower::ServiceExt::oneshot(service, req).await.unwrap()).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The new config drops the slow backend altogether.
    proxy.replace(config(None, route("b"), vec![(id("b"), b.backend())]));
    assert_eq!(proxy.get("example.com", "/").await.backend(), Some("b"));
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.backend(), Some("slow"));
}

/// A 50/50 split where one Service's only endpoint refuses connections:
/// once the refusal is known, that share falls over to the other backend
/// instead of failing for the whole outage.
#[tokio::test]
async fn dead_backend_share_falls_over_to_the_other_backend() {
    let a = EchoBackend::start("a").await;
    let proxy = Proxy::new(split_with_dead_backend(&a, None));
    let mut failures = 0;
    for _ in 0..100 {
        if proxy.get("example.com", "/").await.status != StatusCode::OK {
            failures += 1;
        }
    }
    assert!(failures <= 1, "{failures} of 100 requests failed");
    assert!(a.hits() >= 99);
}

/// With `retry`, the retry of a connect failure goes to another endpoint
/// (here, of the other backend), so no request fails, even with a budget
/// that allows almost no retries.
#[tokio::test]
async fn retry_of_a_connect_failure_goes_to_another_endpoint() {
    let a = EchoBackend::start("a").await;
    let retry = RetryPolicy {
        codes: vec![],
        attempts: 1,
        backoff: Some(Duration::from_millis(1)),
    };
    let stingy = crate::proxy::retry::BudgetParams {
        ttl: Duration::from_secs(10),
        min_per_sec: 1,
        ratio: 0.0,
    };
    let proxy = Proxy::with_budget(split_with_dead_backend(&a, Some(retry.clone())), stingy);
    for i in 0..100 {
        let answer = proxy.get("example.com", "/").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {i}: {}",
            answer.body
        );
    }

    // Within one backend: the retry skips the endpoint that refused.
    let b = EchoBackend::start("b").await;
    let dead = ferry_core::model::Endpoint::Addr(([127, 0, 0, 1], free_port()).into());
    for order in [
        vec![dead.clone(), ferry_core::model::Endpoint::Addr(b.addr)],
        vec![ferry_core::model::Endpoint::Addr(b.addr), dead.clone()],
    ] {
        let mut act = action(0, vec![weighted(1, Some(id("b")))], vec![]);
        act.retry = Some(retry.clone());
        let backend = Backend {
            endpoints: order,
            protocol: BackendProtocol::Http1,
        };
        let proxy = Proxy::with_budget(
            config(
                None,
                vec![entry(prefix("/"), act)],
                vec![(id("b"), backend)],
            ),
            stingy,
        );
        for i in 0..20 {
            let answer = proxy.get("example.com", "/").await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "request {i}: {}",
                answer.body
            );
        }
    }
}

/// A rule splitting 50/50 between `a` and `dead`, whose only endpoint
/// refuses connections.
fn split_with_dead_backend(
    a: &EchoBackend,
    retry: Option<RetryPolicy>,
) -> ferry_core::model::ProxyConfig {
    let mut act = action(
        0,
        vec![weighted(50, Some(id("a"))), weighted(50, Some(id("dead")))],
        vec![],
    );
    act.retry = retry;
    let dead = Backend {
        endpoints: vec![ferry_core::model::Endpoint::Addr(
            ([127, 0, 0, 1], free_port()).into(),
        )],
        protocol: BackendProtocol::Http1,
    };
    config(
        None,
        vec![entry(prefix("/"), act)],
        vec![(id("a"), a.backend()), (id("dead"), dead)],
    )
}

/// The share of a failing backend falls over to the others in proportion
/// to their own weights.
#[tokio::test]
async fn fall_over_keeps_the_other_backends_weights() {
    let b = EchoBackend::start("b").await;
    let c = EchoBackend::start("c").await;
    let dead = Backend {
        endpoints: vec![ferry_core::model::Endpoint::Addr(
            ([127, 0, 0, 1], free_port()).into(),
        )],
        protocol: BackendProtocol::Http1,
    };
    let act = action(
        0,
        vec![
            weighted(50, Some(id("dead"))),
            weighted(30, Some(id("b"))),
            weighted(20, Some(id("c"))),
        ],
        vec![],
    );
    let proxy = Proxy::new(config(
        None,
        vec![entry(prefix("/"), act)],
        vec![
            (id("dead"), dead),
            (id("b"), b.backend()),
            (id("c"), c.backend()),
        ],
    ));
    for _ in 0..1000 {
        proxy.get("example.com", "/").await;
    }
    let share = b.hits() as f64 / (b.hits() + c.hits()) as f64;
    assert!(b.hits() + c.hits() >= 999);
    assert!(
        (share - 0.6).abs() < 0.05,
        "b got {share} of the fallen-over traffic"
    );
}

use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_core::model::RouteTable;
use futures_util::stream;
use tokio::sync::mpsc;

use super::*;

fn view(version: u64, endpoint: &str, identity: Option<&str>) -> OutboundConfig {
    let id = BackendId {
        namespace: "shop".into(),
        name: "reviews".into(),
        port: 9080,
    };
    OutboundConfig::Service {
        version,
        service: id.clone(),
        protocol_hint: BackendProtocol::Http1,
        opaque: false,
        routes: RouteTable::default(),
        backends: vec![(
            id,
            ferry_core::model::Backend {
                endpoints: vec![ferry_core::model::Endpoint::Addr(endpoint.parse().unwrap())],
                protocol: BackendProtocol::Http1,
            },
            vec![identity.map(str::to_string)],
        )],
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Targets whose subscriptions never answer, counting subscriptions.
fn silent(max: usize, idle: Duration) -> (Targets, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let subscribe: Subscribe = Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        stream::pending().boxed()
    });
    (Targets::new(subscribe, max, idle), count)
}

#[tokio::test(start_paused = true)]
async fn one_subscription_per_target_and_the_least_recently_used_goes_first() {
    let (targets, subscriptions) = silent(2, Duration::from_secs(600));
    let a = targets.get(addr("10.96.0.1:80"));
    assert!(Arc::ptr_eq(&a, &targets.get(addr("10.96.0.1:80"))));
    assert_eq!(subscriptions.load(Ordering::SeqCst), 1);
    drop(a);
    tokio::time::advance(Duration::from_millis(5)).await;
    targets.get(addr("10.96.0.2:80"));
    tokio::time::advance(Duration::from_millis(5)).await;
    targets.get(addr("10.96.0.1:80"));
    targets.get(addr("10.96.0.3:80"));
    let held: Vec<SocketAddr> = targets.snapshot().iter().map(|t| t.addr).collect();
    assert_eq!(held, [addr("10.96.0.1:80"), addr("10.96.0.3:80")]);
    assert_eq!(subscriptions.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn idle_targets_without_open_connections_are_dropped() {
    let (targets, _) = silent(10, Duration::from_secs(60));
    drop(targets.get(addr("10.96.0.1:80")));
    let open = targets.get(addr("10.96.0.2:80"));
    tokio::time::advance(Duration::from_secs(30)).await;
    targets.sweep_once();
    assert_eq!(targets.snapshot().len(), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    targets.sweep_once();
    let held: Vec<SocketAddr> = targets.snapshot().iter().map(|t| t.addr).collect();
    assert_eq!(held, [open.addr]);
}

#[tokio::test]
async fn views_apply_live_and_survive_the_control_plane_going_away() {
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Mutex::new(Some(rx));
    let subscribe: Subscribe = Arc::new(move |_| {
        let rx = rx.lock().unwrap().take().unwrap();
        stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    });
    let targets = Targets::new(subscribe, 10, Duration::from_secs(600));
    let target = targets.get(addr("10.96.0.12:9080"));
    assert!(matches!(target.state(), TargetState::Pending));

    let reviews = "spiffe://cluster.local/ns/shop/sa/reviews";
    tx.send(Ok(view(1, "10.1.0.1:8080", Some(reviews))))
        .unwrap();
    let TargetState::Service(first) = target.first_state(Duration::from_secs(5)).await else {
        panic!("expected a Service");
    };
    assert_eq!(first.version, 1);
    assert_eq!(first.config.ports[0].port, 9080);
    assert_eq!(
        first.identities.0[&addr("10.1.0.1:8080")].to_string(),
        reviews
    );
    assert_eq!(target.config.borrow().as_ref().unwrap().version, 1);

    tx.send(Ok(view(2, "10.1.0.2:8080", None))).unwrap();
    let mut state = target.state.clone();
    state
        .wait_for(|s| matches!(s, TargetState::Service(v) if v.version == 2))
        .await
        .unwrap();
    let TargetState::Service(second) = target.state() else {
        unreachable!("waited for it")
    };
    assert!(second.identities.0.is_empty());
    assert_eq!(target.config.borrow().as_ref().unwrap().version, 2);

    // A bad identity is not applied; the stream ending keeps the view.
    tx.send(Ok(view(3, "10.1.0.3:8080", Some("spiffe://x/not-ferry"))))
        .unwrap();
    drop(tx);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let TargetState::Service(kept) = target.state() else {
        panic!("the view is kept");
    };
    assert_eq!(kept.version, 2);
}

/// A failed first attempt is no answer: a connection waiting for the
/// target gets the view its retry brings within the wait, and only when
/// nothing answers in time is the target left unavailable, with the error.
#[tokio::test(start_paused = true)]
async fn a_failed_first_attempt_waits_for_the_retry() {
    let refused = || ClientError::Tls {
        addr: "https://ferry-control:8443".into(),
        source: None,
    };
    let reviews = "spiffe://cluster.local/ns/shop/sa/reviews";
    // The first attempt fails at once; the retry answers 300 ms later.
    let subscribe: Subscribe = Arc::new(move |_| {
        stream::iter([Err(refused())])
            .chain(
                stream::once(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(view(1, "10.1.0.1:8080", Some(reviews)))
                })
                .chain(stream::pending()),
            )
            .boxed()
    });
    let targets = Targets::new(subscribe, 10, Duration::from_secs(600));
    let target = targets.get(addr("10.96.0.12:9080"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(target.state(), TargetState::Unavailable(_)));
    let TargetState::Service(view) = target.first_state(Duration::from_secs(2)).await else {
        panic!("the retry's view was not waited for");
    };
    assert_eq!(view.version, 1);

    // Nothing but failures: after the wait, unavailable with the cause.
    let subscribe: Subscribe = Arc::new(move |_| {
        stream::iter([Err(refused())])
            .chain(stream::pending())
            .boxed()
    });
    let targets = Targets::new(subscribe, 10, Duration::from_secs(600));
    let target = targets.get(addr("10.96.0.12:9080"));
    let TargetState::Unavailable(error) = target.first_state(Duration::from_secs(2)).await else {
        panic!("expected unavailable");
    };
    assert!(
        error.contains("TLS to discovery at https://ferry-control"),
        "{error}"
    );
}

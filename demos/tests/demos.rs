//! Each standalone demo behaves as its seed says, through the real
//! `ferry-proxy` binary: splits within 3 points of the weights over 2,000
//! requests, header matches override splits, unmatched hosts and paths get
//! 404, HTTPS works with the demo certificate, and a route edited while
//! serving takes effect.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferry_demo::client::DemoClient;
use ferry_demo::{Demo, RunningDemo, proxy_binary};

const REQUESTS: usize = 2_000;

async fn start(name: &str) -> RunningDemo {
    let demo = Demo::load(&Demo::root(), name).expect("demo loads");
    RunningDemo::start(&demo, &proxy_binary().expect("ferry-proxy is built"))
        .await
        .expect("demo starts")
}

async fn connect(port: u16, tls: Option<(&str, &str)>) -> DemoClient {
    DemoClient::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), tls)
        .await
        .expect("connects")
}

/// Sends `REQUESTS` requests and returns each backend's share in percent.
async fn shares(
    client: &mut DemoClient,
    host: &str,
    path: &str,
    group: impl Fn(&str) -> String,
) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for _ in 0..REQUESTS {
        let answer = client.get(host, path, &[]).await.expect("request");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let backend = answer.backend.expect("an echo backend answered");
        *counts.entry(group(&backend)).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .map(|(name, n)| (name, n as f64 * 100.0 / REQUESTS as f64))
        .collect()
}

fn assert_share(shares: &BTreeMap<String, f64>, backend: &str, percent: f64) {
    let got = shares.get(backend).copied().unwrap_or(0.0);
    assert!(
        (got - percent).abs() <= 3.0,
        "{backend} got {got:.1}% of requests, expected {percent}% ± 3 (all: {shares:?})"
    );
}

async fn backend_of(
    client: &mut DemoClient,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let answer = client.get(host, path, headers).await.expect("request");
    assert_eq!(answer.status, 200, "{host}{path}: {}", answer.body);
    answer.backend.expect("an echo backend answered")
}

async fn status_of(client: &mut DemoClient, host: &str, path: &str) -> u16 {
    client
        .get(host, path, &[])
        .await
        .expect("request")
        .status
        .as_u16()
}

/// `whoami-6b465b89d6-lcg4k` -> `whoami`.
fn deployment(pod: &str) -> String {
    pod.split('-').next().unwrap_or(pod).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_whoami_host_exact_path_and_three_to_one_canary() {
    let demo = start("traefik-whoami").await;
    let mut client = connect(8000, None).await;

    assert_eq!(
        deployment(&backend_of(&mut client, "whoami", "/foo", &[]).await),
        "whoami"
    );
    let split = shares(&mut client, "whoami", "/", deployment).await;
    assert_share(&split, "whoami", 75.0);
    assert_share(&split, "nginx", 25.0);

    assert_eq!(status_of(&mut client, "whoami", "/bar").await, 404);
    assert_eq!(status_of(&mut client, "whoami", "/foo/").await, 404);
    assert_eq!(status_of(&mut client, "other", "/foo").await, 404);
    drop(demo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_helloworld_wildcard_listener_cross_namespace_ninety_ten() {
    let _demo = start("istio-helloworld").await;
    let mut client = connect(8080, None).await;
    let host = "helloworld.sample.com";

    let split = shares(&mut client, host, "/hello", |pod| pod[..13].to_string()).await;
    assert_share(&split, "helloworld-v1", 90.0);
    assert_share(&split, "helloworld-v2", 10.0);

    assert_eq!(status_of(&mut client, host, "/hello/world").await, 404);
    assert_eq!(
        status_of(&mut client, "other.sample.com", "/hello").await,
        404
    );
    assert_eq!(
        status_of(&mut client, "helloworld.example.org", "/hello").await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_blog_foo_prefixes_bar_canary_and_header_over_https() {
    let demo = start("gateway-api-blog").await;
    let ca = demo.ca_pem.clone().expect("an HTTPS demo has a CA");

    let mut foo = connect(9443, Some(("foo.example.com", &ca))).await;
    let host = "foo.example.com";
    assert_eq!(
        backend_of(&mut foo, host, "/login", &[]).await,
        "foo-auth-0"
    );
    assert_eq!(
        backend_of(&mut foo, host, "/home/kitchen", &[]).await,
        "foo-home-0"
    );
    assert_eq!(
        backend_of(&mut foo, host, "/homework", &[]).await,
        "foo-404-0"
    );
    assert_eq!(
        backend_of(&mut foo, host, "/anything", &[]).await,
        "foo-404-0"
    );

    let mut bar = connect(9443, Some(("bar.example.com", &ca))).await;
    let host = "bar.example.com";
    let split = shares(&mut bar, host, "/", |pod| pod.to_string()).await;
    assert_share(&split, "bar-v1-0", 90.0);
    assert_share(&split, "bar-v2-0", 10.0);
    for _ in 0..100 {
        let backend = backend_of(&mut bar, host, "/", &[("env", "canary")]).await;
        assert_eq!(backend, "bar-v2-0", "the header match overrides the split");
    }

    let mut baz = connect(9443, Some(("baz.example.com", &ca))).await;
    assert_eq!(status_of(&mut baz, "baz.example.com", "/").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_https_fifty_fifty_then_ninety_nine_to_one_live() {
    let demo = start("consul-https").await;
    let ca = demo.ca_pem.clone().expect("an HTTPS demo has a CA");
    let mut client = connect(8443, Some(("localhost", &ca))).await;

    assert_eq!(
        backend_of(&mut client, "localhost", "/", &[]).await,
        "frontend-0"
    );
    let split = shares(&mut client, "localhost", "/echo", |pod| pod.to_string()).await;
    assert_share(&split, "echo-1-0", 50.0);
    assert_share(&split, "echo-2-0", 50.0);

    // The seed's second step, applied to the running gateway.
    let canary = Demo::root().join("consul-https/canary-99-1.yaml");
    std::fs::copy(canary, demo.config_dir.join("manifests-route-echo.yaml")).expect("copy");
    wait_until_weight(&mut client, |share| share >= 90.0).await;
    let split = shares(&mut client, "localhost", "/echo", |pod| pod.to_string()).await;
    assert_share(&split, "echo-1-0", 99.0);
    assert_share(&split, "echo-2-0", 1.0);
}

/// Polls until the share of echo-1 over 100 requests satisfies `done`.
async fn wait_until_weight(client: &mut DemoClient, done: impl Fn(f64) -> bool) {
    for _ in 0..50 {
        let mut echo_1 = 0;
        for _ in 0..100 {
            if backend_of(client, "localhost", "/echo", &[]).await == "echo-1-0" {
                echo_1 += 1;
            }
        }
        if done(f64::from(echo_1)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the gateway did not apply the edited route within 10 s");
}

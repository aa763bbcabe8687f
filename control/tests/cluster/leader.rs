//! Two replicas: only the Lease holder writes status, and the other takes
//! over once the holder is gone.

use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_control::leader::LeaseConfig;
use ferry_harness::Cluster;

use crate::status::{BASE, TO_V1, route};
use crate::support::{apply, http_get, start_control, wait_route};

const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_millis(500);

fn lease(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: ns.to_string(),
        name: "ferry-control".to_string(),
        identity: identity.to_string(),
        lease_duration: LEASE,
        renew_every: RENEW,
    }
}

async fn writes(admin: std::net::SocketAddr) -> Result<usize> {
    let body = http_get(admin, "/metrics").await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("ferry_control_status_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as usize)
        .sum())
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_once() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let long = |identity| LeaseConfig {
        lease_duration: Duration::from_secs(60),
        ..lease(ns, identity)
    };
    let mut first = start_control(&cluster, Some(long("first"))).await?;
    tokio::time::timeout(Duration::from_secs(10), first.leader.wait_for(|l| *l)).await??;
    let mut second = start_control(&cluster, Some(long("second"))).await?;
    tokio::time::sleep(2 * RENEW).await;
    assert!(!*second.leader.borrow());

    first.tasks.shutdown().await;
    ferry_control::leader::release(cluster.client(), &long("first")).await?;
    // Well before the 60 s lease would expire.
    tokio::time::timeout(Duration::from_secs(5), second.leader.wait_for(|l| *l)).await??;
    Ok(())
}

#[tokio::test]
async fn only_the_leader_writes_and_the_other_takes_over() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client();
    let ns = cluster.namespace();
    let mut first = start_control(&cluster, Some(lease(ns, "first"))).await?;
    tokio::time::timeout(Duration::from_secs(10), first.leader.wait_for(|l| *l)).await??;
    let mut second = start_control(&cluster, Some(lease(ns, "second"))).await?;

    apply(&client, ns, BASE).await?;
    apply(
        &client,
        ns,
        &route("one", &format!("  parentRefs: [{{name: web}}]\n{TO_V1}")),
    )
    .await?;
    wait_route(&client, ns, "one", "web", "Accepted", ("True", "Accepted")).await?;
    // Give the follower time to (wrongly) write, then check it did not.
    tokio::time::sleep(2 * RENEW).await;
    assert!(!*second.leader.borrow());
    assert_eq!(
        writes(second.admin_addr).await?,
        0,
        "the follower wrote status"
    );
    assert!(
        writes(first.admin_addr).await? > 0,
        "the leader wrote nothing"
    );

    let killed = Instant::now();
    drop(first);
    tokio::time::timeout(LEASE * 4, second.leader.wait_for(|l| *l)).await??;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease {LEASE:?}, renew {RENEW:?})");
    assert!(
        takeover <= LEASE + 3 * RENEW,
        "took over after {takeover:?}"
    );

    apply(
        &client,
        ns,
        &route("two", &format!("  parentRefs: [{{name: web}}]\n{TO_V1}")),
    )
    .await?;
    wait_route(&client, ns, "two", "web", "Accepted", ("True", "Accepted")).await?;
    assert!(writes(second.admin_addr).await? > 0);
    Ok(())
}

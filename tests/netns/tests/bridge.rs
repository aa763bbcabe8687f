//! The node's bridge keeps one MAC address while pods join it. A Linux
//! bridge otherwise takes the lowest MAC of its ports, so a pod plugged in
//! later could change it: pods that had resolved the node's address kept
//! sending to the old MAC, and the node dropped their packets until their
//! neighbour entries expired (up to a minute of silent connect timeouts).

use std::net::Ipv4Addr;

use anyhow::Result;
use ferry_netns::{Pod, bridge, plug, unavailable};

fn mac(pod: &Pod, device: &str) -> Result<String> {
    let out = pod.run(&["cat", &format!("/sys/class/net/{device}/address")])?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

#[test]
fn the_bridge_address_does_not_move_as_pods_join() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let node = Pod::new("node")?;
    bridge(&node, Ipv4Addr::new(10, 211, 255, 254), 16)?;
    let first = Pod::new("first")?;
    plug(&node, &first, Ipv4Addr::new(10, 211, 0, 1), 16)?;
    let before = mac(&node, "br0")?;
    // Each new port has a random MAC; with twelve of them, one is lower
    // than the first port's almost surely (all but 1 in 13).
    let mut pods = Vec::new();
    for n in 2..14u8 {
        let pod = Pod::new("pod")?;
        plug(&node, &pod, Ipv4Addr::new(10, 211, 0, n), 16)?;
        pods.push(pod);
    }
    let after = mac(&node, "br0")?;
    assert_eq!(before, after, "br0 changed its MAC as pods joined");
    Ok(())
}

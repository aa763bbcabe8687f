use super::*;

fn vhost(host: &str, action_rule: &str) -> pb::VirtualHost {
    let hostname = if host == "*" {
        pb::host_pattern::Kind::Any(pb::Empty {})
    } else if let Some(suffix) = host.strip_prefix("*.") {
        pb::host_pattern::Kind::Wildcard(suffix.to_string())
    } else {
        pb::host_pattern::Kind::Exact(host.to_string())
    };
    pb::VirtualHost {
        hostname: Some(pb::HostPattern {
            kind: Some(hostname),
        }),
        actions: vec![pb::RouteAction {
            rule: Some(pb::RuleRef {
                name: action_rule.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        entries: vec![pb::RouteEntry {
            matcher: None,
            action: 0,
        }],
    }
}

fn backend(name: &str, ip: &str) -> pb::Backend {
    pb::Backend {
        id: Some(pb::BackendId {
            namespace: "shop".into(),
            name: name.into(),
            port: 80,
        }),
        endpoints: vec![pb::Endpoint {
            address: Some(pb::endpoint::Address::SocketAddr(format!("{ip}:80"))),
            identity: None,
        }],
        protocol: 0,
    }
}

fn config(ports: Vec<(u32, Vec<pb::VirtualHost>)>, backends: Vec<pb::Backend>) -> pb::ProxyConfig {
    pb::ProxyConfig {
        ports: ports
            .into_iter()
            .map(|(port, virtual_hosts)| pb::Port {
                port,
                virtual_hosts,
                ..Default::default()
            })
            .collect(),
        backends,
    }
}

#[test]
fn one_route_change_is_one_virtual_host() {
    let old = config(
        vec![(
            80,
            vec![
                vhost("a.example.com", "a"),
                vhost("b.example.com", "b"),
                vhost("*.example.com", "w"),
                vhost("*", "any"),
            ],
        )],
        vec![backend("a", "10.0.0.1"), backend("b", "10.0.0.2")],
    );
    let mut new = old.clone();
    new.ports[0].virtual_hosts[1] = vhost("b.example.com", "b2");
    let delta = diff(&old, &new);
    assert_eq!(delta.ports.len(), 1);
    assert_eq!(
        delta.ports[0].virtual_hosts,
        vec![vhost("b.example.com", "b2")]
    );
    assert!(delta.backends.is_empty() && delta.removed_backends.is_empty());
    let mut applied = old.clone();
    apply(&mut applied, delta).unwrap();
    assert_eq!(applied, new);
}

#[test]
fn additions_and_removals_keep_the_specificity_order() {
    let old = config(
        vec![
            (
                80,
                vec![
                    vhost("a.example.com", "a"),
                    vhost("*.example.com", "w"),
                    vhost("*", "any"),
                ],
            ),
            (81, vec![vhost("*", "x")]),
        ],
        vec![backend("a", "10.0.0.1"), backend("b", "10.0.0.2")],
    );
    let new = config(
        vec![
            (
                80,
                vec![
                    vhost("a.example.com", "a"),
                    vhost("z.example.com", "z"),
                    vhost("*.deep.example.com", "d"),
                    vhost("*.example.com", "w"),
                ],
            ),
            (82, vec![vhost("*", "y")]),
        ],
        vec![backend("a", "10.0.0.9"), backend("c", "10.0.0.3")],
    );
    let delta = diff(&old, &new);
    assert_eq!(delta.removed_ports, vec![81]);
    assert_eq!(delta.removed_backends.len(), 1);
    let mut applied = old.clone();
    apply(&mut applied, delta).unwrap();
    assert_eq!(applied, new);
    assert!(diff(&new, &new).ports.is_empty());
}

#[test]
fn split_views_reassemble_to_the_whole() {
    let hosts: Vec<pb::VirtualHost> = (0..25)
        .map(|i| vhost(&format!("h{i:02}.example.com"), "r"))
        .chain([vhost("*.example.com", "w"), vhost("*", "any")])
        .collect();
    let backends: Vec<pb::Backend> = (0..7)
        .map(|i| backend(&format!("b{i}"), "10.0.0.1"))
        .collect();
    let full = config(vec![(80, hosts.clone()), (81, hosts)], backends);
    let (first, parts) = split(&full, 10);
    assert_eq!(parts.len(), 7, "61 items in parts of 10");
    assert!(first.ports.iter().all(|p| p.virtual_hosts.is_empty()));
    let mut view = first;
    for part in parts {
        assert!(
            part.ports
                .iter()
                .map(|p| p.virtual_hosts.len())
                .sum::<usize>()
                + part.backends.len()
                <= 10
        );
        apply(&mut view, part).unwrap();
    }
    assert_eq!(view, full);
    let (whole, none) = split(&full, 1000);
    assert_eq!((whole, none.len()), (full, 0));
}

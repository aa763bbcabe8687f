use super::*;
use crate::model::{Meta, Service, ServicePort};

fn backend(name: &str, weight: Option<i32>) -> BackendRef {
    BackendRef {
        name: name.to_owned(),
        port: Some(80),
        weight,
        ..BackendRef::default()
    }
}

fn route(ns: &str, parent: ParentRef) -> Route {
    Route {
        meta: Meta {
            name: "r".to_owned(),
            namespace: ns.to_owned(),
            ..Meta::default()
        },
        parent_refs: vec![parent],
        ..Route::default()
    }
}

#[test]
fn shares_follow_weights() {
    let rule = Rule {
        backend_refs: vec![
            backend("a", Some(90)),
            backend("b", Some(10)),
            backend("c", Some(0)),
        ],
        ..Rule::default()
    };
    let percents: Vec<f64> = shares(&rule).iter().map(|s| s.percent).collect();
    assert_eq!(percents, [90.0, 10.0, 0.0]);
    let unset = Rule {
        backend_refs: vec![backend("a", None), backend("b", None), backend("c", None)],
        ..Rule::default()
    };
    let texts: Vec<String> = shares(&unset)
        .iter()
        .map(|s| format_percent(s.percent))
        .collect();
    assert_eq!(texts, ["33.3%", "33.3%", "33.3%"]);
    let zero = Rule {
        backend_refs: vec![backend("a", Some(0)), backend("b", Some(0))],
        ..Rule::default()
    };
    assert!(shares(&zero).iter().all(|s| s.percent == 0.0));
    assert_eq!(format_percent(66.666), "66.7%");
    assert_eq!(format_percent(100.0), "100%");
}

#[test]
fn wildcard_hostnames() {
    let hosts = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(hostnames_intersect(None, &hosts(&["a.example.com"])));
    assert!(hostnames_intersect(Some("*.example.com"), &[]));
    assert!(hostnames_intersect(
        Some("*.example.com"),
        &hosts(&["foo.example.com"])
    ));
    assert!(hostnames_intersect(
        Some("foo.example.com"),
        &hosts(&["*.example.com"])
    ));
    assert!(!hostnames_intersect(
        Some("*.example.com"),
        &hosts(&["example.com"])
    ));
    assert!(!hostnames_intersect(
        Some("*.example.com"),
        &hosts(&["foo.example.org"])
    ));
}

#[test]
fn service_parent_port_and_missing_service() {
    let mut inv = Inventory {
        services_known: true,
        ..Inventory::default()
    };
    inv.services.push(Service {
        meta: Meta {
            name: "svc".to_owned(),
            namespace: "ns".to_owned(),
            ..Meta::default()
        },
        ports: vec![ServicePort {
            name: Some("http".to_owned()),
            port: 80,
            ..ServicePort::default()
        }],
        ..Service::default()
    });
    let svc = |name: &str, port: Option<i32>| ParentRef {
        group: Some(String::new()),
        kind: Some("Service".to_owned()),
        name: name.to_owned(),
        port,
        ..ParentRef::default()
    };
    let r = route("ns", svc("svc", Some(80)));
    assert_eq!(
        parent(&inv, &r, &r.parent_refs[0]),
        ParentVerdict::Attached(vec!["80".to_owned()])
    );
    let r = route("ns", svc("svc", Some(81)));
    let ParentVerdict::Refused(refusal) = parent(&inv, &r, &r.parent_refs[0]) else {
        panic!("port 81 must be refused");
    };
    assert_eq!(refusal.cause, Cause::ParentPortNotFound);
    let r = route("ns", svc("nope", None));
    let ParentVerdict::Refused(refusal) = parent(&inv, &r, &r.parent_refs[0]) else {
        panic!("a missing Service must be refused");
    };
    assert_eq!(
        (refusal.reason, refusal.cause),
        (Reason::NoMatchingParent, Cause::ParentNotFound)
    );
    // Gateways were not read: no verdict rather than a wrong one.
    let r = route(
        "ns",
        ParentRef {
            name: "gw".to_owned(),
            ..ParentRef::default()
        },
    );
    assert_eq!(parent(&inv, &r, &r.parent_refs[0]), ParentVerdict::Unknown);
}

#[test]
fn every_cause_has_a_distinct_code() {
    let causes = [
        Cause::ParentNotFound,
        Cause::SectionNameNotFound,
        Cause::ParentPortNotFound,
        Cause::NamespaceNotAllowed,
        Cause::KindNotAllowed,
        Cause::HostnameMismatch,
        Cause::ParentKindUnsupported,
        Cause::BackendKindInvalid,
        Cause::BackendNotFound,
        Cause::BackendPortNotFound,
        Cause::MissingReferenceGrant,
    ];
    let mut codes: Vec<&str> = causes.iter().map(|c| c.code()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), causes.len());
    assert!(causes.iter().all(|c| !c.fix().is_empty()));
}

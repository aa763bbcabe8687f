use super::*;

fn shop_reviews() -> Transport {
    Transport::Tls(Some(Ok(
        Identity::new("cluster.local", "shop", "reviews").unwrap()
    )))
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

#[test]
fn plaintext_is_trusted_and_tls_without_certificate_only_when_not_required() {
    let watch = Watch::Outbound {
        source_namespace: "anything",
    };
    assert_eq!(authorize(&Transport::Plaintext, true, watch), Ok(()));
    assert_eq!(authorize(&Transport::Tls(None), false, watch), Ok(()));
    assert_eq!(
        authorize(&Transport::Tls(None), true, watch),
        Err(Denied::NoCertificate)
    );
    let bad = Transport::Tls(Some(Err("0 URI SANs, expected one".into())));
    let denied = authorize(&bad, false, watch).unwrap_err();
    assert_eq!(denied.as_str(), "bad_certificate");
}

#[test]
fn outbound_only_as_the_callers_namespace() {
    let own = Watch::Outbound {
        source_namespace: "shop",
    };
    assert_eq!(authorize(&shop_reviews(), true, own), Ok(()));
    let other = Watch::Outbound {
        source_namespace: "bank",
    };
    let denied = authorize(&shop_reviews(), true, other).unwrap_err();
    assert_eq!(denied.as_str(), "other_namespace");
    assert_eq!(
        denied.to_string(),
        "spiffe://cluster.local/ns/shop/sa/reviews may not watch outbound targets as namespace bank"
    );
}

#[test]
fn inbound_only_of_a_pod_running_as_the_caller() {
    let own = Watch::Inbound {
        pod_ip: IP,
        pod: Some(("shop", "reviews")),
    };
    assert_eq!(authorize(&shop_reviews(), true, own), Ok(()));
    for pod in [Some(("shop", "ratings")), Some(("bank", "reviews"))] {
        let watch = Watch::Inbound { pod_ip: IP, pod };
        let denied = authorize(&shop_reviews(), true, watch).unwrap_err();
        assert_eq!(denied.as_str(), "other_pod", "{pod:?}");
    }
    let unknown = Watch::Inbound {
        pod_ip: IP,
        pod: None,
    };
    let denied = authorize(&shop_reviews(), true, unknown).unwrap_err();
    assert_eq!(denied.as_str(), "unknown_pod");
    assert!(denied.to_string().contains("10.0.0.7"), "{denied}");
}

#[test]
fn gateway_only_of_the_callers_namespace() {
    let own = Watch::Gateway { namespace: "shop" };
    assert_eq!(authorize(&shop_reviews(), true, own), Ok(()));
    let other = Watch::Gateway { namespace: "bank" };
    let denied = authorize(&shop_reviews(), true, other).unwrap_err();
    assert_eq!(denied.as_str(), "other_gateway");
}

#[test]
fn the_identity_is_the_leafs_one_uri_san() {
    let leaf = |uris: &[&str]| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI((*u).try_into().unwrap()))
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        vec![params.self_signed(&key).unwrap().der().clone()]
    };
    let id = peer_identity(&leaf(&["spiffe://cluster.local/ns/shop/sa/reviews"])).unwrap();
    assert_eq!(id.namespace, "shop");
    assert_eq!(id.service_account, "reviews");
    assert!(peer_identity(&leaf(&[])).is_err());
    assert!(peer_identity(&leaf(&["spiffe://a/ns/x/sa/y", "spiffe://a/ns/x/sa/z"])).is_err());
    assert!(peer_identity(&leaf(&["https://example.com/"])).is_err());
    assert!(peer_identity(&[]).is_err());
}

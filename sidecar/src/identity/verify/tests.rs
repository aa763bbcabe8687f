use std::time::{Duration, SystemTime};

use ferry_core::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};

use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca() -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

fn leaf(ca: &Ca, uris: &[&str], not_after: SystemTime) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    params.not_before = (SystemTime::now() - DAY).into();
    params.not_after = not_after.into();
    params.signed_by(&key, &ca.issuer).unwrap().pem()
}

fn me() -> Identity {
    "spiffe://cluster.local/ns/shop/sa/reviews".parse().unwrap()
}

#[test]
fn accepts_our_identity_chained_to_the_anchor() {
    let ca = new_ca();
    let until = SystemTime::now() + DAY;
    let chain = leaf(&ca, &[&me().to_string()], until);
    let ok = verify(&me(), &chain, &ca.pem, None, SystemTime::now()).unwrap();
    assert_eq!(ok.chain.len(), 1);
    assert_eq!(ok.roots.len(), 1);
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(ok.not_after), secs(until));
    // Mounted anchors of a rotation are trusted too.
    let next = new_ca();
    let mounted = format!("{}{}", ca.pem, next.pem);
    let ok = verify(&me(), &chain, &ca.pem, Some(&mounted), SystemTime::now()).unwrap();
    assert_eq!(ok.roots.len(), 2);
}

#[test]
fn refuses_other_identities_expired_and_untrusted_chains() {
    let ca = new_ca();
    let now = SystemTime::now();
    let me = me().to_string();
    let other = "spiffe://cluster.local/ns/shop/sa/ratings";
    for uris in [vec![other], vec![me.as_str(), other], vec![]] {
        let chain = leaf(&ca, &uris, now + DAY);
        let err = verify(&me.parse().unwrap(), &chain, &ca.pem, None, now).unwrap_err();
        assert!(
            matches!(err, VerifyError::Identity { .. }),
            "{uris:?}: {err}"
        );
    }
    let chain = leaf(&ca, &[&me], now + DAY);
    let err = verify(&me.parse().unwrap(), &chain, &ca.pem, None, now + 2 * DAY).unwrap_err();
    assert!(matches!(err, VerifyError::Expired), "{err}");
    // Signed by a CA the response names but the mounted anchors do not.
    let stranger = new_ca();
    let err = verify(
        &me.parse().unwrap(),
        &chain,
        &ca.pem,
        Some(&stranger.pem),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::Untrusted), "{err}");
    let err = verify(&me.parse().unwrap(), &chain, &stranger.pem, None, now).unwrap_err();
    assert!(matches!(err, VerifyError::Untrusted), "{err}");
}

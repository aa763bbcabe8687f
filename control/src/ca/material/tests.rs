use std::time::{Duration, SystemTime};

use ferry_core::identity::Identity;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::*;

fn identity(sa: &str) -> Identity {
    Identity::new("cluster.local", "shop", sa).unwrap()
}

fn csr(sans: Vec<SanType>) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn uri(identity: &Identity) -> SanType {
    SanType::URI(identity.to_string().try_into().unwrap())
}

fn root() -> (GeneratedRoot, Material) {
    let root = GeneratedRoot::generate("cluster.local", SystemTime::now()).unwrap();
    let material = Material::from_pem(&root.cert_pem, &root.cert_pem, &root.key_pem).unwrap();
    (root, material)
}

#[test]
fn signs_a_leaf_with_exactly_the_identity_chaining_to_the_anchor() {
    let (root, material) = root();
    let id = identity("reviews");
    let request = check_csr(&csr(vec![uri(&id)]), &id).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let issued = material
        .sign(&request, &id, Duration::from_secs(24 * 3600), now)
        .unwrap();

    let ders = certificates("chain", &issued.chain_pem).unwrap();
    assert_eq!(ders.len(), 1, "a root issuer adds no intermediate");
    let (_, leaf) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    let expected = id.to_string();
    assert_eq!(
        sans.value.general_names,
        vec![GeneralName::URI(expected.as_str())]
    );
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        1_900_000_000 + 24 * 3600
    );
    assert_eq!(
        leaf.validity().not_before.timestamp(),
        1_900_000_000 - i64::try_from(BACKDATE.as_secs()).unwrap()
    );
    assert_eq!(
        issued.not_after,
        now + Duration::from_secs(24 * 3600),
        "notAfter reported as signed"
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!leaf.is_ca());
    let anchor_der = certificates("ca", &root.cert_pem).unwrap().remove(0);
    let (_, anchor) = x509_parser::parse_x509_certificate(&anchor_der).unwrap();
    leaf.verify_signature(Some(anchor.public_key())).unwrap();
    assert_eq!(material.anchors_pem(), root.cert_pem);
}

#[test]
fn a_leaf_never_outlives_its_issuer() {
    let (_, material) = root();
    let id = identity("reviews");
    let request = check_csr(&csr(vec![uri(&id)]), &id).unwrap();
    let issued = material
        .sign(
            &request,
            &id,
            Duration::from_secs(100 * 365 * 24 * 3600),
            SystemTime::now(),
        )
        .unwrap();
    assert!(issued.not_after < SystemTime::now() + ROOT_LIFETIME + Duration::from_secs(60));
}

#[test]
fn csrs_naming_anything_else_are_refused() {
    let id = identity("reviews");
    let other = identity("ratings");
    let dns = SanType::DnsName("reviews.shop".try_into().unwrap());
    for sans in [
        vec![uri(&other)],
        vec![uri(&id), dns.clone()],
        vec![dns],
        vec![],
    ] {
        let refusal = check_csr(&csr(sans.clone()), &id).unwrap_err();
        assert!(
            matches!(refusal, CsrRefusal::WrongIdentity { .. }),
            "{sans:?}: {refusal}"
        );
    }
    let refusal = check_csr(&csr(vec![uri(&other)]), &id).unwrap_err();
    assert!(
        refusal
            .to_string()
            .contains("spiffe://cluster.local/ns/shop/sa/ratings")
    );
}

#[test]
fn csrs_that_do_not_parse_or_verify_are_invalid() {
    let id = identity("reviews");
    assert!(matches!(
        check_csr("not a CSR", &id),
        Err(CsrRefusal::Invalid(_))
    ));
    // Flip a bit of the signature: the requester does not hold the key.
    let pem = csr(vec![uri(&id)]);
    let mut block = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let last = block.contents.len() - 3;
    block.contents[last] ^= 0x01;
    let tampered = pem_block("CERTIFICATE REQUEST", &block.contents);
    assert!(matches!(
        check_csr(&tampered, &id),
        Err(CsrRefusal::Invalid(_))
    ));
}

#[test]
fn material_is_checked_and_keeps_every_anchor() {
    let (old, _) = root();
    let (new, _) = root();
    let both = format!("{}{}", old.cert_pem, new.cert_pem);
    // Rotation overlap: the new issuer, both anchors.
    let material = Material::from_pem(&both, &new.cert_pem, &new.key_pem).unwrap();
    assert_eq!(material.anchors_pem(), both);

    let err = Material::from_pem(&old.cert_pem, &old.cert_pem, &new.key_pem).unwrap_err();
    assert!(err.to_string().contains("tls.key is not the key"), "{err}");
    let err = Material::from_pem(&old.cert_pem, &new.cert_pem, &new.key_pem).unwrap_err();
    assert!(err.to_string().contains("does not lead"), "{err}");
    let err = Material::from_pem("", &new.cert_pem, &new.key_pem).unwrap_err();
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

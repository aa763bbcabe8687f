use std::sync::Arc;

use rustls::pki_types::{ServerName, UnixTime};

use super::*;
use crate::mesh::test_pki::{TestCa, identity};

fn verify(
    verifier: &SpiffeServerVerifier,
    cert: &CertificateDer<'_>,
    expected: &Identity,
) -> Result<ServerCertVerified, rustls::Error> {
    let name = ServerName::try_from(expected.server_name()).unwrap();
    verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
}

fn message(error: rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => e.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn verifier_accepts_only_the_expected_identity_from_the_trusted_ca() {
    let ca = TestCa::new();
    let reviews = identity("shop", "reviews");
    let verifier = SpiffeServerVerifier::new(Arc::new(root_store(&[ca.root()]).unwrap()));
    let (cert, _) = ca.leaf(&[&reviews.to_string()]);
    verify(&verifier, &cert, &reviews).unwrap();

    // Right chain, another identity.
    let (other, _) = ca.leaf(&[&identity("shop", "ratings").to_string()]);
    let error = message(verify(&verifier, &other, &reviews).unwrap_err());
    assert!(
        error.contains("presented identity spiffe://cluster.local/ns/shop/sa/ratings")
            && error.contains("expected spiffe://cluster.local/ns/shop/sa/reviews"),
        "{error}"
    );

    // Right identity, untrusted chain (another CA with the same name: the
    // signature does not verify).
    let (untrusted, _) = TestCa::new().leaf(&[&reviews.to_string()]);
    let error = verify(&verifier, &untrusted, &reviews).unwrap_err();
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        ),
        "{error:?}"
    );

    // No URI SAN, or two.
    let (bare, _) = ca.leaf(&[]);
    let error = message(verify(&verifier, &bare, &reviews).unwrap_err());
    assert!(error.contains("has 0 URI SANs"), "{error}");
    let (two, _) = ca.leaf(&[&reviews.to_string(), "spiffe://cluster.local/ns/a/sa/b"]);
    let error = message(verify(&verifier, &two, &reviews).unwrap_err());
    assert!(error.contains("has 2 URI SANs"), "{error}");

    // A URI SAN that is not an identity.
    let (web, _) = ca.leaf(&["https://reviews.shop"]);
    let error = message(verify(&verifier, &web, &reviews).unwrap_err());
    assert!(error.contains("not a Ferry identity"), "{error}");
}

#[test]
fn server_names_that_are_not_identities_are_refused() {
    let ca = TestCa::new();
    let verifier = SpiffeServerVerifier::new(Arc::new(root_store(&[ca.root()]).unwrap()));
    let (cert, _) = ca.leaf(&["spiffe://cluster.local/ns/shop/sa/reviews"]);
    for name in [
        ServerName::try_from("reviews.shop.svc.cluster.local").unwrap(),
        ServerName::try_from("10.0.0.1").unwrap(),
    ] {
        let error = verifier
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(
            message(error).contains("server name does not stand for an identity"),
            "{name:?}"
        );
    }
}

#[test]
fn client_config_needs_roots_and_a_matching_key() {
    let ca = TestCa::new();
    let me = identity("shop", "web");
    let credentials = ca.credentials(&me);
    let config = client_config(&credentials, crate::mesh::ALPN_HTTP).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"ferry.h2".to_vec()]);
    assert!(config.client_auth_cert_resolver.has_certs());

    let no_roots = Credentials {
        roots: Vec::new(),
        ..ca.credentials(&me)
    };
    assert!(matches!(
        client_config(&no_roots, crate::mesh::ALPN_HTTP),
        Err(TlsConfigError::NoRoots)
    ));
    let (_, other_key) = ca.leaf(&[]);
    let mismatched = Credentials {
        key: other_key,
        ..ca.credentials(&me)
    };
    assert!(matches!(
        client_config(&mismatched, crate::mesh::ALPN_HTTP),
        Err(TlsConfigError::ClientCert { .. })
    ));
}

//! The Secret holding the CA's material (`kubernetes.io/tls` layout:
//! `ca.crt` the trust anchors, `tls.crt`/`tls.key` the issuer).
//!
//! The installer may supply it; otherwise the first replica to start
//! creates it with a new self-signed root. A Secret that exists is never
//! overwritten: when two replicas race to create it, the loser (409) reads
//! the winner's.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use super::material::{GeneratedRoot, Material, MaterialError};

/// Key of the trust anchors in the Secret.
pub const CA_CRT: &str = "ca.crt";
/// Key of the issuer's certificate (then intermediates).
pub const TLS_CRT: &str = "tls.crt";
/// Key of the issuer's private key.
pub const TLS_KEY: &str = "tls.key";

/// Where the Secret's material came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// It existed (supplied, or created at an earlier start).
    Existing,
    /// This replica created it.
    Created,
    /// Another replica created it while this one tried to.
    CreatedByOther,
}

/// Why the Secret cannot be read or created.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading failed.
    #[error("failed to read Secret {namespace}/{name}")]
    Get {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Creating failed (other than "already exists").
    #[error("failed to create Secret {namespace}/{name}")]
    Create {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The Secret's content is not usable material.
    #[error("Secret {namespace}/{name} does not hold usable CA material")]
    Material {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: MaterialError,
    },
}

/// The material of Secret `namespace/name`, created with a new root for
/// `trust_domain` when absent.
pub async fn load_or_create(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    trust_domain: &str,
) -> Result<(Material, Origin), StoreError> {
    if let Some(material) = load(client, namespace, name).await? {
        return Ok((material, Origin::Existing));
    }
    let material_error = |source| StoreError::Material {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let root = GeneratedRoot::generate(trust_domain, SystemTime::now()).map_err(material_error)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "ferry".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                CA_CRT.to_owned(),
                ByteString(root.cert_pem.clone().into_bytes()),
            ),
            (
                TLS_CRT.to_owned(),
                ByteString(root.cert_pem.clone().into_bytes()),
            ),
            (
                TLS_KEY.to_owned(),
                ByteString(root.key_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            let material = Material::from_pem(&root.cert_pem, &root.cert_pem, &root.key_pem)
                .map_err(material_error)?;
            Ok((material, Origin::Created))
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            match load(client, namespace, name).await? {
                Some(material) => Ok((material, Origin::CreatedByOther)),
                None => Err(StoreError::Get {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source: kube::Error::Api(status),
                }),
            }
        }
        Err(source) => Err(StoreError::Create {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// The material of Secret `namespace/name`; `None` when it does not exist.
pub async fn load(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Material>, StoreError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|source| StoreError::Get {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    let Some(secret) = secret else {
        return Ok(None);
    };
    let data = secret.data.unwrap_or_default();
    let entry = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    Material::from_pem(&entry(CA_CRT), &entry(TLS_CRT), &entry(TLS_KEY))
        .map(Some)
        .map_err(|source| StoreError::Material {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

//! TokenRequest and TokenReview against the real apiserver: the identity
//! CA's way of checking a proxy's ServiceAccount token (audience `ferry`).

use anyhow::{Context, Result};
use ferry_harness::Cluster;
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec, TokenReviewStatus,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;

async fn review(cluster: &Cluster, token: &str, audience: &str) -> Result<TokenReviewStatus> {
    let reviews: Api<TokenReview> = Api::all(cluster.client());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(vec![audience.to_owned()]),
        },
        ..TokenReview::default()
    };
    let done = reviews.create(&PostParams::default(), &review).await?;
    done.status.context("TokenReview without status")
}

#[tokio::test]
async fn service_account_token_for_ferry_passes_token_review() -> Result<()> {
    let cluster = Cluster::start().await?;
    let ns = cluster.namespace();
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["ferry".to_owned()],
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request("default", &PostParams::default(), &request)
        .await?;
    let token = issued.status.context("TokenRequest without status")?.token;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let ok = review(&cluster, &token, "ferry").await?;
    assert_eq!(ok.authenticated, Some(true), "{ok:?}");
    let user = ok.user.context("no user")?;
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:default").as_str())
    );
    assert_eq!(ok.audiences, Some(vec!["ferry".to_owned()]));

    // The apiserver checks audience and signature: both must fail.
    let other = review(&cluster, &token, "someone-else").await?;
    assert_ne!(other.authenticated, Some(true), "{other:?}");
    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    let forged = review(&cluster, &forged, "ferry").await?;
    assert_ne!(forged.authenticated, Some(true), "{forged:?}");
    Ok(())
}

//! Who a ServiceAccount token belongs to, according to the apiserver's
//! TokenReview API.

use std::time::Duration;

use ferry_core::identity::Identity;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::Api;
use kube::api::PostParams;

/// The audience a proxy's token must be issued for.
pub const AUDIENCE: &str = "ferry";
/// Time limit of one TokenReview.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token does not prove an identity.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefusal {
    /// The request carried no token.
    #[error("no ServiceAccount token in the request")]
    Missing,
    /// The apiserver did not authenticate the token.
    #[error("the token is not authenticated: {0}")]
    NotAuthenticated(String),
    /// The token is valid but not for audience `ferry`.
    #[error("the token is not for audience {AUDIENCE} (it is for {0:?})")]
    Audience(Vec<String>),
    /// The token is not a ServiceAccount's, or names an invalid one.
    #[error("the token does not name a ServiceAccount: {0}")]
    NotServiceAccount(String),
    /// The TokenReview itself failed (apiserver unreachable, RBAC).
    #[error("failed to create a TokenReview")]
    Review(#[source] kube::Error),
    /// The apiserver did not answer the TokenReview in time.
    #[error("the TokenReview timed out after {REVIEW_TIMEOUT:?}")]
    Timeout,
}

// === impl TokenRefusal ===

impl TokenRefusal {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "no_token",
            Self::NotAuthenticated(_) => "token_not_authenticated",
            Self::Audience(_) => "token_audience",
            Self::NotServiceAccount(_) => "not_service_account",
            Self::Review(_) => "token_review_failed",
            Self::Timeout => "token_review_timeout",
        }
    }
}

/// Reviews `token` for audience `ferry` and returns the identity of its
/// ServiceAccount in `trust_domain`.
pub async fn review(
    client: &kube::Client,
    token: &str,
    trust_domain: &str,
) -> Result<Identity, TokenRefusal> {
    if token.trim().is_empty() {
        return Err(TokenRefusal::Missing);
    }
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let request = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.trim().to_owned()),
            audiences: Some(vec![AUDIENCE.to_owned()]),
        },
        ..TokenReview::default()
    };
    let done = tokio::time::timeout(
        REVIEW_TIMEOUT,
        reviews.create(&PostParams::default(), &request),
    )
    .await
    .map_err(|_| TokenRefusal::Timeout)?
    .map_err(TokenRefusal::Review)?;
    identity_of(done.status.unwrap_or_default(), trust_domain)
}

/// The identity a TokenReview's status proves.
pub fn identity_of(
    status: TokenReviewStatus,
    trust_domain: &str,
) -> Result<Identity, TokenRefusal> {
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "rejected by the apiserver".to_owned());
        return Err(TokenRefusal::NotAuthenticated(why));
    }
    let audiences = status.audiences.unwrap_or_default();
    if !audiences.iter().any(|a| a == AUDIENCE) {
        return Err(TokenRefusal::Audience(audiences));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    let Some(rest) = username.strip_prefix("system:serviceaccount:") else {
        return Err(TokenRefusal::NotServiceAccount(username));
    };
    let Some((namespace, account)) = rest.split_once(':') else {
        return Err(TokenRefusal::NotServiceAccount(username));
    };
    Identity::new(trust_domain, namespace, account)
        .map_err(|e| TokenRefusal::NotServiceAccount(e.to_string()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(authenticated: bool, audiences: &[&str], user: &str) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
            user: Some(UserInfo {
                username: Some(user.to_owned()),
                ..UserInfo::default()
            }),
            error: None,
        }
    }

    #[test]
    fn a_service_account_token_for_ferry_is_its_identity() {
        let id = identity_of(
            status(true, &["ferry"], "system:serviceaccount:shop:reviews"),
            "cluster.local",
        )
        .unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/reviews");
    }

    #[test]
    fn refusals_name_why() {
        let td = "cluster.local";
        let sa = "system:serviceaccount:shop:reviews";
        assert!(matches!(
            identity_of(status(false, &["ferry"], sa), td),
            Err(TokenRefusal::NotAuthenticated(_))
        ));
        assert!(matches!(
            identity_of(status(true, &["other"], sa), td),
            Err(TokenRefusal::Audience(a)) if a == ["other"]
        ));
        assert!(matches!(
            identity_of(status(true, &["ferry"], "admin"), td),
            Err(TokenRefusal::NotServiceAccount(_))
        ));
        assert!(matches!(
            identity_of(status(true, &["ferry"], "system:serviceaccount:Bad:x"), td),
            Err(TokenRefusal::NotServiceAccount(_))
        ));
    }
}

//! The server's side of the broker: a token of its own ServiceAccount for the broker's audience
//! (a TokenRequest, renewed before it expires), and the redemption call to the controllers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use tokio::sync::OnceCell;

use super::{AUDIENCE, Failure, REDEEM_PATH, RedeemRequest, RedeemResponse};

/// Lifetime asked for the broker token (the API server's minimum is 10 minutes).
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// A token with less than this left is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// A redemption includes the provider's token endpoint, its keys and userinfo.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not get an answer from any controller.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// An answer from the controller.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// No controller answered, or the server could not get its token.
    #[error("{0}")]
    Unreachable(String),
}

pub struct BrokerClient {
    client: kube::Client,
    urls: Vec<url::Url>,
    http: reqwest::Client,
    /// `(namespace, name)` of the server's ServiceAccount, learned once from a SelfSubjectReview.
    account: OnceCell<(String, String)>,
    token: Mutex<Option<(String, Instant)>>,
}

/// The namespace and name of a ServiceAccount username. Pure.
pub fn service_account(username: &str) -> Option<(String, String)> {
    let (ns, name) = username.strip_prefix("system:serviceaccount:")?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_string(), name.to_string()))
}

impl BrokerClient {
    pub fn new(client: kube::Client, urls: Vec<url::Url>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { client, urls, http, account: OnceCell::new(), token: Mutex::new(None) })
    }

    async fn account(&self) -> Result<&(String, String), BrokerError> {
        self.account
            .get_or_try_init(|| async {
                let review = Api::<SelfSubjectReview>::all(self.client.clone())
                    .create(&Default::default(), &SelfSubjectReview::default())
                    .await
                    .map_err(|e| BrokerError::Unreachable(format!("asking the API server who the server is: {e}")))?;
                let username = review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default();
                service_account(&username).ok_or_else(|| {
                    BrokerError::Unreachable(format!(
                        "the server runs as {username:?}, not a ServiceAccount: the controller only redeems logins for the server's ServiceAccount"
                    ))
                })
            })
            .await
    }

    /// A token of the server's ServiceAccount for the broker, cached until it nears expiry.
    async fn token(&self) -> Result<String, BrokerError> {
        if let Some((token, expires)) = self.token.lock().expect("token lock").as_ref()
            && expires.saturating_duration_since(Instant::now()) > RENEW_BEFORE
        {
            return Ok(token.clone());
        }
        let (ns, name) = self.account().await?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![AUDIENCE.to_string()]),
                expiration_seconds: Some(TOKEN_LIFETIME.as_secs() as i64),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .create_token_request(name, &Default::default(), &request)
            .await
            .map_err(|e| BrokerError::Unreachable(format!("requesting a broker token for ServiceAccount {ns}/{name}: {e}")))?;
        let status = answer.status.ok_or_else(|| BrokerError::Unreachable("the TokenRequest was answered without a token".into()))?;
        let token = status.token.ok_or_else(|| BrokerError::Unreachable("the TokenRequest was answered without a token".into()))?;
        let lifetime = status
            .expiration_timestamp
            .map_or(k8s_openapi::jiff::SignedDuration::ZERO, |t| t.0.duration_since(k8s_openapi::jiff::Timestamp::now()));
        let expires = Instant::now() + Duration::try_from(lifetime).unwrap_or(Duration::ZERO);
        *self.token.lock().expect("token lock") = Some((token.clone(), expires));
        Ok(token)
    }

    /// Redeems a login code through the first controller that answers.
    pub async fn redeem(&self, request: &RedeemRequest) -> Result<RedeemResponse, BrokerError> {
        let token = self.token().await?;
        let mut tried = Vec::new();
        for base in &self.urls {
            let url = base.join(REDEEM_PATH.trim_start_matches('/')).map_err(|e| BrokerError::Unreachable(e.to_string()))?;
            let response = match self.http.post(url.clone()).bearer_auth(&token).json(request).send().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%url, error = %crate::oidc::describe_error(&e), "the login broker did not answer; trying the next");
                    tried.push(url.to_string());
                    continue;
                }
            };
            let status = response.status();
            let body = response.bytes().await.map_err(|e| BrokerError::Unreachable(format!("reading the answer of {url}: {e}")))?;
            if status.is_success() {
                return serde_json::from_slice(&body)
                    .map_err(|e| BrokerError::Unreachable(format!("the login broker at {url} answered something unexpected: {e}")));
            }
            return Err(match serde_json::from_slice::<Failure>(&body) {
                Ok(failure) => {
                    if matches!(failure, Failure::Unauthorized { .. } | Failure::Forbidden { .. }) {
                        // A token refused (revoked, or the ServiceAccount renamed): get a new one next time.
                        *self.token.lock().expect("token lock") = None;
                    }
                    failure.into()
                }
                Err(_) => BrokerError::Unreachable(format!("the login broker at {url} answered {status}")),
            });
        }
        Err(BrokerError::Unreachable(format!("no login broker answered (tried {})", tried.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_usernames() {
        assert_eq!(service_account("system:serviceaccount:infra:infra-server"), Some(("infra".into(), "infra-server".into())));
        assert_eq!(service_account("system:admin"), None);
        assert_eq!(service_account("system:serviceaccount::x"), None);
    }
}

//! The controller's side of the broker: `POST /redeem` on its own port (`--broker-addr`), served
//! by every replica from start, not only the leader, so logins never wait for an election.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use tokio::sync::watch;

use super::{AUDIENCE, Failure, REDEEM_PATH, RedeemRequest, RedeemResponse};
use crate::api::IdentityProvider;
use crate::oidc::identity;
use crate::oidc::login::ProviderAccess;
use crate::session::refresh::RefreshTokens;

/// Requests are a few hundred bytes; anything much larger is not the server.
const MAX_BODY: usize = 64 * 1024;

pub struct Broker {
    pub access: ProviderAccess,
    pub providers: Api<IdentityProvider>,
    pub refresh_tokens: RefreshTokens,
    pub token_reviews: Api<TokenReview>,
    /// Usernames allowed to call (`system:serviceaccount:<namespace>:<name>` of the servers).
    pub clients: Vec<String>,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

fn unavailable(e: &kube::Error) -> Failure {
    if crate::api_server::is_unavailable(e) {
        Failure::Unavailable { message: "the controller cannot reach the Kubernetes API server; try again in a few seconds".into() }
    } else {
        tracing::error!(error = %e, "broker: Kubernetes API call failed");
        Failure::Internal { message: "the controller could not complete the login; see the controller's log".into() }
    }
}

/// The usernames of ServiceAccounts `names` in namespace `ns`.
pub fn client_usernames(ns: &str, names: &[String]) -> Vec<String> {
    names.iter().map(|n| format!("system:serviceaccount:{ns}:{n}")).collect()
}

/// Whether a TokenReview's answer lets the caller in: authenticated, for our audience, as one of
/// `clients`. Pure.
pub fn admit(review: &TokenReview, clients: &[String]) -> Result<String, Failure> {
    let status = review.status.clone().unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status.error.unwrap_or_else(|| "the token is not valid".into());
        return Err(Failure::Unauthorized { message: format!("the broker token was refused: {why}") });
    }
    // An API server that ignores audiences answers none: that token could be meant for anything.
    if !status.audiences.unwrap_or_default().iter().any(|a| a == AUDIENCE) {
        return Err(Failure::Unauthorized { message: format!("the token is not for audience {AUDIENCE:?}") });
    }
    let user = status.user.and_then(|u| u.username).unwrap_or_default();
    if !clients.contains(&user) {
        return Err(Failure::Forbidden { message: format!("{user} is not an Infra server (allowed: {})", clients.join(", ")) });
    }
    Ok(user)
}

impl Broker {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<String, Failure> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Failure::Unauthorized { message: "no bearer token".into() })?;
        let review = TokenReview {
            spec: TokenReviewSpec { token: token.to_string(), audiences: Some(vec![AUDIENCE.to_string()]) },
            ..Default::default()
        };
        let reviewed = self.token_reviews.create(&Default::default(), &review).await.map_err(|e| unavailable(&e))?;
        admit(&reviewed, &self.clients)
    }

    pub async fn redeem(&self, headers: &HeaderMap, r: RedeemRequest) -> Result<RedeemResponse, Failure> {
        let caller = self.authenticate(headers).await?;
        if !crate::keys::is_id(&r.session) {
            return Err(Failure::BadRequest { message: "session is not a session id".into() });
        }
        let name = &r.provider;
        let idp = self
            .providers
            .get_opt(name)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| Failure::UnknownProvider { message: format!("there is no identity provider named {name:?}") })?;
        if !idp.is_ready() {
            return Err(Failure::ProviderNotReady {
                message: format!(
                    "identity provider {name:?} is not Ready; an administrator can see why with `kubectl describe idp {name}`"
                ),
            });
        }
        let client = self.access.client(&idp).await.map_err(|message| {
            tracing::error!(provider = %name, %message, "provider unusable at login");
            Failure::ProviderNotReady { message }
        })?;
        let login = client.redeem_code(&self.access.key_sets, &r.code, &r.redirect_uri, &r.pkce_verifier, &r.nonce).await?;
        // Thin ID tokens leave groups to userinfo; a provider without a userinfo endpoint simply
        // asserts no groups.
        let userinfo = if identity::needs_userinfo(&login.id_claims, idp.spec.claims.as_ref()) && client.userinfo_url.is_some() {
            Some(client.userinfo(&login.access_token, &login.subject).await?)
        } else {
            None
        };
        if let Some(rt) = &login.refresh_token {
            self.refresh_tokens.store(&r.session, name, rt).await.map_err(|e| match e {
                kube::Error::Api(s) if s.code == 409 => {
                    Failure::BadRequest { message: "the session already exists; start a new login".into() }
                }
                e => unavailable(&e),
            })?;
        }
        tracing::info!(provider = %name, session = %r.session, %caller, refresh_token = login.refresh_token.is_some(), "redeemed a login code");
        let binding = client.binding();
        Ok(RedeemResponse {
            subject: login.subject,
            id_claims: login.id_claims,
            userinfo,
            issuer: binding.issuer,
            token_endpoint: binding.token_endpoint,
        })
    }
}

async fn redeem(State(b): State<Arc<Broker>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: RedeemRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Failure::BadRequest { message: format!("not a redeem request: {e}") }.into_response(),
    };
    match b.redeem(&headers, request).await {
        Ok(answer) => ([("cache-control", "no-store")], Json(answer)).into_response(),
        Err(f) => {
            tracing::warn!(status = %f.status(), reason = %f, "broker refused a redemption");
            f.into_response()
        }
    }
}

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new().route(REDEEM_PATH, axum::routing::post(redeem)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(broker)
}

/// Serves the broker on `addr` until shutdown.
pub async fn spawn(addr: SocketAddr, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "login broker listening");
    tokio::spawn(async move {
        let served = axum::serve(listener, router(broker)).with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the login broker stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};

    use super::*;

    fn review(authenticated: bool, audiences: &[&str], user: &str) -> TokenReview {
        TokenReview {
            status: Some(TokenReviewStatus {
                authenticated: Some(authenticated),
                audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
                user: Some(UserInfo { username: Some(user.into()), ..Default::default() }),
                error: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_servers_token_for_the_broker_audience_is_admitted() {
        let clients = client_usernames("infra", &["infra-server".into()]);
        let server = "system:serviceaccount:infra:infra-server";
        assert_eq!(admit(&review(true, &[AUDIENCE], server), &clients).unwrap(), server);
        assert!(matches!(admit(&review(false, &[AUDIENCE], server), &clients), Err(Failure::Unauthorized { .. })));
        assert!(matches!(admit(&review(true, &["https://kubernetes.default.svc"], server), &clients), Err(Failure::Unauthorized { .. })));
        assert!(matches!(admit(&review(true, &[], server), &clients), Err(Failure::Unauthorized { .. })));
        let other = "system:serviceaccount:infra:default";
        assert!(matches!(admit(&review(true, &[AUDIENCE], other), &clients), Err(Failure::Forbidden { .. })));
        assert!(matches!(admit(&TokenReview::default(), &clients), Err(Failure::Unauthorized { .. })));
    }
}

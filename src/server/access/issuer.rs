//! The issuer's HTTP side on the server: OpenID discovery and the key set for the API server,
//! `POST /api/kube/token` for `infra kube-credential`, and `GET /api/kube/config`, what the CLI
//! writes into the kubeconfig.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::kube_access::IssuerArgs;
use crate::kube_access::identity;
use crate::kube_access::paths::{AUTHORIZE, CONFIG, DISCOVERY, JWKS, TOKEN};
use crate::kube_access::signing_keys::{DATA_KEY, KeySet, SECRET_NAME};
use crate::kube_access::token::{self, Claims};
use crate::server::login::{FlowError, Identified, LoginState};

pub struct Issuer {
    pub login: Arc<LoginState>,
    /// The signing-key Secret, kept current by a watch.
    pub keys: Store<Secret>,
    /// The `iss` of tokens.
    pub issuer: String,
    pub args: IssuerArgs,
    /// PEM of the API server's CA, read at start.
    pub api_server_ca: Option<Vec<u8>>,
    /// For the authorization webhook.
    pub revocations: Arc<super::webhook::Revocations>,
}

pub fn router(state: Arc<Issuer>) -> Router {
    Router::new()
        .route(DISCOVERY, get(discovery))
        .route(JWKS, get(jwks))
        .route(TOKEN, post(mint))
        .route(CONFIG, get(config))
        .route(AUTHORIZE, post(authorize))
        .with_state(state)
}

fn unavailable(message: &str) -> FlowError {
    FlowError::new(StatusCode::SERVICE_UNAVAILABLE, "signing_keys_unavailable", message)
}

impl Issuer {
    fn key_set(&self) -> Result<KeySet, FlowError> {
        let secret = self.keys.state().into_iter().find(|s| s.metadata.name.as_deref() == Some(SECRET_NAME)).ok_or_else(|| {
            unavailable("the issuer's signing keys are not there yet (the controller creates them); try again in a few seconds")
        })?;
        let bytes = secret.data.as_ref().and_then(|d| d.get(DATA_KEY)).map(|b| b.0.as_slice()).unwrap_or_default();
        KeySet::from_json(bytes).map_err(|e| {
            tracing::error!(secret = SECRET_NAME, error = %e, "the signing-key Secret is unreadable");
            unavailable("the issuer's signing keys are unreadable; see the server's log")
        })
    }
}

async fn discovery(State(s): State<Arc<Issuer>>) -> Response {
    let body = json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}{JWKS}", s.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "username", "groups", "sid"],
    });
    ([("cache-control", "max-age=60")], Json(body)).into_response()
}

async fn jwks(State(s): State<Arc<Issuer>>) -> Result<Response, FlowError> {
    let set = s.key_set()?;
    // Short caching: a new key is published two minutes before it signs.
    Ok(([("cache-control", "max-age=30")], Json(set.jwks())).into_response())
}

/// The token for the API server. Bearer session token only: a browser's cookie never mints one.
async fn mint(State(s): State<Arc<Issuer>>, headers: HeaderMap) -> Result<Response, FlowError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::keys::bearer_token)
        .ok_or_else(|| FlowError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "no session token: log in with `infra login`"))?;
    // Checks the session, its user (active, still there) and its provider on every call, from the
    // server's caches (the API server only for what they do not hold yet).
    let Identified { session, uid, who } = s.login.identify_cached(presented).await?;
    let set = s.key_set()?;
    let now = Timestamp::now();
    let key = set.signing_key(now).ok_or_else(|| unavailable("no signing key is active yet; try again in a few seconds"))?;
    let exp = token::expiry(now, s.args.tokens.token_lifetime, session.record.expires_at);
    let claims = Claims {
        iss: s.issuer.clone(),
        sub: uid,
        aud: s.args.cluster_name.clone(),
        iat: now.as_second(),
        nbf: now.as_second(),
        exp: exp.as_second(),
        jti: crate::keys::name_suffix(16).map_err(|e| FlowError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?,
        username: identity::username(&who.provider, &who.user),
        groups: identity::groups(&who.provider, &who.groups),
        sid: session.id.clone(),
    };
    let jwt = token::sign(key, &claims).map_err(|e| {
        tracing::error!(kid = %key.kid, error = %e, "signing a token failed");
        FlowError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "signing the token failed; see the server's log")
    })?;
    tracing::debug!(user = %claims.username, session = %claims.sid, kid = %key.kid, "minted a Kubernetes token");
    let body = json!({"token": jwt, "expirationTimestamp": Timestamp::from_second(claims.exp).unwrap_or(exp).to_string()});
    Ok(([("cache-control", "no-store")], Json(body)).into_response())
}

async fn authorize(State(s): State<Arc<Issuer>>, body: axum::body::Bytes) -> Response {
    super::webhook::authorize(State(s.revocations.clone()), body).await
}

/// What `infra login` writes into the kubeconfig: public facts, no authentication needed.
async fn config(State(s): State<Arc<Issuer>>) -> Response {
    let ca = s.api_server_ca.as_ref().map(|pem| base64::engine::general_purpose::STANDARD.encode(pem));
    let body = json!({
        "clusterName": s.args.cluster_name,
        "server": s.args.kube_api_server_url.as_ref().map(|u| u.as_str().trim_end_matches('/')),
        "certificateAuthorityData": ca,
        "issuer": s.issuer,
    });
    Json(body).into_response()
}

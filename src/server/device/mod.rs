//! Device login (RFC 8628) for machines without a browser: `POST /api/device/authorize` starts
//! one and `POST /api/device/token` is polled by the CLI (api.rs); the `/device` page is where a
//! signed-in person approves or denies it (page.rs). Pending logins are DeviceAuthorizations in
//! the API server, so every replica sees the same state; this module reads and moves them.

mod api;
mod page;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::{DeviceAuthorization, DeviceAuthorizationSpec, DeviceDecider, DeviceRequester, DeviceState, labels};
use crate::api_server::FieldManager;
use crate::device;
use crate::server::dashboard::DashState;
use crate::server::login::{Completed, FlowError, LoginState};
use crate::server::rate_limit::Limits;
use crate::session::store::Session;

/// What the device login serves from.
pub struct DeviceLogin {
    pub login: Arc<LoginState>,
    /// The dashboard, for the page's layout and navigation.
    pub dashboard: Arc<DashState>,
    pub api: Api<DeviceAuthorization>,
    /// How long codes work (`--device-code-lifetime`).
    pub lifetime: Duration,
    pub limits: Arc<Limits>,
}

pub fn router(state: Arc<DeviceLogin>) -> Router {
    Router::new()
        .route(device::AUTHORIZE_PATH, post(api::authorize))
        .route(device::TOKEN_PATH, post(api::token))
        .route("/device", get(page::show).post(page::decide))
        .with_state(state)
}

/// A started device login: the codes to hand to the CLI (never stored).
pub struct Started {
    pub device_code: String,
    pub user_code: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

impl DeviceLogin {
    /// The id (name suffix) of the authorization a user code belongs to: a digest under the key
    /// every replica shares, so the stored name says nothing about the code.
    fn id_of(&self, user_code: &str) -> String {
        device::id_from_digest(&self.login.state_key.derive("device-user-code", user_code))
    }

    /// Stores a new pending authorization for `requester` and returns its codes. A user code
    /// already in use (the API server refuses the name) is drawn again.
    pub async fn start(&self, requester: DeviceRequester, now: Timestamp) -> Result<Started, FlowError> {
        let expires_at = now.checked_add(SignedDuration::try_from(self.lifetime).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX);
        for _ in 0..3 {
            let user_code = device::generate_user_code().map_err(random)?;
            let id = self.id_of(&user_code);
            let device_code = device::generate_device_code(&id).map_err(random)?;
            let mut auth = DeviceAuthorization::new(
                &device::object_name(&id),
                DeviceAuthorizationSpec {
                    device_code_hash: crate::keys::hash_hex(&device_code),
                    expires_at: Time(expires_at),
                    interval: device::POLL_INTERVAL_SECS as u32,
                    last_poll_time: None,
                    requester: requester.clone(),
                    state: DeviceState::Pending,
                    decided_by: None,
                },
            );
            auth.metadata.labels = Some([(labels::MANAGED_BY.to_string(), FieldManager::SERVER.name().to_string())].into());
            match self
                .api
                .create(&PostParams { field_manager: Some(FieldManager::SERVER.name().into()), ..Default::default() }, &auth)
                .await
            {
                Ok(_) => return Ok(Started { device_code, user_code }),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FlowError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "could not draw an unused user code; try again"))
    }

    /// The pending authorization a (normalised) user code names, if any. Expired ones are deleted
    /// on the way; approved, denied and used ones are not pending. The caller has counted the
    /// guess.
    pub async fn find_pending(&self, user_code: &str, now: Timestamp) -> Result<Option<DeviceAuthorization>, FlowError> {
        let Some(auth) = self.api.get_opt(&device::object_name(&self.id_of(user_code))).await? else { return Ok(None) };
        if auth.spec.is_expired(now) {
            self.delete(&auth).await;
            return Ok(None);
        }
        Ok((auth.spec.state == DeviceState::Pending).then_some(auth))
    }

    /// Approves or denies `auth` as the person of `session`. False when it changed since it was
    /// read (decided in another tab, on another replica, or polled): nothing was written.
    pub async fn decide(
        &self,
        auth: &DeviceAuthorization,
        approve: bool,
        session: &Session,
        user: &crate::api::User,
        now: Timestamp,
    ) -> Result<bool, FlowError> {
        let r = &session.record;
        let decider = DeviceDecider {
            user: r.user.clone(),
            provider: r.provider.clone(),
            user_object: user.name_any(),
            user_uid: user.uid().unwrap_or_default(),
            issuer: r.issuer.clone(),
            token_endpoint: r.token_endpoint.clone(),
            decided_at: Time(now),
        };
        let state = if approve { DeviceState::Approved } else { DeviceState::Denied };
        let patch = json!({
            "metadata": {"resourceVersion": auth.resource_version()},
            "spec": {"state": state, "decidedBy": decider},
        });
        match self.api.patch(&auth.name_any(), &FieldManager::SERVER.patch(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(user = %r.user, provider = %r.provider, address = %auth.spec.requester.address, approve, "device login decided");
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an authorization that has expired or been used up. Best effort: the controller
    /// sweeps what is left.
    async fn delete(&self, auth: &DeviceAuthorization) {
        if let Err(e) = self.api.delete(&auth.name_any(), &DeleteParams::default()).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            tracing::warn!(name = %auth.name_any(), error = %e, "could not delete an expired device authorization");
        }
    }

    /// Records a poll (and a grown interval), conditional on the version read: false when
    /// another poll or a decision came in between.
    async fn record_poll(&self, auth: &DeviceAuthorization, interval: u32, now: Timestamp) -> Result<bool, FlowError> {
        let patch = json!({
            "metadata": {"resourceVersion": auth.resource_version()},
            "spec": {"lastPollTime": MicroTime(now), "interval": interval},
        });
        match self.api.patch(&auth.name_any(), &FieldManager::SERVER.patch(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims an approved authorization (Approved to Redeemed, at the version read) and starts
    /// the approving person's session. `None` when another poll claimed it first.
    async fn redeem(&self, auth: &DeviceAuthorization, now: Timestamp) -> Result<Option<Completed>, api::TokenFailure> {
        let name = auth.name_any();
        let decider = auth.spec.decided_by.clone().ok_or_else(|| api::TokenFailure::denied("the approval names nobody"))?;
        let claim = json!({"metadata": {"resourceVersion": auth.resource_version()}, "spec": {"state": DeviceState::Redeemed}});
        match self.api.patch(&name, &FieldManager::SERVER.patch(), &Patch::Merge(&claim)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => return Ok(None),
            Err(e) => return Err(FlowError::from(e).into()),
        }
        match self.session_for(&name, &decider, now).await {
            Ok(done) => {
                tracing::info!(user = %done.who.user, provider = %done.who.provider, address = %auth.spec.requester.address, "device login completed");
                Ok(Some(done))
            }
            Err(e) => {
                // Give the approval back, so that the CLI's next poll can try again after an
                // outage; a refusal (the user was deactivated) stays used up.
                if e.status.is_server_error() {
                    let back = json!({"spec": {"state": DeviceState::Approved}});
                    let _ = self.api.patch(&name, &FieldManager::SERVER.patch(), &Patch::Merge(&back)).await;
                }
                Err(e.into())
            }
        }
    }

    /// A new session for the person who approved: the same User (by UID), still active, its
    /// provider still Ready, bound to the issuer of the approving session. It is a session of its
    /// own, with no refresh token: the provider granted that to the browser's login.
    async fn session_for(&self, name: &str, d: &DeviceDecider, now: Timestamp) -> Result<Completed, FlowError> {
        let refused = |m: String| FlowError::new(StatusCode::FORBIDDEN, "access_denied", m);
        let user = self.login.users.get_opt(&d.user_object).await?;
        let user = user
            .filter(|u| u.uid().as_deref() == Some(d.user_uid.as_str()))
            .ok_or_else(|| refused(format!("user {} of {:?} no longer exists", d.user, d.provider)))?;
        if !user.spec.is_active() {
            return Err(refused(format!("{} was deactivated in {:?}", d.user, d.provider)));
        }
        let idp = self.login.ready_provider(&d.provider)?;
        let resolved = idp.status.as_ref();
        let binding = crate::oidc::ProviderBinding {
            issuer: d.issuer.clone().or_else(|| resolved.and_then(|s| s.issuer.clone())).unwrap_or_default(),
            token_endpoint: d
                .token_endpoint
                .clone()
                .or_else(|| resolved.and_then(|s| s.endpoints.as_ref()).and_then(|e| e.token.clone()))
                .unwrap_or_default(),
        };
        // The nonce label marks the session as this approval's.
        let (token, record) = self.login.sessions.create(&user, &format!("device:{name}"), &binding, now).await?;
        let who = self.login.who(&user, &record.provider, record.expires_at, Some(self.login.sessions.policy.idle_deadline(now)));
        Ok(Completed { token, who })
    }

    /// Counts one user-code guess by the client of a request.
    fn guess(&self, headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions) -> Result<(), Duration> {
        let client = crate::server::rate_limit::client_of(headers, extensions, self.limits.trusted_hops);
        self.limits.device_guess(&client, Instant::now()).inspect_err(|_| tracing::info!(%client, "device code guesses rate limited"))
    }
}

fn random(e: crate::keys::RandomError) -> FlowError {
    tracing::error!(error = %e, "random source failed");
    FlowError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Infra could not generate a code; see the server's log")
}

//! A login from redeemed code to session, shared by the dashboard callback and `POST /api/login`,
//! and what a session says about its person (`whoami`).

use axum::http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::Patch;
use serde::Serialize;
use serde_json::json;

use super::LoginState;
use crate::api::{IdentityProvider, User, UserSpec, annotations};
use crate::api_server::FieldManager;
use crate::broker::RedeemRequest;
use crate::broker::client::BrokerError;
use crate::directory::Directory;
use crate::directory::StoreError;
use crate::directory::codec::scim_id;
use crate::directory::naming::user_object_name;
use crate::directory::store::WRITE_ATTEMPTS;
use crate::metrics::Metrics;
use crate::oidc::ProviderBinding;
use crate::oidc::identity::{self, Identity, IdentityError};
use crate::oidc::login::LoginError;
use crate::session::SessionError;
use crate::session::cache::Cached;
use crate::session::check::{self, Check, Facts, ProviderFacts, UserFacts};
use crate::session::store::{Session, Stored, token_id};

/// A refusal with what to tell the person: an HTTP status, a stable code and a sentence.
#[derive(Debug)]
pub struct FlowError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl FlowError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<LoginError> for FlowError {
    fn from(e: LoginError) -> Self {
        let message = e.to_string();
        match e {
            LoginError::Refused { ref code, .. } if code == "invalid_grant" => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                format!("{message}; the code was already used or has expired: start the login again"),
            ),
            LoginError::Refused { .. } => Self::new(StatusCode::BAD_REQUEST, "provider_refused", message),
            LoginError::Unreachable(_) => Self::new(StatusCode::BAD_GATEWAY, "idp_unreachable", message),
            LoginError::BadResponse(_) => Self::new(StatusCode::BAD_GATEWAY, "idp_error", message),
            LoginError::InvalidIdToken(_) => Self::new(StatusCode::UNAUTHORIZED, "login_failed", message),
            LoginError::Identity(e) => e.into(),
        }
    }
}

/// What a failed redemption at the controller means for a person logging in: the provider's
/// answers as if the server had asked it itself; the controller's own refusals as what they are.
impl From<BrokerError> for FlowError {
    fn from(e: BrokerError) -> Self {
        use crate::broker::Failure;
        let failure = match e {
            BrokerError::Unreachable(m) => {
                tracing::error!(reason = %m, "the login broker (the controller) is unreachable");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    "Infra's controller, which completes logins, is unreachable; try again in a few seconds",
                );
            }
            BrokerError::Failed(f) => f,
        };
        let failure = match failure.into_login_error() {
            Ok(login) => return login.into(),
            Err(f) => f,
        };
        let status = failure.status();
        match failure {
            Failure::UnknownProvider { message } => Self::new(status, "unknown_provider", message),
            Failure::ProviderNotReady { message } => Self::new(status, "provider_not_ready", message),
            Failure::Unavailable { message } => Self::new(status, "unavailable", message),
            Failure::BadRequest { message } => Self::new(status, "login_failed", message),
            other => {
                // The server's credentials or the controller itself: nothing the person can fix.
                tracing::error!(status = %other.status(), reason = %other, "the login broker refused the server");
                Self::new(StatusCode::BAD_GATEWAY, "broker_error", format!("Infra's controller could not complete the login: {other}"))
            }
        }
    }
}

impl From<IdentityError> for FlowError {
    fn from(e: IdentityError) -> Self {
        let code = match e {
            IdentityError::EmailNotVerified(_) => "email_not_verified",
            _ => "login_failed",
        };
        Self::new(StatusCode::FORBIDDEN, code, e.to_string())
    }
}

/// How a login's subject relates to the one recorded on its User.
#[derive(Debug, PartialEq, Eq)]
enum Binding {
    /// The User has no subject yet (created by SCIM, or before subjects were recorded): this
    /// login records its own.
    Record,
    /// The same account as before.
    Same,
}

/// Whether a login by `presented` may use a User bound to `recorded`. Pure.
fn bind_subject(
    recorded: Option<&str>,
    presented: &str,
    user_name: &str,
    provider: &str,
    object: &str,
    namespace: &str,
) -> Result<Binding, FlowError> {
    match recorded {
        None | Some("") => Ok(Binding::Record),
        Some(r) if r == presented => Ok(Binding::Same),
        Some(r) => {
            // The person sees no subject of someone else; the log has both for the administrator.
            tracing::warn!(
                provider,
                user = user_name,
                object,
                recorded = r,
                presented,
                "login subject differs from the one the user is bound to"
            );
            Err(FlowError::new(
                StatusCode::FORBIDDEN,
                "subject_mismatch",
                format!(
                    "user {user_name} of identity provider {provider:?} belongs to another account at the provider (another subject logged in as it first); \
                 if the account was re-created at the provider, an administrator can let the new one in by removing the recorded subject: \
                 kubectl -n {namespace} patch user {object} --subresource=status --type=json -p '[{{\"op\":\"remove\",\"path\":\"/status/loginSubject\"}}]'"
                ),
            ))
        }
    }
}

impl From<SessionError> for FlowError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NonceReused => Self::new(StatusCode::BAD_REQUEST, "nonce_reused", e.to_string()),
            SessionError::Unknown | SessionError::Ended(_) => Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string()),
            SessionError::Kube(e) => e.into(),
            SessionError::Random(_) => internal(e),
        }
    }
}

impl From<kube::Error> for FlowError {
    fn from(e: kube::Error) -> Self {
        if crate::api_server::is_unavailable(&e) {
            tracing::warn!(error = %e, "the API server is unavailable");
            FlowError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Infra's storage (the Kubernetes API server) is unavailable; try again in a few seconds",
            )
        } else {
            internal(e)
        }
    }
}

/// What a failed directory write means for a person logging in.
impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Conflict => FlowError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Infra's storage (the Kubernetes API server) is unavailable; try again in a few seconds",
            ),
            StoreError::ProviderGone(m) => FlowError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m),
            other => internal(other),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> FlowError {
    tracing::error!(error = %e, "login storage failed");
    FlowError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Infra could not store the login; see the server's log")
}

/// The answer to a login and to `whoami`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub user: String,
    pub provider: String,
    pub groups: Vec<String>,
    pub expires_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_expires_at: Option<Timestamp>,
}

/// A started session: the token to hand out once, and who it is for.
pub struct Completed {
    pub token: String,
    pub who: WhoAmI,
}

/// The parameters of a code redemption.
pub struct Redemption<'a> {
    pub provider: &'a str,
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub pkce_verifier: &'a str,
    pub nonce: &'a str,
}

impl LoginState {
    pub fn ready_provider(&self, name: &str) -> Result<std::sync::Arc<IdentityProvider>, FlowError> {
        let idp = self.providers.live(name).ok_or_else(|| {
            FlowError::new(StatusCode::NOT_FOUND, "unknown_provider", format!("there is no identity provider named {name:?}"))
        })?;
        if !idp.is_ready() {
            return Err(FlowError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_not_ready",
                format!("identity provider {name:?} is not Ready; an administrator can see why with `kubectl describe idp {name}`"),
            ));
        }
        Ok(idp)
    }

    /// Redeems the code, verifies who it is, links or creates the User, and starts a session.
    pub async fn complete(&self, r: Redemption<'_>) -> Result<Completed, FlowError> {
        let result = self.complete_inner(&r).await;
        match &result {
            Ok(c) => {
                Metrics::count(&self.metrics.logins, "success");
                tracing::info!(provider = r.provider, user = %c.who.user, groups = ?c.who.groups, "login succeeded");
            }
            Err(e) => {
                Metrics::count(&self.metrics.logins, e.code);
                tracing::warn!(provider = r.provider, code = e.code, reason = %e.message, "login refused");
            }
        }
        result
    }

    async fn complete_inner(&self, r: &Redemption<'_>) -> Result<Completed, FlowError> {
        let idp = self.ready_provider(r.provider)?;
        let filter = identity::groups_filter(idp.spec.groups_filter.as_deref())?;
        self.sessions.ensure_nonce_unused(r.nonce).await?;
        // The controller redeems the code (it alone reads the client secret) and keeps the
        // refresh token under this session's id; the server gets only the verified claims.
        let key = self.sessions.new_key()?;
        let request = RedeemRequest {
            provider: r.provider.to_string(),
            code: r.code.to_string(),
            redirect_uri: r.redirect_uri.to_string(),
            pkce_verifier: r.pkce_verifier.to_string(),
            nonce: r.nonce.to_string(),
            session: key.id.clone(),
        };
        let login = self.broker.redeem(&request).await?;
        let mapping = idp.spec.claims.as_ref();
        if login.id_claims.get("_claim_names").and_then(|n| n.get(identity::groups_claim(mapping))).is_some() {
            // Entra ID leaves groups out when a user has too many and points at Microsoft Graph
            // instead ("groups overage"); Infra does not call Graph, so say why groups are missing.
            tracing::warn!(
                provider = r.provider,
                "the ID token's groups are in a distributed claim (groups overage), which Infra does not resolve; the user gets only the groups userinfo or SCIM provide"
            );
        }
        let person = identity::extract(&login.id_claims, login.userinfo.as_ref(), mapping, &filter)?;
        let user = self.upsert_user(r.provider, &login.subject, &person).await?;
        let now = Timestamp::now();
        let binding = ProviderBinding { issuer: login.issuer, token_endpoint: login.token_endpoint };
        let (token, record) = self.sessions.create_with_key(key, &user, r.nonce, &binding, now).await?;
        let who = self.who(&user, &record.provider, record.expires_at, Some(self.sessions.policy.idle_deadline(now)));
        Ok(Completed { token, who })
    }

    /// The User for this login: the one SCIM (or an earlier login) created under the same
    /// userName, or a new one. It must be bound to this login's subject, or to none yet (then it
    /// is bound now). Records the groups the provider asserted. A refused login leaves the User
    /// untouched.
    async fn upsert_user(&self, provider: &str, subject: &str, person: &Identity) -> Result<User, FlowError> {
        for _ in 0..WRITE_ATTEMPTS {
            let user = self.find_or_create_user(provider, person).await?;
            let name = user.name_any();
            let recorded = user.status.as_ref().and_then(|s| s.login_subject.as_deref());
            let binding = bind_subject(recorded, subject, &person.user_name, provider, &name, &self.args.namespace)?;
            if !user.spec.is_active() {
                return Err(FlowError::new(
                    StatusCode::FORBIDDEN,
                    "user_inactive",
                    format!(
                        "{} is deactivated in identity provider {provider:?}; ask an administrator to reactivate the account",
                        person.user_name
                    ),
                ));
            }
            let mut patch = json!({"status": {
                "loginGroups": person.groups,
                "lastLoginTime": Time(Timestamp::now()),
            }});
            if binding == Binding::Record {
                // Bound only if nobody bound it since it was read: two first logins by different
                // accounts cannot both win.
                patch["status"]["loginSubject"] = json!(subject);
                patch["metadata"] = json!({"resourceVersion": user.metadata.resource_version});
            }
            match self.users.patch_status(&name, &FieldManager::SERVER.patch(), &Patch::Merge(&patch)).await {
                Ok(stored) => {
                    if binding == Binding::Record {
                        tracing::info!(provider, user = %person.user_name, object = %name, "bound the user to its login subject");
                    }
                    // For the dashboard's Users list; the status above is the record.
                    let seen = json!({"metadata": {"annotations": {annotations::LAST_LOGIN: Timestamp::now().to_string()}}});
                    if let Err(e) = self.users.patch(&name, &FieldManager::SERVER.patch(), &Patch::Merge(&seen)).await {
                        tracing::warn!(object = %name, error = %e, "could not note the sign-in time on the user");
                    }
                    return Ok(stored);
                }
                // Changed (or renamed by SCIM) since it was read: read it again.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(internal("the user kept changing while logging in"))
    }

    async fn find_or_create_user(&self, provider: &str, person: &Identity) -> Result<User, FlowError> {
        let name = user_object_name(provider, &person.user_name);
        if let Some(u) = self.users.get_opt(&name).await? {
            return Ok(u);
        }
        // A User stored before userNames folded ASCII letters only (one with upper-case
        // non-ASCII letters) has another object name; the userName index knows it.
        let indexed = self.directory_store.read().user_by_user_name(provider, &person.user_name).map(|u| u.name_any());
        if let Some(other) = indexed.filter(|n| *n != name)
            && let Some(u) = self.users.get_opt(&other).await?
        {
            return Ok(u);
        }
        let mut attributes = serde_json::Map::new();
        if let Some(email) = &person.email {
            attributes.insert("emails".into(), json!([{"value": email, "primary": true}]));
        }
        let spec = UserSpec {
            provider_ref: crate::api::ProviderRef { name: provider.to_string() },
            user_name: person.user_name.clone(),
            external_id: None,
            display_name: person.display_name.clone(),
            active: Some(true),
            attributes: (!attributes.is_empty()).then_some(attributes),
        };
        match self.directory_store.create_user_by(provider, spec, Some("login")).await {
            Ok(u) => Ok(u),
            // SCIM created the same user a moment ago: link to it.
            Err(StoreError::AlreadyExists(_)) => {
                self.users.get_opt(&name).await?.ok_or_else(|| internal("the user vanished while logging in"))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn who(&self, user: &User, provider: &str, expires_at: Timestamp, idle_expires_at: Option<Timestamp>) -> WhoAmI {
        let login_groups = user.status.as_ref().and_then(|s| s.login_groups.as_deref()).unwrap_or_default();
        let directory = self.directory_store.read();
        let groups = groups(&directory, provider, scim_id(user), login_groups.iter().map(String::as_str));
        WhoAmI { user: user.spec.user_name.clone(), provider: provider.to_string(), groups, expires_at, idle_expires_at }
    }

    /// The person behind a token, after checking that the session, its user and its provider are
    /// all still valid. A session whose user was deactivated or deleted, or whose provider was
    /// removed, is ended here on every replica, whatever the controller has got round to.
    pub async fn whoami(&self, token: &str) -> Result<(Session, WhoAmI), FlowError> {
        self.identify(token).await.map(|(session, _, who)| (session, who))
    }

    /// [`Self::whoami`], with the User itself. Reads the Session and the User from the API server,
    /// so a logout or a deactivation on any replica is seen by the next request on every other.
    pub async fn identify(&self, token: &str) -> Result<(Session, User, WhoAmI), FlowError> {
        let now = Timestamp::now();
        let stored = self.sessions.read(token_id(token)?).await?.ok_or(SessionError::Unknown)?;
        let user = self.users.get_opt(&stored.session.record.user_object).await?;
        let last_seen = self.settle(token, &stored, user.as_ref().map(user_facts), now).await?;
        // Settled: the user exists.
        let user = user.ok_or(SessionError::Unknown)?;
        let r = &stored.session.record;
        let who = self.who(&user, &r.provider, r.expires_at, Some(self.sessions.policy.idle_deadline(last_seen)));
        Ok((Session { last_seen, ..stored.session }, user, who))
    }

    /// [`Self::identify`] for minting Kubernetes tokens: the same checks by the same decision, on
    /// the server's watch caches (Sessions, the user directory, providers). The API server is
    /// asked only for what the caches do not hold yet (a session or a login from a moment ago).
    /// The authorization webhook decides from the same caches (architecture.md, "Kubernetes
    /// access"), so a token minted within the watch's lag of a revocation is refused anyway.
    pub async fn identify_cached(&self, token: &str) -> Result<Identified, FlowError> {
        let now = Timestamp::now();
        let id = token_id(token)?;
        let stored = match self.session_cache.get(id) {
            Some(Cached::Live(stored)) => *stored,
            Some(Cached::Ending) => return Err(SessionError::Unknown.into()),
            None => self.sessions.read(id).await?.ok_or(SessionError::Unknown)?,
        };
        let r = &stored.session.record;
        let cached = {
            let directory = self.directory_store.read();
            directory.login_user(&r.user_object).filter(|u| !may_predate(u.last_login, r.created_at, now)).map(|u| {
                let groups = groups(&directory, &r.provider, Some(u.id), u.login_groups.iter().map(|g| &**g));
                let who = WhoAmI {
                    user: u.user_name.to_string(),
                    provider: r.provider.clone(),
                    groups,
                    expires_at: r.expires_at,
                    idle_expires_at: None,
                };
                (u.uid.to_string(), u.active, who)
            })
        };
        let user = match cached {
            Some(found) => Some(found),
            None => self.users.get_opt(&r.user_object).await?.map(|u| {
                let facts = user_facts(&u);
                (facts.uid.to_string(), facts.active, self.who(&u, &r.provider, r.expires_at, None))
            }),
        };
        let facts = user.as_ref().map(|(uid, active, _)| UserFacts { uid, active: *active });
        let last_seen = self.settle(token, &stored, facts, now).await?;
        let (uid, _, mut who) = user.ok_or(SessionError::Unknown)?;
        who.idle_expires_at = Some(self.sessions.policy.idle_deadline(last_seen));
        Ok(Identified { session: Session { last_seen, ..stored.session }, uid, who })
    }

    /// Acts on [`check::check`] for `stored`: a session that is over is deleted (here, on every
    /// replica, whatever the controller has got round to); a used one has its last-seen time
    /// moved now and then. Returns the session's last-seen time after this use.
    async fn settle(&self, token: &str, stored: &Stored, user: Option<UserFacts<'_>>, now: Timestamp) -> Result<Timestamp, FlowError> {
        let (s, r) = (&stored.session, &stored.session.record);
        // A provider being deleted is gone for its sessions already (see `Cache::live`).
        let idp = self.providers.live(&r.provider);
        let provider = idp.as_deref().map(|idp| {
            let status = idp.status.as_ref();
            let token_endpoint = status.and_then(|s| s.endpoints.as_ref()).and_then(|e| e.token.as_deref());
            ProviderFacts { issuer: status.and_then(|s| s.issuer.as_deref()), token_endpoint }
        });
        let facts = Facts { session: s, token_hash: &stored.token_hash, owner_uid: stored.owner_uid.as_deref(), provider, user };
        match check::check(&self.sessions.policy, token, &facts, now) {
            Check::Valid { touch: true } => {
                self.sessions.touch(&s.id, now);
                Ok(now)
            }
            Check::Valid { touch: false } => Ok(s.last_seen),
            Check::Unknown => Err(SessionError::Unknown.into()),
            Check::Ended(ending) => {
                self.sessions.delete(&s.id).await?;
                Metrics::count(&self.metrics.sessions_ended, ending.reason());
                tracing::info!(user = %r.user, provider = %r.provider, reason = ending.reason(), "session ended");
                Err(FlowError::new(StatusCode::UNAUTHORIZED, "unauthenticated", ending.message(r)))
            }
        }
    }

    pub async fn logout(&self, token: &str) -> Result<WhoAmI, FlowError> {
        let (session, who) = self.whoami(token).await?;
        self.sessions.delete(&session.id).await?;
        Metrics::count(&self.metrics.sessions_ended, "logout");
        tracing::info!(user = %who.user, provider = %who.provider, "logged out");
        Ok(who)
    }
}

/// A person identified for a Kubernetes token.
pub struct Identified {
    pub session: Session,
    /// The User's UID.
    pub uid: String,
    pub who: WhoAmI,
}

fn user_facts(u: &User) -> UserFacts<'_> {
    UserFacts { uid: u.metadata.uid.as_deref().unwrap_or_default(), active: u.spec.is_active() }
}

/// A person's groups: those the provider asserted at login and their SCIM groups, sorted.
fn groups<'a>(directory: &Directory, provider: &str, scim_id: Option<&str>, login_groups: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut groups: Vec<String> = login_groups.map(str::to_string).collect();
    if let Some(id) = scim_id {
        groups.extend(directory.groups_of(provider, id).into_iter().map(|(_, name)| name));
    }
    groups.sort();
    groups.dedup();
    groups
}

/// How young a session is when its User's entry in the directory may still predate the login
/// that started it: a login writes the User's groups and then creates the Session, and the
/// server's watches of the two kinds are not ordered with each other.
const FRESH: SignedDuration = SignedDuration::from_secs(60);

/// Whether the directory's entry of a user (last login `last_login`, its annotation) may be from
/// before the login that started a session at `created`: the session is younger than [`FRESH`]
/// and the entry shows no login from up to [`FRESH`] before it. Its login groups may then be an
/// earlier login's, so the User is read from the API server instead. Pure.
fn may_predate(last_login: Option<&str>, created: Timestamp, now: Timestamp) -> bool {
    if now.duration_since(created) >= FRESH {
        return false;
    }
    let last = last_login.and_then(|t| t.parse::<Timestamp>().ok());
    last.is_none_or(|t| created.duration_since(t) > FRESH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_serves_a_session_once_it_has_seen_its_login() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let text = |s: i64| at(s).to_string();
        // A session a moment old, its user's last login just before it: the directory has it.
        assert!(!may_predate(Some(&text(-1)), at(0), at(1)));
        // The directory's entry shows only an earlier login (or none): read the User.
        assert!(may_predate(Some(&text(-3600)), at(0), at(1)));
        assert!(may_predate(None, at(0), at(1)));
        assert!(may_predate(Some("not a time"), at(0), at(1)));
        // A session older than the watches' worst lag: whatever the entry shows is current.
        assert!(!may_predate(None, at(0), at(60)));
        assert!(!may_predate(Some(&text(-3600)), at(0), at(3600)));
    }

    #[test]
    fn a_user_binds_to_the_first_subject_and_refuses_others() {
        assert_eq!(bind_subject(None, "00u1", "kate@x", "okta", "u-1", "infra").unwrap(), Binding::Record);
        assert_eq!(bind_subject(Some(""), "00u1", "kate@x", "okta", "u-1", "infra").unwrap(), Binding::Record);
        assert_eq!(bind_subject(Some("00u1"), "00u1", "kate@x", "okta", "u-1", "infra").unwrap(), Binding::Same);
        let e = bind_subject(Some("00u1"), "00u2", "kate@x", "okta", "u-1", "infra").unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "subject_mismatch"));
        assert!(e.message.contains("kubectl -n infra patch user u-1 --subresource=status"), "{}", e.message);
        assert!(!e.message.contains("00u1"), "another account's subject is not shown: {}", e.message);
    }
}

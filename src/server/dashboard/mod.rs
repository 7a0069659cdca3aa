//! The dashboard: providers and their SCIM keys, users, groups and grants, for the people
//! Kubernetes RBAC lets see or change them ([`authz`]). Server-rendered pages on the layout of
//! [`crate::server::web`]; every form carries the CSRF token and is checked against `Origin`
//! ([`crate::server::login::csrf`]). The server then acts with its own ServiceAccount, which may
//! only touch Infra's own objects in its namespace.

pub mod authz;
pub mod directory;
mod grants;
mod home;
pub mod paging;
mod providers;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::{ScimKey, User};
use crate::api_server::Kube;
use crate::server::cache::Cache;
use crate::server::login::dashboard::{base_path, session};
use crate::server::login::{LoginState, WhoAmI, csrf, pages};
use crate::server::web::{Assets, Chrome, Nav, render};
use authz::{Ask, Authorizer, Person};

pub struct DashState {
    pub login: Arc<LoginState>,
    pub authz: Authorizer,
    /// The server's own client, for the writes a person was allowed.
    pub kube: Kube,
    pub keys: Cache<ScimKey>,
    /// Which login sessions exist, and whose they are.
    pub sessions: Arc<crate::session::cache::SessionCache>,
}

pub fn router(state: Arc<DashState>) -> Router {
    Router::new()
        .route("/", get(home::show))
        .route("/providers", get(providers::list).post(providers::add))
        .route("/providers/{name}", get(providers::show).post(providers::edit))
        .route("/providers/{name}/remove", get(providers::confirm_remove).post(providers::remove))
        .route("/providers/{name}/keys", post(providers::generate_key))
        .route("/providers/{name}/keys/{key}/revoke", post(providers::revoke_key))
        .route("/users", get(directory::users))
        .route("/users/{name}", get(directory::user))
        .route("/users/{name}/sessions/{id}/end", post(directory::end_session))
        .route("/groups", get(directory::groups))
        .route("/groups/{name}", get(directory::group))
        .route("/grants", get(grants::list).post(grants::add))
        .route("/grants/{name}/remove", post(grants::remove))
        .with_state(state)
}

/// A signed-in request: who is asking, as Kubernetes knows them.
pub struct Ctx {
    pub person: Person,
    pub who: WhoAmI,
    pub user: User,
}

impl DashState {
    pub fn namespace(&self) -> &str {
        &self.login.args.namespace
    }

    pub fn base(&self) -> String {
        base_path(&self.login)
    }

    pub fn infra(&self, verb: &'static str, resource: &'static str) -> Ask {
        Ask::infra(verb, resource, self.namespace())
    }

    /// The person signed in with the request's cookie, or the page to show instead (sign in).
    pub async fn signed_in(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        let (session, user, who) = session(&self.login, headers).await?;
        let uid = user.metadata.uid.clone().unwrap_or_default();
        let person = Person::new(&who.provider, &who.user, &who.groups, &uid, &session.id);
        Ok(Ctx { person, who, user })
    }

    /// Whether `ctx`'s person may; an API server that cannot answer counts as no (and is logged).
    pub async fn may(&self, ctx: &Ctx, ask: Ask) -> bool {
        match self.authz.allowed(&ctx.person, &ask).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, question = %ask.can_i(), "a SubjectAccessReview failed; treating it as denied");
                false
            }
        }
    }

    /// Ok when `ctx`'s person may; otherwise the 403 page (or 503 when the API server cannot
    /// answer).
    pub async fn require(&self, ctx: &Ctx, ask: &Ask, section: &'static str) -> Result<(), Response> {
        match self.authz.allowed(&ctx.person, ask).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.forbidden(ctx, ask, section).await),
            Err(e) => Err(self.unavailable(&format!("Infra cannot check your access right now ({e}); try again in a moment."))),
        }
    }

    /// The layout for `ctx`, with the navigation showing only what the person may list.
    pub async fn chrome(&self, ctx: &Ctx, section: &'static str) -> Chrome {
        let [providers, users, groups, grants] = ["identityproviders", "users", "groups", "grants"].map(|r| self.infra("list", r));
        let (providers, users, groups, grants) =
            futures::join!(self.may(ctx, providers), self.may(ctx, users), self.may(ctx, groups), self.may(ctx, grants));
        Chrome {
            base: self.base(),
            assets: Assets::get(),
            nav: Some(Nav {
                user: ctx.who.user.clone(),
                provider: ctx.who.provider.clone(),
                csrf: self.csrf(ctx),
                providers,
                users,
                groups,
                grants,
            }),
            section,
        }
    }

    pub fn csrf(&self, ctx: &Ctx) -> String {
        self.login.state_key.csrf_token(&ctx.person.session_id)
    }

    /// The fields of a posted form, once it has passed both CSRF checks; otherwise the page
    /// saying nothing was changed.
    pub fn form(&self, headers: &HeaderMap, ctx: &Ctx, body: &[u8]) -> Result<HashMap<String, String>, Box<Response>> {
        let form = crate::server::web::form(body);
        let presented = form.get(csrf::FIELD).map(String::as_str);
        match csrf::check_form(headers, &self.login.args.external_url, &self.login.state_key, &ctx.person.session_id, presented) {
            Ok(()) => Ok(form),
            Err(why) => {
                tracing::warn!(reason = %why, user = %ctx.person.username, "dashboard form refused: not posted from an Infra page");
                Err(Box::new(pages::unavailable(
                    StatusCode::FORBIDDEN,
                    &format!("This form was not sent from an Infra page ({why}), so nothing was changed."),
                    &self.base(),
                )))
            }
        }
    }

    pub async fn forbidden(&self, ctx: &Ctx, ask: &Ask, section: &'static str) -> Response {
        tracing::info!(user = %ctx.person.username, question = %ask.can_i(), "dashboard request denied by RBAC");
        let page = views::Forbidden {
            chrome: self.chrome(ctx, section).await,
            reason: format!("You may not {} {} here.", ask.verb, ask.resource),
            can_i: ask.can_i(),
            username: ctx.person.username.clone(),
            groups: ctx.person.groups.clone(),
        };
        render(StatusCode::FORBIDDEN, &page)
    }

    pub fn unavailable(&self, reason: &str) -> Response {
        pages::unavailable(StatusCode::SERVICE_UNAVAILABLE, reason, &self.base())
    }

    /// A page saying what went wrong with an action (a bad form, the API server refusing).
    pub async fn failed(&self, ctx: &Ctx, status: StatusCode, section: &'static str, reason: String) -> Response {
        render(status, &views::Failed { chrome: self.chrome(ctx, section).await, reason })
    }

    /// After a successful form: see the result (POST, then redirect, then GET).
    pub fn redirect(&self, path: &str) -> Response {
        (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{}{path}", self.base())), (header::CACHE_CONTROL, "no-store".into())])
            .into_response()
    }
}

/// `render` for the dashboard's templates (a shorter name at the call sites).
pub fn page(t: &impl Template) -> Response {
    render(StatusCode::OK, t)
}

/// What a write error from the API server means to the person who asked for it.
pub fn explain(e: &kube::Error, what: &str) -> (StatusCode, String) {
    match e {
        kube::Error::Api(s) if s.code == 409 => {
            (StatusCode::CONFLICT, format!("Could not {what}: it already exists or changed meanwhile ({}).", s.message))
        }
        kube::Error::Api(s) if s.code == 404 => (StatusCode::NOT_FOUND, format!("Could not {what}: it no longer exists.")),
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => (StatusCode::BAD_REQUEST, format!("Could not {what}: {}", s.message)),
        kube::Error::Api(s) if s.code == 403 => {
            (StatusCode::FORBIDDEN, format!("Could not {what}: the API server refused it ({}).", s.message))
        }
        e => (StatusCode::SERVICE_UNAVAILABLE, format!("Could not {what} right now ({e}); try again in a moment.")),
    }
}

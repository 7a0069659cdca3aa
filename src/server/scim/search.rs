//! `POST /.search` at the root (RFC 7644 §3.4.3): one query over Users and Groups.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
use super::error::ScimError;
use super::kinds::ScimKind;
use super::request::{Params, json_body};
use super::resources::{MAX_RESULTS, ScimState, matching, parse_query, scim_json};
use super::work::heavy;
use crate::api::{Group, User};
use crate::scim::list::{Page, list_response};
use crate::scim::projection::Projection;

pub async fn root_search(State(state): State<ScimState>, Extension(p): Extension<Principal>, body: Bytes) -> Response {
    match heavy(move || run(&state, &p.provider, &body)).await {
        Ok(body) => scim_json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn run(state: &ScimState, provider: &str, body: &Bytes) -> Result<serde_json::Value, ScimError> {
    let params = Params::from_search_body(&json_body(body)?)?;
    let page = Page::from_query(params.get("startIndex"), params.get("count"), MAX_RESULTS)?;
    // A filter may name attributes only one resource type has; that type then has no matches. A
    // filter neither type understands is an error.
    let users = parse_query::<User>(&params);
    let groups = parse_query::<Group>(&params);
    let (users, groups) = match (users, groups) {
        (Err(e), Err(_)) => return Err(e),
        (u, g) => (u.ok(), g.ok()),
    };
    let dir = state.store.read();
    let mut items = vec![];
    if let Some(q) = users {
        let projection = Projection::new(User::RT, params.get("attributes"), params.get("excludedAttributes"));
        items.extend(matching::<User>(&dir, provider, &q, &state.base_url).iter().map(|v| projection.apply(v)));
    }
    if let Some(q) = groups {
        let projection = Projection::new(Group::RT, params.get("attributes"), params.get("excludedAttributes"));
        items.extend(matching::<Group>(&dir, provider, &q, &state.base_url).iter().map(|v| projection.apply(v)));
    }
    let total = items.len();
    Ok(list_response(total, page.start_index, page.slice(&items).to_vec()))
}

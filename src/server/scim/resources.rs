//! `/Users` and `/Groups`: list, search, create, read, replace, patch and delete, written once for
//! both through `ScimKind`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Principal;
use super::error::{CONTENT_TYPE, ScimError};
use super::kinds::ScimKind;
use super::request::{Params, check_if_match, json_body};
use super::work::{heavy, sized};
use crate::directory::Directory;
use crate::directory::codec::version;
use crate::directory::store::{MemberChange, WRITE_ATTEMPTS};
use crate::directory::{DirectoryStore, StoreError};
use crate::scim::filter::{self, Filter, equality_hint};
use crate::scim::list::{Page, list_response};
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::sort::SortSpec;

/// The most resources one page returns (advertised as `filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;

#[derive(Clone)]
pub struct ScimState {
    pub store: DirectoryStore,
    pub base_url: String,
}

impl ScimState {
    fn directory(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.store.read()
    }
}

pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

fn resource_response(status: StatusCode, body: &Value, version: &str, location: Option<&str>) -> Response {
    let mut resp = scim_json(status, body);
    if let Ok(v) = HeaderValue::from_str(version) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

fn result(r: Result<Response, ScimError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

// ---- queries -----------------------------------------------------------------------------------

pub struct ParsedQuery {
    pub filter: Option<Filter>,
    pub sort: Option<SortSpec>,
}

/// Parses the filter and sort of a query for `K`.
pub fn parse_query<K: ScimKind>(params: &Params) -> Result<ParsedQuery, ScimError> {
    let filter = params.get("filter").filter(|f| !f.trim().is_empty()).map(|f| filter::parse(f, K::RT)).transpose()?;
    let sort =
        params.get("sortBy").filter(|s| !s.trim().is_empty()).map(|s| SortSpec::parse(K::RT, s, params.get("sortOrder"))).transpose()?;
    Ok(ParsedQuery { filter, sort })
}

/// The rendered resources matching `query`, in order: by `sortBy` when given, else by id.
/// Equality on an indexed attribute is answered from the index; other filters scan.
pub fn matching<K: ScimKind>(dir: &Directory, provider: &str, query: &ParsedQuery, base_url: &str) -> Vec<Value> {
    matching_among(dir, indexed::<K>(dir, provider, query).unwrap_or_else(|| K::all(dir, provider)), query, base_url)
}

/// The resources an equality filter on an indexed attribute names, or `None` when the query has
/// no such filter and every resource is a candidate.
fn indexed<K: ScimKind>(dir: &Directory, provider: &str, query: &ParsedQuery) -> Option<Vec<K>> {
    query.filter.as_ref().and_then(equality_hint).and_then(|(attr, value)| K::indexed(dir, provider, &attr, &value))
}

fn matching_among<K: ScimKind>(dir: &Directory, candidates: Vec<K>, query: &ParsedQuery, base_url: &str) -> Vec<Value> {
    let mut matched: Vec<Value> =
        candidates.iter().map(|o| K::render(dir, o, base_url)).filter(|v| query.filter.as_ref().is_none_or(|f| f.matches(v))).collect();
    if let Some(sort) = &query.sort {
        sort.sort(&mut matched);
    }
    matched
}

/// A list request, parsed once, with the resources an indexed equality filter names found once:
/// the weight that places the work and the answer both use them.
struct ListRequest<K> {
    query: ParsedQuery,
    page: Page,
    projection: Projection,
    indexed: Option<Vec<K>>,
}

impl<K: ScimKind> ListRequest<K> {
    fn new(dir: &Directory, provider: &str, params: &Params) -> Result<Self, ScimError> {
        let query = parse_query::<K>(params)?;
        let page = Page::from_query(params.get("startIndex"), params.get("count"), MAX_RESULTS)?;
        let projection = Projection::new(K::RT, params.get("attributes"), params.get("excludedAttributes"));
        let indexed = indexed::<K>(dir, provider, &query);
        Ok(Self { query, page, projection, indexed })
    }

    /// What the answer weighs, in bytes as rendered, when it is a lookup by an indexed attribute
    /// (Okta's and Entra's `userName eq` and `displayName eq` before every write): the few
    /// resources found. Any other list may render thousands, and counts as large.
    fn weight(&self, dir: &Directory) -> usize {
        let Some(found) = &self.indexed else { return usize::MAX };
        let members = wants_members(&self.projection);
        found.iter().map(|o| K::weight(dir, o, members)).sum()
    }

    fn answer(self, dir: &Directory, provider: &str, base_url: &str) -> Value {
        let Self { query, page, projection, indexed } = self;
        // Without a filter or sort only the page itself needs rendering.
        if query.filter.is_none() && query.sort.is_none() {
            let (total, objs) = K::page(dir, provider, page.start_index.saturating_sub(1), page.count);
            let members = wants_members(&projection);
            let items = objs.iter().map(|o| projection.apply(&K::render_shaped(dir, o, base_url, members))).collect();
            return list_response(total, page.start_index, items);
        }
        let candidates = indexed.unwrap_or_else(|| K::all(dir, provider));
        let matched = matching_among(dir, candidates, &query, base_url);
        let items = page.slice(&matched).iter().map(|v| projection.apply(v)).collect();
        list_response(matched.len(), page.start_index, items)
    }
}

fn list_page<K: ScimKind>(state: &ScimState, provider: &str, params: &Params) -> Result<Value, ScimError> {
    let dir = state.directory();
    Ok(ListRequest::<K>::new(&dir, provider, params)?.answer(&dir, provider, &state.base_url))
}

pub async fn list_resources<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Response {
    let prepared = {
        let dir = state.directory();
        ListRequest::<K>::new(&dir, &p.provider, &Params::new(raw)).map(|r| (r.weight(&dir), r))
    };
    let (weight, request) = match prepared {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let run = move || Ok(scim_json(StatusCode::OK, &request.answer(&state.directory(), &p.provider, &state.base_url)));
    result(sized(weight, run).await)
}

/// `POST /Users/.search` and `POST /Groups/.search` (RFC 7644 §3.4.3).
pub async fn search_resources<K: ScimKind>(State(state): State<ScimState>, Extension(p): Extension<Principal>, body: Bytes) -> Response {
    let run = move || {
        let params = Params::from_search_body(&json_body(&body)?)?;
        list_page::<K>(&state, &p.provider, &params).map(|body| scim_json(StatusCode::OK, &body))
    };
    result(heavy(run).await)
}

// ---- single resources ----------------------------------------------------------------------------

fn not_found<K: ScimKind>(id: &str) -> ScimError {
    ScimError::not_found(format!("{} {id:?} not found", K::RT.name()))
}

pub async fn get_resource<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Response {
    let Some(obj) = K::lookup(&state.directory(), &p.provider, &id) else { return not_found::<K>(&id).into_response() };
    reply(&state, obj, Params::new(raw), StatusCode::OK).await
}

/// Whether `projection` returns a group's members: when it does not (`excludedAttributes=members`,
/// as Okta and Entra ask), a group of any size renders in constant time.
fn wants_members(projection: &Projection) -> bool {
    projection.apply(&json!({"members": [{"value": "x"}]})).get("members").is_some()
}

/// Renders `obj` and shapes it by `attributes`/`excludedAttributes` (RFC 7644 §3.9: every
/// returned resource, not only reads), off the async workers: a large group's members take a
/// while to render. A `201 Created` carries the resource's `Location`.
async fn reply<K: ScimKind>(state: &ScimState, obj: K, params: Params, status: StatusCode) -> Response {
    let state = state.clone();
    let projection = Projection::new(K::RT, params.get("attributes"), params.get("excludedAttributes"));
    let members = wants_members(&projection);
    let weight = K::weight(&state.directory(), &obj, members);
    let run = move || {
        let body = K::render_shaped(&state.directory(), &obj, &state.base_url, members);
        let location = (status == StatusCode::CREATED).then(|| body["meta"]["location"].as_str().map(str::to_string)).flatten();
        let body = projection.apply(&body);
        Ok(resource_response(status, &body, &version(&obj), location.as_deref()))
    };
    result(sized(weight, run).await)
}

/// Attributes the server owns. Clients send them back in PUTs (Okta's profile updates do), and
/// RFC 7644 §3.5.1 says to ignore them; `password` is accepted but never stored.
const SERVER_OWNED: &[&str] = &["id", "meta", "schemas", "groups", "password"];

/// Validates a full resource from a POST or PUT by applying it to an empty resource with the PATCH
/// machinery, which checks every attribute against the schema and canonicalizes names.
fn validate_full<K: ScimKind>(mut body: Value, current_id: Option<&str>) -> Result<Value, ScimError> {
    let schema = K::RT.schema().id;
    if let Some(schemas) = body.get("schemas") {
        let ok = schemas.as_array().is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(schema))));
        if !ok {
            return Err(ScimError::invalid_syntax(format!("schemas must include {schema:?}")));
        }
    }
    let obj = body.as_object_mut().expect("json_body only returns objects");
    if let (Some(current), Some(sent)) = (current_id, obj.get("id"))
        && sent.as_str() != Some(current)
    {
        return Err(ScimError::mutability(format!("id is read-only: it is {current:?}, not {sent}")));
    }
    // Attribute names are case-insensitive: drop server-owned ones in any case.
    obj.retain(|k, _| !SERVER_OWNED.iter().any(|s| s.eq_ignore_ascii_case(k)));
    patch::write_resource(&json!({"schemas": [schema]}), K::RT, &body)
}

pub async fn create_resource<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let provider = p.provider.clone();
    let size = body.len();
    let validate = move || K::spec_from(&validate_full::<K>(json_body(&body)?, None)?, &provider);
    let run = async {
        let spec = sized(size, validate).await?;
        K::create(&state.store, &p.provider, spec).await
    };
    match run.await {
        Ok(obj) => reply(&state, obj, Params::new(raw), StatusCode::CREATED).await,
        Err(e) => e.into_response(),
    }
}

/// Replaces or patches resource `id`: `compute` turns the current rendered resource into the new
/// one. On a write conflict the resource is re-read and `compute` runs again, so concurrent
/// changes are never lost. Rendering and `compute` run off the async workers (see `work`).
async fn update_with<K: ScimKind>(
    state: &ScimState,
    provider: &str,
    id: &str,
    headers: &HeaderMap,
    input_bytes: usize,
    compute: impl Fn(&Value) -> Result<Value, ScimError> + Clone + Send + 'static,
) -> Result<K, ScimError> {
    let mut current = K::lookup(&state.directory(), provider, id).ok_or_else(|| not_found::<K>(id))?;
    for _ in 0..WRITE_ATTEMPTS {
        check_if_match(headers, &version(&current))?;
        let weight = input_bytes.saturating_add(K::weight(&state.directory(), &current, true));
        let (st, cur, f, prov) = (state.clone(), current.clone(), compute.clone(), provider.to_string());
        let spec = sized(weight, move || {
            let rendered = K::render(&st.directory(), &cur, &st.base_url);
            K::spec_from(&f(&rendered)?, &prov)
        })
        .await?;
        match K::update(&state.store, &current, spec).await {
            Ok(stored) => return Ok(stored),
            Err(StoreError::Conflict) => {
                current = K::reload(&state.store, &current).await?.ok_or_else(|| not_found::<K>(id))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// A PATCH that only adds and removes members: applied as label writes on the members, without
/// rendering the group or reading its other members (see `scim::members`). Adds and removes
/// commute with concurrent ones, so there is no version to conflict on; an `If-Match` is still
/// checked against the version this replica holds.
async fn change_members<K: ScimKind>(
    state: &ScimState,
    provider: &str,
    id: &str,
    headers: &HeaderMap,
    changes: &[MemberChange],
) -> Result<K, ScimError> {
    let current = K::lookup(&state.directory(), provider, id).ok_or_else(|| not_found::<K>(id))?;
    check_if_match(headers, &version(&current))?;
    Ok(K::change_members(&state.store, &current, changes).await?)
}

/// The answer to a PUT or PATCH.
async fn updated<K: ScimKind>(state: &ScimState, params: Params, result: Result<K, ScimError>) -> Response {
    match result {
        Ok(obj) => reply(state, obj, params, StatusCode::OK).await,
        Err(e) => e.into_response(),
    }
}

pub async fn replace_resource<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let size = body.len();
        let sent = Arc::new(sized(size, move || json_body(&body)).await?);
        let current_id = id.clone();
        let compute = move |_: &Value| validate_full::<K>((*sent).clone(), Some(&current_id));
        update_with::<K>(&state, &p.provider, &id, &headers, size, compute).await
    };
    let outcome = run.await;
    updated::<K>(&state, Params::new(raw), outcome).await
}

pub async fn patch_resource<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let size = body.len();
        let request = Arc::new(sized(size, move || json_body(&body)).await?);
        if let Some(changes) = K::member_changes(&request) {
            return change_members::<K>(&state, &p.provider, &id, &headers, &changes).await;
        }
        update_with::<K>(&state, &p.provider, &id, &headers, size, move |current: &Value| patch::apply(current, K::RT, &request)).await
    };
    let outcome = run.await;
    updated::<K>(&state, Params::new(raw), outcome).await
}

pub async fn delete_resource<K: ScimKind>(
    State(state): State<ScimState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let obj = K::lookup(&state.directory(), &p.provider, &id).ok_or_else(|| not_found::<K>(&id))?;
        check_if_match(&headers, &version(&obj))?;
        K::delete(&state.store, &obj).await
    };
    match run.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

//! `/users` and `/groups`: the server's in-memory directory (the one SCIM serves from), searched
//! and paged without asking the API server, so that the lists stay fast with 10,000 users.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kube::{Api, ResourceExt};

use super::authz::Ask;
use super::paging::Paging;
use super::providers::{form, require, signed_in};
use super::views::{self, GroupRow, SessionRow, UserRow, grant_row, grants_of};
use super::{DashState, page};
use crate::api::{Grant, Group, User, annotations};
use crate::directory::Directory;
use crate::directory::codec::scim_id;
use crate::kube_access::identity;
use crate::server::login::pages::urlencode;

/// Members listed on a group's page; a larger group shows the first ones and says how many more.
const MEMBERS_SHOWN: usize = 1000;

/// A Users row, with the user's group names from the directory and their number of sessions.
pub fn user_row(directory: &Directory, u: &User, session_counts: &HashMap<String, usize>) -> UserRow {
    let provider = u.spec.provider_ref.name.clone();
    let groups = scim_id(u).map(|id| directory.groups_of(&provider, id)).unwrap_or_default();
    UserRow {
        object: u.name_any(),
        user_name: u.spec.user_name.clone(),
        display_name: u.spec.display_name.clone().unwrap_or_default(),
        provider,
        active: u.spec.is_active(),
        origin: if u.annotations().get(annotations::CREATED_BY).is_some_and(|b| b == "login") { "sign-in" } else { "SCIM" },
        groups: groups.into_iter().map(|(_, name)| name).collect::<Vec<_>>().join(", "),
        last_login: u
            .annotations()
            .get(annotations::LAST_LOGIN)
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        sessions: session_counts.get(u.name_any().as_str()).copied().unwrap_or(0),
    }
}

/// One page of the Users list, rendered: what the benchmark measures. Pure.
pub fn users_page(
    directory: &Directory,
    session_counts: &HashMap<String, usize>,
    chrome: crate::server::web::Chrome,
    query: &str,
    paging: Paging,
) -> views::Users {
    let (total, users) = directory.search_users(query, paging.start(), paging.per);
    views::Users {
        chrome,
        query: query.to_string(),
        query_param: urlencode(query),
        users: users.iter().map(|u| user_row(directory, u, session_counts)).collect(),
        paging: paging.with_total(total),
    }
}

/// The sessions of user object `name`, newest first.
fn sessions_of(s: &DashState, name: &str) -> Vec<SessionRow> {
    s.sessions
        .of_user(name)
        .into_iter()
        .map(|m| SessionRow {
            id: m.id,
            created: m.created_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen: m.last_seen.to_string(),
        })
        .collect()
}

fn paging(q: &HashMap<String, String>) -> Paging {
    Paging::from_query(q.get("page").map(String::as_str), q.get("per").map(String::as_str))
}

pub async fn users(State(s): State<Arc<DashState>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("list", "users"), "users");
    let chrome = s.chrome(&ctx, "users").await;
    let query = q.get("q").map(|v| v.trim()).unwrap_or("");
    let counts = s.sessions.counts_by_user();
    let view = users_page(&s.login.directory_store.read(), &counts, chrome, query, paging(&q));
    page(&view)
}

pub async fn user(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("get", "users").named(&name), "users");
    let users: Api<User> = s.kube.api();
    let u = match users.get_opt(&name).await {
        Ok(Some(u)) => u,
        Ok(None) => return s.failed(&ctx, StatusCode::NOT_FOUND, "users", format!("There is no user {name:?}.")).await,
        Err(e) => return s.unavailable(&format!("Infra cannot read user {name:?} right now ({e}).")),
    };
    let sessions = sessions_of(&s, &name);
    let (can_groups, can_grants, can_end_sessions) = futures::join!(
        s.may(&ctx, s.infra("list", "groups")),
        s.may(&ctx, s.infra("list", "grants")),
        // One question for all of the user's sessions: may the person end the first?
        async {
            match sessions.first() {
                Some(first) => s.may(&ctx, Ask::end_session(s.namespace(), &first.id)).await,
                None => false,
            }
        }
    );
    let provider = u.spec.provider_ref.name.clone();
    let (row, groups) = {
        let d = s.login.directory_store.read();
        let groups: Vec<(String, String)> = scim_id(&u)
            .map(|id| d.groups_of(&provider, id))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(gid, name)| d.group(&provider, &gid).map(|g| (g.name_any(), name)))
            .collect();
        (user_row(&d, &u, &s.sessions.counts_by_user()), groups)
    };
    let group_names: Vec<String> = groups.iter().map(|(_, n)| n.clone()).collect();
    let grants = if can_grants {
        let api: Api<Grant> = s.kube.api();
        match api.list(&Default::default()).await {
            Ok(list) => grants_of(&list.items, &provider, &u.spec.user_name, &group_names).into_iter().map(grant_row).collect(),
            Err(e) => return s.unavailable(&format!("Infra cannot read grants right now ({e}).")),
        }
    } else {
        vec![]
    };
    let emails = u
        .spec
        .attributes
        .as_ref()
        .and_then(|a| a.get("emails"))
        .and_then(|e| e.as_array())
        .map(|list| list.iter().filter_map(|e| e.get("value").and_then(|v| v.as_str())).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let last_login = u
        .status
        .as_ref()
        .and_then(|st| st.last_login_time.as_ref())
        .map_or_else(|| "never".to_string(), |t| t.0.strftime("%Y-%m-%d %H:%M UTC").to_string());
    page(&views::UserPage {
        chrome: s.chrome(&ctx, "users").await,
        kube_user: identity::username(&provider, &u.spec.user_name),
        u: row,
        emails,
        last_login,
        groups,
        can_groups,
        grants,
        sessions,
        can_end_sessions,
        csrf: s.csrf(&ctx),
    })
}

/// `POST /users/<name>/sessions/<id>/end`: ends the session through the session store, as
/// signing out would; the CLI holding it is logged out on its next request.
pub async fn end_session(
    State(s): State<Arc<DashState>>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let ctx = signed_in!(s, headers);
    let _ = form!(s, headers, ctx, body);
    require!(s, ctx, Ask::end_session(s.namespace(), &id), "users");
    if !sessions_of(&s, &name).iter().any(|r| r.id == id) {
        return s
            .failed(&ctx, StatusCode::NOT_FOUND, "users", format!("User {name:?} has no session {id:?} (it may have ended already)."))
            .await;
    }
    if let Err(e) = s.login.sessions.delete(&id).await {
        return s.unavailable(&format!("Infra could not end the session right now ({e}); try again in a moment."));
    }
    tracing::info!(user = %name, session = %id, by = %ctx.person.username, "dashboard: ended a session");
    s.redirect(&format!("users/{name}"))
}

/// Every group of every provider whose displayName contains `query` (ignoring case), by
/// provider and name, one page of them. Pure.
pub fn group_rows(directory: &Directory, providers: &[String], query: &str, paging: &Paging) -> (usize, Vec<GroupRow>) {
    let q = crate::scim::case::fold_case(query).into_owned();
    let mut all: Vec<Arc<Group>> = providers
        .iter()
        .flat_map(|p| directory.groups(p))
        .filter(|g| q.is_empty() || crate::scim::case::fold_case(&g.spec.display_name).contains(q.as_str()))
        .collect();
    all.sort_by(|a, b| {
        (&a.spec.provider_ref.name, a.spec.display_name.to_lowercase())
            .cmp(&(&b.spec.provider_ref.name, b.spec.display_name.to_lowercase()))
    });
    let total = all.len();
    let rows = all
        .iter()
        .skip(paging.start())
        .take(paging.per)
        .map(|g| GroupRow {
            object: g.name_any(),
            name: g.spec.display_name.clone(),
            provider: g.spec.provider_ref.name.clone(),
            members: directory.member_ids(g).len(),
        })
        .collect();
    (total, rows)
}

pub async fn groups(State(s): State<Arc<DashState>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("list", "groups"), "groups");
    let query = q.get("q").map(|v| v.trim()).unwrap_or("").to_string();
    let providers: Vec<String> = s.login.providers.state().iter().map(|p| p.name_any()).collect();
    let paging = paging(&q);
    let (total, rows) = group_rows(&s.login.directory_store.read(), &providers, &query, &paging);
    page(&views::Groups {
        chrome: s.chrome(&ctx, "groups").await,
        query_param: urlencode(&query),
        query,
        groups: rows,
        paging: paging.with_total(total),
    })
}

pub async fn group(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("get", "groups").named(&name), "groups");
    let groups: Api<Group> = s.kube.api();
    let g = match groups.get_opt(&name).await {
        Ok(Some(g)) => g,
        Ok(None) => return s.failed(&ctx, StatusCode::NOT_FOUND, "groups", format!("There is no group {name:?}.")).await,
        Err(e) => return s.unavailable(&format!("Infra cannot read group {name:?} right now ({e}).")),
    };
    let can_users = s.may(&ctx, s.infra("list", "users")).await;
    let provider = g.spec.provider_ref.name.clone();
    let mut members: Vec<(String, String)> = {
        let d = s.login.directory_store.read();
        d.members_of(&g)
            .into_iter()
            .take(MEMBERS_SHOWN)
            .filter_map(|(id, _)| {
                d.user_object(&provider, &id).zip(d.user(&provider, &id)).map(|((object, _), u)| (object, u.spec.user_name))
            })
            .collect()
    };
    members.sort_by_cached_key(|m| m.1.to_lowercase());
    page(&views::GroupPage {
        chrome: s.chrome(&ctx, "groups").await,
        kube_group: identity::group(&provider, &g.spec.display_name),
        name: g.spec.display_name.clone(),
        provider,
        members,
        can_users,
    })
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;
    use crate::api::{ProviderRef, UserSpec, labels};
    use crate::server::web::Chrome;

    fn user(i: usize, user_name: &str) -> User {
        let mut u = User::new(
            &format!("okta-u{i}"),
            UserSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                user_name: user_name.into(),
                external_id: None,
                display_name: None,
                active: Some(i != 1),
                attributes: None,
            },
        );
        u.metadata.labels = Some([(labels::SCIM_ID.to_string(), format!("id-{i}"))].into());
        if i == 2 {
            u.metadata.annotations = Some(
                [
                    (annotations::CREATED_BY.to_string(), "login".to_string()),
                    (annotations::LAST_LOGIN.to_string(), "2026-11-30T21:05:09Z".to_string()),
                ]
                .into(),
            );
        }
        u
    }

    #[test]
    fn the_users_page_escapes_names_pages_and_says_when_nothing_matches() {
        let mut d = Directory::default();
        for i in 0..3 {
            d.apply_user(user(i, &format!("<b>user{i}</b>")));
        }
        let counts = HashMap::from([("okta-u0".to_string(), 2)]);
        let chrome = || Chrome::anonymous("/");
        let page = users_page(&d, &counts, chrome(), "", Paging::from_query(Some("1"), Some("2")));
        assert_eq!((page.users.len(), page.paging.total), (2, 3));
        assert_eq!((page.users[0].origin, page.users[0].sessions, page.users[1].active), ("SCIM", 2, false));
        let last = users_page(&d, &counts, chrome(), "", Paging::from_query(Some("2"), Some("2")));
        assert_eq!((last.users[0].origin, last.users[0].last_login.as_str()), ("sign-in", "2026-11-30 21:05 UTC"));
        assert_eq!(page.users[0].last_login, "", "never signed in");
        let html = page.render().unwrap();
        assert!(!html.contains("<b>user") && html.contains("user0"), "{html}");
        assert!(html.contains("href=\"?q=&amp;page=2&amp;per=2\""), "the next page keeps the query: {html}");
        let none = users_page(&d, &counts, chrome(), "<nobody>", Paging::from_query(None, None)).render().unwrap();
        assert!(none.contains("id=\"no-users\"") && !none.contains("<nobody>"), "{none}");
    }
}

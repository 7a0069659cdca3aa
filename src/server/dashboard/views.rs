//! The dashboard's templates and the rows they show. Building rows is pure.

use askama::Template;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use super::paging::Paging;
use crate::api::{Grant, IdentityProvider, ScimKey};
use crate::server::web::Chrome;

#[derive(Template)]
#[template(path = "forbidden.html")]
pub struct Forbidden {
    pub chrome: Chrome,
    pub reason: String,
    pub can_i: String,
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Template)]
#[template(
    source = "{% extends \"base.html\" %}{% block title %}Not done · Infra{% endblock %}{% block content %}<h1>Not done</h1><p id=\"reason\" class=\"error\" role=\"alert\">{{ reason }}</p><p><a href=\"{{ chrome.base }}\">Back to Infra</a></p>{% endblock %}",
    ext = "html"
)]
pub struct Failed {
    pub chrome: Chrome,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
pub struct Home<'a> {
    pub chrome: Chrome,
    pub who: &'a crate::server::login::WhoAmI,
    pub kube_user: String,
    pub grants: Option<Vec<GrantRow>>,
    pub external_url: String,
}

#[derive(Template)]
#[template(path = "providers.html")]
pub struct Providers {
    pub chrome: Chrome,
    pub providers: Vec<ProviderRow>,
    pub can_create: bool,
    pub csrf: String,
    pub kinds: [&'static str; 4],
}

#[derive(Template)]
#[template(path = "provider.html")]
pub struct Provider {
    pub chrome: Chrome,
    pub p: ProviderRow,
    pub added: bool,
    pub redirect_uris: Vec<String>,
    pub scim_url: String,
    pub conditions: Vec<Condition>,
    pub keys: Option<Vec<KeyRow>>,
    pub can_generate: bool,
    pub can_revoke: bool,
    pub can_update: bool,
    pub can_delete: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirm {
    pub chrome: Chrome,
    pub heading: String,
    pub consequence: String,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "key_created.html")]
pub struct KeyCreated {
    pub chrome: Chrome,
    pub provider: String,
    pub scim_url: String,
    pub token: String,
    pub key_name: String,
    pub key_id: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct Users {
    pub chrome: Chrome,
    pub query: String,
    pub query_param: String,
    pub users: Vec<UserRow>,
    pub paging: Paging,
}

#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub u: UserRow,
    pub emails: String,
    pub kube_user: String,
    pub last_login: String,
    /// (object name, displayName)
    pub groups: Vec<(String, String)>,
    pub can_groups: bool,
    pub grants: Vec<GrantRow>,
    pub sessions: Vec<SessionRow>,
    pub can_end_sessions: bool,
    pub csrf: String,
}

pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
pub struct Groups {
    pub chrome: Chrome,
    pub query: String,
    pub query_param: String,
    pub groups: Vec<GroupRow>,
    pub paging: Paging,
}

#[derive(Template)]
#[template(path = "group.html")]
pub struct GroupPage {
    pub chrome: Chrome,
    pub name: String,
    pub provider: String,
    pub kube_group: String,
    /// (object name, userName)
    pub members: Vec<(String, String)>,
    pub can_users: bool,
}

#[derive(Template)]
#[template(path = "grants.html")]
pub struct Grants {
    pub chrome: Chrome,
    pub grants: Vec<GrantRow>,
    pub providers: Vec<String>,
    pub can_create: bool,
    pub can_delete: bool,
    pub csrf: String,
}

pub struct ProviderRow {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub client_id: String,
    pub issuer: String,
    pub phase: &'static str,
    /// The message of the first condition that is not True.
    pub problem: String,
}

pub fn provider_row(p: &IdentityProvider) -> ProviderRow {
    let status = p.status.as_ref();
    ProviderRow {
        name: p.name_any(),
        kind: p.spec.kind.to_string(),
        url: p.spec.url.clone(),
        client_id: p.spec.client_id.clone(),
        issuer: status.and_then(|s| s.issuer.clone()).unwrap_or_default(),
        phase: status.and_then(|s| s.phase).map_or("Pending", |ph| ph.as_str()),
        problem: status
            .and_then(|s| s.conditions.iter().find(|c| c.status != "True"))
            .map(|c| if c.message.is_empty() { c.reason.clone() } else { c.message.clone() })
            .unwrap_or_default(),
    }
}

pub struct KeyRow {
    pub name: String,
    pub key_id: String,
    pub description: String,
    pub phase: &'static str,
    pub created: String,
    pub expires: String,
}

fn time(t: Option<&Time>) -> String {
    t.map(|t| t.0.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

pub fn key_row(k: &ScimKey) -> KeyRow {
    let s = k.status.as_ref();
    KeyRow {
        name: k.name_any(),
        key_id: s.and_then(|s| s.key_id.clone()).unwrap_or_default(),
        description: k.spec.description.clone().unwrap_or_default(),
        phase: s.and_then(|s| s.phase).map_or("Pending", |p| p.as_str()),
        created: time(s.and_then(|s| s.created_at.as_ref()).or(k.metadata.creation_timestamp.as_ref())),
        expires: s.and_then(|s| s.expires_at.as_ref()).map_or_else(|| "never".to_string(), |t| time(Some(t))),
    }
}

pub struct UserRow {
    pub object: String,
    pub user_name: String,
    pub display_name: String,
    pub provider: String,
    pub active: bool,
    /// `SCIM` for users a provider provisioned, `login` for those created by signing in.
    pub origin: &'static str,
    /// Group names, comma-separated.
    pub groups: String,
    /// When the person last signed in (UTC, to the minute), or empty.
    pub last_login: String,
    pub sessions: usize,
}

pub struct GroupRow {
    pub object: String,
    pub name: String,
    pub provider: String,
    pub members: usize,
}

pub struct GrantRow {
    pub name: String,
    /// `user kate@example.com (okta)` or `group SRE (okta)`.
    pub subject: String,
    pub role: String,
    pub namespace: String,
    pub phase: &'static str,
    pub expires: String,
}

pub fn grant_row(g: &Grant) -> GrantRow {
    let s = &g.spec.subject;
    let subject = match (&s.user, &s.group) {
        (Some(u), _) => format!("user {u} ({})", s.provider),
        (None, Some(gr)) => format!("group {gr} ({})", s.provider),
        (None, None) => format!("nobody ({})", s.provider),
    };
    let kind = match g.spec.role.kind {
        crate::api::RoleKind::ClusterRole => "ClusterRole",
        crate::api::RoleKind::Role => "Role",
    };
    let status = g.status.as_ref();
    GrantRow {
        name: g.name_any(),
        subject,
        role: format!("{kind} {}", g.spec.role.name),
        namespace: g.spec.namespace.clone().unwrap_or_else(|| "(cluster-wide)".into()),
        phase: status.and_then(|s| s.phase).map_or("Pending", |p| p.as_str()),
        expires: time(status.and_then(|s| s.expires_at.as_ref())),
    }
}

/// The grants that give `user_name` of `provider` access, directly or through one of `groups`
/// (displayNames), as Infra's identity conventions compare them. Pure.
pub fn grants_of<'a>(grants: &'a [Grant], provider: &str, user_name: &str, groups: &[String]) -> Vec<&'a Grant> {
    let user = crate::scim::case::fold_case(user_name);
    grants
        .iter()
        .filter(|g| g.spec.subject.provider == provider)
        .filter(|g| match (&g.spec.subject.user, &g.spec.subject.group) {
            (Some(u), _) => crate::scim::case::fold_case(u) == user,
            (None, Some(gr)) => groups.iter().any(|mine| mine == gr),
            (None, None) => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GrantRole, GrantSpec, GrantSubject, RoleKind};

    fn grant(name: &str, provider: &str, user: Option<&str>, group: Option<&str>) -> Grant {
        Grant::new(
            name,
            GrantSpec {
                subject: GrantSubject { provider: provider.into(), user: user.map(Into::into), group: group.map(Into::into) },
                role: GrantRole { kind: RoleKind::ClusterRole, name: "view".into() },
                namespace: None,
                expires_after: None,
                expires_at: None,
            },
        )
    }

    #[test]
    fn a_users_page_has_a_plain_title_and_its_sessions_once() {
        let row = UserRow {
            object: "u-kate".into(),
            user_name: "kate@example.com".into(),
            display_name: String::new(),
            provider: "okta".into(),
            active: true,
            origin: "SCIM",
            groups: String::new(),
            last_login: String::new(),
            sessions: 1,
        };
        let html = UserPage {
            chrome: Chrome::anonymous("/"),
            u: row,
            emails: String::new(),
            kube_user: "infra:okta:kate@example.com".into(),
            last_login: String::new(),
            groups: vec![],
            can_groups: false,
            grants: vec![],
            sessions: vec![SessionRow { id: "abc".into(), created: String::new(), last_seen: String::new() }],
            can_end_sessions: true,
            csrf: "token".into(),
        }
        .render()
        .unwrap();
        assert!(html.contains("<title>kate@example.com · Users · Infra</title>"), "{html}");
        assert_eq!(html.matches("id=\"end-abc\"").count(), 1, "{html}");
    }

    #[test]
    fn a_persons_grants_are_theirs_and_their_groups() {
        let all = [
            grant("mine", "okta", Some("Kate@Example.com"), None),
            grant("team", "okta", None, Some("SRE")),
            grant("other-provider", "azure", Some("kate@example.com"), None),
            grant("other-user", "okta", Some("bob@example.com"), None),
            grant("other-group", "okta", None, Some("sre")),
        ];
        let names: Vec<String> = grants_of(&all, "okta", "kate@example.com", &["SRE".into()]).iter().map(|g| g.name_any()).collect();
        assert_eq!(names, ["mine", "team"]);
        let row = grant_row(&all[1]);
        assert_eq!(
            (row.subject.as_str(), row.role.as_str(), row.namespace.as_str(), row.phase),
            ("group SRE (okta)", "ClusterRole view", "(cluster-wide)", "Pending")
        );
    }
}

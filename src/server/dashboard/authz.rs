//! The dashboard's authorization: Kubernetes RBAC decides. Each page and action asks the API
//! server, with a SubjectAccessReview, whether the signed-in person may do the equivalent
//! Kubernetes operation, under exactly the identity Infra's tokens give them
//! ([`crate::kube_access::identity`]): what `kubectl auth can-i --as` would deny, the dashboard
//! denies. Answers are kept a few seconds per session, so the navigation's checks on every page
//! cost one round trip at most.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use crate::kube_access::identity;

/// The Kubernetes identity of a signed-in person: what their token would carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub username: String,
    pub groups: Vec<String>,
    /// The User object's UID (the token's `sub`).
    pub uid: String,
    pub session_id: String,
}

impl Person {
    /// `user_name` and `groups` as the login knows them (userName, group displayNames).
    pub fn new(provider: &str, user_name: &str, groups: &[String], uid: &str, session_id: &str) -> Self {
        Person {
            username: identity::username(provider, user_name),
            groups: identity::groups(provider, groups),
            uid: uid.to_string(),
            session_id: session_id.to_string(),
        }
    }
}

/// One question: may the person `verb` `resource` (of API group `group`) in `namespace`, named
/// `name`?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ask {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Ask {
    /// An operation on one of Infra's kinds in Infra's namespace.
    pub fn infra(verb: &'static str, resource: &'static str, namespace: &str) -> Self {
        Ask { verb, group: "infrahq.com", resource, namespace: Some(namespace.to_string()), name: None }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// What the Grant admission policy asks of a Grant's author: may they bind the role?
    /// (`clusterroles` cluster-wide or in `namespace`, `roles` in `namespace`.)
    pub fn bind(cluster_role: bool, role: &str, namespace: Option<&str>) -> Self {
        Ask {
            verb: "bind",
            group: "rbac.authorization.k8s.io",
            resource: if cluster_role { "clusterroles" } else { "roles" },
            namespace: namespace.map(str::to_string),
            name: Some(role.to_string()),
        }
    }

    /// Ending login session `id`: what `kubectl delete session` of it needs.
    pub fn end_session(namespace: &str, id: &str) -> Self {
        Ask {
            verb: "delete",
            group: "infrahq.com",
            resource: "sessions",
            namespace: Some(namespace.to_string()),
            name: Some(crate::session::secret_name(id)),
        }
    }

    /// How the question reads in a 403 page: `kubectl auth can-i` of it.
    pub fn can_i(&self) -> String {
        let resource = if self.group.is_empty() { self.resource.to_string() } else { format!("{}.{}", self.resource, self.group) };
        let resource = match &self.name {
            Some(n) => format!("{resource}/{n}"),
            None => resource,
        };
        match &self.namespace {
            Some(ns) => format!("kubectl auth can-i {} {resource} -n {ns}", self.verb),
            None => format!("kubectl auth can-i {} {resource}", self.verb),
        }
    }
}

/// The SubjectAccessReview asking `ask` for `person`: the user, groups, uid and session id exactly
/// as the API server sees them on the person's own token. Pure.
pub fn review(person: &Person, ask: &Ask) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(person.username.clone()),
            groups: Some(person.groups.clone()),
            uid: Some(person.uid.clone()),
            extra: Some(BTreeMap::from([(identity::SESSION_EXTRA.to_string(), vec![person.session_id.clone()])])),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(ask.verb.to_string()),
                group: Some(ask.group.to_string()),
                resource: Some(ask.resource.to_string()),
                namespace: ask.namespace.clone(),
                name: ask.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// How long an answer is reused for the same session: long enough for one page's checks and a
/// quick click through, short enough that a revoked right stops working at once in practice.
pub const ANSWER_TTL: Duration = Duration::from_secs(5);
/// Cached answers kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// A few seconds of answers, per session and question. Pure (the clock is passed in).
#[derive(Default)]
pub struct Answers {
    entries: Mutex<HashMap<(String, Ask), (Instant, bool)>>,
}

impl Answers {
    pub fn get(&self, session: &str, ask: &Ask, now: Instant) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(session.to_string(), ask.clone())).filter(|(at, _)| now.duration_since(*at) < ANSWER_TTL).map(|(_, a)| *a)
    }

    pub fn put(&self, session: &str, ask: &Ask, allowed: bool, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (at, _)| now.duration_since(*at) < ANSWER_TTL);
        }
        entries.insert((session.to_string(), ask.clone()), (now, allowed));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Asks the API server, through the server's ServiceAccount (which may `create
/// subjectaccessreviews` and nothing more cluster-wide).
pub struct Authorizer {
    pub reviews: Api<SubjectAccessReview>,
    pub answers: Answers,
}

impl Authorizer {
    pub fn new(client: kube::Client) -> Self {
        Authorizer { reviews: Api::all(client), answers: Answers::default() }
    }

    pub async fn allowed(&self, person: &Person, ask: &Ask) -> Result<bool, kube::Error> {
        if let Some(a) = self.answers.get(&person.session_id, ask, Instant::now()) {
            return Ok(a);
        }
        let answered = self.reviews.create(&PostParams::default(), &review(person, ask)).await?;
        let allowed = answered.status.is_some_and(|s| s.allowed && !s.denied.unwrap_or(false));
        self.answers.put(&person.session_id, ask, allowed, Instant::now());
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kate() -> Person {
        Person::new("okta", "Kate@Example.com", &["SRE".to_string()], "uid-1", "sess-1")
    }

    #[test]
    fn the_review_carries_the_identity_of_the_persons_token() {
        let sar = review(&kate(), &Ask::infra("create", "identityproviders", "infra"));
        let spec = &sar.spec;
        assert_eq!(spec.user.as_deref(), Some("infra:okta:kate@example.com"));
        assert_eq!(spec.groups.as_deref(), Some(&["infra:authenticated".to_string(), "infra:okta:SRE".to_string()][..]));
        assert_eq!(spec.uid.as_deref(), Some("uid-1"));
        assert_eq!(spec.extra.as_ref().unwrap()["infrahq.com/session-id"], vec!["sess-1".to_string()]);
        let ra = spec.resource_attributes.as_ref().unwrap();
        assert_eq!(
            (ra.verb.as_deref(), ra.group.as_deref(), ra.resource.as_deref(), ra.namespace.as_deref(), ra.name.as_deref()),
            (Some("create"), Some("infrahq.com"), Some("identityproviders"), Some("infra"), None)
        );
        assert!(spec.non_resource_attributes.is_none());
    }

    #[test]
    fn bind_questions_match_the_grant_admission_policy() {
        let cluster = review(&kate(), &Ask::bind(true, "view", None));
        let ra = cluster.spec.resource_attributes.unwrap();
        assert_eq!((ra.verb.as_deref(), ra.group.as_deref()), (Some("bind"), Some("rbac.authorization.k8s.io")));
        assert_eq!((ra.resource.as_deref(), ra.name.as_deref(), ra.namespace), (Some("clusterroles"), Some("view"), None));
        let role = Ask::bind(false, "deployer", Some("apps"));
        assert_eq!((role.resource, role.namespace.as_deref()), ("roles", Some("apps")));
        assert_eq!(role.can_i(), "kubectl auth can-i bind roles.rbac.authorization.k8s.io/deployer -n apps");
        assert_eq!(Ask::infra("delete", "grants", "infra").named("g1").can_i(), "kubectl auth can-i delete grants.infrahq.com/g1 -n infra");
        assert_eq!(Ask::end_session("infra", "abc").can_i(), "kubectl auth can-i delete sessions.infrahq.com/infra-session-abc -n infra");
    }

    #[test]
    fn answers_last_a_few_seconds_per_session_and_question() {
        let answers = Answers::default();
        let t0 = Instant::now();
        let list = Ask::infra("list", "users", "infra");
        answers.put("s1", &list, true, t0);
        assert_eq!(answers.get("s1", &list, t0 + Duration::from_secs(1)), Some(true));
        assert_eq!(answers.get("s2", &list, t0), None, "another session asks again");
        assert_eq!(answers.get("s1", &Ask::infra("create", "users", "infra"), t0), None);
        assert_eq!(answers.get("s1", &list, t0 + ANSWER_TTL), None, "expired");
        // Expired answers are swept once there are many.
        for i in 0..SWEEP_AT {
            answers.put(&format!("old{i}"), &list, false, t0);
        }
        answers.put("new", &list, false, t0 + ANSWER_TTL * 2);
        assert_eq!(answers.len(), 1);
    }
}

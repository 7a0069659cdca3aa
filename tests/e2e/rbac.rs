//! Least privilege: the controller and the internet-facing server run as separate
//! ServiceAccounts, and each may do exactly what its code does (README.md, "Permissions"), no
//! more. Checked with SubjectAccessReviews against the live API server, for the ServiceAccounts
//! of config/rbac and of the Helm chart (release `e2e`, installed by `e2e/up`); the local operator
//! runs replica 0 of each role as the former and replica 1 as the latter, so the rest of the suite
//! proves these permissions sufficient.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use crate::harness::{client, env};

/// Everything the controller's code does: reconcile providers and keys (status only), clean up
/// group members, generate key Secrets, re-check and end sessions, record Events, lead through
/// its Lease.
const CONTROLLER_MAY: &[&str] = &[
    "get identityproviders.infrahq.com",
    "list identityproviders.infrahq.com",
    "watch identityproviders.infrahq.com",
    "patch identityproviders.infrahq.com/status",
    "list scimkeys.infrahq.com",
    "watch scimkeys.infrahq.com",
    "patch scimkeys.infrahq.com/status",
    "update scimkeys.infrahq.com/finalizers",
    "list users.infrahq.com",
    "watch users.infrahq.com",
    "patch users.infrahq.com",
    "list groups.infrahq.com",
    "watch groups.infrahq.com",
    "update groups.infrahq.com",
    "list grants.infrahq.com",
    "watch grants.infrahq.com",
    "patch grants.infrahq.com",
    "patch grants.infrahq.com/status",
    "list deviceauthorizations.infrahq.com",
    "delete deviceauthorizations.infrahq.com",
    "list sessions.infrahq.com",
    "watch sessions.infrahq.com",
    "create sessions.infrahq.com",
    "patch sessions.infrahq.com",
    "delete sessions.infrahq.com",
    "get secrets",
    "list secrets",
    "watch secrets",
    "create secrets",
    "patch secrets",
    "delete secrets",
    "create events.events.k8s.io",
    "patch events.events.k8s.io",
    "create leases.coordination.k8s.io",
    "get leases.coordination.k8s.io infra-controller",
    "patch leases.coordination.k8s.io infra-controller",
];

/// The controller never writes what people and SCIM clients own.
const CONTROLLER_MAY_NOT: &[&str] = &[
    "create identityproviders.infrahq.com",
    "update identityproviders.infrahq.com",
    "patch identityproviders.infrahq.com",
    "delete identityproviders.infrahq.com",
    "create scimkeys.infrahq.com",
    "update scimkeys.infrahq.com",
    "patch scimkeys.infrahq.com",
    "delete scimkeys.infrahq.com",
    "create users.infrahq.com",
    "update users.infrahq.com",
    "delete users.infrahq.com",
    "patch users.infrahq.com/status",
    "create groups.infrahq.com",
    "delete groups.infrahq.com",
    "create grants.infrahq.com",
    "delete grants.infrahq.com",
    "create deviceauthorizations.infrahq.com",
    "patch deviceauthorizations.infrahq.com",
    "update secrets",
    "create events",
    "list leases.coordination.k8s.io",
    "get leases.coordination.k8s.io some-other-lease",
    "patch leases.coordination.k8s.io some-other-lease",
    "delete leases.coordination.k8s.io infra-controller",
];

/// Everything the server's code does: cache providers and keys, write users and groups for SCIM
/// and logins, keep login sessions, read the login state key and the issuer's signing keys (by
/// name), get a token of its own ServiceAccount for the login broker, and carry out the dashboard
/// actions a SubjectAccessReview allowed (providers and their new client secrets, SCIM keys,
/// grants).
const SERVER_MAY: &[&str] = &[
    "get identityproviders.infrahq.com",
    "list identityproviders.infrahq.com",
    "watch identityproviders.infrahq.com",
    "create identityproviders.infrahq.com",
    "patch identityproviders.infrahq.com",
    "delete identityproviders.infrahq.com",
    "get scimkeys.infrahq.com",
    "list scimkeys.infrahq.com",
    "watch scimkeys.infrahq.com",
    "create scimkeys.infrahq.com",
    "delete scimkeys.infrahq.com",
    "list grants.infrahq.com",
    "create grants.infrahq.com",
    "delete grants.infrahq.com",
    "get users.infrahq.com",
    "list users.infrahq.com",
    "watch users.infrahq.com",
    "create users.infrahq.com",
    "update users.infrahq.com",
    "patch users.infrahq.com",
    "delete users.infrahq.com",
    "patch users.infrahq.com/status",
    "get groups.infrahq.com",
    "list groups.infrahq.com",
    "watch groups.infrahq.com",
    "create groups.infrahq.com",
    "update groups.infrahq.com",
    "patch groups.infrahq.com",
    "delete groups.infrahq.com",
    "get deviceauthorizations.infrahq.com",
    "create deviceauthorizations.infrahq.com",
    "patch deviceauthorizations.infrahq.com",
    "delete deviceauthorizations.infrahq.com",
    "get sessions.infrahq.com",
    "list sessions.infrahq.com",
    "watch sessions.infrahq.com",
    "create sessions.infrahq.com",
    "patch sessions.infrahq.com",
    "delete sessions.infrahq.com",
    "get secrets infra-login-state-key",
    "list secrets infra-kube-signing-keys",
    "watch secrets infra-kube-signing-keys",
    "create secrets",
];

/// The internet-facing server writes no status (so it can never mark a provider Ready or issue
/// a key itself), cannot change a key once made, cannot lead, and records nothing.
const SERVER_MAY_NOT: &[&str] = &[
    "update identityproviders.infrahq.com",
    "patch identityproviders.infrahq.com/status",
    "update scimkeys.infrahq.com",
    "patch scimkeys.infrahq.com",
    "patch scimkeys.infrahq.com/status",
    "update grants.infrahq.com",
    "patch grants.infrahq.com",
    "patch grants.infrahq.com/status",
    "update scimkeys.infrahq.com/finalizers",
    "list deviceauthorizations.infrahq.com",
    "update deviceauthorizations.infrahq.com",
    // No Secret beyond the two it needs by name: not the providers' client secrets (the
    // controller redeems login codes), not sessions' refresh tokens, not SCIM key hashes.
    "get secrets",
    "get secrets okta-client-secret",
    "get secrets infra-session-abcdefghijkl",
    "list secrets",
    "watch secrets",
    "update secrets",
    "patch secrets",
    "delete secrets",
    "patch secrets infra-login-state-key",
    "patch secrets infra-kube-signing-keys",
    "get secrets infra-kube-signing-keys",
    "update sessions.infrahq.com",
    "create leases.coordination.k8s.io",
    "get leases.coordination.k8s.io infra-controller",
    "update leases.coordination.k8s.io infra-controller",
    "patch leases.coordination.k8s.io infra-controller",
    "create events.events.k8s.io",
    "create events",
];

/// `"verb resource[.group][/subresource] [name]"` as the ResourceAttributes of a review in `ns`.
fn attributes(check: &str, ns: &str) -> ResourceAttributes {
    let mut words = check.split_whitespace();
    let (verb, target, name) = (words.next().unwrap(), words.next().unwrap(), words.next());
    let (resource, subresource) = match target.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (target, None),
    };
    let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
    ResourceAttributes {
        namespace: Some(ns.to_string()),
        verb: Some(verb.to_string()),
        group: Some(group.to_string()),
        resource: Some(resource.to_string()),
        subresource,
        name: name.map(String::from),
        ..Default::default()
    }
}

/// Whether ServiceAccount `sa` of `sa_ns` may do `check` in namespace `ns`, as the API server's
/// authorizer answers (with the groups every ServiceAccount token carries).
async fn allowed(api: &Api<SubjectAccessReview>, sa_ns: &str, sa: &str, check: &str, ns: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{sa_ns}:{sa}")),
            groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{sa_ns}"), "system:authenticated".into()]),
            resource_attributes: Some(attributes(check, ns)),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await.unwrap_or_else(|e| panic!("SubjectAccessReview {sa} {check}: {e}"));
    answer.status.expect("a review has a status").allowed
}

/// Checks `sa` against its role's lists, and that it may do nothing at all in another namespace.
/// Collects every mismatch, so one run shows the whole difference.
pub async fn assert_role(sa: &str, may: &[&str], may_not: &[&str]) {
    let api: Api<SubjectAccessReview> = Api::all(client().await);
    let ns = env().namespace.as_str();
    let mut wrong = vec![];
    for check in may {
        if !allowed(&api, ns, sa, check, ns).await {
            wrong.push(format!("may not {check}, but its code does it"));
        }
    }
    for check in may_not {
        if allowed(&api, ns, sa, check, ns).await {
            wrong.push(format!("may {check}, which it must not"));
        }
    }
    for check in may.iter().chain(may_not) {
        if allowed(&api, ns, sa, check, "default").await {
            wrong.push(format!("may {check} in namespace default"));
        }
    }
    assert!(wrong.is_empty(), "ServiceAccount {ns}/{sa}:\n  {}", wrong.join("\n  "));
}

pub async fn assert_controller(sa: &str) {
    assert_role(sa, CONTROLLER_MAY, CONTROLLER_MAY_NOT).await;
}

pub async fn assert_server(sa: &str) {
    assert_role(sa, SERVER_MAY, SERVER_MAY_NOT).await;
    // A token of its own ServiceAccount (for the login broker), of no other.
    let api: Api<SubjectAccessReview> = Api::all(client().await);
    let ns = env().namespace.as_str();
    assert!(allowed(&api, ns, sa, &format!("create serviceaccounts/token {sa}"), ns).await, "{sa} may not get its broker token");
    for other in ["infra-controller", "e2e-infra-controller", "default"] {
        assert!(!allowed(&api, ns, sa, &format!("create serviceaccounts/token {other}"), ns).await, "{sa} may get tokens of {other}");
    }
}

/// The login broker checks callers with TokenReviews (cluster-scoped); only the controller may.
#[tokio::test]
async fn only_the_controller_may_review_tokens() {
    let api: Api<SubjectAccessReview> = Api::all(client().await);
    let ns = env().namespace.as_str();
    for (sa, may) in [("infra-controller", true), ("e2e-infra-controller", true), ("infra-server", false), ("e2e-infra-server", false)] {
        assert_eq!(allowed(&api, ns, sa, "create tokenreviews.authentication.k8s.io", "").await, may, "{sa}");
    }
}

/// The internet-facing server cannot read the identity provider's client secret: the API server
/// refuses its own credentials (both ServiceAccounts, as the local replicas run), and
/// `kubectl auth can-i` says no for any Secret beyond the two it needs by name.
#[tokio::test]
async fn the_server_cannot_read_the_client_secret() {
    use k8s_openapi::api::core::v1::Secret;
    let ns = env().namespace.as_str();
    let idp: infra::api::IdentityProvider = Api::namespaced(client().await, ns).get("okta").await.unwrap();
    let secret_name = idp.spec.client_secret_ref.name.clone();
    // The Secret is there (the admin reads it), so a refusal below is RBAC, not a 404.
    Api::<Secret>::namespaced(client().await, ns).get(&secret_name).await.unwrap();
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    for (file, sa) in [("server", "infra-server"), ("server-chart", "e2e-infra-server")] {
        let path = format!("{state}/{file}.kubeconfig");
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let secrets: Api<Secret> = Api::namespaced(kube::Client::try_from(config).unwrap(), ns);
        match secrets.get(&secret_name).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{sa}: {s:?}"),
            other => panic!("{sa} read the client secret {secret_name}: {:?}", other.map(|s| s.metadata.name)),
        }
        match secrets.list(&Default::default()).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{sa}: {s:?}"),
            other => panic!("{sa} listed Secrets: {:?}", other.map(|l| l.items.len())),
        }
        let who = format!("system:serviceaccount:{ns}:{sa}");
        for (what, may) in
            [(format!("secret/{secret_name}"), false), ("secrets".into(), false), ("secret/infra-login-state-key".into(), true)]
        {
            let run = crate::harness::kubectl(&["auth", "can-i", "get", &what, "-n", ns, "--as", &who]);
            assert_eq!(run.stdout.trim(), if may { "yes" } else { "no" }, "{sa} get {what}: {}", run.stderr);
        }
    }
}

#[tokio::test]
async fn kustomize_controller_service_account_has_only_the_controllers_permissions() {
    assert_controller("infra-controller").await;
}

#[tokio::test]
async fn kustomize_server_service_account_has_only_the_servers_permissions() {
    assert_server("infra-server").await;
}

#[tokio::test]
async fn chart_controller_service_account_has_only_the_controllers_permissions() {
    assert_controller("e2e-infra-controller").await;
}

#[tokio::test]
async fn chart_server_service_account_has_only_the_servers_permissions() {
    assert_server("e2e-infra-server").await;
}

/// The dashboard's ClusterRole: the server may ask SubjectAccessReviews, and bind only the roles
/// Grants may give (the Grant admission policy checks the author of the Grants it writes).
#[tokio::test]
async fn the_servers_dashboard_role_asks_reviews_and_binds_only_the_allowed_roles() {
    let api: Api<SubjectAccessReview> = Api::all(client().await);
    let ns = env().namespace.as_str();
    for sa in ["infra-server", "e2e-infra-server"] {
        for (check, want) in [
            ("create subjectaccessreviews.authorization.k8s.io", true),
            ("bind clusterroles.rbac.authorization.k8s.io view", true),
            ("bind clusterroles.rbac.authorization.k8s.io cluster-admin", false),
            ("bind clusterroles.rbac.authorization.k8s.io infra-admin", false),
            ("create rolebindings.rbac.authorization.k8s.io", false),
            ("create clusterrolebindings.rbac.authorization.k8s.io", false),
        ] {
            assert_eq!(allowed(&api, ns, sa, check, ns).await, want, "{sa}: {check}");
        }
    }
}

/// The local operator really runs each role as that role's ServiceAccounts (replica 0 from
/// config/rbac, replica 1 from the chart), so the suite proves all four Roles sufficient: the API
/// server itself says whom each kubeconfig authenticates as.
#[tokio::test]
async fn local_replicas_run_as_their_roles_service_accounts() {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    let ns = &env().namespace;
    for (file, sa) in [
        ("controller", "infra-controller"),
        ("server", "infra-server"),
        ("controller-chart", "e2e-infra-controller"),
        ("server-chart", "e2e-infra-server"),
    ] {
        let path = format!("{state}/{file}.kubeconfig");
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let api: Api<SelfSubjectReview> = Api::all(kube::Client::try_from(config).unwrap());
        let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let user = review.status.and_then(|s| s.user_info).and_then(|u| u.username);
        assert_eq!(user.as_deref(), Some(format!("system:serviceaccount:{ns}:{sa}").as_str()), "{path}");
    }
}

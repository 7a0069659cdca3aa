//! The dashboard against the real API server: what Kubernetes RBAC lets a person do there, the
//! Okta guide's steps (add a provider, Generate SCIM Access Key, provisioned users appear), and
//! forms another site posts.

use std::time::Duration;

use crate::browser::{Browser, Page};
use crate::harness::*;
use crate::idp::{IdpUser, new_user};

const CLIENT_ID: &str = "infra-e2e";
const CLIENT_SECRET: &str = "infra-e2e-secret";

fn server() -> &'static str {
    &env().server_urls[0]
}

/// A person signed in to the dashboard in a browser of their own.
async fn signed_in(prefix: &str) -> (IdpUser, Browser) {
    let person = new_user(prefix, &[]).await;
    let browser = Browser::new();
    let s = server();
    let callback = browser
        .login_at_idp(&format!("{s}/login?provider=okta"), &person.email, &person.password, &format!("{s}/login/callback"))
        .await
        .unwrap();
    let landed = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text);
    (person, browser)
}

/// Binds ClusterRole `role` to `person` in Infra's namespace, as an administrator would. `admin`
/// is what `rbac.admins` gives: infra-admin (aggregated into it) and Secrets, which adding a
/// provider (its client-secret Secret) and ending a session (a Secret today) need.
pub fn bind(person: &IdpUser, role: &str) {
    let name = unique("dash-binding");
    kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {role}\nsubjects:\n  - apiGroup: rbac.authorization.k8s.io\n    kind: User\n    name: \"infra:okta:{}\"\n",
        person.email.to_lowercase()
    ))
    .ok();
}

async fn get(browser: &Browser, path: &str) -> Page {
    browser.get(&format!("{}{path}", server())).await.unwrap()
}

/// The CSRF token the page's forms carry.
fn csrf(page: &Page) -> String {
    page.text.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form with a CSRF token").to_string()
}

/// The text of the element with id `id` (no nested elements).
fn text_of(page: &Page, id: &str) -> Option<String> {
    let start = page.text.find(&format!("id=\"{id}\""))?;
    let rest = &page.text[start..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')?;
    Some(rest[open..open + close].to_string())
}

#[tokio::test]
async fn an_admin_adds_a_provider_generates_a_scim_key_and_sees_the_provisioned_users() {
    let (admin, browser) = signed_in("dash-admin").await;
    bind(&admin, "admin");
    let s = server();
    let home = eventually(Duration::from_secs(20), "the admin's navigation", || async {
        let home = get(&browser, "/").await;
        home.text.contains("id=\"nav-providers\"").then_some(home)
    })
    .await;
    for nav in ["nav-users", "nav-groups", "nav-grants"] {
        assert!(home.text.contains(nav), "{nav}: {}", home.text);
    }
    // The Users list shows when the admin signed in (noted on the User at login).
    eventually(Duration::from_secs(20), "the admin's last sign-in on /users", || async {
        let page = get(&browser, &format!("/users?q={}", enc(&admin.email))).await;
        (page.text.contains(&admin.email) && page.text.contains(" UTC</td>")).then_some(())
    })
    .await;
    // Add a provider through the form, as the Okta guide has it.
    let name = unique("dash");
    let list = get(&browser, "/providers").await;
    assert_eq!(list.status, 200);
    assert!(list.text.contains("id=\"add-provider\""), "{}", list.text);
    let token = csrf(&list);
    let added = browser
        .submit(
            &format!("{s}/providers"),
            &[
                ("csrf", &token),
                ("name", &name),
                ("kind", "okta"),
                ("url", &idp_domain_and_path()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added.status, 303, "{}", added.text);
    assert_eq!(added.location().unwrap().as_str(), format!("{s}/providers/{name}?added=1"));
    let secret = kubectl(&["get", "secret", &format!("{name}-client-secret"), "-o", "jsonpath={.type}"]).ok();
    assert_eq!(secret.stdout.trim(), "infrahq.com/client-secret");
    let page = eventually(Duration::from_secs(60), "the added provider turns Ready on its page", || async {
        let page = get(&browser, &format!("/providers/{name}?added=1")).await;
        (text_of(&page, "phase").as_deref() == Some("Ready")).then_some(page)
    })
    .await;
    assert!(page.text.contains("id=\"added\""), "{}", page.text);
    assert!(page.text.contains(&format!("{s}/login/callback")), "the redirect URIs: {}", page.text);
    assert!(page.text.contains("data-copy=\"redirect-0\""), "copy buttons: {}", page.text);
    assert_eq!(text_of(&page, "scim-url").unwrap(), format!("{s}/api/scim/v2"));

    // Generate SCIM Access Key: shown once, never stored by a cache.
    let generated =
        browser.submit(&format!("{s}/providers/{name}/keys"), &[("csrf", &csrf(&page)), ("description", "okta app")]).await.unwrap();
    assert_eq!(generated.status, 200, "{}", generated.text);
    assert_eq!(generated.headers["cache-control"], "no-store");
    let bearer = text_of(&generated, "scim-key").unwrap();
    let key = bearer.strip_prefix("Bearer ").expect("Bearer <key>").to_string();

    // An Okta-style SCIM client with that key provisions two users and a group.
    let scim = Scim::new(s, &key).okta();
    let prefix = unique("prov");
    let ann = scim.create_user(&format!("{prefix}-ann@example.com")).await;
    let bo = scim.create_user(&format!("{prefix}-bo@example.com")).await;
    let group = format!("{prefix} engineers");
    scim.post("/Groups", &serde_json::json!({"schemas": [GROUP_SCHEMA], "displayName": group, "members": [{"value": ann}, {"value": bo}]}))
        .await
        .expect(201);
    // They appear on /users and /groups, and search finds them.
    let users = eventually(Duration::from_secs(20), "the provisioned users on /users", || async {
        let page = get(&browser, &format!("/users?q={prefix}")).await;
        page.text.contains(&format!("{prefix}-bo@example.com")).then_some(page)
    })
    .await;
    assert!(users.text.contains(&format!("{prefix}-ann@example.com")), "{}", users.text);
    assert!(users.text.contains(&group), "each user's groups: {}", users.text);
    assert_eq!(text_of(&users, "summary").unwrap(), "Showing 1–2 of 2");
    let one = get(&browser, &format!("/users?q={prefix}-ANN")).await;
    assert!(one.text.contains(&format!("{prefix}-ann@example.com")) && !one.text.contains(&format!("{prefix}-bo@")), "{}", one.text);
    let groups = get(&browser, &format!("/groups?q={}", enc(&prefix))).await;
    assert!(groups.text.contains(&group), "{}", groups.text);

    // The key is listed with its description; revoking it on the page makes SCIM answer 401.
    let page = get(&browser, &format!("/providers/{name}")).await;
    assert!(page.text.contains("okta app"), "{}", page.text);
    let key_name = page.text.split("id=\"revoke-").nth(1).and_then(|r| r.split('"').next()).expect("a revoke button").to_string();
    let revoked = browser.submit(&format!("{s}/providers/{name}/keys/{key_name}/revoke"), &[("csrf", &csrf(&page))]).await.unwrap();
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    eventually(Duration::from_secs(20), "SCIM refuses the revoked key", || async {
        (scim.get("/Users").await.status == 401).then_some(())
    })
    .await;

    // A new client secret through the edit form is a new Secret owned by the provider, which the
    // provider then names (the server never patches a Secret); the provider stays Ready.
    let page = get(&browser, &format!("/providers/{name}")).await;
    let edited = browser
        .submit(
            &format!("{s}/providers/{name}"),
            &[("csrf", &csrf(&page)), ("url", &idp_domain_and_path()), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
        )
        .await
        .unwrap();
    assert_eq!(edited.status, 303, "{}", edited.text);
    let reference = providers().await.get(&name).await.unwrap().spec.client_secret_ref;
    assert!(reference.name.starts_with(&format!("{name}-client-secret-")), "a new Secret: {reference:?}");
    let owner = kubectl(&["get", "secret", &reference.name, "-o", "jsonpath={.type} {.metadata.ownerReferences[0].name}"]).ok();
    assert_eq!(owner.stdout.trim(), format!("infrahq.com/client-secret {name}"));
    eventually(Duration::from_secs(60), "the provider is Ready with its new secret", || async {
        let page = get(&browser, &format!("/providers/{name}")).await;
        (text_of(&page, "phase").as_deref() == Some("Ready")).then_some(())
    })
    .await;

    // Remove, with confirmation.
    let confirm = get(&browser, &format!("/providers/{name}/remove")).await;
    assert!(confirm.text.contains("id=\"confirm\""), "{}", confirm.text);
    let removed = browser.submit(&format!("{s}/providers/{name}/remove"), &[("csrf", &csrf(&confirm))]).await.unwrap();
    assert_eq!(removed.status, 303, "{}", removed.text);
    let providers = providers().await;
    eventually(Duration::from_secs(30), "the provider is gone", || async {
        providers.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_person_without_rights_gets_403_and_no_links_and_a_viewer_gets_no_forms() {
    let (nobody, browser) = signed_in("dash-nobody").await;
    let home = get(&browser, "/").await;
    assert_eq!(home.status, 200);
    assert_eq!(text_of(&home, "user").unwrap(), nobody.email);
    assert_eq!(text_of(&home, "kube-user").unwrap(), format!("infra:okta:{}", nobody.email.to_lowercase()));
    assert!(home.text.contains("infra login") && home.text.contains("infra use"), "{}", home.text);
    assert!(home.text.contains("id=\"no-grants\""), "{}", home.text);
    for nav in ["nav-providers", "nav-users", "nav-groups", "nav-grants"] {
        assert!(!home.text.contains(nav), "{nav} shown to a person without rights: {}", home.text);
    }
    for path in ["/providers", "/providers/okta", "/users", "/groups", "/grants"] {
        let page = get(&browser, path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.text);
        assert!(page.text.contains(&format!("--as infra:okta:{}", nobody.email.to_lowercase())), "{}", page.text);
    }
    // A valid form from the dashboard itself is still refused: RBAC decides, and nothing changes.
    let name = unique("dash-denied");
    let denied = browser
        .submit(
            &format!("{}/providers", server()),
            &[
                ("csrf", &csrf(&home)),
                ("name", &name),
                ("kind", "okta"),
                ("url", &idp_domain_and_path()),
                ("client_id", CLIENT_ID),
                ("client_secret", "x"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert!(providers().await.get_opt(&name).await.unwrap().is_none());

    // A viewer sees the lists, and no forms.
    let (viewer, browser) = signed_in("dash-viewer").await;
    bind(&viewer, "infra-viewer");
    let providers_page = eventually(Duration::from_secs(20), "the viewer's providers list", || async {
        let page = get(&browser, "/providers").await;
        (page.status == 200).then_some(page)
    })
    .await;
    assert!(!providers_page.text.contains("id=\"add-provider\""), "{}", providers_page.text);
    let okta = get(&browser, "/providers/okta").await;
    assert_eq!(okta.status, 200);
    for form in ["id=\"generate-key\"", "id=\"edit-provider\"", "id=\"remove\"", "id=\"revoke-"] {
        assert!(!okta.text.contains(form), "{form} shown to a viewer: {}", okta.text);
    }
    let grants = get(&browser, "/grants").await;
    assert_eq!(grants.status, 200);
    assert!(!grants.text.contains("id=\"add-grant\""), "{}", grants.text);
    assert_eq!(get(&browser, "/users").await.status, 200);
    assert_eq!(get(&browser, "/groups").await.status, 200);
}

#[tokio::test]
async fn a_form_without_its_token_or_from_another_origin_changes_nothing() {
    let (admin, browser) = signed_in("dash-csrf").await;
    bind(&admin, "admin");
    let s = server();
    let list = eventually(Duration::from_secs(20), "the admin's providers list", || async {
        let page = get(&browser, "/providers").await;
        (page.status == 200).then_some(page)
    })
    .await;
    let token = csrf(&list);
    let name = unique("dash-forged");
    let url = idp_domain_and_path();
    let fields = |csrf: &'static str| vec![("csrf", csrf), ("kind", "okta"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)];
    let mut without = fields("");
    without.extend([("name", name.as_str()), ("url", url.as_str())]);
    let refused = browser.submit(&format!("{s}/providers"), &without).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("no CSRF token"), "{}", refused.text);
    let mut with_token: Vec<(&str, &str)> =
        vec![("csrf", &token), ("kind", "okta"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)];
    with_token.extend([("name", name.as_str()), ("url", url.as_str())]);
    let elsewhere = browser.submit_from("https://evil.example", &format!("{s}/providers"), &with_token).await.unwrap();
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text);
    assert!(providers().await.get_opt(&name).await.unwrap().is_none(), "nothing was created");
    let secret = kubectl(&["get", "secret", &format!("{name}-client-secret"), "--ignore-not-found", "-o", "name"]).ok();
    assert_eq!(secret.stdout.trim(), "", "no Secret either");
}

/// An admin ends a person's session on the person's user page; the token the person's CLI
/// holds (the same kind of session, sent as a bearer token) is refused from then on.
#[tokio::test]
async fn ending_a_session_on_the_user_page_logs_that_person_out() {
    let (admin, browser) = signed_in("dash-ender").await;
    bind(&admin, "admin");
    // The person signs in; their session token is what `infra login` would hold.
    let person = new_user("dash-ended", &[]).await;
    let s = server();
    let theirs = Browser::new();
    let callback = theirs
        .login_at_idp(&format!("{s}/login?provider=okta"), &person.email, &person.password, &format!("{s}/login/callback"))
        .await
        .unwrap();
    let landed = theirs.get(callback.as_str()).await.unwrap();
    let token = landed
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.strip_prefix("infra_session=").map(|v| v.split(';').next().unwrap().to_string()))
        .expect("a session cookie");
    let whoami = || async { http().get(format!("{s}/api/whoami")).bearer_auth(&token).send().await.unwrap().status().as_u16() };
    assert_eq!(whoami().await, 200);

    let users = eventually(Duration::from_secs(20), "the person on /users", || async {
        let page = get(&browser, &format!("/users?q={}", enc(&person.email))).await;
        page.text.contains(&person.email).then_some(page)
    })
    .await;
    let object = users.text.split("href=\"/users/").nth(1).and_then(|r| r.split('"').next()).expect("a link to the user").to_string();
    let page = eventually(Duration::from_secs(20), "an End session button", || async {
        let page = get(&browser, &format!("/users/{object}")).await;
        page.text.contains("id=\"end-").then_some(page)
    })
    .await;
    let session = page.text.split("id=\"end-").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    assert!(token.contains(&session), "the page names the person's session");
    let ended = browser.submit(&format!("{s}/users/{object}/sessions/{session}/end"), &[("csrf", &csrf(&page))]).await.unwrap();
    assert_eq!(ended.status, 303, "{}", ended.text);
    assert_eq!(whoami().await, 401, "the CLI's session has ended");
}

fn as_refs(f: &[(String, String)]) -> Vec<(&str, &str)> {
    f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Grants through the page: the person must be allowed to create Grants and to bind the role
/// (what the Grant admission policy asks of a Grant's author); the Grant is then written and
/// removed through the Grant resource.
#[tokio::test]
async fn an_admin_who_may_bind_the_role_adds_and_removes_a_grant() {
    let (admin, browser) = signed_in("dash-granter").await;
    bind(&admin, "admin");
    let s = server();
    let ns = &env().namespace;
    let group = unique("dash-team");
    let list = eventually(Duration::from_secs(20), "the grants page with its form", || async {
        let page = get(&browser, "/grants").await;
        page.text.contains("id=\"add-grant\"").then_some(page)
    })
    .await;
    let fields = |token: &str| -> Vec<(String, String)> {
        [
            ("csrf", token),
            ("provider", "okta"),
            ("subject_kind", "group"),
            ("subject", &group),
            ("role_kind", "ClusterRole"),
            ("role", "view"),
            ("namespace", ns),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let grants: kube::Api<infra::api::Grant> = kube::Api::namespaced(client().await, ns);
    let ours = || async {
        grants
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|g| g.spec.subject.group.as_deref() == Some(group.as_str()))
            .collect::<Vec<_>>()
    };
    // Namespace admin alone may not bind `view`: refused, nothing written.
    let f = fields(&csrf(&list));
    let refused = browser.submit(&format!("{s}/grants"), &as_refs(&f)).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("kubectl auth can-i bind clusterroles.rbac.authorization.k8s.io/view"), "{}", refused.text);
    assert!(ours().await.is_empty());
    // With `bind` on view, the Grant is added.
    let binder = unique("dash-bind-view");
    kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {binder}\nrules:\n  - apiGroups: [\"rbac.authorization.k8s.io\"]\n    resources: [\"clusterroles\"]\n    resourceNames: [\"view\"]\n    verbs: [\"bind\"]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {binder}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {binder}\nsubjects:\n  - apiGroup: rbac.authorization.k8s.io\n    kind: User\n    name: \"infra:okta:{}\"\n",
        admin.email.to_lowercase()
    ))
    .ok();
    let added = eventually(Duration::from_secs(20), "the grant is added", || async {
        let f = fields(&csrf(&get(&browser, "/grants").await));
        let page = browser.submit(&format!("{s}/grants"), &as_refs(&f)).await.unwrap();
        (page.status == 303).then_some(page)
    })
    .await;
    assert_eq!(added.location().unwrap().as_str(), format!("{s}/grants"));
    let created = ours().await;
    assert_eq!(created.len(), 1);
    let name = kube::ResourceExt::name_any(&created[0]);
    let page = get(&browser, "/grants").await;
    assert!(page.text.contains(&format!("group {group} (okta)")), "{}", page.text);
    let removed = browser.submit(&format!("{s}/grants/{name}/remove"), &[("csrf", &csrf(&page))]).await.unwrap();
    assert_eq!(removed.status, 303, "{}", removed.text);
    eventually(Duration::from_secs(30), "the grant is gone", || async { ours().await.is_empty().then_some(()) }).await;
    kubectl(&["delete", "clusterrolebinding,clusterrole", &binder]).ok();
}

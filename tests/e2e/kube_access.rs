//! Kubernetes access with Infra identities, against the real API server: `infra login` writes the
//! kubeconfig context, kubectl runs `infra kube-credential`, the API server verifies the token
//! with the AuthenticationConfiguration `infra kube apiserver-config` printed (e2e/up), and RBAC
//! decides. Forged tokens are refused by the API server itself, and its audit log names the person.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::DeleteParams;

use infra::api::Grant;
use kube::Api;
use serde_json::Value;

use infra::kube_access::signing_keys::{DATA_KEY, KeySet, SECRET_NAME, StoredKey};
use infra::kube_access::token::{Claims, sign};

use crate::browser::{self, Browser, listen_port};
use crate::cli_login::{Home, Login, login_args};
use crate::harness::{Run, client, env, eventually, http, infra, kubectl_apply_as, unique};
use crate::idp::{self, IdpUser};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run inside e2e/test (or after e2e/up and `source e2e/.state/env`)"))
}

fn cluster() -> String {
    var("INFRA_CLUSTER_NAME")
}

fn context() -> String {
    format!("infra:{}", cluster())
}

/// `infra login` as `user` through the stand-in Okta, with `home`'s INFRA_HOME and kubeconfig.
async fn log_in(home: &Home, user: &IdpUser) -> Run {
    let port = listen_port();
    let (p, s) = (port.to_string(), env().server_urls[0].clone());
    let login = Login::start(home, &login_args(&p, &s, "okta"));
    let url = login.authorize_url();
    let redirect = format!("http://localhost:{port}");
    let callback = browser::login_at_idp(url.as_str(), &user.email, &user.password, &redirect).await.unwrap();
    Browser::new().get(callback.as_str()).await.unwrap();
    login.finish(Duration::from_secs(30)).await.ok()
}

/// kubectl with `home`'s kubeconfig and the `infra:` context. Nothing else from the test's
/// environment: the kubeconfig's exec entry must carry what the plugin needs.
fn kubectl(home: &Home, args: &[&str]) -> Run {
    let out = Command::new(&env().kubectl)
        .args(["--context", &context()])
        .args(args)
        .env("KUBECONFIG", home.kubeconfig())
        .env_remove("INFRA_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("kubectl runs");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// `kubectl auth whoami -o json`'s userInfo, once the API server trusts the issuer (it fetches the
/// discovery document in the background, every 10 s until it succeeds).
async fn whoami(home: &Home) -> Value {
    eventually(Duration::from_secs(60), "kubectl auth whoami to succeed through Infra", || async {
        let run = kubectl(home, &["auth", "whoami", "-o", "json"]);
        if run.status != 0 {
            eprintln!("auth whoami: {}", run.stderr.trim());
            return None;
        }
        let review: Value = serde_json::from_str(&run.stdout).expect("whoami prints JSON");
        Some(review["status"]["userInfo"].clone())
    })
    .await
}

fn forbidden(run: &Run) -> bool {
    run.status != 0 && (run.stderr.contains("Forbidden") || run.stderr.contains("forbidden"))
}

/// The Infra session token `infra login` stored in `home`.
fn session_token(home: &Home) -> String {
    let text = std::fs::read_to_string(format!("{}/session.json", home.path())).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["token"].as_str().unwrap().to_string()
}

fn session_id(home: &Home) -> String {
    infra::keys::parse_id_with(infra::keys::SESSION_PREFIX, &session_token(home)).unwrap().to_string()
}

async fn user_uid(email: &str) -> String {
    let users: Api<infra::api::User> = Api::namespaced(client().await, &env().namespace);
    let user = users.get(&infra::directory::naming::user_object_name("okta", email)).await.unwrap();
    user.metadata.uid.unwrap()
}

/// Polls until `kubectl get pods -n namespace` as the person is allowed (`true`) or forbidden.
async fn pods_become(home: &Home, namespace: &str, allowed: bool) {
    let what = format!("get pods -n {namespace} to be {}", if allowed { "allowed" } else { "forbidden" });
    eventually(Duration::from_secs(20), &what, || async {
        let run = kubectl(home, &["get", "pods", "-n", namespace]);
        let ok = if allowed { run.status == 0 } else { forbidden(&run) };
        if !ok {
            eprintln!("{what}: status {} {}", run.status, run.stderr.trim());
        }
        ok.then_some(())
    })
    .await;
}

#[tokio::test]
async fn kubectl_works_as_the_person_with_their_grants() {
    let group = unique("kube-team");
    let member = idp::new_user("kube-member", &[&group]).await;
    let home = Home::new();
    let login = log_in(&home, &member).await;
    assert!(login.stdout.contains(&format!("context {}", context())), "{}", login.stdout);

    // The kubeconfig: a context with the exec plugin, and the current context left alone.
    let kubeconfig: Value = serde_saphyr::from_str(&std::fs::read_to_string(home.kubeconfig()).unwrap()).unwrap();
    assert_eq!(std::fs::metadata(home.kubeconfig()).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(kubeconfig.get("current-context").is_none_or(|c| c.as_str() != Some(&context())), "login switched the context: {kubeconfig}");
    let user =
        kubeconfig["users"].as_array().unwrap().iter().find(|u| u["name"] == context().as_str()).expect("the infra user entry").clone();
    assert_eq!(user["user"]["exec"]["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(user["user"]["exec"]["args"][0], "kube-credential");

    // The identity from DESIGN.md, verified by the API server itself.
    let me = whoami(&home).await;
    let username = format!("infra:okta:{}", member.email);
    assert_eq!(me["username"], username.as_str(), "{me}");
    assert_eq!(me["uid"], user_uid(&member.email).await.as_str(), "{me}");
    let groups: Vec<&str> = me["groups"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let group_name = format!("infra:okta:{group}");
    assert!(groups.contains(&group_name.as_str()) && groups.contains(&"infra:authenticated"), "{me}");
    assert!(groups.iter().filter(|g| g.starts_with("system:")).all(|g| *g == "system:authenticated"), "{me}");
    let sid = session_id(&home);
    assert_eq!(me["extra"]["infrahq.com/session-id"][0], sid.as_str(), "{me}");

    // `infra use` makes the context current, with a namespace; kubectl then needs no flags.
    home.infra(&["use", &format!("{}/default", cluster())]).ok();
    let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(home.kubeconfig()).unwrap()).unwrap();
    assert_eq!(config["current-context"], context().as_str());
    let plain = Command::new(&env().kubectl).args(["auth", "whoami", "-o", "json"]).env("KUBECONFIG", home.kubeconfig()).output().unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    assert!(home.infra(&["use", "no-such-cluster"]).stderr.contains("run `infra login` first"));

    // No binding: forbidden.
    let run = kubectl(&home, &["get", "pods", "-n", "default"]);
    assert!(forbidden(&run), "{}", run.stderr);
    assert!(run.stderr.contains(&username), "the refusal names the person: {}", run.stderr);

    // `infra grants add ... view -n default`: allowed there, forbidden elsewhere.
    let added = infra(&["grants", "add", &member.email, "view", "-n", "default", "--provider", "okta"]).ok();
    assert!(added.stdout.contains("Granted view to user"), "{}", added.stdout);
    pods_become(&home, "default", true).await;
    assert!(forbidden(&kubectl(&home, &["get", "pods", "-n", "kube-system"])));
    infra(&["grants", "remove", &member.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", false).await;

    // A group grant: the member may, a non-member may not.
    infra(&["grants", "add", "--group", &group, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;
    let outsider = idp::new_user("kube-outsider", &[&unique("other-team")]).await;
    let other = Home::new();
    log_in(&other, &outsider).await;
    whoami(&other).await;
    assert!(forbidden(&kubectl(&other, &["get", "pods", "-n", "default"])));
    infra(&["grants", "remove", "--group", &group, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", false).await;

    // The audit log names the person: username, groups, uid and session.
    let audit = var("INFRA_AUDIT_LOG");
    let event = eventually(Duration::from_secs(10), "an audit event for the person", || {
        let (audit, username) = (audit.clone(), username.clone());
        async move {
            let text = std::fs::read_to_string(&audit).ok()?;
            text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|e| e["user"]["username"] == username.as_str())
        }
    })
    .await;
    assert_eq!(event["user"]["uid"], me["uid"], "{event}");
    assert_eq!(event["user"]["extra"]["infrahq.com/session-id"][0], sid.as_str(), "{event}");
    assert!(event["user"]["groups"].as_array().unwrap().iter().any(|g| g == group_name.as_str()), "{event}");

    // Logout removes what login wrote, and nothing else.
    let mut config: Value = serde_saphyr::from_str(&std::fs::read_to_string(home.kubeconfig()).unwrap()).unwrap();
    config["contexts"].as_array_mut().unwrap().push(serde_json::json!({"name": "mine", "context": {"cluster": "x", "user": "y"}}));
    std::fs::write(home.kubeconfig(), serde_saphyr::to_string(&config).unwrap()).unwrap();
    home.infra(&["logout"]).ok();
    let after: Value = serde_saphyr::from_str(&std::fs::read_to_string(home.kubeconfig()).unwrap()).unwrap();
    let names: Vec<&str> = after["contexts"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, vec!["mine"], "{after}");
    assert!(after["users"].as_array().unwrap().is_empty(), "{after}");
    other.infra(&["logout"]).ok();
}

#[tokio::test]
async fn the_credential_plugin_caches_locks_and_never_opens_a_browser() {
    let user = idp::new_user("kube-plugin", &["kube-plugin"]).await;
    let home = Home::new();
    let server = env().server_urls[0].clone();
    // Through a shell of its own, as kubectl would: each run has its own parent process (a
    // second request from the same parent means the API server refused the token).
    let plugin = |home: &Home| {
        Command::new("sh")
            .args(["-c", "\"$0\" \"$@\"", env!("CARGO_BIN_EXE_infra"), "kube-credential", "--server", &server, "--cluster", &cluster()])
            .env("INFRA_HOME", home.path())
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // No session: a sentence on stderr, nothing on stdout, non-zero.
    let out = plugin(&home).wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `infra login --server"), "{}", String::from_utf8_lossy(&out.stderr));

    log_in(&home, &user).await;
    // Parallel kubectl runs mint once and share the token.
    let children: Vec<_> = (0..6).map(|_| plugin(&home)).collect();
    let mut tokens = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let cred: Value = serde_json::from_slice(&out.stdout).expect("only the ExecCredential on stdout");
        assert_eq!(cred["kind"], "ExecCredential");
        assert!(cred["status"]["expirationTimestamp"].is_string());
        tokens.insert(cred["status"]["token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 1, "parallel runs minted {} tokens", tokens.len());
    let cache = format!("{}/kube-token-{}.json", home.path(), cluster());
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);

    // A session the server ended: the plugin says to log in again and forgets it.
    let token = session_token(&home);
    let resp = http().post(format!("{server}/api/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    std::fs::remove_file(&cache).unwrap();
    let out = plugin(&home).wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("your Infra session has ended"), "{}", String::from_utf8_lossy(&out.stderr));
    let resp = http().post(format!("{server}/api/kube/token")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "an ended session mints nothing");
}

/// Tokens the API server must refuse even though they look like Infra's.
#[tokio::test]
async fn forged_tokens_are_refused_by_the_api_server() {
    let secrets: Api<Secret> = Api::namespaced(client().await, &env().namespace);
    let keys = eventually(Duration::from_secs(60), "the signing keys", || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get_opt(SECRET_NAME).await.ok()??;
            KeySet::from_json(&s.data?.get(DATA_KEY)?.0).ok()
        }
    })
    .await;
    let now = Timestamp::now();
    let real = keys.signing_key(now).expect("an active key").clone();
    let claims = Claims {
        iss: var("INFRA_ISSUER_URL"),
        sub: "0c6b1e4e-forged".into(),
        aud: cluster(),
        iat: now.as_second(),
        nbf: now.as_second(),
        exp: now.as_second() + 300,
        jti: unique("jti"),
        username: "infra:okta:alice@example.com".into(),
        groups: vec!["infra:authenticated".into()],
        sid: "forged".into(),
    };
    let ca = std::fs::read(format!("{}/pki/ca.crt", var("INFRA_STATE_DIR"))).unwrap();
    let api = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    let review = |token: String| {
        let api = api.clone();
        async move {
            let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
            let resp = api
                .post(format!("{}/apis/authentication.k8s.io/v1/selfsubjectreviews", var("INFRA_APISERVER_URL")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // The control: the same claims with the real key are accepted, so each refusal below is
    // about what was changed.
    // (Authenticated, then denied by the webhook, since its session is made up: 403, not 401.)
    eventually(Duration::from_secs(60), "the API server to accept a genuine token", || {
        let token = sign(&real, &claims).unwrap();
        async move { (review(token).await.0 != 401).then_some(()) }
    })
    .await;
    let other_key = StoredKey { kid: real.kid.clone(), ..StoredKey::generate(now, now).unwrap() };
    let cases: Vec<(&str, String)> = vec![
        ("another key under the real kid", sign(&other_key, &claims).unwrap()),
        ("another key", sign(&StoredKey::generate(now, now).unwrap(), &claims).unwrap()),
        ("the wrong audience", sign(&real, &Claims { aud: "another-cluster".into(), ..claims.clone() }).unwrap()),
        (
            "expired",
            sign(&real, &Claims { iat: now.as_second() - 900, nbf: now.as_second() - 900, exp: now.as_second() - 600, ..claims.clone() })
                .unwrap(),
        ),
        ("a system: username", sign(&real, &Claims { username: "system:admin".into(), ..claims.clone() }).unwrap()),
        ("a system: group", sign(&real, &Claims { groups: vec!["system:masters".into()], ..claims.clone() }).unwrap()),
        ("another issuer", sign(&real, &Claims { iss: "https://evil.example".into(), ..claims.clone() }).unwrap()),
    ];
    for (what, token) in cases {
        let (status, body) = review(token).await;
        assert_eq!(status, 401, "a token with {what} was accepted: {body}");
    }
}

/// The Ready condition of Grant `name` once the controller has looked at its current spec.
async fn grant_ready(name: &str) -> (String, String, Grant) {
    let grants: Api<Grant> = Api::namespaced(client().await, &env().namespace);
    eventually(Duration::from_secs(30), &format!("grant {name} to settle"), || {
        let grants = grants.clone();
        async move {
            let g = grants.get_opt(name).await.ok()??;
            let status = g.status.clone()?;
            (status.observed_generation == g.metadata.generation).then_some(())?;
            let c = status.conditions.iter().find(|c| c.type_ == "Ready")?.clone();
            Some((c.status, c.reason, g))
        }
    })
    .await
}

fn grant_manifest(name: &str, user: &str, role: &str, namespace: Option<&str>, extra: &str) -> String {
    let ns = namespace.map(|n| format!("\n  namespace: {n}")).unwrap_or_default();
    format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: Grant\nmetadata:\n  name: {name}\nspec:\n  subject:\n    provider: okta\n    user: {user}\n  role:\n    kind: ClusterRole\n    name: {role}{ns}\n{extra}"
    )
}

async fn binding_exists(namespace: Option<&str>, name: &str) -> bool {
    match namespace {
        Some(ns) => Api::<RoleBinding>::namespaced(client().await, ns).get_opt(name).await.unwrap().is_some(),
        None => Api::<ClusterRoleBinding>::all(client().await).get_opt(name).await.unwrap().is_some(),
    }
}

/// Grants become bindings whatever the person's state: they may come before the user exists.
#[tokio::test]
async fn grants_are_reconciled_into_bindings() {
    let user = format!("{}@example.com", unique("grantee"));
    let grants: Api<Grant> = Api::namespaced(client().await, &env().namespace);

    // Two Grants for the same access share one binding; removing one keeps it.
    let (a, b) = (unique("grant-a"), unique("grant-b"));
    for name in [&a, &b] {
        kubectl_apply_as(None, &grant_manifest(name, &user, "view", Some("default"), "")).ok();
    }
    let (status, reason, ga) = grant_ready(&a).await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Bound"));
    let binding = ga.status.unwrap().binding.unwrap();
    let (_, _, gb) = grant_ready(&b).await;
    assert_eq!(gb.status.unwrap().binding.as_deref(), Some(binding.as_str()), "one binding for the same access");
    let rb = Api::<RoleBinding>::namespaced(client().await, "default").get(&binding).await.unwrap();
    assert_eq!(rb.subjects.as_ref().unwrap()[0].name, format!("infra:okta:{user}"));
    assert_eq!(rb.role_ref.name, "view");

    // Drift: a deleted binding comes back.
    Api::<RoleBinding>::namespaced(client().await, "default").delete(&binding, &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(20), "the binding to be repaired", || {
        let binding = binding.clone();
        async move { binding_exists(Some("default"), &binding).await.then_some(()) }
    })
    .await;

    grants.delete(&a, &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(binding_exists(Some("default"), &binding).await, "grant {b} still wants the binding");
    grants.delete(&b, &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(20), "the last grant's binding to go", || {
        let binding = binding.clone();
        async move { (!binding_exists(Some("default"), &binding).await).then_some(()) }
    })
    .await;

    // The API server refuses Grants that cannot mean anything.
    let role_without_namespace = grant_manifest(&unique("grant-bad"), &user, "view", None, "").replace("kind: ClusterRole", "kind: Role");
    let run = kubectl_apply_as(None, &role_without_namespace);
    assert!(run.stderr.contains("a Role exists in one namespace"), "{}", run.stderr);
    let both = grant_manifest(&unique("grant-bad"), &user, "view", Some("default"), "").replace(
        "    user:",
        "    group: g
    user:",
    );
    let run = kubectl_apply_as(None, &both);
    assert!(run.stderr.contains("name exactly one of user and group"), "{}", run.stderr);

    // Refusals name the failing check.
    let cases = [
        ("cluster-admin", Some("default"), "RoleNotAllowed"),
        ("view", Some("default"), "RoleNotFound"),
        ("view", Some("no-such-namespace"), "NamespaceNotFound"),
    ];
    for (role, ns, want) in cases {
        let name = unique("grant-refused");
        let mut manifest = grant_manifest(&name, &user, role, ns, "");
        if want == "RoleNotFound" {
            // view is allowed, but there is no Role of that name in the namespace.
            manifest = manifest.replace("kind: ClusterRole", "kind: Role");
        }
        kubectl_apply_as(None, &manifest).ok();
        let (status, reason, g) = grant_ready(&name).await;
        assert_eq!((status.as_str(), reason.as_str()), ("False", want), "{g:?}");
        assert_eq!(g.status.unwrap().phase, Some(infra::api::GrantPhase::Pending));
        grants.delete(&name, &DeleteParams::default()).await.unwrap();
    }

    // Cluster-wide, and temporary: bound, then expired and unbound. The expiry counts from the
    // Grant's creation, so it must leave time to see the Grant bound first even on a busy machine
    // (with 6 s, a clean-clone run first saw it settled after the expiry: Ready=False, Expired).
    let name = unique("grant-temp");
    kubectl_apply_as(None, &grant_manifest(&name, &user, "view", None, "  expiresAfter: 20s\n")).ok();
    let (status, _, g) = grant_ready(&name).await;
    assert_eq!(status, "True");
    let st = g.status.unwrap();
    assert!(st.expires_at.is_some());
    let crb = st.binding.unwrap();
    assert!(binding_exists(None, &crb).await);
    eventually(Duration::from_secs(60), "the temporary grant to expire", || {
        let grants = grants.clone();
        let name = name.clone();
        async move { (grants.get(&name).await.ok()?.status?.phase == Some(infra::api::GrantPhase::Expired)).then_some(()) }
    })
    .await;
    assert!(!binding_exists(None, &crb).await, "an expired grant's binding stays");
    let listed: Value = serde_json::from_str(&infra(&["grants", "list", "-o", "json"]).ok().stdout).unwrap();
    assert!(listed["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == name.as_str()), "{listed}");
    grants.delete(&name, &DeleteParams::default()).await.unwrap();
}

/// No escalation through Infra: someone who may create Grants but could not bind `admin` is
/// refused by the API server (the ValidatingAdmissionPolicy), while `view`, which they may bind,
/// is accepted.
#[tokio::test]
async fn a_grant_needs_permission_to_bind_its_role() {
    let who = unique("granter");
    let ns = env().namespace.clone();
    let setup = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {who}\n  namespace: {ns}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: infra-admin}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {who}}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {who}\n\
         rules: [{{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [view], verbs: [bind]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {who}\n  namespace: default\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {who}}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {who}}}]\n"
    );
    let out = std::process::Command::new(&env().kubectl)
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &env().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(setup.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let user = format!("{}@example.com", unique("escalation"));
    let refused = kubectl_apply_as(Some(&who), &grant_manifest(&unique("grant-admin"), &user, "admin", Some("default"), ""));
    assert_ne!(refused.status, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("you may not bind ClusterRole admin in namespace default"), "{}", refused.stderr);
    let cluster_wide = kubectl_apply_as(Some(&who), &grant_manifest(&unique("grant-view-all"), &user, "view", None, ""));
    assert_ne!(cluster_wide.status, 0, "bind in one namespace does not reach cluster-wide: {}", cluster_wide.stdout);
    let name = unique("grant-view");
    kubectl_apply_as(Some(&who), &grant_manifest(&name, &user, "view", Some("default"), "")).ok();
    let (status, _, _) = grant_ready(&name).await;
    assert_eq!(status, "True");
    let grants: Api<Grant> = Api::namespaced(client().await, &ns);
    grants.delete(&name, &DeleteParams::default()).await.unwrap();
    let _ = std::process::Command::new(&env().kubectl)
        .args(["delete", "--ignore-not-found", &format!("clusterrole/{who}")])
        .env("KUBECONFIG", &env().kubeconfig)
        .output();
    let _ = std::process::Command::new(&env().kubectl)
        .args(["delete", "--ignore-not-found", "-n", "default", &format!("rolebinding/{who}")])
        .env("KUBECONFIG", &env().kubeconfig)
        .output();
    let _ = std::process::Command::new(&env().kubectl)
        .args(["delete", "--ignore-not-found", "-n", &ns, &format!("rolebinding/{who}")])
        .env("KUBECONFIG", &env().kubeconfig)
        .output();
}

/// The API server with a raw bearer token, as kubectl would send the cached one.
async fn list_pods_with(token: &str, namespace: &str) -> u16 {
    let ca = std::fs::read(format!("{}/pki/ca.crt", var("INFRA_STATE_DIR"))).unwrap();
    let api = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    let url = format!("{}/api/v1/namespaces/{namespace}/pods", var("INFRA_APISERVER_URL"));
    api.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

fn cached_token(home: &Home) -> String {
    let text = std::fs::read_to_string(format!("{}/kube-token-{}.json", home.path(), cluster())).expect("a cached token");
    serde_json::from_str::<Value>(&text).unwrap()["token"].as_str().unwrap().to_string()
}

/// Polls until a request with `token` is refused; returns how long that took.
async fn refused_after(token: &str, since: std::time::Instant) -> Duration {
    loop {
        if list_pods_with(token, "default").await == 403 {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(20), "the token still works {:?} after the revocation", since.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With the authorization webhook, a token that is still valid stops working within seconds of
/// a logout or a deactivation (the local API server lists the webhook before RBAC).
#[tokio::test]
async fn revocation_reaches_the_api_server_at_once() {
    let person = idp::new_user("kube-revoked", &[&unique("revoked-team")]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    whoami(&home).await;
    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;

    // Logout: the token minted before keeps its signature and lifetime, and is refused anyway.
    let token = cached_token(&home);
    assert_eq!(list_pods_with(&token, "default").await, 200);
    let started = std::time::Instant::now();
    home.infra(&["logout"]).ok();
    let took = refused_after(&token, started).await;
    println!("logout to refusal: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Deactivation (what SCIM active=false writes): refused at once, for every session.
    log_in(&home, &person).await;
    whoami(&home).await;
    let token = cached_token(&home);
    assert_eq!(list_pods_with(&token, "default").await, 200);
    let users: Api<infra::api::User> = Api::namespaced(client().await, &env().namespace);
    let object = infra::directory::naming::user_object_name("okta", &person.email);
    let started = std::time::Instant::now();
    let patch = serde_json::json!({"spec": {"active": false}});
    users.patch(&object, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let took = refused_after(&token, started).await;
    println!("deactivation to refusal: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let run = kubectl(&home, &["get", "pods", "-n", "default"]);
    assert_ne!(run.status, 0);
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
}

/// A token from `server` for `session`: the status and, when minted, the token's claims.
async fn mint_at(server: &str, session: &str) -> (u16, Option<Value>) {
    let resp = http().post(format!("{server}/api/kube/token")).bearer_auth(session).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    (status, body["token"].as_str().map(claims_of))
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// After a revocation nothing new is minted, by any replica, once its watches have delivered the
/// revocation (milliseconds: minting reads the same caches as the webhook). Where the API server
/// has no webhook, access ends when the last token expires (at most the token lifetime later).
async fn mints_nothing(session: &str) {
    for server in &env().server_urls {
        eventually(Duration::from_secs(5), &format!("{server} to refuse to mint for a revoked session"), || async {
            let (status, _) = mint_at(server, session).await;
            (status == 401).then_some(())
        })
        .await;
    }
}

/// Minting is served from each replica's watch caches: a token minted the moment a login ends,
/// on the replica that did not start the session (whose watch may not have delivered it yet: the
/// API server answers the miss), carries the login's identity and groups; a logout, a
/// deactivation and a deleted user stop minting on every replica.
#[tokio::test]
async fn tokens_are_minted_right_after_login_and_never_after_a_revocation() {
    let group = unique("mint-team");
    let person = idp::new_user("kube-mint", &[&group]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    let (session, sid) = (session_token(&home), session_id(&home));
    // Every replica at once, the other one first.
    for server in env().server_urls.iter().rev() {
        let (status, claims) = mint_at(server, &session).await;
        assert_eq!(status, 200, "{server} refused to mint right after the login");
        let claims = claims.unwrap();
        assert_eq!(claims["username"], format!("infra:okta:{}", person.email).as_str(), "{claims}");
        assert_eq!(claims["sub"], user_uid(&person.email).await.as_str(), "{claims}");
        assert_eq!(claims["sid"], sid.as_str(), "{claims}");
        let groups: Vec<&str> = claims["groups"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(groups.contains(&format!("infra:okta:{group}").as_str()), "the login's groups: {claims}");
    }
    // Again, now from the caches: the same answer.
    let (status, claims) = mint_at(&env().server_urls[1], &session).await;
    assert_eq!((status, claims.unwrap()["sid"].as_str().map(str::to_string)), (200, Some(sid)));

    // Logout (through replica 0): no replica mints for the session any more.
    home.infra(&["logout"]).ok();
    mints_nothing(&session).await;

    // Deactivation (what SCIM active=false writes).
    log_in(&home, &person).await;
    let session = session_token(&home);
    assert_eq!(mint_at(&env().server_urls[1], &session).await.0, 200);
    let users: Api<infra::api::User> = Api::namespaced(client().await, &env().namespace);
    let object = infra::directory::naming::user_object_name("okta", &person.email);
    let patch = serde_json::json!({"spec": {"active": false}});
    users.patch(&object, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    mints_nothing(&session).await;

    // A deleted user (not through SCIM: the User object itself).
    let other = idp::new_user("kube-mint-deleted", &[]).await;
    let home = Home::new();
    log_in(&home, &other).await;
    let session = session_token(&home);
    assert_eq!(mint_at(&env().server_urls[1], &session).await.0, 200);
    users.delete(&infra::directory::naming::user_object_name("okta", &other.email), &DeleteParams::default()).await.unwrap();
    mints_nothing(&session).await;
}

/// A SCIM DELETE of the person (through the provider's SCIM API, as Okta sends it) and removing
/// their provider each end kubectl access within seconds, like a deactivation; and after each,
/// no new token is minted.
#[tokio::test]
async fn scim_delete_and_provider_removal_end_kubectl_access() {
    // SCIM delete.
    let person = idp::new_user("kube-scim-deleted", &[]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    whoami(&home).await;
    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;
    let (token, session) = (cached_token(&home), session_token(&home));
    assert_eq!(list_pods_with(&token, "default").await, 200);
    let key_name = unique("kube-scim-delete");
    let key = infra(&["scim-keys", "create", "--provider", "okta", "--name", &key_name, "-q"]).ok().stdout.trim().to_string();
    let scim = crate::harness::Scim::new(&env().server_urls[0], &key);
    let filter = format!("/Users?filter=userName%20eq%20%22{}%22", person.email);
    let listed = scim.get(&filter).await.expect(200).clone();
    let id = listed["Resources"][0]["id"].as_str().unwrap_or_else(|| panic!("the logged-in person is a SCIM User: {listed}")).to_string();
    let started = std::time::Instant::now();
    assert_eq!(scim.delete(&format!("/Users/{id}")).await.status, 204);
    let took = refused_after(&token, started).await;
    println!("SCIM delete to refusal: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    mints_nothing(&session).await;
    infra(&["scim-keys", "revoke", &key_name]).ok();
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();

    // Provider removal: a provider of this test's own, so no other test loses theirs.
    let provider = unique("kube-gone");
    let url = crate::harness::idp_domain_and_path();
    infra(&["providers", "add", &provider, "--url", &url, "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"]).ok();
    let person = idp::new_user("kube-provider-gone", &[]).await;
    let home = Home::new();
    let port = listen_port();
    let login = Login::start(&home, &login_args(&port.to_string(), &env().server_urls[0], &provider));
    let callback =
        browser::login_at_idp(login.authorize_url().as_str(), &person.email, &person.password, &format!("http://localhost:{port}"))
            .await
            .unwrap();
    Browser::new().get(callback.as_str()).await.unwrap();
    login.finish(Duration::from_secs(30)).await.ok();
    whoami(&home).await;
    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", &provider]).ok();
    pods_become(&home, "default", true).await;
    let (token, session) = (cached_token(&home), session_token(&home));
    let started = std::time::Instant::now();
    infra(&["providers", "remove", &provider]).ok();
    let took = refused_after(&token, started).await;
    println!("provider removal to refusal: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    mints_nothing(&session).await;
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", &provider]).ok();
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Numbers for issue 11's targets (mint p99 < 5 ms, webhook p99 < 1 ms, cached plugin call
/// < 30 ms, revocation < 3 s). Run by e2e/bench against release builds, and itself built with the
/// bench profile so that the round trips time the server rather than an unoptimized client;
/// ignored in the suite.
#[tokio::test]
#[ignore]
async fn kube_access_benchmark() {
    let person = idp::new_user("kube-bench", &["bench"]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    let session = session_token(&home);
    let server = env().server_urls[0].clone();
    let mut mint = vec![];
    for _ in 0..300 {
        let t = std::time::Instant::now();
        let resp = http().post(format!("{server}/api/kube/token")).bearer_auth(&session).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.bytes().await.unwrap();
        mint.push(t.elapsed());
    }
    println!("mint: p50 {:?} p99 {:?} (n={}, target p99 < 5ms)", percentile(&mut mint, 0.5), percentile(&mut mint, 0.99), mint.len());

    let ca = std::fs::read(format!("{}/pki/ca.crt", var("INFRA_STATE_DIR"))).unwrap();
    let tls = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    let sid = session_id(&home);
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": format!("infra:okta:{}", person.email), "uid": user_uid(&person.email).await,
                 "extra": {"infrahq.com/session-id": [sid]}, "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}}
    });
    let stored = Api::<infra::api::User>::namespaced(client().await, &env().namespace)
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .remaining_item_count
        .map_or(1, |n| n + 1);
    println!("users stored: {stored} (the webhook looks the person up among them)");
    let mut hook = vec![];
    for _ in 0..1000 {
        let t = std::time::Instant::now();
        let resp = tls.post(format!("{}/api/kube/authorize", var("INFRA_ISSUER_URL"))).json(&review).send().await.unwrap();
        let body: Value = resp.json().await.unwrap();
        hook.push(t.elapsed());
        assert_eq!(body["status"]["allowed"], false);
        assert!(body["status"].get("denied").is_none(), "{body}");
    }
    println!(
        "webhook: p50 {:?} p99 {:?} (n={}, round trip over HTTPS, target p99 < 1ms)",
        percentile(&mut hook, 0.5),
        percentile(&mut hook, 0.99),
        hook.len()
    );

    // Each call from a shell of its own, like separate kubectl runs (the same parent asking
    // twice would mean a 401, and get a new token); the shell's start is part of the time.
    let plugin = || {
        let t = std::time::Instant::now();
        let out = Command::new("sh")
            .args(["-c", "\"$0\" \"$@\"", env!("CARGO_BIN_EXE_infra"), "kube-credential", "--server", &server, "--cluster", &cluster()])
            .env("INFRA_HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        t.elapsed()
    };
    plugin();
    let mut cached: Vec<Duration> = (0..30).map(|_| plugin()).collect();
    println!(
        "cached plugin call: p50 {:?} p99 {:?} (n={}, target < 30ms)",
        percentile(&mut cached, 0.5),
        percentile(&mut cached, 0.99),
        cached.len()
    );

    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;
    let token = cached_token(&home);
    let users: Api<infra::api::User> = Api::namespaced(client().await, &env().namespace);
    let object = infra::directory::naming::user_object_name("okta", &person.email);
    let started = std::time::Instant::now();
    users
        .patch(&object, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&serde_json::json!({"spec": {"active": false}})))
        .await
        .unwrap();
    let took = refused_after(&token, started).await;
    println!("deactivation to refusal: {took:?} (target < 3s)");
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_string()
}

/// A scheduled rotation while kubectl keeps working: the leader publishes the next key two
/// minutes before it signs, every replica serves both, tokens signed before keep working after
/// the switch, and tokens signed after are accepted. The active key is made due by moving its
/// start back in the Secret (the rotation interval is days). Alone: it takes about three minutes.
#[tokio::test]
#[ignore]
async fn a_scheduled_rotation_keeps_kubectl_working() {
    let person = idp::new_user("kube-scheduled", &["scheduled"]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    whoami(&home).await;
    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;
    let old = cached_token(&home);
    let old_kid = kid_of(&old);
    let session = session_token(&home);

    let secrets: Api<Secret> = Api::namespaced(client().await, &env().namespace);
    let secret = secrets.get(SECRET_NAME).await.unwrap();
    let mut set = KeySet::from_json(&secret.data.as_ref().unwrap()[DATA_KEY].0).unwrap();
    // Only the key that signs now (earlier runs on this stack may have left a retired one).
    set.keys.retain(|k| k.kid == old_kid);
    assert_eq!(set.keys.len(), 1, "the key that signed the cached token is stored: {set:?}");
    let long_ago = Timestamp::now().checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(24 * 365)).unwrap();
    (set.keys[0].created_at, set.keys[0].signs_from) = (long_ago, long_ago);
    let patch = serde_json::json!({"data": {DATA_KEY: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, set.to_json())}});
    secrets.patch(SECRET_NAME, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();

    // The next key is published on every replica (within the leader's 20 s check), and does not
    // sign yet.
    let mut new_kid = String::new();
    for server in &env().server_urls {
        let url = format!("{server}/api/kube/jwks");
        new_kid = eventually(Duration::from_secs(60), "the next key to be published", || {
            let (url, old_kid) = (url.clone(), old_kid.clone());
            async move {
                let jwks: Value = http().get(&url).send().await.ok()?.json().await.ok()?;
                let kids: Vec<String> = jwks["keys"].as_array()?.iter().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect();
                (kids.len() == 2 && kids.contains(&old_kid)).then(|| kids.into_iter().find(|k| *k != old_kid).unwrap())
            }
        })
        .await;
    }
    let mint = || async {
        let minted: Value = http()
            .post(format!("{}/api/kube/token", env().server_urls[0]))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        minted["token"].as_str().unwrap().to_string()
    };
    assert_eq!(kid_of(&mint().await), old_kid, "the next key is published ahead, not signing yet");

    // Until it signs, and after, kubectl works throughout, and the old token keeps working.
    let started = std::time::Instant::now();
    let fresh = loop {
        let run = kubectl(&home, &["get", "pods", "-n", "default"]);
        assert_eq!(run.status, 0, "kubectl failed during the rotation after {:?}: {}", started.elapsed(), run.stderr);
        assert_eq!(list_pods_with(&old, "default").await, 200, "the token signed before the rotation is refused");
        let token = mint().await;
        if kid_of(&token) == new_kid {
            break token;
        }
        assert!(started.elapsed() < Duration::from_secs(200), "the next key never started signing");
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    println!("the next key signed {:?} after it was published", started.elapsed());
    assert_eq!(list_pods_with(&fresh, "default").await, 200, "a token signed with the new key is accepted");
    assert_eq!(list_pods_with(&old, "default").await, 200, "the retired key stays published while its tokens live");
    let run = kubectl(&home, &["get", "pods", "-n", "default"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
}

/// An emergency rotation (a leaked key): tokens signed before are refused once the API server
/// has the new key set, and kubectl recovers on its own: after the 401 it asks the plugin again,
/// which then mints a new token instead of handing out the cached one. Alone: it invalidates
/// every test's tokens.
#[tokio::test]
#[ignore]
async fn an_emergency_rotation_refuses_old_tokens_and_kubectl_recovers() {
    let person = idp::new_user("kube-rotation", &["rotation"]).await;
    let home = Home::new();
    log_in(&home, &person).await;
    whoami(&home).await;
    infra(&["grants", "add", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
    pods_become(&home, "default", true).await;
    let old = cached_token(&home);
    let old_kid = kid_of(&old);

    let out = Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .args(["rotate-signing-keys"])
        .env("KUBECONFIG", &env().kubeconfig)
        .env("INFRA_NAMESPACE", &env().namespace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Every replica publishes only the new key.
    for server in &env().server_urls {
        let url = format!("{server}/api/kube/jwks");
        eventually(Duration::from_secs(10), "the old key to be unpublished", || {
            let (url, old_kid) = (url.clone(), old_kid.clone());
            async move {
                let jwks: Value = http().get(&url).send().await.ok()?.json().await.ok()?;
                let kids: Vec<&str> = jwks["keys"].as_array()?.iter().filter_map(|k| k["kid"].as_str()).collect();
                (!kids.is_empty() && !kids.contains(&old_kid.as_str())).then_some(())
            }
        })
        .await;
    }
    // A token with the new key makes the API server fetch the key set again; from then on the old
    // token is refused.
    let session = session_token(&home);
    let fresh: Value =
        http().post(format!("{}/api/kube/token", env().server_urls[0])).bearer_auth(&session).send().await.unwrap().json().await.unwrap();
    let fresh = fresh["token"].as_str().unwrap().to_string();
    assert_ne!(kid_of(&fresh), old_kid);
    eventually(Duration::from_secs(20), "the new key to be accepted and the old refused", || {
        let (fresh, old) = (fresh.clone(), old.clone());
        async move { (list_pods_with(&fresh, "default").await == 200 && list_pods_with(&old, "default").await == 401).then_some(()) }
    })
    .await;
    // The plugin's cache still holds the old token. The kubectl command that meets the 401 asks
    // the plugin again (and fails); the plugin then mints, and the next command works.
    assert_eq!(cached_token(&home), old);
    let first = kubectl(&home, &["get", "pods", "-n", "default"]);
    assert!(first.status == 0 || first.stderr.contains("Unauthorized"), "{}", first.stderr);
    assert_ne!(cached_token(&home), old, "the plugin minted a new token after the 401");
    let run = kubectl(&home, &["get", "pods", "-n", "default"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    infra(&["grants", "remove", &person.email, "view", "-n", "default", "--provider", "okta"]).ok();
}

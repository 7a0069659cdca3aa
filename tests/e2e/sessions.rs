//! Sessions as Session objects, refresh tokens in Secrets only the controller reads, and the login
//! broker through which the server redeems codes without ever holding a client secret.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::harness::{client, env, eventually, extra_server, http, kubectl, unique};
use crate::idp::new_user;
use crate::login::{authorize, login, redeem};
use infra::api::Session;

async fn whoami(server: &str, token: &str) -> u16 {
    http().get(format!("{server}/api/whoami")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

fn session_id(token: &str) -> String {
    infra::keys::parse_id_with(infra::keys::SESSION_PREFIX, token).expect("a session token").to_string()
}

async fn sessions() -> Api<Session> {
    Api::namespaced(client().await, &env().namespace)
}

async fn secrets() -> Api<Secret> {
    Api::namespaced(client().await, &env().namespace)
}

/// The refresh token of session `id` once the session's reconcile has made the Session its owner.
async fn owned_refresh_secret(id: &str, session_uid: &str) -> Secret {
    let (secrets, uid) = (secrets().await, session_uid.to_string());
    eventually(Duration::from_secs(30), "the refresh-token Secret to be owned by its Session", || {
        let (secrets, uid, name) = (secrets.clone(), uid.clone(), format!("infra-session-{id}"));
        async move { secrets.get_opt(&name).await.ok()?.filter(|s| s.owner_references().iter().any(|o| o.uid == uid)) }
    })
    .await
}

/// A login creates a Session with the token's hash (never the token) and owned by its User; the
/// refresh token is only in the controller's Secret, owned by the Session, and reaches neither
/// the login's answer nor the Session.
#[tokio::test]
async fn a_login_is_a_session_object_and_its_refresh_token_stays_with_the_controller() {
    let user = new_user("sessionobj", &[]).await;
    let (token, body) = login("okta", &user).await;
    let id = session_id(&token);
    let session = sessions().await.get(&id).await.unwrap();
    assert_eq!(session.spec.token_hash, infra::keys::hash_hex(&token));
    assert_eq!(session.spec.record.user, user.email);
    assert_eq!(session.spec.record.provider, "okta");
    assert_eq!(session.owner_references()[0].kind, "User");
    let secret = owned_refresh_secret(&id, &session.uid().unwrap()).await;
    assert_eq!(secret.type_.as_deref(), Some("infrahq.com/session"));
    let data = secret.data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["refreshToken"], "{data:?}");
    let refresh_token = String::from_utf8(data["refreshToken"].0.clone()).unwrap();
    let session_json = serde_json::to_string(&session).unwrap();
    assert!(!session_json.contains(&token), "the Session holds the token");
    for (what, text) in [("the Session", &session_json), ("the login's answer", &body.to_string())] {
        assert!(!text.contains(&refresh_token), "{what} holds the refresh token");
    }
    // `kubectl get sessions` shows who, through which provider, until when.
    let listed = kubectl(&["get", "sessions", &id, "-n", &env().namespace]).ok().stdout;
    for column in ["USER", "PROVIDER", "EXPIRES", &user.email, "okta"] {
        assert!(listed.contains(column), "{column} missing:\n{listed}");
    }
    // Ending it with kubectl ends it everywhere, and its refresh token with it.
    sessions().await.delete(&id, &DeleteParams::foreground()).await.unwrap();
    for server in &env().server_urls {
        assert_eq!(whoami(server, &token).await, 401, "{server}");
    }
    eventually(Duration::from_secs(30), "the refresh token to go with its Session", || {
        let name = format!("infra-session-{id}");
        async move { secrets().await.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

/// A session of an earlier version (the whole session in a Secret) keeps working after the
/// upgrade: the controller moves it to a Session, and its Secret keeps only the refresh token,
/// which the re-checks go on using.
#[tokio::test]
async fn a_session_secret_of_an_earlier_version_is_moved_to_a_session() {
    let user = new_user("legacysession", &[]).await;
    let (token, _) = login("okta", &user).await;
    let id = session_id(&token);
    let session = sessions().await.get(&id).await.unwrap();
    let secret = owned_refresh_secret(&id, &session.uid().unwrap()).await;
    let refresh_token = String::from_utf8(secret.data.unwrap()["refreshToken"].0.clone()).unwrap();
    // Put back what earlier versions stored: no Session, and a Secret with the whole session,
    // owned by the User.
    sessions().await.delete(&id, &DeleteParams::background()).await.unwrap();
    eventually(Duration::from_secs(30), "the Session and its Secret to go", || {
        let id = id.clone();
        async move {
            let gone = sessions().await.get_opt(&id).await.ok()?.is_none()
                && secrets().await.get_opt(&format!("infra-session-{id}")).await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await;
    let record = serde_json::to_string(&session.spec.record).unwrap();
    let legacy: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": format!("infra-session-{id}"),
            "labels": session.labels(),
            "annotations": {"infrahq.com/last-seen": session.annotations().get("infrahq.com/last-seen")},
            "ownerReferences": session.owner_references(),
        },
        "type": "infrahq.com/session",
        "stringData": {"session": record, "tokenHash": session.spec.token_hash, "refreshToken": refresh_token},
    }))
    .unwrap();
    secrets().await.create(&Default::default(), &legacy).await.unwrap();

    // The controller moves it (it looks every few seconds) and the same token works again.
    let moved = eventually(Duration::from_secs(90), "the controller to move the session", || {
        let id = id.clone();
        async move { sessions().await.get_opt(&id).await.ok()? }
    })
    .await;
    assert_eq!(moved.spec.token_hash, session.spec.token_hash);
    assert_eq!(moved.spec.record.user, user.email);
    assert_eq!(moved.owner_references()[0].kind, "User");
    for server in &env().server_urls {
        assert_eq!(whoami(server, &token).await, 200, "{server}");
    }
    let secret = owned_refresh_secret(&id, &moved.uid().unwrap()).await;
    let data = secret.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["refreshToken"], "the record and the hash left the Secret: {data:?}");
    // Re-checks (every 3 s here) go on with the moved refresh token, which the IdP accepts.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(whoami(&env().server_urls[1], &token).await, 200, "the moved session survives its re-checks");
}

/// People holding the shipped roles may see and end sessions, never create or change one (that
/// would forge a login).
#[tokio::test]
async fn admins_may_end_sessions_but_not_forge_them() {
    let ns = &env().namespace;
    let admin = unique("sessionadmin");
    kubectl(&["create", "rolebinding", &admin, "--clusterrole=infra-admin", &format!("--user={admin}"), "-n", ns]).ok();
    let viewer = unique("sessionviewer");
    kubectl(&["create", "rolebinding", &viewer, "--clusterrole=infra-viewer", &format!("--user={viewer}"), "-n", ns]).ok();
    for (who, verb, may) in [
        (&admin, "list", true),
        (&admin, "get", true),
        (&admin, "delete", true),
        (&admin, "create", false),
        (&admin, "update", false),
        (&admin, "patch", false),
        (&viewer, "list", true),
        (&viewer, "delete", false),
        (&viewer, "create", false),
    ] {
        let run = kubectl(&["auth", "can-i", verb, "sessions.infrahq.com", "-n", ns, "--as", who]);
        assert_eq!(run.stdout.trim(), if may { "yes" } else { "no" }, "{who} {verb} sessions: {}", run.stderr);
    }
}

async fn post_redeem(broker: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = http().post(format!("{broker}/redeem")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn create_token(sa: &str, audience: Option<&str>) -> String {
    let mut args = vec!["create", "token", sa, "-n", &env().namespace];
    if let Some(a) = audience {
        args.extend(["--audience", a]);
    }
    kubectl(&args).ok().stdout.trim().to_string()
}

/// The broker redeems codes only for the server's ServiceAccount, with a token for its own
/// audience; anyone else is refused before the provider is contacted.
#[tokio::test]
async fn the_broker_answers_only_the_servers_service_account() {
    let broker = std::env::var("INFRA_BROKER_URLS").expect("INFRA_BROKER_URLS").split(',').next().unwrap().to_string();
    let body = json!({"provider": "okta", "code": "bogus", "redirectUri": "http://localhost:8301", "pkceVerifier": "v".repeat(43),
                      "nonce": unique("nonce"), "session": "abcdefghijkl"});
    let (status, answer) = post_redeem(&broker, None, &body).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("unauthorized")), "{answer}");
    // The server's token for the API server's audience is not a broker token.
    let (status, answer) = post_redeem(&broker, Some(&create_token("infra-server", None)), &body).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("unauthorized")), "{answer}");
    // Another ServiceAccount's token for the right audience.
    let (status, answer) = post_redeem(&broker, Some(&create_token("infra-controller", Some("infra-broker"))), &body).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{answer}");
    // The server's: the code goes to the provider, which refuses this one. Every controller
    // replica answers, the leader and the one waiting for the lease alike.
    let brokers: Vec<String> = std::env::var("INFRA_BROKER_URLS").unwrap().split(',').map(String::from).collect();
    assert_eq!(brokers.len(), 2, "{brokers:?}");
    for (sa, broker) in [("infra-server", &brokers[0]), ("e2e-infra-server", &brokers[1]), ("infra-server", &brokers[1])] {
        let mut body = body.clone();
        body["nonce"] = json!(unique("nonce"));
        let (status, answer) = post_redeem(broker, Some(&create_token(sa, Some("infra-broker"))), &body).await;
        assert_eq!(
            (status, answer["error"].as_str(), answer["code"].as_str()),
            (400, Some("refused"), Some("invalid_grant")),
            "{sa}: {answer}"
        );
    }
}

/// With no controller reachable, a login is answered 503 with Retry-After (try again), not a
/// failure of the person's credentials; the code stays unredeemed.
#[tokio::test]
async fn a_login_without_a_reachable_broker_is_a_503_with_retry_after() {
    const PORT: u16 = 18098;
    let state = std::env::var("INFRA_STATE_DIR").unwrap();
    let ports = std::env::var("INFRA_LOGIN_PORTS").unwrap();
    let uris: Vec<String> = ports.split_whitespace().map(|p| format!("http://localhost:{p}")).collect();
    let mut server = extra_server(
        PORT,
        &[],
        &[
            ("INFRA_EXTRA_CA_FILE", format!("{state}/idp/ca.crt")),
            ("INFRA_CLI_REDIRECT_URIS", uris.join(",")),
            // Nothing listens there.
            ("INFRA_BROKER_URLS", "http://127.0.0.1:9".into()),
        ],
        Some("server-no-broker"),
    )
    .await;
    let user = new_user("nobroker", &[]).await;
    let authorized = authorize("okta", &user).await;
    let resp = http().post(format!("http://127.0.0.1:{PORT}/api/login")).json(&authorized.login_body("okta")).send().await.unwrap();
    let (status, retry) = (resp.status().as_u16(), resp.headers().get("retry-after").cloned());
    let body: Value = resp.json().await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!((status, body["error"].as_str()), (503, Some("broker_unavailable")), "{body}");
    assert!(retry.is_some(), "a 503 says when to retry");
    // The code was never sent anywhere: a replica with a broker redeems it.
    let (status, body) = redeem(&env().server_urls[0], "okta", &authorized).await;
    assert_eq!(status, 201, "{body}");
}

//! IdentityProvider validation through the CLI and through `kubectl apply`.

use crate::harness::*;

const CLIENT_ID: &str = "infra-e2e";
const CLIENT_SECRET: &str = "infra-e2e-secret";

#[tokio::test]
async fn okta_provider_added_with_the_cli_becomes_ready_and_prints_what_to_paste() {
    let name = unique("okta");
    let url = idp_domain_and_path();
    let run = infra_with(
        &["providers", "add", &name, "--url", &url, "--client-id", CLIENT_ID, "--client-secret-env", "OKTA_SECRET", "--kind", "okta"],
        &[("OKTA_SECRET", CLIENT_SECRET)],
        None,
    )
    .ok();
    assert!(run.stdout.contains("http://localhost:8301"), "{}", run.stdout);
    assert!(run.stdout.contains("/login/callback"), "{}", run.stdout);
    assert!(run.stdout.contains("/api/scim/v2"), "{}", run.stdout);
    assert!(!run.stdout.contains(CLIENT_SECRET) && !run.stderr.contains(CLIENT_SECRET), "the secret was echoed");

    let idp = providers().await.get(&name).await.unwrap();
    let status = idp.status.unwrap();
    assert_eq!(status.phase, Some(infra::api::ProviderPhase::Ready));
    assert_eq!(status.issuer.as_deref(), Some(env().idp_url.as_str()));
    let endpoints = status.endpoints.unwrap();
    assert_eq!(endpoints.token.unwrap(), format!("{}/v1/token", env().idp_url));
    assert_eq!(endpoints.authorization.unwrap(), format!("{}/v1/authorize", env().idp_url));
    for t in ["SecretValid", "SettingsValid", "DiscoverySucceeded", "ClientCredentialsValid", "Ready"] {
        let c = status.conditions.iter().find(|c| c.type_ == t).unwrap_or_else(|| panic!("no {t}"));
        assert_eq!(c.status, "True", "{t}: {}", c.message);
    }
    assert_eq!(status.redirect_uris[0], "http://localhost:8301");
    // The CLI's loopback URIs (here also the ones the suite's parallel logins use), then the
    // dashboard's callback.
    assert!(status.redirect_uris.last().unwrap().ends_with("/login/callback"), "{:?}", status.redirect_uris);
    assert!(status.redirect_uris.contains(&"http://localhost:18301".to_string()), "{:?}", status.redirect_uris);
    // The secret never lands in the status.
    let yaml = kubectl(&["get", "identityprovider", &name, "-n", &env().namespace, "-o", "yaml"]).ok().stdout;
    assert!(!yaml.contains(CLIENT_SECRET));

    // list shows it, as a table and as JSON.
    let table = infra(&["providers", "list"]).ok().stdout;
    assert!(table.lines().any(|l| l.starts_with(&name) && l.contains("Ready")), "{table}");
    let json: serde_json::Value = serde_json::from_str(&infra(&["providers", "list", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!((json["apiVersion"].as_str(), json["kind"].as_str()), (Some("v1"), Some("List")), "{json}");
    let item = json["items"].as_array().unwrap().iter().find(|p| p["metadata"]["name"] == name.as_str()).expect("listed");
    assert_eq!(item["kind"], "IdentityProvider");
    assert!(item["metadata"].get("managedFields").is_none());
    // The way kubectl prints names and bare rows, and the wide columns.
    let names = infra(&["providers", "list", "-o", "name"]).ok().stdout;
    assert!(names.lines().any(|l| l == format!("identityprovider.infrahq.com/{name}")), "{names}");
    let bare = infra(&["providers", "list", "--no-headers"]).ok().stdout;
    assert!(!bare.contains("NAME") && bare.lines().any(|l| l.starts_with(&name)), "{bare}");
    let wide = infra(&["providers", "list", "-o", "wide"]).ok().stdout;
    assert!(wide.lines().next().unwrap().contains("ISSUER"), "{wide}");
    let selected = infra(&["providers", "list", "-o", "name", "-l", "infrahq.com/no-such-label=x"]).ok().stdout;
    assert!(selected.trim().is_empty(), "{selected}");
    // A kubeconfig named by an empty KUBECONFIG counts as unset (kubectl's rule), and the session
    // commands take no kubectl flags.
    let home = std::env::temp_dir().join(format!("infra-home-{name}"));
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    std::fs::copy(&env().kubeconfig, home.join(".kube/config")).unwrap();
    let empty = infra_with(&["providers", "list", "-o", "name"], &[("KUBECONFIG", ""), ("HOME", home.to_str().unwrap())], None).ok().stdout;
    assert!(empty.contains(&name), "{empty}");
    let _ = std::fs::remove_dir_all(&home);
    assert_ne!(infra(&["whoami", "--context", "x"]).status, 0);

    // remove deletes the provider and the Secret add created.
    infra(&["providers", "remove", &name]).ok();
    assert!(providers().await.get_opt(&name).await.unwrap().is_none());
    let secret = kubectl(&["get", "secret", &format!("{name}-client-secret"), "-n", &env().namespace]);
    assert_ne!(secret.status, 0, "the client secret Secret was left behind");
}

#[tokio::test]
async fn a_wrong_secret_fails_client_credentials_and_edit_fixes_it() {
    let name = unique("wrong");
    let url = idp_domain_and_path();
    let run = infra_with(
        &["providers", "add", &name, "--url", &url, "--client-id", CLIENT_ID, "--client-secret-stdin", "--timeout", "60s"],
        &[],
        Some("not-the-secret\n"),
    );
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("ClientCredentialsValid") && run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-secret"));
    let (status, reason, message) = settled_condition(&name, "ClientCredentialsValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidClient"), "{message}");
    let (ready, ..) = settled_condition(&name, "Ready").await;
    assert_eq!(ready, "False");

    infra_with(&["providers", "edit", &name, "--client-secret-env", "S"], &[("S", CLIENT_SECRET)], None).ok();
    let (status, ..) = settled_condition(&name, "Ready").await;
    assert_eq!(status, "True");
    infra(&["providers", "remove", &name]).ok();
}

#[tokio::test]
async fn an_unreachable_url_fails_discovery() {
    let name = unique("unreach");
    let run = infra(&[
        "providers",
        "add",
        &name,
        "--url",
        "https://127.0.0.1:9/oauth2/default",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--kind",
        "oidc",
        "--timeout",
        "60s",
    ]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("DiscoverySucceeded (Unreachable)"), "{}", run.stderr);
    let (status, reason, _) = settled_condition(&name, "DiscoverySucceeded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"));
    let (_, creds_reason, _) = {
        let idp = providers().await.get(&name).await.unwrap();
        let c = idp.status.unwrap().conditions.into_iter().find(|c| c.type_ == "ClientCredentialsValid").unwrap();
        (c.status, c.reason, c.message)
    };
    assert_eq!(creds_reason, "DiscoveryFailed");
    infra(&["providers", "remove", &name]).ok();
}

#[tokio::test]
async fn an_issuer_mismatch_fails_discovery() {
    // The stand-in serves the same document on 127.0.0.1, but its issuer says localhost.
    let name = unique("mismatch");
    let url = env().idp_url.replace("localhost", "127.0.0.1");
    let run = infra(&[
        "providers",
        "add",
        &name,
        "--url",
        &url,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--kind",
        "oidc",
        "--timeout",
        "60s",
    ]);
    assert_ne!(run.status, 0);
    let (status, reason, message) = settled_condition(&name, "DiscoverySucceeded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "IssuerMismatch"));
    assert!(message.contains(&env().idp_url), "{message}");
    infra(&["providers", "remove", &name]).ok();
}

#[tokio::test]
async fn a_missing_secret_created_later_makes_the_provider_ready_without_touching_it() {
    let name = unique("gitops");
    let manifest = format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: {}\n  clientID: {CLIENT_ID}\n  clientSecretRef:\n    name: {name}-secret\n",
        idp_domain_and_path()
    );
    kubectl_apply(&manifest).ok();
    let (status, reason, message) = settled_condition(&name, "SecretValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretNotFound"));
    assert!(message.contains(&format!("{name}-secret")) && message.contains("clientSecret"), "{message}");
    let generation = providers().await.get(&name).await.unwrap().metadata.generation;

    // A Secret with the wrong key first: the message names the key that is missing.
    kubectl_apply(&client_secret_manifest(&format!("{name}-secret"), CLIENT_SECRET).replace("clientSecret:", "secret:")).ok();
    wait_condition(&name, "SecretValid", "SecretKeyMissing", |c| c.reason == "SecretKeyMissing").await;

    kubectl_apply(&client_secret_manifest(&format!("{name}-secret"), CLIENT_SECRET)).ok();
    wait_condition(&name, "Ready", "Ready after the Secret was fixed", |c| c.status == "True").await;
    let after = providers().await.get(&name).await.unwrap();
    assert_eq!(after.metadata.generation, generation, "the operator changed the spec");

    // Events recorded the transitions, without the secret.
    let events =
        kubectl(&["get", "events", "-n", &env().namespace, "--field-selector", &format!("involvedObject.name={name}"), "-o", "json"])
            .ok()
            .stdout;
    assert!(events.contains("SecretNotFound"), "no SecretNotFound event");
    assert!(!events.contains(CLIENT_SECRET));
    kubectl(&["delete", "identityprovider", &name, "-n", &env().namespace]).ok();
    kubectl(&["delete", "secret", &format!("{name}-secret"), "-n", &env().namespace]).ok();
}

/// The confused deputy: a person who may manage providers but not read Secrets points a provider
/// at Secrets that were not made for it. Nothing is read from them and nothing is sent anywhere
/// (the stand-in IdP would accept the secret, so a sent one would show as `Accepted`).
#[tokio::test]
async fn a_provider_cannot_read_secrets_that_were_not_made_for_it() {
    let ns = &env().namespace;
    let mallory = unique("mallory");
    kubectl(&["create", "rolebinding", &mallory, "--clusterrole=infra-admin", &format!("--user={mallory}"), "-n", ns]).ok();
    let victim = unique("victim");
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {victim}\ntype: infrahq.com/session\nstringData:\n  clientSecret: {CLIENT_SECRET}\n  refreshToken: rt-not-for-you\n"
    ))
    .ok();
    assert_ne!(kubectl(&["get", "secret", &victim, "-n", ns, "--as", &mallory]).status, 0, "mallory may read Secrets");

    let provider = |name: &str, secret: &str| {
        format!(
            "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: {}\n  clientID: {CLIENT_ID}\n  clientSecretRef:\n    name: {secret}\n",
            idp_domain_and_path()
        )
    };
    // A Secret of another type (a session's, here).
    let deputy = unique("deputy");
    kubectl_apply_as(Some(&mallory), &provider(&deputy, &victim)).ok();
    let (status, reason, message) = settled_condition(&deputy, "SecretValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretWrongType"), "{message}");
    assert!(message.contains(infra::api::CLIENT_SECRET_TYPE) && message.contains("kubectl"), "{message}");
    assert!(!message.contains("refreshToken") && !message.contains(CLIENT_SECRET), "{message}");
    assert_eq!(
        condition_reason(&deputy, "ClientCredentialsValid").await,
        "SecretInvalid",
        "the Secret's value was sent to the token endpoint"
    );

    // The sample provider's own client secret: right type, but labelled for `okta`.
    let borrower = unique("borrower");
    kubectl_apply_as(Some(&mallory), &provider(&borrower, "okta-client-secret")).ok();
    let (status, reason, message) = settled_condition(&borrower, "SecretValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretForOtherProvider"), "{message}");
    assert_eq!(condition_reason(&borrower, "ClientCredentialsValid").await, "SecretInvalid");

    for name in [&deputy, &borrower] {
        kubectl(&["delete", "identityprovider", name, "-n", ns]).ok();
    }
    kubectl(&["delete", "secret", &victim, "-n", ns]).ok();
    kubectl(&["delete", "rolebinding", &mallory, "-n", ns]).ok();
}

/// The reason of condition `type_` as the last reconcile wrote it (Unknown conditions included;
/// call it after a settled condition of the same reconcile).
async fn condition_reason(name: &str, type_: &str) -> String {
    let idp = providers().await.get(name).await.unwrap();
    let status = idp.status.unwrap();
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.clone()).unwrap_or_default()
}

/// Secrets that `infra providers add` created before the type check are `Opaque`: the provider
/// says exactly how to fix it, and `infra providers edit --client-secret…` recreates the Secret
/// with the required type.
#[tokio::test]
async fn an_opaque_secret_from_an_earlier_version_is_explained_and_migrated_by_edit() {
    let name = unique("legacy");
    let secret = format!("{name}-client-secret");
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  labels:\n    app.kubernetes.io/managed-by: infra-cli\n    infrahq.com/provider: {name}\ntype: Opaque\nstringData:\n  clientSecret: {CLIENT_SECRET}\n"
    ))
    .ok();
    kubectl_apply(&format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: {}\n  clientID: {CLIENT_ID}\n  clientSecretRef:\n    name: {secret}\n",
        idp_domain_and_path()
    ))
    .ok();
    let (status, reason, message) = settled_condition(&name, "SecretValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretWrongType"), "{message}");
    assert!(message.contains(&format!("infra providers edit {name}")), "{message}");

    infra_with(&["providers", "edit", &name, "--client-secret-stdin"], &[], Some(CLIENT_SECRET)).ok();
    let migrated =
        kubectl(&["get", "secret", &secret, "-n", &env().namespace, "-o", "jsonpath={.type} {.metadata.labels.infrahq\\.com/provider}"])
            .ok();
    assert_eq!(migrated.stdout.trim(), format!("{} {name}", infra::api::CLIENT_SECRET_TYPE));
    wait_condition(&name, "Ready", "Ready after the migration", |c| c.status == "True").await;
    kubectl(&["delete", "identityprovider", &name, "-n", &env().namespace]).ok();
    kubectl(&["delete", "secret", &secret, "-n", &env().namespace, "--ignore-not-found"]).ok();
}

#[tokio::test]
async fn bad_cli_input_gets_a_precise_error_and_creates_nothing() {
    let name = unique("bad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["providers", "add", &name, "--url", "example.okta.com/foo", "--client-id", "x", "--client-secret", "y"], "--url"),
        (vec!["providers", "add", &name, "--url", "http://example.okta.com", "--client-id", "x", "--client-secret", "y"], "https"),
        (
            vec!["providers", "add", "Bad_Name", "--url", "example.okta.com", "--client-id", "x", "--client-secret", "y"],
            "invalid provider name",
        ),
        (vec!["providers", "add", &name, "--url", "example.okta.com", "--client-id", "x"], "client secret is required"),
        (vec!["providers", "add", &name, "--url", "example.okta.com", "--client-id", " ", "--client-secret", "y"], "--client-id is empty"),
        (
            vec!["providers", "add", &name, "--url", "example.okta.com", "--client-id", "x", "--client-secret-env", "INFRA_NO_SUCH_VAR"],
            "INFRA_NO_SUCH_VAR",
        ),
        (
            vec!["providers", "add", &name, "--url", "example.okta.com", "--client-id", "x", "--client-secret", "y", "--kind", "ldap"],
            "ldap",
        ),
        (
            vec![
                "providers",
                "add",
                &name,
                "--url",
                "example.okta.com",
                "--client-id",
                "x",
                "--client-secret",
                "y",
                "--groups-filter",
                "eng(",
            ],
            "--groups-filter",
        ),
        (vec!["providers", "remove", &name], "not found"),
        (vec!["providers", "edit", &name, "--client-id", "z"], "not found"),
    ];
    for (args, expected) in cases {
        let run = infra(&args);
        assert_ne!(run.status, 0, "{args:?} succeeded");
        assert!(run.stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{}", run.stderr);
    }
    assert!(providers().await.get_opt(&name).await.unwrap().is_none());
    assert_ne!(kubectl(&["get", "secret", &format!("{name}-client-secret"), "-n", &env().namespace]).status, 0);
}

#[tokio::test]
async fn the_api_server_enforces_the_schema() {
    let name = unique("schema");
    let run = kubectl_apply(&format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: ldap\n  url: x\n  clientID: y\n  clientSecretRef:\n    name: z\n"
    ));
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("spec.kind") && run.stderr.contains("Unsupported value"), "{}", run.stderr);
    let run = kubectl_apply(&format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: x\n  clientSecretRef:\n    name: z\n"
    ));
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("clientID") && run.stderr.contains("Required"), "{}", run.stderr);
}

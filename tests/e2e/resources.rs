//! The CRDs as installed, the samples, and the server's health endpoints.

use crate::harness::*;

#[tokio::test]
async fn kubectl_explain_reads_well() {
    let out = kubectl(&["explain", "identityprovider.spec"]).ok().stdout;
    for expected in ["clientSecretRef", "clientID", "groupsFilter", "custom authorization server"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let out = kubectl(&["explain", "scimkey.spec.providerRef"]).ok().stdout;
    assert!(out.contains("Immutable"), "{out}");
    for kind in ["user.spec", "group.spec.members"] {
        kubectl(&["explain", kind]).ok();
    }
}

#[tokio::test]
async fn printer_columns_and_short_names() {
    let out = kubectl(&["get", "idp", "okta", "-n", &env().namespace]).ok().stdout;
    let header = out.lines().next().unwrap();
    for col in ["NAME", "KIND", "ISSUER", "PHASE", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(out.contains("Ready"), "{out}");
    kubectl(&["get", "sk", "-n", &env().namespace]).ok();
    // `users` and `groups` clash with OpenShift's and Rancher's; Infra's have their own short names.
    kubectl(&["get", "iuser", "-n", &env().namespace]).ok();
    kubectl(&["get", "igroup", "-n", &env().namespace]).ok();
    // The `infra` category lists every kind.
    let all = kubectl(&["get", "infra", "-n", &env().namespace, "-o", "name"]).ok().stdout;
    for kind in ["identityprovider.infrahq.com/okta", "scimkey.infrahq.com/okta-scim"] {
        assert!(all.lines().any(|l| l == kind), "`kubectl get infra` lacks {kind}: {all}");
    }
}

#[tokio::test]
async fn applying_the_samples_again_changes_nothing() {
    // e2e/up applied them; a GitOps tool re-applies them all the time.
    let before = providers().await.get("okta").await.unwrap();
    assert_eq!(before.status.as_ref().and_then(|s| s.phase), Some(infra::api::ProviderPhase::Ready));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/samples/");
    kubectl(&["apply", "-n", &env().namespace, "-f", dir]).ok();
    let after = providers().await.get("okta").await.unwrap();
    assert_eq!(before.metadata.generation, after.metadata.generation);
    assert_eq!(before.spec, after.spec);
    // The sample ScimKey got its key.
    let key = scim_keys().await.get("okta-scim").await.unwrap();
    assert!(key.status.and_then(|s| s.secret_name).is_some());
}

#[tokio::test]
async fn server_health_and_metrics() {
    let http = http();
    for (base, metrics_base) in env().server_urls.iter().zip(&env().server_metrics_urls) {
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
        // Metrics only on the metrics address (tests/e2e/metrics.rs checks the public one has none).
        let metrics = http.get(format!("{metrics_base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("infra_http_requests_total"), "{metrics}");
    }
}

#[tokio::test]
async fn unsupported_optional_endpoints_answer_501() {
    let run = infra(&["scim-keys", "create", "--provider", "okta"]).ok();
    let key = printed_key(&run.stdout);
    for path in ["/Me", "/Bulk"] {
        let resp = http().post(format!("{}/api/scim/v2{path}", env().server_urls[0])).bearer_auth(&key).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), 501, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "501");
    }
}

#[tokio::test]
async fn unknown_scim_paths_are_404_scim_errors_after_authentication() {
    let http = http();
    let base = &env().server_urls[0];
    let resp = http.get(format!("{base}/api/scim/v2/Nope")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "unauthenticated requests learn nothing about paths");
}

/// Sum of `infra_reconciles_total` for IdentityProviders over the controller replicas.
fn provider_reconciles() -> u64 {
    let urls = std::env::var("INFRA_CONTROLLER_URLS").expect("INFRA_CONTROLLER_URLS");
    urls.split_whitespace()
        .filter_map(|u| std::process::Command::new("curl").args(["-fsS", &format!("{u}/metrics")]).output().ok())
        .flat_map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("infra_reconciles_total{") && l.contains("kind=\"IdentityProvider\""))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .collect::<Vec<_>>()
        })
        .sum::<f64>() as u64
}

#[tokio::test]
async fn reconciling_for_a_while_never_touches_the_spec() {
    // GitOps tools compare the spec they applied with the live one: the operator must only ever
    // write status, under its own field manager.
    let before = providers().await.get("okta").await.unwrap();
    let reconciles = provider_reconciles();
    // e2e/up rechecks Ready providers every 20 s; wait for rechecks to have happened.
    eventually(std::time::Duration::from_secs(60), "periodic rechecks", || async move {
        (provider_reconciles() >= reconciles + 2).then_some(())
    })
    .await;
    let after = providers().await.get("okta").await.unwrap();
    assert_eq!(before.metadata.generation, after.metadata.generation);
    assert_eq!(before.spec, after.spec);
    for entry in after.metadata.managed_fields.unwrap_or_default() {
        let manager = entry.manager.unwrap_or_default();
        let fields = serde_json::to_string(&entry.fields_v1).unwrap_or_default();
        if manager.starts_with("infra-controller") || manager.starts_with("infra-server") {
            assert_eq!(entry.subresource.as_deref(), Some("status"), "{manager} wrote outside status: {fields}");
            assert!(!fields.contains("f:spec"), "{manager} owns spec fields: {fields}");
        }
    }
}

#[tokio::test]
async fn public_provider_info_lists_ready_providers_without_secrets() {
    for base in &env().server_urls {
        let resp = http().get(format!("{base}/api/providers")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(!text.contains("infra-e2e-secret") && !text.contains("client-secret"), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        let okta = body["items"].as_array().unwrap().iter().find(|p| p["name"] == "okta").expect("the sample provider");
        assert_eq!(okta["clientID"], "infra-e2e");
        assert_eq!(okta["authorizationEndpoint"], format!("{}/v1/authorize", env().idp_url));
        assert!(okta["scopes"].as_array().unwrap().contains(&serde_json::json!("openid")));
    }
}

/// Names that become label values are refused by the API server when too long, instead of being
/// accepted and then failing to reconcile forever.
#[tokio::test]
async fn names_that_become_labels_are_at_most_63_characters() {
    let long = format!("a{}", "b".repeat(63));
    let provider = format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {long}\nspec:\n  kind: okta\n  url: example.okta.com\n  clientID: x\n  clientSecretRef:\n    name: s\n"
    );
    let key = |name: &str, provider: &str| {
        format!("apiVersion: infrahq.com/v1alpha1\nkind: ScimKey\nmetadata:\n  name: {name}\nspec:\n  providerRef:\n    name: {provider}\n")
    };
    for (manifest, expected) in [
        (provider, "metadata.name must be at most 63 characters"),
        (key(&long, "okta"), "metadata.name must be at most 63 characters"),
        (key(&unique("short"), &long), "spec.providerRef.name"),
    ] {
        let run = kubectl_apply(&manifest);
        assert_ne!(run.status, 0, "accepted:\n{manifest}");
        assert!(run.stderr.contains(expected), "expected {expected:?} in: {}", run.stderr);
    }
    // 63 is fine.
    let ok = format!("a{}", "b".repeat(62));
    kubectl_apply(&key(&ok, "okta")).ok();
    kubectl(&["delete", "scimkey", &ok, "-n", &env().namespace]).ok();
}

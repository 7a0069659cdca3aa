//! docs/gitops.md against real objects: the CRDs publish kstatus-compatible status
//! (observedGeneration and a Ready condition), and the Argo CD health check Lua, run the way Argo
//! CD runs it (gopher-lua, `e2e/argocd`), reads Ready, Degraded and Progressing objects right.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::{env, idp_domain_and_path, kubectl, kubectl_apply, unique, wait_condition};

fn repo_path(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).to_str().unwrap().to_string()
}

/// Builds e2e/argocd (gopher-lua, pinned by its go.sum) once per test run.
fn health_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = repo_path("target/e2e-argocd-health");
        let status = Command::new("go")
            .args(["build", "-mod=readonly", "-o", &out, "."])
            .current_dir(repo_path("e2e/argocd"))
            .status()
            .expect("go runs");
        assert!(status.success(), "building e2e/argocd failed");
        out
    })
}

/// The Argo CD health of each object, from the Lua in docs/gitops.md.
fn argocd_health(items: &[Value]) -> Vec<(String, String)> {
    let mut child = Command::new(health_bin())
        .arg(repo_path("docs/gitops.md"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(json!({"items": items}).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results.iter().map(|r| (r["status"].as_str().unwrap().to_string(), r["message"].as_str().unwrap().to_string())).collect()
}

fn get(kind: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl(&["get", kind, name, "-n", &env().namespace, "-o", "json"]).ok().stdout).unwrap()
}

#[test]
fn crds_publish_kstatus_status() {
    for crd in ["identityproviders.infrahq.com", "scimkeys.infrahq.com"] {
        let crd: Value = serde_json::from_str(&kubectl(&["get", "crd", crd, "-o", "json"]).ok().stdout).unwrap();
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "integer", "{crd}");
        let condition = &status["conditions"]["items"]["properties"];
        for field in ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"] {
            assert!(condition.get(field).is_some(), "{} conditions lack {field}", crd["metadata"]["name"]);
        }
    }
}

#[tokio::test]
async fn argocd_health_check_reads_ready_degraded_and_progressing() {
    // The suite's sample provider and key are Ready, with status for their current generation.
    let provider = get("identityprovider", "okta");
    let key = get("scimkey", "okta-scim");
    for object in [&provider, &key] {
        assert_eq!(object["status"]["observedGeneration"], object["metadata"]["generation"], "{object}");
    }

    // A provider whose client secret does not exist: Ready=False.
    let name = unique("argocd");
    let manifest = format!(
        "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: {}\n  clientID: argocd\n  clientSecretRef:\n    name: {name}-secret\n",
        idp_domain_and_path()
    );
    kubectl_apply(&manifest).ok();
    wait_condition(&name, "Ready", "Ready=False", |c| c.status == "False").await;
    let broken = get("identityprovider", &name);
    kubectl(&["delete", "identityprovider", &name, "-n", &env().namespace, "--wait=false"]).ok();

    // An edit the operator has not seen yet, and an object it has not written status for.
    let mut edited = provider.clone();
    edited["metadata"]["generation"] = json!(provider["metadata"]["generation"].as_i64().unwrap() + 1);
    let mut fresh = key.clone();
    fresh.as_object_mut().unwrap().remove("status");

    let health = argocd_health(&[provider, key, broken.clone(), edited, fresh]);
    assert_eq!(health[0].0, "Healthy", "{health:?}");
    assert_eq!(health[1].0, "Healthy", "{health:?}");
    assert_eq!(health[2].0, "Degraded", "{health:?}");
    let ready = broken["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert!(health[2].1.starts_with(ready["reason"].as_str().unwrap()), "the reason leads the message: {health:?}");
    assert_eq!(health[3].0, "Progressing", "{health:?}");
    assert_eq!(health[4].0, "Progressing", "{health:?}");
}

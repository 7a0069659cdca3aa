//! The Helm chart (`charts/infra`) and the kustomize config (`config/default`): lint, rendering,
//! values-schema errors, the chart's CRDs and RBAC against the top-level ones, and a real
//! `helm install`, `helm upgrade` and `helm uninstall` against the suite's API server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{env, kubectl, unique, Run};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/infra");
const EXTERNAL_URL: &str = "http://127.0.0.1:18080";

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The helm binary: `$INFRA_HELM` (what `e2e/scripts/build-helm.sh` built), else `helm` on PATH.
fn helm_bin() -> String {
    if let Ok(path) = std::env::var("INFRA_HELM") {
        assert!(Path::new(&path).is_file(), "INFRA_HELM={path} does not exist: run e2e/scripts/build-helm.sh");
        return path;
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| format!("{d}/helm"))
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| panic!("helm not found: set INFRA_HELM to the binary e2e/scripts/build-helm.sh prints"))
}

/// Runs helm with its config, cache and data directories out of the user's home, and with the
/// admin kubeconfig when `cluster` is set (lint and template never talk to a cluster).
fn helm_run(args: &[&str], cluster: bool) -> Run {
    let home = std::env::temp_dir().join("infra-e2e-helm");
    let mut cmd = Command::new(helm_bin());
    cmd.args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
    if cluster {
        cmd.env("KUBECONFIG", &env().kubeconfig);
    } else {
        cmd.env("KUBECONFIG", "/dev/null");
    }
    let out = cmd.output().expect("helm runs");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn helm(args: &[&str]) -> Run {
    helm_run(args, true)
}

/// Every document of a multi-document YAML stream, as JSON values (empty documents dropped).
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML ({e}) in:\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(rel: &str) -> Vec<Value> {
    yaml_docs(&std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

/// `helm template` of the chart with externalURL and these extra `--set` values.
fn template(sets: &[&str]) -> Run {
    let url = format!("externalURL={EXTERNAL_URL}");
    let mut args = vec!["template", "infra", CHART, "--namespace", "infra-system", "--set", &url];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm_run(&args, false)
}

fn rendered(sets: &[&str]) -> Vec<Value> {
    yaml_docs(&template(sets).ok().stdout)
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(docs)))
}

fn find_named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds(docs)))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs.iter().map(|d| d["kind"].as_str().unwrap_or_default().to_string()).collect();
    k.sort();
    k
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {deployment}"))
}

/// The plain `value` of env var `name` in a container.
fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

// ---- offline: lint, render, schema, parity ----------------------------------------------------

#[test]
fn helm_lint_is_clean() {
    let url = format!("externalURL={EXTERNAL_URL}");
    let run = helm_run(&["lint", "--strict", CHART, "--set", &url], false).ok();
    assert!(run.stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{}", run.stdout);
    for bad in ["[ERROR]", "[WARNING]"] {
        assert!(!run.stdout.contains(bad), "helm lint reported {bad}:\n{}", run.stdout);
    }
}

#[test]
fn helm_template_renders_a_hardened_operator() {
    let docs = rendered(&[]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget",
            "PodDisruptionBudget", "Role", "Role", "RoleBinding", "RoleBinding", "Service", "Service", "ServiceAccount", "ServiceAccount",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"
        ],
        "the default install: a Deployment, ServiceAccount, Role, RoleBinding and PDB per role, the Grants' ClusterRole and admission \
         policy, the API server's configuration; no Ingress, NetworkPolicy or ServiceMonitor"
    );
    let controller_deployment = find_named(&docs, "Deployment", "infra-controller");
    let server_deployment = find_named(&docs, "Deployment", "infra-server");
    let controller = container(controller_deployment, "controller");
    let server = container(server_deployment, "server");
    assert_eq!(controller["image"], server["image"], "one image for both roles");
    assert_eq!(controller["image"], "ghcr.io/infrahq/infra-operator:0.1.0", "the tag defaults to appVersion");
    assert_eq!(controller["args"], json!(["controller"]));
    assert_eq!(server["args"], json!(["server"]));
    for (role, deployment) in [("controller", controller_deployment), ("server", server_deployment)] {
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["containers"].as_array().unwrap().len(), 1, "one role per pod: {deployment}");
        // Each role runs as its own ServiceAccount, bound to its own Role.
        let sa = format!("infra-{role}");
        assert_eq!(pod["serviceAccountName"], sa.as_str());
        find_named(&docs, "ServiceAccount", &sa);
        let binding = find_named(&docs, "RoleBinding", &sa);
        assert_eq!(binding["roleRef"]["name"], find_named(&docs, "Role", &sa)["metadata"]["name"]);
        assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": sa, "namespace": "infra-system"}]));
        assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], role);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        let pdb = find_named(&docs, "PodDisruptionBudget", &sa);
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    }
    for c in [controller, server] {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{c}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{c}");
        assert!(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "{c}");
        assert!(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "{c}");
        assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(), "{c}");
        assert_eq!(env_value(c, "INFRA_EXTERNAL_URL"), Some(EXTERNAL_URL));
        assert_eq!(env_value(c, "INFRA_LOG_FORMAT"), Some("json"));
        assert_eq!(env_value(c, "INFRA_LOG"), Some("info"));
        assert_eq!(env_value(c, "INFRA_EXTRA_CA_FILE"), None, "no extra CA unless configured");
        for (var, path) in [("INFRA_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")] {
            let e = c["env"].as_array().unwrap().iter().find(|e| e["name"] == var).unwrap_or_else(|| panic!("{var} in {c}"));
            assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], path);
        }
    }
    assert_eq!(env_value(controller, "INFRA_RECHECK_INTERVAL"), Some("10m"));
    assert_eq!(env_value(controller, "INFRA_LEASE_DURATION"), Some("15"));
    assert_eq!(controller["ports"], json!([{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]));
    // The server's metrics have a port of their own (the binary's --metrics-addr default, 9090).
    assert_eq!(
        server["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );

    // The public Service reaches the server pods' http port only, never metrics.
    let service = find_named(&docs, "Service", "infra-server");
    assert_eq!(service["spec"]["selector"], server_deployment["spec"]["selector"]["matchLabels"]);
    assert_eq!(service["spec"]["ports"], json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]));
    // The metrics Service reaches both roles' metrics ports.
    let metrics = find_named(&docs, "Service", "infra-metrics");
    assert_eq!(metrics["spec"]["type"], "ClusterIP");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "metrics");
    assert!(metrics["spec"]["selector"].get("app.kubernetes.io/component").is_none(), "{metrics}");
    // Cluster-wide, the controller holds only what Grants need, bound to its own ServiceAccount.
    let cluster_bindings: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding").collect();
    assert_eq!(cluster_bindings.len(), 1, "{cluster_bindings:?}");
    assert_eq!(cluster_bindings[0]["roleRef"]["name"], "infra-controller-grants");
    assert_eq!(cluster_bindings[0]["subjects"], json!([{"kind": "ServiceAccount", "name": "infra-controller", "namespace": "infra-system"}]));
    assert_eq!(env_value(controller, "INFRA_GRANT_ALLOWED_ROLES"), Some("view,edit,admin"));
    assert_eq!(env_value(server, "INFRA_CLUSTER_NAME"), Some("kubernetes"));
}

#[test]
fn helm_template_optional_parts() {
    let docs = rendered(&[
        "replicaCount=1",
        "logFormat=text",
        "ingress.enabled=true",
        "ingress.className=nginx",
        "ingress.host=infra.example.com",
        "ingress.tls.enabled=true",
        "networkPolicy.enabled=true",
        "serviceMonitor.enabled=true",
        "extraCABundle.secretName=corp-ca",
        "extraCABundle.key=bundle.pem",
        "rbac.createUserRoles=false",
    ]);
    let k = kinds(&docs);
    for kind in ["Ingress", "NetworkPolicy", "ServiceMonitor"] {
        assert!(k.contains(&kind.to_string()), "{kind} missing from {k:?}");
    }
    assert!(!k.contains(&"PodDisruptionBudget".to_string()), "a PDB with one replica blocks every drain: {k:?}");
    let cluster_roles: Vec<&str> = docs.iter().filter(|d| d["kind"] == "ClusterRole").filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(cluster_roles, vec!["infra-controller-grants"], "rbac.createUserRoles=false leaves only the controller's: {k:?}");

    let ingress = find(&docs, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["hosts"], json!(["infra.example.com"]));
    assert_eq!(ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], "infra-server");

    let policy = find(&docs, "NetworkPolicy");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules[0]["ports"], json!([{"port": "http", "protocol": "TCP"}]));
    assert!(rules[0].get("from").is_none(), "the server is open to everyone by default: {policy}");
    assert_eq!(
        rules[1]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(rules[1]["ports"], json!([{"port": "metrics", "protocol": "TCP"}]), "metrics come from their own port only: {policy}");

    // Scraped through the metrics Service, never the public http port.
    let monitor = find(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let ports: Vec<&str> = monitor["spec"]["endpoints"].as_array().unwrap().iter().map(|e| e["port"].as_str().unwrap()).collect();
    assert_eq!(ports, ["metrics"]);
    let metrics_service = find_named(&docs, "Service", "infra-metrics");
    for (label, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&metrics_service["metadata"]["labels"][label], value, "the ServiceMonitor selects the metrics Service by {label}");
    }
    let public = find_named(&docs, "Service", "infra-server");
    assert_ne!(public["metadata"]["labels"]["app.kubernetes.io/component"], monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]);

    for name in ["controller", "server"] {
        let deployment = find_named(&docs, "Deployment", &format!("infra-{name}"));
        assert_eq!(deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"], "corp-ca");
        let c = container(deployment, name);
        assert_eq!(env_value(c, "INFRA_EXTRA_CA_FILE"), Some("/etc/infra/extra-ca/bundle.pem"), "{c}");
        assert_eq!(env_value(c, "INFRA_LOG_FORMAT"), Some("text"), "{c}");
        assert_eq!(c["volumeMounts"][0]["readOnly"], true, "{c}");
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/infra/extra-ca", "{c}");
    }
}

/// Each bad value fails `helm template` (and so `helm install`) with a message naming it.
#[test]
fn helm_rejects_bad_values_by_name() {
    for (sets, expected) in [
        (&["logFormat=xml"][..], "logFormat"),
        (&["replicaCount=0"], "replicaCount"),
        (&["image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["externalURL=infra.example.com"], "externalURL"),
        (&["externalURL=ftp://infra.example.com"], "externalURL"),
        (&["recheckInterval=soon"], "recheckInterval"),
        (&["replicas=3"], "'replicas' not allowed"),
        (&["extraCABundle.configMapName=a", "extraCABundle.secretName=b"], "not both"),
    ] {
        let run = template(sets);
        assert_ne!(run.status, 0, "{sets:?} rendered:\n{}", run.stdout);
        assert!(run.stderr.contains(expected), "{sets:?}: the error does not name {expected:?}:\n{}", run.stderr);
    }
    // No externalURL at all: `required` says what to set.
    let run = helm_run(&["template", "infra", CHART], false);
    assert_ne!(run.status, 0, "rendered without externalURL:\n{}", run.stdout);
    assert!(run.stderr.contains("externalURL is required"), "{}", run.stderr);
}

#[test]
fn helm_chart_crds_equal_the_generated_ones() {
    let yaml_names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        names.sort();
        names
    };
    let top = repo_path("crds");
    let chart = Path::new(CHART).join("crds");
    let names = yaml_names(&top);
    assert!(!names.is_empty());
    assert_eq!(yaml_names(&chart), names, "charts/infra/crds/ must hold exactly the CRDs of crds/");
    for name in &names {
        let a = std::fs::read(top.join(name)).unwrap();
        let b = std::fs::read(chart.join(name)).unwrap();
        assert!(a == b, "charts/infra/crds/{name} differs from crds/{name}: copy it again (cp crds/*.infrahq.com.yaml charts/infra/crds/)");
    }
    // Helm installs every file in crds/ as is: no other files may be there.
    let all: Vec<String> = std::fs::read_dir(&chart).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(all.len(), names.len(), "unexpected files in charts/infra/crds: {all:?}");
}

#[test]
fn helm_chart_rbac_equals_config_rbac() {
    let docs = rendered(&[]);
    let roles = yaml_file("config/rbac/role.yaml");
    assert_eq!(roles.len(), 2, "config/rbac/role.yaml holds the controller's and the server's Role");
    for role in &roles {
        let name = role["metadata"]["name"].as_str().unwrap();
        assert_eq!(find_named(&docs, "Role", name)["rules"], role["rules"], "the chart's Role {name} must grant exactly config/rbac/role.yaml's");
    }
    let grants = yaml_file("config/rbac/grants_role.yaml");
    assert_eq!(find_named(&docs, "ClusterRole", "infra-controller-grants")["rules"], grants[0]["rules"], "config/rbac/grants_role.yaml");
    let policy = yaml_file("config/admission/grant_policy.yaml");
    assert_eq!(find(&docs, "ValidatingAdmissionPolicy")["spec"], policy[0]["spec"], "config/admission/grant_policy.yaml");
    for want in yaml_file("config/rbac/user_roles.yaml") {
        let suffix = want["metadata"]["name"].as_str().unwrap().trim_start_matches("infra");
        let got = docs
            .iter()
            .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no ClusterRole *{suffix} in the chart"));
        assert_eq!(got["rules"], want["rules"], "ClusterRole {suffix}");
        for (label, value) in want["metadata"]["labels"].as_object().unwrap() {
            if label.starts_with("rbac.authorization.k8s.io/aggregate-to-") {
                assert_eq!(&got["metadata"]["labels"][label], value, "ClusterRole {suffix} label {label}");
            }
        }
    }
}

// ---- against the API server -------------------------------------------------------------------

/// A release in a namespace of its own, uninstalled (and the namespace deleted) on drop, so a
/// failed test leaves nothing behind.
struct Release {
    name: String,
    namespace: String,
}

impl Release {
    fn new() -> Self {
        Self { name: unique("infra"), namespace: unique("helm") }
    }

    /// The name of a role's Deployment, ServiceAccount, Role, RoleBinding and PDB.
    fn role(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend(args);
        kubectl(&all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all).ok().stdout).unwrap()
    }

    fn can_i(&self, role: &str, args: &[&str]) -> bool {
        let sa = format!("system:serviceaccount:{}:{}", self.namespace, self.role(role));
        let mut all = vec!["auth", "can-i", "--as", sa.as_str()];
        all.extend(args);
        let run = kubectl(&all);
        match run.stdout.trim() {
            "yes" => true,
            "no" => false,
            other => panic!("kubectl auth can-i {args:?}: {other:?} {}", run.stderr),
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.name, "-n", &self.namespace, "--ignore-not-found"]);
        let _ = kubectl(&["delete", "namespace", &self.namespace, "--ignore-not-found", "--wait=false"]);
    }
}

fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn helm_install_upgrade_uninstall() {
    let r = Release::new();
    let url = format!("externalURL={EXTERNAL_URL}");
    let (controller, server) = (r.role("controller"), r.role("server"));

    // Install. The chart's CRDs already exist in the suite's cluster, so helm skips them. Pods
    // stay Pending (there is no kubelet), so no --wait: the release is deployed once the API
    // server accepted every object.
    let run = helm(&["install", &r.name, CHART, "-n", &r.namespace, "--create-namespace", "--set", &url]).ok();
    for next_step in [
        "infra providers add okta",
        "--client-secret-env",
        "http://localhost:8301",
        "http://127.0.0.1:18080/login/callback",
        "http://127.0.0.1:18080/api/scim/v2",
    ] {
        assert!(run.stdout.contains(next_step), "NOTES lack {next_step:?}:\n{}", run.stdout);
    }
    let status: Value = serde_json::from_str(&helm(&["status", &r.name, "-n", &r.namespace, "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["version"], 1);

    for name in [&controller, &server] {
        for kind in ["deployment", "serviceaccount", "role", "rolebinding", "poddisruptionbudget"] {
            r.kubectl(&["get", kind, name]).ok();
        }
    }
    r.kubectl(&["get", "service", &server]).ok();
    r.kubectl(&["get", "service", &r.role("metrics")]).ok();
    for suffix in ["admin", "viewer"] {
        kubectl(&["get", "clusterrole", &format!("{}-{suffix}", r.name)]).ok();
    }
    for name in [&controller, &server] {
        assert_eq!(r.json(&["get", "deployment", name])["spec"]["replicas"], 2);
    }

    // The installed RBAC, per role, as `kubectl auth can-i` answers for each ServiceAccount
    // (tests/e2e/rbac.rs checks every verb of the suite's own release and config/rbac).
    let ns = r.namespace.as_str();
    for (role, verb_resource, allowed) in [
        ("controller", &["patch", "identityproviders.infrahq.com", "--subresource=status"][..], true),
        ("controller", &["patch", "leases.coordination.k8s.io/infra-controller"], true),
        ("controller", &["create", "events.events.k8s.io"], true),
        ("controller", &["create", "users.infrahq.com"], false),
        ("server", &["create", "users.infrahq.com"], true),
        ("server", &["create", "secrets"], true),
        ("server", &["patch", "identityproviders.infrahq.com"], false),
        ("server", &["update", "leases.coordination.k8s.io"], false),
        ("server", &["create", "scimkeys.infrahq.com"], false),
    ] {
        let mut args = verb_resource.to_vec();
        args.extend(["-n", ns]);
        assert_eq!(r.can_i(role, &args), allowed, "{role} may {verb_resource:?}: expected {allowed}");
    }
    for role in ["controller", "server"] {
        for outside in [&["list", "secrets", "-n", "default"][..], &["list", "secrets", "--all-namespaces"], &["create", "clusterroles"]] {
            assert!(!r.can_i(role, outside), "the {role} may {outside:?}");
        }
    }

    // A mistake fails at upgrade time and leaves the release as it was.
    let bad = helm(&["upgrade", &r.name, CHART, "-n", &r.namespace, "--set", &url, "--set", "logFormat=xml"]);
    assert_ne!(bad.status, 0, "upgrade with logFormat=xml succeeded:\n{}", bad.stdout);
    assert!(bad.stderr.contains("logFormat"), "{}", bad.stderr);

    // Upgrade with changed values.
    helm(&["upgrade", &r.name, CHART, "-n", &r.namespace, "--set", &url, "--set", "replicaCount=3", "--set", "logFormat=text", "--set", "logLevel=debug"]).ok();
    let status: Value = serde_json::from_str(&helm(&["status", &r.name, "-n", &r.namespace, "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["version"], 2);
    for name in ["controller", "server"] {
        let deployment = r.json(&["get", "deployment", &r.role(name)]);
        assert_eq!(deployment["spec"]["replicas"], 3);
        let c = container(&deployment, name);
        assert_eq!(env_value(c, "INFRA_LOG_FORMAT"), Some("text"), "{c}");
        assert_eq!(env_value(c, "INFRA_LOG"), Some("debug"), "{c}");
    }

    // Uninstall removes everything the release created, the cluster-scoped roles included.
    helm(&["uninstall", &r.name, "-n", &r.namespace]).ok();
    wait_until(Duration::from_secs(30), "the release's objects to be deleted", || {
        let left = r.kubectl(&["get", "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget", "-l", &format!("app.kubernetes.io/instance={}", r.name), "-o", "name"]).ok().stdout;
        left.trim().is_empty()
    });
    for suffix in ["admin", "viewer"] {
        let run = kubectl(&["get", "clusterrole", &format!("{}-{suffix}", r.name)]);
        assert_ne!(run.status, 0, "ClusterRole {}-{suffix} survived the uninstall", r.name);
    }
    let releases = helm(&["list", "-n", &r.namespace, "-q"]).ok().stdout;
    assert!(releases.trim().is_empty(), "releases left: {releases}");
    kubectl(&["delete", "namespace", &r.namespace, "--wait=false"]).ok();
}

#[test]
fn kustomize_default_applies_with_server_dry_run() {
    let dir = repo_path("config/default");
    let run = kubectl(&["apply", "-k", dir.to_str().unwrap(), "--dry-run=server"]).ok();
    for object in [
        "namespace/infra-system",
        "customresourcedefinition.apiextensions.k8s.io/identityproviders.infrahq.com",
        "serviceaccount/infra-controller",
        "serviceaccount/infra-server",
        "role.rbac.authorization.k8s.io/infra-controller",
        "role.rbac.authorization.k8s.io/infra-server",
        "rolebinding.rbac.authorization.k8s.io/infra-controller",
        "rolebinding.rbac.authorization.k8s.io/infra-server",
        "service/infra-server",
        "deployment.apps/infra-controller",
        "deployment.apps/infra-server",
    ] {
        assert!(run.stdout.contains(object), "{object} missing from:\n{}", run.stdout);
    }
    assert!(run.stdout.lines().all(|l| l.ends_with("(server dry run)")), "{}", run.stdout);
}

#[test]
fn helm_renders_the_api_servers_configuration_as_the_cli_prints_it() {
    let docs = rendered(&["kubernetes.clusterName=prod", "kubernetes.issuerURL=https://issuer.example.com", "kubernetes.issuerCA=PEM"]);
    let map = find_named(&docs, "ConfigMap", "infra-apiserver-config");
    let chart: Value = serde_norway::from_str(map["data"]["authentication-config.yaml"].as_str().unwrap()).unwrap();
    let ca = std::env::temp_dir().join(format!("{}.pem", crate::harness::unique("issuer-ca")));
    std::fs::write(&ca, "PEM").unwrap();
    let cli = crate::harness::infra(&[
        "kube", "apiserver-config", "--issuer-url", "https://issuer.example.com", "--audience", "prod", "--issuer-ca-file", ca.to_str().unwrap(),
    ])
    .ok();
    let _ = std::fs::remove_file(&ca);
    let printed: Value = serde_norway::from_str(&cli.stdout).unwrap();
    assert_eq!(chart, printed, "the chart's AuthenticationConfiguration drifted from `infra kube apiserver-config`");
}

//! The Helm chart (`charts/infra`) and the kustomize config (`config/default`): lint, rendering,
//! values-schema errors, the chart's CRDs and RBAC against the top-level ones, and a real
//! `helm install`, `helm upgrade` and `helm uninstall` against the suite's API server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Run, env, http, kubectl, unique};

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
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("invalid YAML ({e}) in:\n{text}"))
        .into_iter()
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
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(docs)))
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

/// Splits rendered documents into the CRDs, the hooks (`helm test` Pods) and the rest.
fn split_crds_and_hooks(docs: Vec<Value>) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let (crds, rest): (Vec<Value>, Vec<Value>) = docs.into_iter().partition(|d| d["kind"] == "CustomResourceDefinition");
    let (hooks, rest) = rest.into_iter().partition(|d| d["metadata"]["annotations"]["helm.sh/hook"].is_string());
    (crds, hooks, rest)
}

/// The names of the CRD files `infra-operator crds` wrote into crds/.
fn generated_crd_names() -> Vec<String> {
    infra::api::crds().into_iter().map(|crd| crd.metadata.name.unwrap()).collect()
}

#[test]
fn helm_template_renders_a_hardened_operator() {
    let (crds, hooks, docs) = split_crds_and_hooks(rendered(&[]));
    let mut crd_names: Vec<String> = crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap().to_string()).collect();
    let mut want = generated_crd_names();
    crd_names.sort();
    want.sort();
    assert_eq!(crd_names, want, "the chart installs every CRD by default");
    assert_eq!(kinds(&hooks), ["Pod"], "the only hook is the helm test Pod");
    assert_eq!(hooks[0]["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ],
        "the default install: a Deployment, ServiceAccount, Role, RoleBinding and PDB per role, the Grants' ClusterRole and admission \
         policy, the dashboard's ClusterRole, the API server's configuration, the login broker's Service and NetworkPolicy; no Ingress or ServiceMonitor"
    );
    let controller_deployment = find_named(&docs, "Deployment", "infra-controller");
    let server_deployment = find_named(&docs, "Deployment", "infra-server");
    let controller = container(controller_deployment, "controller");
    let server = container(server_deployment, "server");
    assert_eq!(controller["image"], server["image"], "one image for both roles");
    // The login broker: the server redeems login codes at the controllers' Service, which only the
    // server pods may reach and only the server's ServiceAccount may call.
    assert_eq!(env_value(server, "INFRA_BROKER_URLS"), Some("http://infra-broker.infra-system.svc:8082"), "{server}");
    assert_eq!(env_value(controller, "INFRA_BROKER_CLIENTS"), Some("infra-server"), "{controller}");
    let broker = find_named(&docs, "Service", "infra-broker");
    assert_eq!(broker["spec"]["selector"]["app.kubernetes.io/component"], "controller");
    assert_eq!(broker["spec"]["ports"][0]["port"], 8082);
    let policy = find_named(&docs, "NetworkPolicy", "infra-broker");
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], "controller");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules[0]["ports"], json!([{"port": "broker", "protocol": "TCP"}]));
    assert_eq!(
        rules[0]["from"],
        json!([{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "infra", "app.kubernetes.io/instance": "infra", "app.kubernetes.io/component": "server"}}}])
    );
    assert_eq!(rules[1]["ports"], json!([{"port": "metrics", "protocol": "TCP"}]), "{policy}");
    assert_eq!(rules.len(), 2, "nothing else reaches the controllers: {policy}");
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
    assert_eq!(
        controller["ports"],
        json!([{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}, {"name": "broker", "containerPort": 8082, "protocol": "TCP"}])
    );
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
    // Cluster-wide, the controller holds only what Grants need and the server only what the
    // dashboard needs, each bound to its own ServiceAccount.
    let cluster_bindings: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding").collect();
    assert_eq!(cluster_bindings.len(), 2, "{cluster_bindings:?}");
    let binding =
        |role: &str| *cluster_bindings.iter().find(|b| b["roleRef"]["name"] == role).unwrap_or_else(|| panic!("no binding of {role}"));
    assert_eq!(
        binding("infra-controller-grants")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "infra-controller", "namespace": "infra-system"}])
    );
    assert_eq!(
        binding("infra-server-dashboard")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "infra-server", "namespace": "infra-system"}])
    );
    assert_eq!(env_value(controller, "INFRA_GRANT_ALLOWED_ROLES"), Some("view,edit,admin"));
    assert_eq!(env_value(server, "INFRA_CLUSTER_NAME"), Some("kubernetes"));
}

/// `rbac.admins`: one RoleBinding of `admin` in the release namespace, subjects named as Infra's
/// tokens name them.
#[test]
fn helm_admins_value_becomes_a_binding() {
    let docs = rendered(&[
        "rbac.admins[0].provider=okta",
        "rbac.admins[0].user=Kate@Example.com",
        "rbac.admins[1].provider=okta",
        "rbac.admins[1].group=Infra Admins",
    ]);
    let binding = find_named(&docs, "RoleBinding", "infra-admins");
    assert_eq!(binding["roleRef"]["name"], "admin");
    assert_eq!(
        binding["subjects"],
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "infra:okta:kate@example.com"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "infra:okta:Infra Admins"},
        ])
    );
    assert!(!rendered(&[]).iter().any(|d| d["metadata"]["name"] == "infra-admins"), "no admins named, no binding");
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
    let cluster_roles: Vec<&str> =
        docs.iter().filter(|d| d["kind"] == "ClusterRole").filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(
        cluster_roles,
        vec!["infra-server-dashboard", "infra-controller-grants"],
        "rbac.createUserRoles=false leaves only the roles' own: {k:?}"
    );

    let ingress = find(&docs, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["hosts"], json!(["infra.example.com"]));
    assert_eq!(ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], "infra-server");

    let policy = find(&docs, "NetworkPolicy");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules[0]["ports"], json!([{"port": "http", "protocol": "TCP"}]));
    assert!(rules[0].get("from").is_none(), "the server is open to everyone by default: {policy}");
    assert_eq!(rules[1]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "monitoring");
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
    assert_ne!(
        public["metadata"]["labels"]["app.kubernetes.io/component"],
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
    );

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

/// The chart renders exactly the CRDs of crds/ (tests/crds.rs checks both against the Rust types),
/// with the release's labels and the keep policy; Helm's own crds/ folder, which `helm upgrade`
/// never applies, is gone.
#[test]
fn helm_chart_crds_are_the_generated_ones() {
    assert!(
        !Path::new(CHART).join("crds").exists(),
        "charts/infra/crds/ is installed once and never upgraded by Helm: CRDs belong in templates/crds/"
    );
    let (crds, _, _) = split_crds_and_hooks(rendered(&[]));
    let names = generated_crd_names();
    assert_eq!(crds.len(), names.len());
    for name in &names {
        let want = &yaml_file(&format!("crds/{name}.yaml"))[0];
        let got = find_named(&crds, "CustomResourceDefinition", name);
        assert_eq!(got["spec"], want["spec"], "the chart's {name} differs from crds/{name}.yaml");
        assert_eq!(got["apiVersion"], want["apiVersion"]);
        assert_eq!(got["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "{name}: kept on uninstall by default");
        assert_eq!(got["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(got["metadata"]["labels"]["app.kubernetes.io/instance"], "infra");
    }
    let (crds, _, _) = split_crds_and_hooks(rendered(&["crds.keep=false"]));
    assert_eq!(crds.len(), names.len());
    assert!(crds.iter().all(|c| c["metadata"].get("annotations").is_none()), "crds.keep=false: no keep policy");
    let (crds, _, rest) = split_crds_and_hooks(rendered(&["crds.enabled=false"]));
    assert!(crds.is_empty(), "crds.enabled=false rendered CRDs");
    assert!(rest.iter().any(|d| d["kind"] == "Deployment"), "crds.enabled=false still installs the operator");
}

/// The values platform teams set: a pinned digest, OpenShift's restricted SCC (no fixed UID),
/// ServiceAccounts made elsewhere or annotated per role (workload identity), priority, spreading,
/// extra env and volumes.
#[test]
fn helm_template_platform_values() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let docs = rendered(&[
        &format!("image.digest={digest}"),
        "image.tag=1.2.3",
        "podSecurityContext.runAsUser=null",
        "podSecurityContext.runAsGroup=null",
        "securityContext.readOnlyRootFilesystem=false",
        "serviceAccount.server.create=false",
        "serviceAccount.server.name=platform-server",
        "serviceAccount.controller.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/infra",
        "serviceAccount.annotations.team=identity",
        "priorityClassName=system-cluster-critical",
        "topologySpreadConstraints[0].maxSkew=1",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        "extraEnv[0].name=HTTPS_PROXY",
        "extraEnv[0].value=http://proxy:3128",
        "extraVolumes[0].name=scratch",
        "extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=scratch",
        "extraVolumeMounts[0].mountPath=/scratch",
    ]);
    for role in ["controller", "server"] {
        let deployment = find_named(&docs, "Deployment", &format!("infra-{role}"));
        let pod = &deployment["spec"]["template"]["spec"];
        let c = container(deployment, role);
        assert_eq!(c["image"], format!("ghcr.io/infrahq/infra-operator:1.2.3@{digest}"));
        // OpenShift assigns the UID; everything else stays hardened.
        assert!(pod["securityContext"].get("runAsUser").is_none() && pod["securityContext"].get("runAsGroup").is_none(), "{pod}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]), "{c}");
        assert_eq!(pod["priorityClassName"], "system-cluster-critical");
        assert_eq!(
            pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
            "a constraint without a labelSelector spreads this role's pods"
        );
        assert_eq!(env_value(c, "HTTPS_PROXY"), Some("http://proxy:3128"));
        assert_eq!(pod["volumes"], json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}]));
        assert_eq!(c["volumeMounts"], json!([{"name": "scratch", "mountPath": "/scratch"}]));
    }
    let server = &find_named(&docs, "Deployment", "infra-server")["spec"]["template"]["spec"];
    assert_eq!(server["serviceAccountName"], "platform-server");
    assert_eq!(
        find_named(&docs, "RoleBinding", "infra-server")["subjects"][0]["name"],
        "platform-server",
        "the Role is bound to the given ServiceAccount"
    );
    assert!(
        !docs.iter().any(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] != "infra-controller"),
        "serviceAccount.server.create=false made one"
    );
    let sa = find_named(&docs, "ServiceAccount", "infra-controller");
    assert_eq!(sa["metadata"]["annotations"], json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/infra", "team": "identity"}));

    // A bad digest names itself.
    let run = template(&["image.digest=latest"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("digest"), "{}", run.stderr);
}

/// Artifact Hub's annotations list every CRD the chart installs, examples that are the samples
/// in config/samples, and the image the chart runs by default.
#[test]
fn helm_chart_metadata_for_artifact_hub() {
    let chart = &yaml_file("charts/infra/Chart.yaml")[0];
    for field in ["home", "icon", "kubeVersion"] {
        assert!(chart[field].as_str().is_some_and(|v| !v.is_empty()), "Chart.yaml lacks {field}");
    }
    assert!(chart["sources"].as_array().is_some_and(|s| !s.is_empty()) && chart["maintainers"].as_array().is_some_and(|m| !m.is_empty()));
    let annotation =
        |key: &str| yaml_docs(chart["annotations"][key].as_str().unwrap_or_else(|| panic!("Chart.yaml lacks {key}")))[0].clone();
    let mut listed: Vec<String> =
        annotation("artifacthub.io/crds").as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    let mut want = generated_crd_names();
    listed.sort();
    want.sort();
    assert_eq!(listed, want, "artifacthub.io/crds must list every CRD");
    for crd in infra::api::crds() {
        let listed = annotation("artifacthub.io/crds")
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == crd.metadata.name.clone().unwrap())
            .unwrap()
            .clone();
        assert_eq!(listed["kind"], crd.spec.names.kind.as_str());
        assert_eq!(listed["version"], crd.spec.versions[0].name.as_str());
    }
    let samples: Vec<Value> = ["config/samples/okta-identityprovider.yaml", "config/samples/okta-scimkey.yaml"]
        .iter()
        .flat_map(|f| yaml_file(f))
        .filter(|d| d["apiVersion"].as_str().unwrap().starts_with("infrahq.com/"))
        .collect();
    assert_eq!(annotation("artifacthub.io/crdsExamples"), json!(samples), "artifacthub.io/crdsExamples must be config/samples' objects");
    let image = format!("ghcr.io/infrahq/infra-operator:{}", chart["appVersion"].as_str().unwrap());
    assert_eq!(annotation("artifacthub.io/images")[0]["image"], image.as_str());
    assert_eq!(chart["annotations"]["artifacthub.io/operator"], "true");
    assert_eq!(chart["annotations"]["artifacthub.io/license"], "Apache-2.0");
}

/// The values table in charts/infra/README.md is what helm-docs makes of values.yaml.
#[test]
fn helm_readme_values_table_is_current() {
    let out = Command::new(repo_path("build/chart-readme.sh")).arg("--check").output().expect("build/chart-readme.sh runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn helm_chart_rbac_equals_config_rbac() {
    let docs = rendered(&[]);
    let roles = yaml_file("config/rbac/role.yaml");
    assert_eq!(roles.len(), 2, "config/rbac/role.yaml holds the controller's and the server's Role");
    for role in &roles {
        let name = role["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            find_named(&docs, "Role", name)["rules"],
            role["rules"],
            "the chart's Role {name} must grant exactly config/rbac/role.yaml's"
        );
    }
    let grants = yaml_file("config/rbac/grants_role.yaml");
    assert_eq!(find_named(&docs, "ClusterRole", "infra-controller-grants")["rules"], grants[0]["rules"], "config/rbac/grants_role.yaml");
    let dashboard = yaml_file("config/rbac/dashboard_role.yaml");
    assert_eq!(
        find_named(&docs, "ClusterRole", "infra-server-dashboard")["rules"],
        dashboard[0]["rules"],
        "config/rbac/dashboard_role.yaml"
    );
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

    // Install. The suite's cluster has the CRDs already, applied from crds/ and used by every
    // other test, so this release leaves them alone (crds.enabled=false; the CRD tests below use
    // CRDs of their own). Pods stay Pending (there is no kubelet), so no --wait: the release is
    // deployed once the API server accepted every object.
    let url = format!("{url},crds.enabled=false");
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
        // Create only (the dashboard's new client secrets): a create answers with what was sent.
        ("server", &["create", "secrets"], true),
        ("server", &["list", "secrets"], false),
        ("server", &["get", "secrets/okta-client-secret"], false),
        ("server", &["patch", "secrets/okta-client-secret"], false),
        ("server", &["get", "secrets/infra-login-state-key"], true),
        ("server", &["create", "sessions.infrahq.com"], true),
        ("controller", &["create", "tokenreviews.authentication.k8s.io"], true),
        // The dashboard's writes, after a SubjectAccessReview allowed them to the person.
        ("server", &["patch", "identityproviders.infrahq.com"], true),
        ("server", &["create", "scimkeys.infrahq.com"], true),
        ("server", &["create", "subjectaccessreviews.authorization.k8s.io"], true),
        ("server", &["patch", "identityproviders.infrahq.com", "--subresource=status"], false),
        ("server", &["update", "leases.coordination.k8s.io"], false),
        ("server", &["patch", "scimkeys.infrahq.com"], false),
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
    helm(&[
        "upgrade",
        &r.name,
        CHART,
        "-n",
        &r.namespace,
        "--set",
        &url,
        "--set",
        "replicaCount=3",
        "--set",
        "logFormat=text",
        "--set",
        "logLevel=debug",
    ])
    .ok();
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
        let left = r
            .kubectl(&[
                "get",
                "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget",
                "-l",
                &format!("app.kubernetes.io/instance={}", r.name),
                "-o",
                "name",
            ])
            .ok()
            .stdout;
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
    let ca = std::env::temp_dir().join(format!("{}.pem", crate::harness::unique("issuer-ca")));
    std::fs::write(&ca, "PEM").unwrap();
    // The AuthenticationConfiguration, and the revocation webhook's AuthorizationConfiguration and
    // kubeconfig.
    for (key, print) in [
        ("authentication-config.yaml", "authentication"),
        ("authorization-config.yaml", "authorization"),
        ("authorization-webhook.kubeconfig", "webhook-kubeconfig"),
    ] {
        let chart: Value = serde_saphyr::from_str(map["data"][key].as_str().unwrap_or_else(|| panic!("no {key} in {map}"))).unwrap();
        let cli = crate::harness::infra(&[
            "kube",
            "apiserver-config",
            "--issuer-url",
            "https://issuer.example.com",
            "--audience",
            "prod",
            "--issuer-ca-file",
            ca.to_str().unwrap(),
            "--print",
            print,
        ])
        .ok();
        let printed: Value = serde_saphyr::from_str(&cli.stdout).unwrap();
        assert_eq!(chart, printed, "the chart's {key} drifted from `infra kube apiserver-config --print {print}`");
    }
    let _ = std::fs::remove_file(&ca);
}

#[test]
fn helm_serves_https_from_the_server_pods_when_asked() {
    let docs = rendered(&["serverTLS.enabled=true", "serverTLS.secretName=my-cert", "networkPolicy.enabled=true"]);
    let server = container(find_named(&docs, "Deployment", "infra-server"), "server");
    assert_eq!(env_value(server, "INFRA_TLS_LISTEN_ADDR"), Some("0.0.0.0:8443"));
    let (cert, key) = (env_value(server, "INFRA_TLS_CERT_FILE").unwrap(), env_value(server, "INFRA_TLS_KEY_FILE").unwrap());
    let mount = server["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "server-tls").expect("the certificate is mounted");
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!((cert, key), (&*format!("{dir}/tls.crt"), &*format!("{dir}/tls.key")));
    let volumes = &find_named(&docs, "Deployment", "infra-server")["spec"]["template"]["spec"]["volumes"];
    assert!(volumes.as_array().unwrap().iter().any(|v| v["name"] == "server-tls" && v["secret"]["secretName"] == "my-cert"), "{volumes}");
    assert!(server["ports"].as_array().unwrap().iter().any(|p| p["name"] == "https" && p["containerPort"] == 8443));
    let service = find_named(&docs, "Service", "infra-server");
    assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == "https" && p["port"] == 443), "{service}");
    let policy = find(&docs, "NetworkPolicy");
    assert!(policy["spec"]["ingress"][0]["ports"].as_array().unwrap().iter().any(|p| p["port"] == "https"), "{policy}");
    // The controller serves no HTTPS and mounts no certificate.
    let controller = container(find_named(&docs, "Deployment", "infra-controller"), "controller");
    assert_eq!(env_value(controller, "INFRA_TLS_LISTEN_ADDR"), None);

    // Off by default: no listener, no port, no mount.
    let docs = rendered(&[]);
    let server = container(find_named(&docs, "Deployment", "infra-server"), "server");
    assert_eq!(env_value(server, "INFRA_TLS_LISTEN_ADDR"), None);
    assert!(!server["ports"].as_array().unwrap().iter().any(|p| p["name"] == "https"));
}

// ---- CRDs upgrade with the chart --------------------------------------------------------------

/// Deletes a CRD the test made, however the test ends (the chart keeps its CRDs on uninstall).
struct CrdCleanup(String);

impl Drop for CrdCleanup {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "crd", &self.0, "--ignore-not-found", "--wait=false"]);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// How a chart copy carries its CRD.
#[derive(Clone, Copy, PartialEq)]
enum CrdLayout {
    /// As this chart does: a template, applied by every `helm upgrade`.
    Template,
    /// As chart 0.1.x did: Helm's crds/ folder, installed once and never upgraded.
    CrdsFolder,
}

/// A copy of the chart under `dir` whose only CRD is ScimKey's, in API group `group` rather than
/// infrahq.com so that the suite's own CRDs (which every other test uses) stay untouched. With
/// `with_description: false` the CRD lacks `spec.description`: the previous version, before a
/// field was added.
fn chart_copy(dir: &Path, group: &str, with_description: bool, layout: CrdLayout) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    copy_dir(Path::new(CHART), dir);
    let templates = dir.join("templates/crds");
    std::fs::remove_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&templates).unwrap();
    let (_, yaml) = infra::api::crds_yaml().unwrap().into_iter().find(|(file, _)| file.starts_with("scimkeys.")).unwrap();
    let mut crd: Value = serde_saphyr::from_str(&yaml).unwrap();
    // Short names and categories are shared across groups: `kubectl get sk` must stay the suite's.
    let names = crd["spec"]["names"].as_object_mut().unwrap();
    names.remove("shortNames");
    names.remove("categories");
    if !with_description {
        let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert!(spec.as_object_mut().unwrap().remove("description").is_some(), "ScimKey's spec.description moved");
        let chart_yaml = dir.join("Chart.yaml");
        let text = std::fs::read_to_string(&chart_yaml).unwrap();
        let text: String =
            text.lines().map(|l| if l.starts_with("version: ") { "version: 0.1.0".to_string() } else { l.to_string() } + "\n").collect();
        std::fs::write(chart_yaml, text).unwrap();
    }
    let yaml = serde_saphyr::to_string(&crd).unwrap().replace("infrahq.com", group);
    let file = format!("scimkeys.{group}.yaml");
    match layout {
        CrdLayout::Template => std::fs::write(templates.join(file), infra::api::chart_template(&yaml)).unwrap(),
        CrdLayout::CrdsFolder => {
            std::fs::create_dir_all(dir.join("crds")).unwrap();
            std::fs::write(dir.join("crds").join(file), yaml).unwrap();
        }
    }
    dir.to_path_buf()
}

/// A previous and a current chart with a CRD of their own, and a release to install them as.
struct CrdUpgrade {
    release: Release,
    group: String,
    previous: PathBuf,
    current: PathBuf,
    work: PathBuf,
    _cleanup: CrdCleanup,
}

impl CrdUpgrade {
    fn new(previous_layout: CrdLayout) -> Self {
        let release = Release::new();
        let group = format!("{}.e2e.test", unique("g"));
        let work = std::env::temp_dir().join(unique("infra-chart"));
        let previous = chart_copy(&work.join("previous"), &group, false, previous_layout);
        let current = chart_copy(&work.join("current"), &group, true, CrdLayout::Template);
        let _cleanup = CrdCleanup(format!("scimkeys.{group}"));
        Self { release, group, previous, current, work, _cleanup }
    }

    fn crd(&self) -> String {
        format!("scimkeys.{}", self.group)
    }

    fn helm(&self, verb: &str, chart: &Path) -> Run {
        let r = &self.release;
        let url = format!("externalURL={EXTERNAL_URL},rbac.createUserRoles=false");
        let mut args = vec![verb, r.name.as_str(), chart.to_str().unwrap(), "-n", r.namespace.as_str(), "--set", &url];
        if verb == "install" {
            args.push("--create-namespace");
        }
        helm(&args)
    }

    /// `kubectl apply` (with the API server's strict field validation, kubectl's default) of a
    /// ScimKey of the test's group that sets `spec.description`.
    fn apply_key_with_description(&self) -> Run {
        let manifest = format!(
            "apiVersion: {}/v1alpha1\nkind: ScimKey\nmetadata:\n  name: described\n  namespace: {}\nspec:\n  providerRef:\n    name: okta\n  description: the new field\n",
            self.group, self.release.namespace
        );
        let mut child = Command::new(&env().kubectl)
            .args(["apply", "-f", "-"])
            .env("KUBECONFIG", &env().kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Installs the previous chart and shows that its CRD does not serve `spec.description`.
    fn install_previous(&self) {
        self.helm("install", &self.previous).ok();
        kubectl(&["wait", "--for=condition=Established", "--timeout=30s", &format!("crd/{}", self.crd())]).ok();
        let refused = self.apply_key_with_description();
        assert_ne!(refused.status, 0, "the previous CRD accepted spec.description:\n{}", refused.stdout);
        assert!(refused.stderr.contains("description"), "{}", refused.stderr);
    }

    /// After the upgrade the new field is served: an object keeps it.
    fn assert_new_field_served(&self) {
        wait_until(Duration::from_secs(30), "the upgraded CRD to serve spec.description", || self.apply_key_with_description().status == 0);
        let key = self.release.json(&["get", &self.crd(), "described"]);
        assert_eq!(key["spec"]["description"], "the new field", "{key}");
    }
}

impl Drop for CrdUpgrade {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// `helm upgrade` applies a changed CRD, as cert-manager's chart does: install the previous chart,
/// whose CRD lacks a field, upgrade, and the field is served. The CRD belongs to the release,
/// and uninstalling leaves it (crds.keep), with the objects of its kind.
#[test]
fn helm_upgrade_applies_crd_changes() {
    let t = CrdUpgrade::new(CrdLayout::Template);
    t.install_previous();
    t.helm("upgrade", &t.current).ok();
    t.assert_new_field_served();

    let crd: Value = serde_json::from_str(&kubectl(&["get", "crd", &t.crd(), "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(crd["metadata"]["annotations"]["meta.helm.sh/release-name"], t.release.name.as_str());
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    helm(&["uninstall", &t.release.name, "-n", &t.release.namespace]).ok();
    kubectl(&["get", "crd", &t.crd()]).ok();
    t.release.kubectl(&["get", &t.crd(), "described"]).ok();
}

/// From chart 0.1.x, which installed the CRDs from its crds/ folder: the upgrade stops, naming the
/// CRD Helm does not own, and after the README's `kubectl label`/`annotate` it adopts and
/// upgrades them.
#[test]
fn helm_upgrade_from_a_crds_folder_chart_adopts_the_crds_as_the_readme_says() {
    let t = CrdUpgrade::new(CrdLayout::CrdsFolder);
    t.install_previous();
    let refused = t.helm("upgrade", &t.current);
    assert_ne!(refused.status, 0, "helm adopted a CRD it does not own:\n{}", refused.stdout);
    assert!(refused.stderr.contains(&t.crd()) && refused.stderr.contains("invalid ownership metadata"), "{}", refused.stderr);

    let readme = std::fs::read_to_string(Path::new(CHART).join("README.md")).unwrap();
    for step in [
        "kubectl label crd \"$crd.infrahq.com\" app.kubernetes.io/managed-by=Helm",
        "meta.helm.sh/release-name=infra",
        "meta.helm.sh/release-namespace=infra-system",
    ] {
        assert!(readme.contains(step), "the README's upgrade steps lack {step:?}");
    }
    let crd = format!("crd/{}", t.crd());
    kubectl(&["label", &crd, "app.kubernetes.io/managed-by=Helm", "--overwrite"]).ok();
    let (name, namespace) =
        (format!("meta.helm.sh/release-name={}", t.release.name), format!("meta.helm.sh/release-namespace={}", t.release.namespace));
    kubectl(&["annotate", &crd, &name, &namespace, "--overwrite"]).ok();
    t.helm("upgrade", &t.current).ok();
    t.assert_new_field_served();
}

// ---- monitoring and helm test against the suite's operator ------------------------------------

/// The metric names a /metrics text exports, as queries name them (counters with `_total`,
/// histograms with `_bucket`, `_sum` and `_count`).
fn exported_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        match kind {
            "counter" => names.extend([format!("{name}_total")]),
            "histogram" => names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}"))),
            _ => names.extend([name.to_string()]),
        }
    }
    names
}

/// Both roles' metrics registries with one sample in each family (each role exports only its own).
fn every_family_sampled() -> String {
    use infra::metrics::{HttpLabels, Metrics, Role};
    [Role::Controller, Role::Server]
        .into_iter()
        .map(|role| {
            let m = Metrics::new(role);
            m.reconcile_failed("Kind", "kube");
            drop(m.reconcile_timer("Kind"));
            let http = HttpLabels { method: "GET".into(), route: "/readyz".into(), status: "200".into() };
            m.http_requests.get_or_create(&http).inc();
            m.http_duration.get_or_create(&http).observe(0.1);
            for family in [&m.scim_auth, &m.logins, &m.sessions_ended, &m.session_rechecks] {
                Metrics::count(family, "x");
            }
            m.encode()
        })
        .collect()
}

/// The `infra_*` metric names a PromQL expression uses.
fn queried_metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|t| t.starts_with("infra_")).map(String::from).collect()
}

/// Every metric the PrometheusRule's alerts and the Grafana dashboard query is one the running
/// controller or server exports: a renamed metric fails here, not silently in someone's Grafana.
#[tokio::test]
async fn helm_alerts_and_dashboard_query_exported_metrics() {
    let docs = rendered(&["prometheusRule.enabled=true", "grafanaDashboard.enabled=true"]);
    let rule = find(&docs, "PrometheusRule");
    let mut exprs: Vec<String> = Vec::new();
    let mut alerts = Vec::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            alerts.push(r["alert"].as_str().unwrap().to_string());
            exprs.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        alerts,
        [
            "InfraIdentityProviderNotReady",
            "InfraControllerNoLeader",
            "InfraScimServerErrors",
            "InfraScimAuthenticationFailures",
            "InfraSessionRechecksFailing"
        ]
    );
    let dashboard = find_named(&docs, "ConfigMap", "infra-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's label");
    let dashboard: Value = serde_json::from_str(dashboard["data"]["infra.json"].as_str().unwrap()).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["definition"].as_str() {
            exprs.push(q.to_string());
        }
    }

    let controllers = std::env::var("INFRA_CONTROLLER_URLS").expect("INFRA_CONTROLLER_URLS (e2e/.state/env)");
    // A family without samples yet (no SCIM authentication failed, no session re-checked) is not
    // in /metrics at all, so the running roles' metrics are joined by those of the code's own
    // registry with one sample in every family.
    let mut exported = exported_metric_names(&every_family_sampled());
    for base in controllers.split_whitespace().chain(env().server_metrics_urls.iter().map(String::as_str)) {
        let text = http().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        exported.extend(exported_metric_names(&text));
    }
    assert!(exported.contains("infra_controller_leader"), "{exported:?}");
    for expr in &exprs {
        let used = queried_metric_names(expr);
        assert!(!used.is_empty(), "no infra_ metric in {expr}");
        for name in used {
            assert!(exported.contains(&name), "{name} (in `{expr}`) is not exported; exported: {exported:?}");
        }
    }
}

/// The `helm test` Pod's script, run here with sh and curl against the suite's server: it passes
/// against Infra, and fails against an address that answers /readyz but is not the SCIM API.
#[test]
fn helm_test_pod_checks_readyz_and_a_scim_call() {
    let (_, hooks, _) = split_crds_and_hooks(rendered(&[]));
    let c = &hooks[0]["spec"]["containers"][0];
    assert_eq!(env_value(c, "INFRA_URL"), Some("http://infra-server.infra-system.svc:80"), "the server's Service");
    assert_eq!(c["command"], json!(["sh", "-c"]));
    let script = c["args"][0].as_str().unwrap();
    let run = |url: &str| {
        let out = Command::new("sh").args(["-c", script]).env("INFRA_URL", url).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, out) = run(&env().server_urls[0]);
    assert!(ok, "helm test failed against the server:\n{out}");
    assert!(out.contains("the SCIM API answers"), "{out}");
    let (ok, out) = run(&env().server_metrics_urls[0]);
    assert!(!ok, "helm test passed against the metrics address:\n{out}");
    assert!(out.contains("want 401"), "{out}");
}

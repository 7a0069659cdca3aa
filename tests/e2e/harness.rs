//! Shared plumbing: the environment `e2e/up` wrote, a kube client, the CLI, and polling.

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use infra::api::{IdentityProvider, ScimKey};
use kube::{Api, Client};

pub struct Env {
    pub kubeconfig: String,
    pub namespace: String,
    pub server_urls: Vec<String>,
    pub idp_url: String,
    pub kubectl: String,
}

/// Reads the variables `source e2e/.state/env` sets. Missing ones fail the test loudly.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: the end-to-end tests run inside `e2e/test` (or after `e2e/up` and `source e2e/.state/env`)")
            })
        };
        let state = var("INFRA_STATE_DIR");
        let kubectl = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .map(|d| format!("{d}/kubectl"))
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| panic!("kubectl not on PATH (state dir {state})"));
        Env {
            kubeconfig: var("KUBECONFIG"),
            namespace: var("INFRA_NAMESPACE"),
            server_urls: var("INFRA_SERVER_URLS").split_whitespace().map(String::from).collect(),
            idp_url: var("INFRA_IDP_URL"),
            kubectl,
        }
    })
}

pub async fn client() -> Client {
    let e = env();
    let kubeconfig = kube::config::Kubeconfig::read_from(&e.kubeconfig).expect("admin kubeconfig readable");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

pub async fn providers() -> Api<IdentityProvider> {
    Api::namespaced(client().await, &env().namespace)
}

pub async fn scim_keys() -> Api<ScimKey> {
    Api::namespaced(client().await, &env().namespace)
}

/// A name unique to this test run, so tests can run in parallel and re-run on the same cluster.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", infra::keys::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 5).unwrap())
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    pub fn ok(self) -> Self {
        assert_eq!(self.status, 0, "command failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the `infra` CLI as a user would, with the admin kubeconfig and the Infra namespace.
pub fn infra(args: &[&str]) -> Run {
    infra_with(args, &[], None)
}

pub fn infra_with(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let e = env();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra"));
    cmd.args(args)
        .env("KUBECONFIG", &e.kubeconfig)
        .env("INFRA_NAMESPACE", &e.namespace)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("infra runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    Run::from(child.wait_with_output().unwrap())
}

pub fn kubectl(args: &[&str]) -> Run {
    let e = env();
    let out = Command::new(&e.kubectl)
        .args(args)
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .expect("kubectl runs");
    Run::from(out)
}

/// `kubectl apply` of a manifest given as a string, in the Infra namespace.
pub fn kubectl_apply(manifest: &str) -> Run {
    let e = env();
    let mut child = Command::new(&e.kubectl)
        .args(["apply", "-n", &e.namespace, "-f", "-"])
        .env("KUBECONFIG", &e.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(manifest.as_bytes()).unwrap();
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The status and reason of condition `type_` once the controller has observed the current
/// generation and the condition is not Unknown.
pub async fn settled_condition(name: &str, type_: &str) -> (String, String, String) {
    let api = providers().await;
    eventually(Duration::from_secs(60), &format!("condition {type_} of provider {name}"), || {
        let api = api.clone();
        async move {
            let idp = api.get_opt(name).await.ok().flatten()?;
            let status = idp.status?;
            if status.observed_generation != idp.metadata.generation {
                return None;
            }
            let c = status.conditions.iter().find(|c| c.type_ == type_)?;
            (c.status != "Unknown").then(|| (c.status.clone(), c.reason.clone(), c.message.clone()))
        }
    })
    .await
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// The host:port/path of the stand-in IdP's issuer, as an admin would paste it (no scheme).
pub fn idp_domain_and_path() -> String {
    env().idp_url.trim_start_matches("https://").to_string()
}

/// Waits until provider `name` has a condition `type_` for which `pred` holds.
pub async fn wait_condition(name: &str, type_: &str, what: &str, pred: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition) -> bool) {
    let api = providers().await;
    let pred = &pred;
    eventually(Duration::from_secs(30), what, || {
        let api = api.clone();
        async move {
            let idp = api.get(name).await.ok()?;
            idp.status?.conditions.iter().any(|c| c.type_ == type_ && pred(c)).then_some(())
        }
    })
    .await;
}

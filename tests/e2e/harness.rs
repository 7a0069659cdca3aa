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
    /// The servers' metrics addresses, in the order of `server_urls`.
    pub server_metrics_urls: Vec<String>,
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
            server_metrics_urls: var("INFRA_SERVER_METRICS_URLS").split_whitespace().map(String::from).collect(),
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
    format!("{prefix}-{}", infra::keys::name_suffix(5).unwrap())
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
    let out = Command::new(&e.kubectl).args(args).env("KUBECONFIG", &e.kubeconfig).output().expect("kubectl runs");
    Run::from(out)
}

/// `kubectl apply` of a manifest given as a string, in the Infra namespace.
pub fn kubectl_apply(manifest: &str) -> Run {
    kubectl_apply_as(None, manifest)
}

/// `kubectl apply` impersonating `user` (the admin kubeconfig may impersonate), to act as a person
/// who holds only the roles a test bound to them.
pub fn kubectl_apply_as(user: Option<&str>, manifest: &str) -> Run {
    let e = env();
    let mut args = vec!["apply", "-n", &e.namespace, "-f", "-"];
    if let Some(user) = user {
        args.extend(["--as", user]);
    }
    let mut child = Command::new(&e.kubectl)
        .args(&args)
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

/// Polls `url` with `client` until it answers 2xx.
pub async fn wait_until_up(client: &reqwest::Client, url: &str, what: &str) {
    eventually(Duration::from_secs(30), what, || async move {
        client.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
}

/// Starts one more server replica on `port`, as the server's ServiceAccount (config/rbac), with
/// `args` and `envs` added, and waits until it is ready. Its output goes to `log` (or nowhere).
/// Its metrics listen on a free port of the system's choosing.
pub async fn extra_server(port: u16, args: &[&str], envs: &[(&str, String)], log: Option<&str>) -> std::process::Child {
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    let (out, err) = match log {
        Some(name) => {
            let f = std::fs::File::create(format!("{state}/logs/{name}.log")).unwrap();
            (Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .args(["server", "--listen-addr", &format!("127.0.0.1:{port}"), "--metrics-addr", "127.0.0.1:0"])
        .args(args)
        .env("KUBECONFIG", format!("{state}/server.kubeconfig"))
        .env("INFRA_NAMESPACE", &env().namespace)
        .env("INFRA_EXTERNAL_URL", format!("http://127.0.0.1:{port}"))
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    wait_until_up(&http(), &format!("http://127.0.0.1:{port}/readyz"), "the extra server to be ready").await;
    child
}

/// Starts one more controller replica as the controller's ServiceAccount (config/rbac), serving
/// the login broker on `broker_port` for the server's ServiceAccount, with `args` added. It only
/// waits for the lease (the suite's controllers lead), but serves the broker at once.
pub async fn extra_controller(broker_port: u16, args: &[&str], log: &str) -> std::process::Child {
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    let f = std::fs::File::create(format!("{state}/logs/{log}.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .args(["controller", "--metrics-addr", "127.0.0.1:0", "--broker-addr", &format!("127.0.0.1:{broker_port}")])
        .args(["--broker-clients", "infra-server,e2e-infra-server"])
        .args(args)
        .env("KUBECONFIG", format!("{state}/controller.kubeconfig"))
        .env("INFRA_NAMESPACE", &env().namespace)
        .env("INFRA_EXTERNAL_URL", &env().server_urls[0])
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap();
    // Any answer (a 405 for GET) means it listens.
    eventually(Duration::from_secs(30), "the extra controller's broker to listen", || async move {
        http().get(format!("http://127.0.0.1:{broker_port}/redeem")).send().await.ok().map(|_| ())
    })
    .await;
    child
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// The host:port/path of the stand-in IdP's issuer, as an admin would paste it (no scheme).
pub fn idp_domain_and_path() -> String {
    env().idp_url.trim_start_matches("https://").to_string()
}

/// Waits until provider `name` has a condition `type_` for which `pred` holds.
pub async fn wait_condition(
    name: &str,
    type_: &str,
    what: &str,
    pred: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition) -> bool,
) {
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

// ---- SCIM ------------------------------------------------------------------------------------

pub use serde_json::{Value, json};

pub const SCIM_JSON: &str = "application/scim+json";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Percent-encodes a query parameter value (spaces as `%20`, as Okta and Entra send them).
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A PatchOp request body with these operations.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// One HTTP answer: status, headers and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        &self.body
    }

    /// Asserts 200 or 204: RFC 7644 §3.5.2 lets a PATCH answer either.
    #[track_caller]
    pub fn expect_ok_or_no_content(&self) {
        assert!(self.status == 200 || self.status == 204, "unexpected status {}; body: {}", self.status, self.text);
    }

    /// Asserts an RFC 7644 §3.12 error: the status, `application/scim+json`, the Error schema,
    /// `status` as a string, a `detail`, and `scimType` when given.
    #[track_caller]
    pub fn expect_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.header("content-type"), Some(SCIM_JSON), "error content type; body: {}", self.text);
        assert_eq!(self.body["schemas"], json!([ERROR_SCHEMA]), "error schemas; body: {}", self.text);
        assert_eq!(self.body["status"], json!(status.to_string()), "error status must be a string; body: {}", self.text);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "error detail; body: {}", self.text);
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], json!(t), "scimType; body: {}", self.text);
        }
    }

    /// The ids of a ListResponse's resources, in order.
    pub fn ids(&self) -> Vec<String> {
        self.body["Resources"]
            .as_array()
            .map(|a| a.iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    }
}

/// A SCIM client: one server replica, one key, and the headers of one provider's dialect.
#[derive(Clone)]
pub struct Scim {
    /// `<server>/api/scim/v2`
    pub base: String,
    pub auth: String,
    pub content_type: String,
    pub extra_headers: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Scim {
    pub fn new(server_url: &str, token: &str) -> Self {
        Self {
            base: format!("{server_url}/api/scim/v2"),
            auth: format!("Bearer {token}"),
            content_type: SCIM_JSON.into(),
            extra_headers: vec![("accept".into(), SCIM_JSON.into())],
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        }
    }

    /// The same client, waiting up to `timeout` for each answer (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = reqwest::Client::builder().timeout(timeout).build().unwrap();
        self
    }

    /// Okta's SCIM client: `Content-Type: application/scim+json; charset=utf-8` (Okta's SCIM 2.0
    /// reference and the SCIM 2.0 Test App's Runscope tests).
    pub fn okta(mut self) -> Self {
        self.content_type = "application/scim+json; charset=utf-8".into();
        self.extra_headers = vec![
            ("accept".into(), SCIM_JSON.into()),
            ("accept-charset".into(), "utf-8".into()),
            ("user-agent".into(), "Okta SCIM Client 1.0.0".into()),
        ];
        self
    }

    /// Entra ID's provisioning service, with the content type it is given (`application/scim+json`
    /// or `application/json`).
    pub fn entra(mut self, content_type: &str) -> Self {
        self.content_type = content_type.into();
        self.extra_headers = vec![("accept".into(), "application/scim+json".into())];
        self
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Resp {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut req = self.http.request(method.clone(), &url).header("authorization", &self.auth);
        for (k, v) in &self.extra_headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.header("content-type", &self.content_type).body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, text, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body.to_string().into_bytes()), &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PUT, path, Some(body.to_string().into_bytes()), &[]).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PATCH, path, Some(body.to_string().into_bytes()), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// `GET /Users?filter=...` (and the same for any resource path), the filter percent-encoded.
    pub async fn filter(&self, resource: &str, filter: &str) -> Resp {
        self.get(&format!("/{resource}?filter={}", enc(filter))).await
    }

    /// POSTs a minimal user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let r = self.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "active": true})).await;
        r.expect(201)["id"].as_str().unwrap().to_string()
    }
}

/// A provider of its own and a key for it, ready on every server replica; the provider (and with
/// it its users, groups and keys) is removed when this is dropped.
pub struct ScimProvider {
    pub name: String,
    pub token: String,
    removed: std::sync::atomic::AtomicBool,
}

impl ScimProvider {
    pub async fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        infra(&[
            "providers",
            "add",
            &name,
            "--url",
            &idp_domain_and_path(),
            "--client-id",
            "infra-e2e",
            "--client-secret",
            "infra-e2e-secret",
        ])
        .ok();
        let key_name = unique("key");
        let run = infra(&["scim-keys", "create", "--provider", &name, "--name", &key_name]).ok();
        let token = printed_key(&run.stdout);
        let p = Self { name, token, removed: false.into() };
        for i in 0..env().server_urls.len() {
            let c = p.client(i);
            eventually(Duration::from_secs(20), &format!("the key to work on replica {i}"), || {
                let c = c.clone();
                async move { (c.get("/ServiceProviderConfig").await.status == 200).then_some(()) }
            })
            .await;
        }
        p
    }

    /// A plain SCIM client of replica `i`.
    pub fn client(&self, i: usize) -> Scim {
        Scim::new(&env().server_urls[i], &self.token)
    }

    /// `infra providers remove`, once.
    pub fn remove(&self) {
        if !self.removed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            infra(&["providers", "remove", &self.name]).ok();
        }
    }

    /// The names of the objects of `kind` (users, groups) labelled with this provider.
    pub fn objects(&self, kind: &str) -> Vec<String> {
        let selector = format!("infrahq.com/provider={}", self.name);
        let out = kubectl(&["get", kind, "-n", &env().namespace, "-l", &selector, "-o", "name"]).ok().stdout;
        out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }
}

impl Drop for ScimProvider {
    fn drop(&mut self) {
        if !self.removed.load(std::sync::atomic::Ordering::SeqCst) {
            self.removed.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = infra(&["providers", "remove", &self.name]);
        }
    }
}

/// The `kubectl get <kind> -o yaml` of the object whose SCIM id is `id`.
pub fn object_yaml_by_scim_id(kind: &str, id: &str) -> String {
    let selector = format!("infrahq.com/scim-id={id}");
    kubectl(&["get", kind, "-n", &env().namespace, "-l", &selector, "-o", "yaml"]).ok().stdout
}

/// The key `infra scim-keys create` printed, from its `API Token: Bearer <key>` line.
pub fn printed_key(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("API Token: Bearer "))
        .unwrap_or_else(|| panic!("no `API Token: Bearer` line in:\n{stdout}"))
        .to_string()
}

/// A Secret of the type providers require, holding `value` under `clientSecret`.
pub fn client_secret_manifest(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: {}\nstringData:\n  clientSecret: {value}\n",
        infra::api::CLIENT_SECRET_TYPE
    )
}

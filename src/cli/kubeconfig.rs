//! The kubeconfig entries `infra login` writes: a cluster, a user whose credentials come from
//! the exec plugin `infra kube-credential`, and a context, all named `infra:<cluster>`, in the
//! kubeconfig kubectl uses (the first file of `KUBECONFIG`, else `~/.kube/config`). Other
//! entries, and the current context, are left as they are; writes are atomic.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The prefix of every entry Infra writes.
pub const PREFIX: &str = "infra:";
/// The subcommand the exec plugin runs; it marks a user entry as Infra's.
pub const CREDENTIAL_COMMAND: &str = "kube-credential";

pub fn entry_name(cluster: &str) -> String {
    format!("{PREFIX}{cluster}")
}

/// The kubeconfig file kubectl reads first (and writes new entries to).
pub fn path() -> anyhow::Result<PathBuf> {
    path_from(std::env::var_os("KUBECONFIG"), std::env::var_os("HOME"))
}

fn path_from(kubeconfig: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    if let Some(list) = kubeconfig.filter(|k| !k.is_empty())
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".kube").join("config")),
        None => anyhow::bail!("neither KUBECONFIG nor HOME is set, so there is no kubeconfig to write to"),
    }
}

/// What a context for one cluster holds.
pub struct Entry<'a> {
    pub cluster: &'a str,
    pub server: &'a str,
    /// base64 PEM, as `certificate-authority-data` wants it.
    pub certificate_authority_data: Option<&'a str>,
    /// The Infra server the plugin mints tokens from.
    pub infra_server: &'a str,
    /// The `infra` binary the plugin runs.
    pub command: &'a str,
    /// Environment the plugin needs (INFRA_HOME, a CA file), as (name, value).
    pub env: Vec<(String, String)>,
}

pub fn load(path: &Path) -> anyhow::Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(empty()),
        Ok(text) => serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not a kubeconfig: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty()),
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    }
}

fn empty() -> Value {
    json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [], "preferences": {}})
}

/// Writes `config` to `path` atomically: a temporary file (0600) in the same directory, renamed.
/// An existing file's mode is kept.
pub fn save(path: &Path, config: &Value) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("config");
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::keys::name_suffix(8)?));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(serde_saphyr::to_string(config).map_err(std::io::Error::other)?.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("writing {}: {e}", path.display())
    })
}

fn list<'a>(config: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !config.is_object() {
        *config = empty();
    }
    let obj = config.as_object_mut().expect("an object");
    let slot = obj.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("an array")
}

/// Replaces the entry called `name` in `config[key]`, or appends it.
fn upsert(config: &mut Value, key: &str, name: &str, field: &str, body: Value) {
    let items = list(config, key);
    let entry = json!({"name": name, field: body});
    match items.iter_mut().find(|i| i["name"] == name) {
        Some(existing) => *existing = entry,
        None => items.push(entry),
    }
}

/// Adds or updates the cluster, user and context `infra:<cluster>`. A namespace already chosen
/// on the context (`infra use cluster/ns`) is kept.
pub fn set_entry(config: &mut Value, e: &Entry) {
    let name = entry_name(e.cluster);
    let mut cluster = Map::new();
    cluster.insert("server".into(), json!(e.server));
    if let Some(ca) = e.certificate_authority_data {
        cluster.insert("certificate-authority-data".into(), json!(ca));
    }
    upsert(config, "clusters", &name, "cluster", Value::Object(cluster));
    let env: Vec<Value> = e.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    let exec = json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": e.command,
        "args": [CREDENTIAL_COMMAND, "--server", e.infra_server, "--cluster", e.cluster],
        "env": if env.is_empty() { Value::Null } else { Value::Array(env) },
        // The plugin never asks anything: without a session it says to run `infra login`.
        "interactiveMode": "Never",
        "provideClusterInfo": false,
    });
    upsert(config, "users", &name, "user", json!({"exec": exec}));
    let namespace = context(config, &name).and_then(|c| c.get("namespace").cloned());
    let mut ctx = json!({"cluster": name, "user": name});
    if let Some(ns) = namespace {
        ctx["namespace"] = ns;
    }
    upsert(config, "contexts", &name, "context", ctx);
}

fn context<'a>(config: &'a Value, name: &str) -> Option<&'a Map<String, Value>> {
    config["contexts"].as_array()?.iter().find(|c| c["name"] == name)?["context"].as_object()
}

/// Whether the user entry `name` runs Infra's credential plugin (so it is Infra's to remove).
fn is_ours(config: &Value, name: &str) -> bool {
    config["users"]
        .as_array()
        .is_some_and(|users| users.iter().any(|u| u["name"] == name && u["user"]["exec"]["args"][0] == CREDENTIAL_COMMAND))
}

/// Removes every `infra:` cluster, user and context Infra wrote, and nothing else; returns their
/// names. A current context among them is unset, so kubectl says so instead of failing oddly.
pub fn remove_entries(config: &mut Value) -> Vec<String> {
    let names: Vec<String> = config["users"]
        .as_array()
        .map(|users| users.iter().filter_map(|u| u["name"].as_str()).filter(|n| n.starts_with(PREFIX)).map(String::from).collect())
        .unwrap_or_default();
    let ours: Vec<String> = names.into_iter().filter(|n| is_ours(config, n)).collect();
    for key in ["clusters", "users", "contexts"] {
        list(config, key).retain(|i| !i["name"].as_str().is_some_and(|n| ours.iter().any(|o| o == n)));
    }
    if config["current-context"].as_str().is_some_and(|c| ours.iter().any(|o| o == c)) {
        config["current-context"] = json!("");
    }
    ours
}

/// Makes `infra:<cluster>` the current context, with `namespace` when given.
pub fn use_context(config: &mut Value, cluster: &str, namespace: Option<&str>) -> anyhow::Result<()> {
    let name = entry_name(cluster);
    let contexts = list(config, "contexts");
    let Some(ctx) = contexts.iter_mut().find(|c| c["name"] == name.as_str()) else {
        anyhow::bail!("there is no context {name} in the kubeconfig: run `infra login` first");
    };
    if let Some(ns) = namespace {
        ctx["context"]["namespace"] = json!(ns);
    }
    config["current-context"] = json!(name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cluster: &str) -> Entry<'_> {
        Entry {
            cluster,
            server: "https://k8s.example.com:6443",
            certificate_authority_data: Some("Q0E="),
            infra_server: "https://infra.example.com",
            command: "/usr/local/bin/infra",
            env: vec![("INFRA_HOME".into(), "/home/a/.infra".into())],
        }
    }

    fn admin() -> Value {
        serde_saphyr::from_str(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://p}\nusers:\n- name: admin\n  user: {token: t}\n\
             - name: 'infra:hand-made'\n  user: {token: x}\ncontexts:\n- name: admin@prod\n  context: {cluster: prod, user: admin}\ncurrent-context: admin@prod\n",
        )
        .unwrap()
    }

    #[test]
    fn login_adds_entries_and_keeps_everything_else() {
        let mut c = admin();
        set_entry(&mut c, &entry("prod"));
        assert_eq!(c["current-context"], "admin@prod", "login never switches the context");
        assert_eq!(c["clusters"].as_array().unwrap().len(), 2);
        let user = c["users"].as_array().unwrap().iter().find(|u| u["name"] == "infra:prod").unwrap();
        assert_eq!(user["user"]["exec"]["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(user["user"]["exec"]["args"], json!(["kube-credential", "--server", "https://infra.example.com", "--cluster", "prod"]));
        assert_eq!(user["user"]["exec"]["env"][0]["name"], "INFRA_HOME");
        // Idempotent, and a chosen namespace survives the next login.
        use_context(&mut c, "prod", Some("team-a")).unwrap();
        c["current-context"] = json!("admin@prod");
        set_entry(&mut c, &entry("prod"));
        assert_eq!(c["contexts"].as_array().unwrap().len(), 2);
        assert_eq!(context(&c, "infra:prod").unwrap()["namespace"], "team-a");
    }

    #[test]
    fn use_switches_and_logout_removes_only_infras_entries() {
        let mut c = admin();
        assert!(use_context(&mut c, "prod", None).unwrap_err().to_string().contains("infra login"));
        set_entry(&mut c, &entry("prod"));
        use_context(&mut c, "prod", Some("default")).unwrap();
        assert_eq!(c["current-context"], "infra:prod");
        assert_eq!(remove_entries(&mut c), vec!["infra:prod".to_string()]);
        assert_eq!(c["current-context"], "");
        let users: Vec<&str> = c["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
        assert_eq!(users, vec!["admin", "infra:hand-made"], "an entry Infra did not write stays");
        assert_eq!(c["contexts"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn files_are_replaced_atomically_with_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("infra-kubeconfig-{}", crate::keys::name_suffix(8).unwrap()));
        let path = dir.join("config");
        let mut c = load(&path).unwrap();
        set_entry(&mut c, &entry("dev"));
        save(&path, &c).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap(), c);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn which_file() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(path_from(s("/a/one:/a/two"), s("/home/x")).unwrap(), PathBuf::from("/a/one"));
        assert_eq!(path_from(None, s("/home/x")).unwrap(), PathBuf::from("/home/x/.kube/config"));
        assert!(path_from(None, None).is_err());
    }
}

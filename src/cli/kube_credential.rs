//! `infra kube-credential`: the exec credential plugin kubectl runs for an `infra:` context.
//! It prints only the `ExecCredential`; the token is cached on disk (0600) and shared by parallel
//! kubectl runs through a file lock, so they mint once; a new token is minted shortly before the
//! cached one expires. It never opens a browser: without a session it says to run `infra login`.
//!
//! kubectl asks once per process, and again only when the API server refused the token (401:
//! the key that signed it was rotated away in an emergency) or it expired. So a second request
//! from the same kubectl process (our parent) gets a new token, never the cached one again: the
//! command that met the 401 fails, the next one works.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::server_api::{self, ServerApi};
use super::session_file;

/// A cached token is used only while it has at least this long left, so that a kubectl command
/// started now does not fail halfway.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct KubeCredentialArgs {
    /// The Infra server that mints the tokens (written into the kubeconfig by `infra login`).
    #[arg(long)]
    pub server: String,
    /// The cluster, as named by the Infra server.
    #[arg(long)]
    pub cluster: String,
    /// PEM file of CA certificates for a server behind a private CA.
    #[arg(long, env = "INFRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// One cached token, tied to the session and server that minted it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cached {
    server: String,
    cluster: String,
    /// Hash of the session token: a new login (maybe as someone else) never reuses the token.
    session: String,
    token: String,
    expiration_timestamp: Timestamp,
    /// The kubectl processes (parent pids) this token was handed to, most recent last.
    #[serde(default)]
    served_to: Vec<u32>,
}

/// How many parent pids a cached token remembers.
const SERVED_TO_MAX: usize = 64;

fn cache_path(home: &Path, cluster: &str) -> PathBuf {
    home.join(format!("kube-token-{cluster}.json"))
}

/// Every cached token (for logout).
pub fn remove_cached(home: &Path) {
    if let Ok(dir) = std::fs::read_dir(home) {
        for e in dir.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with("kube-token-") && n.ends_with(".json")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Whether the cached token may be handed to kubectl process `parent`.
fn fresh(c: &Cached, server: &str, cluster: &str, session: &str, now: Timestamp, parent: u32) -> bool {
    let margin = SignedDuration::try_from(REFRESH_BEFORE).expect("small");
    c.server == server
        && c.cluster == cluster
        && c.session == session
        && c.expiration_timestamp > now.checked_add(margin).unwrap_or(Timestamp::MAX)
        && !c.served_to.contains(&parent)
}

fn serve(path: &Path, mut cached: Cached, parent: u32) -> anyhow::Result<()> {
    cached.served_to.push(parent);
    let excess = cached.served_to.len().saturating_sub(SERVED_TO_MAX);
    cached.served_to.drain(..excess);
    write_private(path, &serde_json::to_vec(&cached)?)?;
    println!("{}", exec_credential(&cached.token, cached.expiration_timestamp));
    Ok(())
}

fn exec_credential(token: &str, expires: Timestamp) -> String {
    json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expires.to_string()},
    })
    .to_string()
}

fn write_private(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", crate::keys::name_suffix(8)?));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // No fsync: it is a cache (a lost write means one more mint), and kubectl waits for it.
        f.write_all(body)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("writing {}: {e}", path.display())
    })
}

pub async fn run(args: KubeCredentialArgs) -> anyhow::Result<()> {
    let home = session_file::infra_home()?;
    let server = server_api::normalize_server(&args.server)?;
    let not_logged_in =
        || anyhow::anyhow!("not logged in to Infra at {server}: run `infra login --server {server}`, then run kubectl again");
    let session = session_file::load(&home)?.ok_or_else(not_logged_in)?;
    if session.server != server {
        anyhow::bail!(
            "your Infra session is for {}, this cluster's credentials come from {server}: run `infra login --server {server}`",
            session.server
        );
    }
    let session_hash = crate::keys::hash_hex(&session.token);

    // One minting at a time across parallel kubectl runs; the others then find its token.
    let lock_path = home.join("kube-token.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| anyhow::anyhow!("locking {}: {e}", lock_path.display()))?;

    let path = cache_path(&home, &args.cluster);
    let now = Timestamp::now();
    let parent = std::os::unix::process::parent_id();
    if let Some(cached) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
        && fresh(&cached, &server, &args.cluster, &session_hash, now, parent)
    {
        return serve(&path, cached, parent);
    }

    let api = ServerApi::new(&server, args.ca_file.as_deref())?;
    let minted = match api.kube_token(&session.token).await {
        Ok(m) => m,
        Err(e) if e.status() == Some(401) => {
            session_file::remove(&home)?;
            remove_cached(&home);
            anyhow::bail!("your Infra session has ended ({}): run `infra login --server {server}`, then run kubectl again", e.message());
        }
        Err(e) => anyhow::bail!("getting a Kubernetes token from Infra: {e}"),
    };
    let cached = Cached {
        server: server.clone(),
        cluster: args.cluster.clone(),
        session: session_hash,
        token: minted.token,
        expiration_timestamp: minted.expiration_timestamp,
        served_to: vec![],
    };
    serve(&path, cached, parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_is_used_only_for_its_session_and_while_it_has_time_left() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let c = Cached {
            server: "https://i".into(),
            cluster: "prod".into(),
            session: "h1".into(),
            token: "t".into(),
            expiration_timestamp: Timestamp::from_second(1_800_000_000 + 61).unwrap(),
            served_to: vec![42],
        };
        assert!(fresh(&c, "https://i", "prod", "h1", now, 7));
        assert!(!fresh(&c, "https://i", "prod", "h1", now, 42), "the same kubectl asking again was refused the token");
        assert!(!fresh(&c, "https://i", "prod", "h2", now, 7), "another session");
        assert!(!fresh(&c, "https://other", "prod", "h1", now, 7));
        assert!(!fresh(&c, "https://i", "dev", "h1", now, 7));
        assert!(!fresh(&c, "https://i", "prod", "h1", Timestamp::from_second(1_800_000_001).unwrap(), 7), "under a minute left");
        let printed: serde_json::Value = serde_json::from_str(&exec_credential("t", c.expiration_timestamp)).unwrap();
        assert_eq!(printed["kind"], "ExecCredential");
        assert_eq!(printed["status"]["token"], "t");
    }
}

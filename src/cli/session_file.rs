//! The CLI's login session on disk: `~/.infra/session.json` (the directory is `$INFRA_HOME` when
//! set). The directory is created 0700 and the file 0600 from the start, and the file is replaced
//! atomically (temporary file, then rename), so neither a crash nor another user can see a
//! half-written or readable token.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "session.json";

/// What `infra login` stores. `Debug` leaves the token out so that it cannot reach a log.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The server's base URL, as normalized by `server_api::normalize_server`.
    pub server: String,
    pub provider: String,
    pub user: String,
    pub token: String,
    pub expires_at: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("provider", &self.provider)
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `$INFRA_HOME`, else `$HOME/.infra`.
pub fn infra_home() -> anyhow::Result<PathBuf> {
    home_from(std::env::var_os("INFRA_HOME"), std::env::var_os("HOME"))
}

fn home_from(infra_home: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = infra_home.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".infra")),
        None => anyhow::bail!(
            "neither INFRA_HOME nor HOME is set, so there is nowhere to keep the login session; set INFRA_HOME to a directory"
        ),
    }
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The stored session, or `None` when there is none.
pub fn load(dir: &Path) -> anyhow::Result<Option<Session>> {
    let path = path_in(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    };
    let session = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{} is not a session file this version understands ({e}); delete it and run `infra login`", path.display())
    })?;
    Ok(Some(session))
}

/// Writes the session to `dir/session.json`: the directory is created 0700 if missing, the file
/// is written 0600 under a temporary name in the same directory and renamed over the old one.
pub fn save(dir: &Path, session: &Session) -> anyhow::Result<PathBuf> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let path = path_in(dir);
    let suffix = crate::keys::name_suffix(8)?;
    let tmp = dir.join(format!(".{FILE_NAME}.{suffix}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        let mut body = serde_json::to_vec_pretty(session).map_err(std::io::Error::other)?;
        body.push(b'\n');
        file.write_all(&body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("writing {}: {e}", path.display());
    }
    // Make the rename itself durable; failing to is not worth failing the login over.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

/// Deletes the stored session. `Ok(false)` when there was none.
pub fn remove(dir: &Path) -> anyhow::Result<bool> {
    let path = path_in(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => anyhow::bail!("deleting {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("infra-session-test-{}", crate::keys::name_suffix(10).unwrap()));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    fn session(token: &str) -> Session {
        Session {
            server: "https://infra.example.com".into(),
            provider: "okta".into(),
            user: "alice@example.com".into(),
            token: token.into(),
            expires_at: "2026-11-29T14:00:00Z".into(),
        }
    }

    #[test]
    fn saved_with_private_permissions_and_read_back() {
        let root = temp_dir();
        let dir = root.join("nested").join(".infra");
        let path = save(&dir, &session("ist_aaaaaaaaaaaa_secret")).unwrap();
        assert_eq!(path, dir.join("session.json"));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(load(&dir).unwrap(), Some(session("ist_aaaaaaaaaaaa_secret")));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for key in ["server", "provider", "user", "token", "expiresAt"] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }

        // Replacing keeps the mode and leaves no temporary file behind.
        save(&dir, &session("ist_bbbbbbbbbbbb_other")).unwrap();
        assert_eq!(load(&dir).unwrap().unwrap().token, "ist_bbbbbbbbbbbb_other");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("session.json")]);

        assert!(remove(&dir).unwrap());
        assert!(!remove(&dir).unwrap());
        assert_eq!(load(&dir).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_that_was_world_readable_is_replaced_by_a_private_one() {
        let dir = temp_dir();
        let path = path_in(&dir);
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&dir, &session("ist_cccccccccccc_x")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_content_says_what_to_do() {
        let dir = temp_dir();
        std::fs::write(path_in(&dir), "not json").unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("run `infra login`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", session("ist_dddddddddddd_topsecret"));
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("alice@example.com"));
    }

    #[test]
    fn home_directory() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(home_from(s("/x/infra"), s("/home/a")).unwrap(), PathBuf::from("/x/infra"));
        assert_eq!(home_from(None, s("/home/a")).unwrap(), PathBuf::from("/home/a/.infra"));
        assert_eq!(home_from(s(""), s("/home/a")).unwrap(), PathBuf::from("/home/a/.infra"));
        assert!(home_from(None, None).is_err());
    }
}

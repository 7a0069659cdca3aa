//! The server's watch cache of Sessions, from its one Session watch: what token minting, the
//! authorization webhook and the dashboard need of each session, kept compact (about 300 bytes a
//! session instead of the object: no managed fields, labels or annotations, the token's hash as
//! bytes, provider and issuer strings shared). A session the watch has not delivered yet is a
//! miss, which callers answer from the API server.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::SessionRecord;
use super::store::{Session, Stored};
use crate::api::Session as SessionObject;
use crate::directory::Interner;

/// One session, as the cache keeps it.
struct Entry {
    token_hash: [u8; 32],
    user: Box<str>,
    user_object: Box<str>,
    provider: Arc<str>,
    created_at: Timestamp,
    expires_at: Timestamp,
    issuer: Option<Arc<str>>,
    token_endpoint: Option<Arc<str>>,
    owner_uid: Option<Box<str>>,
    last_seen: Timestamp,
    /// Being deleted: ended, whatever else it says.
    deleting: bool,
}

/// What the cache knows of a session id.
pub enum Cached {
    Live(Box<Stored>),
    /// Being deleted (logged out, ended): refused without asking the API server.
    Ending,
}

/// A session as the dashboard lists it.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Box<str>, Entry>,
    /// A re-list in progress (after the watch was interrupted): replaces `sessions` when done.
    relist: Option<HashMap<Box<str>, Entry>>,
    /// Provider names, issuers and token endpoints: a handful of values, each shared by many
    /// sessions.
    strings: Interner,
}

#[derive(Default)]
pub struct SessionCache {
    inner: RwLock<Inner>,
}

impl Entry {
    /// `None` for an object that is not a well-formed session (it never opens one).
    fn new(object: &SessionObject, strings: &mut Interner) -> Option<Self> {
        let Stored { session, token_hash, owner_uid } = Stored::from_object(object)?;
        let r = session.record;
        Some(Self {
            token_hash,
            user: r.user.into(),
            user_object: r.user_object.into(),
            provider: strings.get(&r.provider),
            created_at: r.created_at,
            expires_at: r.expires_at,
            issuer: r.issuer.as_deref().map(|s| strings.get(s)),
            token_endpoint: r.token_endpoint.as_deref().map(|s| strings.get(s)),
            owner_uid: owner_uid.map(String::into_boxed_str),
            last_seen: session.last_seen,
            deleting: object.metadata.deletion_timestamp.is_some(),
        })
    }

    fn stored(&self, id: &str) -> Stored {
        let record = SessionRecord {
            user: self.user.to_string(),
            user_object: self.user_object.to_string(),
            provider: self.provider.to_string(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            // Only the controller's re-checks read it.
            checked_at: None,
            issuer: self.issuer.as_deref().map(str::to_string),
            token_endpoint: self.token_endpoint.as_deref().map(str::to_string),
        };
        Stored {
            session: Session { id: id.to_string(), record, last_seen: self.last_seen },
            token_hash: self.token_hash,
            owner_uid: self.owner_uid.as_deref().map(str::to_string),
        }
    }
}

impl SessionCache {
    /// Applies one event of the Session watch.
    pub fn apply(&self, event: watcher::Event<SessionObject>) {
        let mut guard = self.inner.write().expect("session cache lock");
        let inner = &mut *guard;
        match event {
            watcher::Event::Apply(o) => put(&mut inner.sessions, &o, &mut inner.strings),
            watcher::Event::Delete(o) => {
                inner.sessions.remove(o.name_any().as_str());
            }
            watcher::Event::Init => inner.relist = Some(HashMap::new()),
            watcher::Event::InitApply(o) => {
                let target = inner.relist.get_or_insert_with(HashMap::new);
                put(target, &o, &mut inner.strings);
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = inner.relist.take() {
                    inner.sessions = fresh;
                }
            }
        }
    }

    /// Session `id`, if the watch has delivered it.
    pub fn get(&self, id: &str) -> Option<Cached> {
        let inner = self.inner.read().expect("session cache lock");
        let entry = inner.sessions.get(id)?;
        Some(if entry.deleting { Cached::Ending } else { Cached::Live(Box::new(entry.stored(id))) })
    }

    /// Whether session `id` exists and is not being deleted; `None` if the cache does not hold it.
    pub fn live(&self, id: &str) -> Option<bool> {
        self.inner.read().expect("session cache lock").sessions.get(id).map(|e| !e.deleting)
    }

    /// How many sessions each user (by object name) has.
    pub fn counts_by_user(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for e in self.inner.read().expect("session cache lock").sessions.values() {
            *counts.entry(e.user_object.to_string()).or_default() += 1;
        }
        counts
    }

    /// The sessions of user object `name`, newest first.
    pub fn of_user(&self, name: &str) -> Vec<Summary> {
        let inner = self.inner.read().expect("session cache lock");
        let mut found: Vec<Summary> = inner
            .sessions
            .iter()
            .filter(|(_, e)| &*e.user_object == name)
            .map(|(id, e)| Summary { id: id.to_string(), created_at: e.created_at, last_seen: e.last_seen })
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        found
    }

    /// Keeps `self` current from a watch of `api`, in the background.
    pub fn spawn_watch(self: &Arc<Self>, api: Api<SessionObject>) {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => cache.apply(event),
                    Err(e) => tracing::warn!(error = %e, kind = "Session", "watch error; retrying"),
                }
            }
        });
    }
}

fn put(sessions: &mut HashMap<Box<str>, Entry>, object: &SessionObject, strings: &mut Interner) {
    let name = object.name_any();
    match Entry::new(object, strings) {
        Some(entry) => {
            sessions.insert(name.into_boxed_str(), entry);
        }
        // Malformed: never opens a session, and callers that miss ask the API server.
        None => {
            sessions.remove(name.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;
    use crate::api::{SessionSpec, annotations, labels};

    fn object(id: &str, user_object: &str, created: i64) -> SessionObject {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let record = SessionRecord {
            user: "kate@x".into(),
            user_object: user_object.into(),
            provider: "okta".into(),
            created_at: at(created),
            expires_at: at(created + 3600),
            checked_at: Some(at(created)),
            issuer: Some("https://okta.example".into()),
            token_endpoint: Some("https://okta.example/token".into()),
        };
        let mut o = SessionObject::new(id, SessionSpec { record, token_hash: crate::keys::hash_hex(&format!("ist_{id}_secret")) });
        o.metadata.namespace = Some("infra".into());
        o.metadata.labels = Some(BTreeMap::from([(labels::SESSION.to_string(), id.to_string())]));
        o.metadata.annotations = Some(BTreeMap::from([(annotations::LAST_SEEN.to_string(), at(created + 60).to_string())]));
        o.metadata.owner_references =
            Some(vec![OwnerReference { kind: "User".into(), name: user_object.into(), uid: "uid-1".into(), ..Default::default() }]);
        o
    }

    fn live(c: &SessionCache, id: &str) -> Stored {
        match c.get(id) {
            Some(Cached::Live(s)) => *s,
            Some(Cached::Ending) => panic!("{id} is ending"),
            None => panic!("{id} is missing"),
        }
    }

    #[test]
    fn keeps_what_a_session_check_needs() {
        let c = SessionCache::default();
        let o = object("aaaaaaaaaaaa", "u-1", 0);
        c.apply(watcher::Event::Apply(o.clone()));
        let s = live(&c, "aaaaaaaaaaaa");
        let parsed = Stored::from_object(&o).unwrap();
        assert_eq!(s.token_hash, parsed.token_hash);
        assert_eq!(s.owner_uid.as_deref(), Some("uid-1"));
        assert_eq!(s.session.last_seen, parsed.session.last_seen);
        assert_eq!(SessionRecord { checked_at: None, ..parsed.session.record }, s.session.record);
        assert!(crate::keys::verify_hash_bytes("ist_aaaaaaaaaaaa_secret", &s.token_hash));
        assert_eq!(c.live("aaaaaaaaaaaa"), Some(true));
        assert_eq!(c.live("bbbbbbbbbbbb"), None);
    }

    #[test]
    fn deletions_and_relists() {
        let c = SessionCache::default();
        c.apply(watcher::Event::Apply(object("aaaaaaaaaaaa", "u-1", 0)));
        c.apply(watcher::Event::Apply(object("bbbbbbbbbbbb", "u-1", 10)));
        c.apply(watcher::Event::Apply(object("cccccccccccc", "u-2", 5)));
        let mut deleting = object("aaaaaaaaaaaa", "u-1", 0);
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        c.apply(watcher::Event::Apply(deleting));
        assert!(matches!(c.get("aaaaaaaaaaaa"), Some(Cached::Ending)));
        assert_eq!(c.live("aaaaaaaaaaaa"), Some(false));
        assert_eq!(c.counts_by_user(), HashMap::from([("u-1".to_string(), 2), ("u-2".to_string(), 1)]));
        let ids: Vec<_> = c.of_user("u-1").into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"], "newest first");
        c.apply(watcher::Event::Delete(object("cccccccccccc", "u-2", 5)));
        assert!(c.get("cccccccccccc").is_none());

        // A re-list replaces everything at its end: what it did not list is gone.
        c.apply(watcher::Event::Init);
        c.apply(watcher::Event::InitApply(object("dddddddddddd", "u-3", 0)));
        assert!(c.get("bbbbbbbbbbbb").is_some(), "served from the old state until the re-list is done");
        c.apply(watcher::Event::InitDone);
        assert!(c.get("bbbbbbbbbbbb").is_none());
        assert_eq!(live(&c, "dddddddddddd").session.record.user_object, "u-3");
    }

    #[test]
    fn a_malformed_session_is_not_kept() {
        let c = SessionCache::default();
        c.apply(watcher::Event::Apply(object("aaaaaaaaaaaa", "u-1", 0)));
        let mut bad = object("aaaaaaaaaaaa", "u-1", 0);
        bad.spec.token_hash = "not a hash".into();
        c.apply(watcher::Event::Apply(bad));
        assert!(c.get("aaaaaaaaaaaa").is_none());
        let mut other = object("aaaaaaaaaaaa", "u-1", 0);
        other.metadata.labels = Some(BTreeMap::from([(labels::SESSION.to_string(), "zzzzzzzzzzzz".to_string())]));
        c.apply(watcher::Event::Apply(other));
        assert!(c.get("aaaaaaaaaaaa").is_none(), "the label must name the session itself");
    }
}

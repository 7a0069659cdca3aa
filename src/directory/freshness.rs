//! Which version of an object the directory should hold, decided without comparing
//! resourceVersions: Kubernetes defines them as opaque strings, equal or not, never ordered.
//!
//! The directory is fed by two sources that race: the server's own writes (applied as soon as
//! the API server answers, so a client reads its own writes) and the watch, which delivers every
//! change in order but later. A watch event older than the server's own write must not undo it.
//! So after writing version `v` of an object, the directory ignores that object's watch events
//! until the one carrying `v` arrives: everything before it in the (ordered) stream is older,
//! everything after it newer. After deleting an object, it ignores the object's events until the
//! deletion arrives.
//!
//! Two edge cases keep this from waiting forever. A write whose version the watch has already
//! delivered (and perhaps something newer after it) is not applied at all: the directory already
//! holds it or a newer one; the watch's recent `(name, version)` pairs are remembered for that. And
//! a relist (the watch restarting from a fresh list, after which some written versions may never
//! be delivered) forgets every pending write, as does a write pending for longer than
//! [`PENDING_LIMIT`].

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// How long a write waits for its watch event before the watch is believed again. The event
/// normally arrives within milliseconds; this only bounds the damage of a lost one.
pub const PENDING_LIMIT: Duration = Duration::from_secs(60);
/// How many recent watch events are remembered (as 8-byte hashes).
const RECENT: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Version(String),
    Deleted,
}

#[derive(Default)]
pub struct Freshness {
    pending: HashMap<String, (Pending, Instant)>,
    recent: HashSet<u64>,
    recent_order: VecDeque<u64>,
    /// Between a relist's start and its end, events are applied as they come.
    relisting: bool,
}

fn key(name: &str, version: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (name, version).hash(&mut h);
    h.finish()
}

impl Freshness {
    /// The server wrote (or read afresh) `name` at `version`: whether to apply it. Afterwards
    /// the object's older watch events are ignored.
    pub fn own_write(&mut self, name: &str, version: Option<&str>, now: Instant) -> bool {
        let Some(version) = version else { return true };
        if self.recent.contains(&key(name, version)) {
            // The watch got there first; what the directory holds is this version or newer.
            self.pending.remove(name);
            return false;
        }
        self.pending.insert(name.to_string(), (Pending::Version(version.to_string()), now));
        true
    }

    /// The server deleted `name`: its watch events until the deletion are older.
    pub fn own_delete(&mut self, name: &str, now: Instant) {
        self.pending.insert(name.to_string(), (Pending::Deleted, now));
    }

    /// A watch event for `name` (`deleted`, or an object at `version`): whether to apply it.
    pub fn watched(&mut self, name: &str, version: Option<&str>, deleted: bool, now: Instant) -> bool {
        if let Some(v) = version.filter(|_| !deleted) {
            self.remember(key(name, v));
        }
        if self.relisting {
            return true;
        }
        let Some((pending, since)) = self.pending.get(name) else { return true };
        let arrived = match pending {
            Pending::Version(v) => !deleted && version == Some(v.as_str()),
            Pending::Deleted => deleted,
        };
        if arrived {
            self.pending.remove(name);
            // The write's own event: the directory holds this very version already, so only a
            // deletion needs applying (again, harmlessly). Skipping the re-index of every object
            // the server writes saves a good part of its work per SCIM write.
            return deleted;
        }
        if now.duration_since(*since) > PENDING_LIMIT {
            self.pending.remove(name);
            return true;
        }
        false
    }

    pub fn relist_started(&mut self) {
        self.relisting = true;
    }

    /// The relist is complete: the directory now matches a consistent list, and versions written
    /// before it may never be delivered.
    pub fn relist_done(&mut self) {
        self.relisting = false;
        self.pending.clear();
    }

    fn remember(&mut self, k: u64) {
        if self.recent.insert(k) {
            self.recent_order.push_back(k);
            if self.recent_order.len() > RECENT
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
    }

    #[cfg(test)]
    fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_before_an_own_write_are_ignored_until_its_own_event() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        assert!(f.watched("u", Some("5"), false, t));
        assert!(f.own_write("u", Some("9"), t));
        // Versions are not ordered: "10" sorts before "9" as text and after it as a number;
        // neither matters, only the stream's order does.
        assert!(!f.watched("u", Some("7"), false, t), "older than the write");
        assert!(!f.watched("u", None, true, t), "a deletion before the write (of an earlier incarnation)");
        assert!(!f.watched("u", Some("9"), false, t), "the write's own event: the directory holds it already");
        assert!(f.watched("u", Some("10"), false, t), "and everything after it");
        assert!(f.watched("u", None, true, t));
        assert!(f.watched("other", Some("8"), false, t), "other objects are not held back");
        assert_eq!(f.pending_count(), 0);
    }

    #[test]
    fn a_write_the_watch_already_delivered_is_not_applied() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        assert!(f.watched("u", Some("9"), false, t));
        assert!(f.watched("u", Some("12"), false, t));
        assert!(!f.own_write("u", Some("9"), t), "the directory holds 12, newer than the write");
        assert!(f.watched("u", Some("13"), false, t), "nothing is held back");
    }

    #[test]
    fn after_an_own_delete_only_the_deletion_is_awaited() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        f.own_delete("u", t);
        assert!(!f.watched("u", Some("3"), false, t), "an update from before the delete");
        assert!(f.watched("u", Some("3"), true, t), "the deletion");
        assert!(f.watched("u", Some("20"), false, t), "a new object of the same name");
    }

    #[test]
    fn a_relist_or_a_lost_event_releases_pending_writes() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        f.own_write("u", Some("9"), t);
        f.relist_started();
        assert!(f.watched("u", Some("11"), false, t), "the list is applied as it comes");
        f.relist_done();
        assert!(f.watched("u", Some("12"), false, t));

        f.own_write("v", Some("30"), t);
        assert!(!f.watched("v", Some("29"), false, t + Duration::from_secs(1)));
        assert!(f.watched("v", Some("31"), false, t + PENDING_LIMIT + Duration::from_secs(1)), "the write's event was lost");
    }

    #[test]
    fn writes_without_a_version_are_applied_and_hold_nothing_back() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        assert!(f.own_write("u", None, t));
        assert!(f.watched("u", Some("1"), false, t));
    }

    #[test]
    fn the_memory_of_recent_events_is_bounded() {
        let (mut f, t) = (Freshness::default(), Instant::now());
        for i in 0..(RECENT + 100) {
            f.watched(&format!("u{i}"), Some("1"), false, t);
        }
        assert_eq!(f.recent.len(), RECENT);
        assert_eq!(f.recent_order.len(), RECENT);
        assert!(f.own_write("u0", Some("1"), t), "forgotten: applied (its event is long past; at worst briefly stale)");
    }
}

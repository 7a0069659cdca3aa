//! The in-memory directory the server reads from: every User and Group of the namespace, with the
//! indexes SCIM lookups need (id, userName, externalId, email, displayName, membership).
//!
//! Membership is read from both places it can be stored: the members' labels
//! (`group.infrahq.com/<group id>`, see [`crate::api::member_label`]) and, for groups written by
//! earlier versions until the controller has moved them, the Group's `spec.members`.
//!
//! It is fed by the API server's watch and by the server's own successful writes (so a client
//! always reads its own writes); [`Freshness`] keeps a late watch event from undoing a local
//! write, without ever comparing resourceVersions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use kube::ResourceExt;
use kube::runtime::watcher;

use super::codec::scim_id;
use super::compact::{CompactUser, Interner};
use super::few::Few;
use super::freshness::Freshness;
use crate::api::{Group, User};

type Key = (String, String);
type Id = Arc<str>;
/// Per provider, an attribute value (case-folded where the attribute is caseExact=false) and what
/// carries it. Nested by provider so that no key repeats the provider's name.
type ByValue<V> = HashMap<Arc<str>, HashMap<Arc<str>, V>>;

/// Memory is what bounds how many users one replica holds (README "SCIM limits"): every string a
/// user's entries share (its id, object name, userName, provider, label keys) is one `Arc<str>`,
/// and the small sets (users with an email, an externalId) are sorted vectors, not trees.
#[derive(Default)]
pub struct Directory {
    users: HashMap<Arc<str>, Arc<CompactUser>>,
    /// Provider names, shared by every user of the provider.
    provider_names: HashMap<String, Arc<str>>,
    strings: Interner,
    /// The object names carrying each SCIM id: one, or two while a rename moves the user.
    user_names_by_id: HashMap<Id, Few<Arc<str>>>,
    user_by_name: ByValue<Arc<str>>,
    user_by_external: ByValue<Few<Id>>,
    user_by_email: ByValue<Few<Id>>,
    /// Per provider, the ids in order: the stable order of list responses.
    user_order: HashMap<Arc<str>, BTreeSet<Id>>,
    groups: HashMap<String, Arc<Group>>,
    group_by_id: HashMap<String, String>,
    group_by_display: HashMap<Key, BTreeSet<String>>,
    group_by_external: HashMap<Key, BTreeSet<String>>,
    group_order: BTreeSet<Key>,
    /// user id -> group ids, from groups' legacy `spec.members`.
    member_of: HashMap<String, BTreeSet<String>>,
    /// group id -> user ids, from the users' membership labels.
    labelled_members: HashMap<String, BTreeSet<Id>>,
    user_resync: Option<HashSet<String>>,
    group_resync: Option<HashSet<String>>,
    user_freshness: Freshness,
    group_freshness: Freshness,
}

/// A user as [`Directory::login_user`] sees it.
pub struct LoginUser<'a> {
    pub uid: &'a str,
    pub active: bool,
    pub user_name: &'a str,
    /// The SCIM id.
    pub id: &'a str,
    pub login_groups: &'a [Arc<str>],
    /// The `infrahq.com/last-login` annotation.
    pub last_login: Option<&'a str>,
}

/// Index keys of caseExact=false attributes (userName, emails, displayName), by the one rule of
/// [`crate::scim::case`]: the index must agree with the object name and with the SCIM filter.
fn lower(s: &str) -> String {
    crate::scim::case::fold_case(s).into_owned()
}

/// The folded form of `s`, sharing `s` when folding changes nothing (the usual case).
fn folded(s: &Arc<str>) -> Arc<str> {
    match crate::scim::case::fold_case(s) {
        std::borrow::Cow::Borrowed(_) => s.clone(),
        std::borrow::Cow::Owned(f) => Arc::from(f),
    }
}

/// Removes `id` from the set under `key`, and the set once empty.
fn remove_from(map: &mut ByValue<Few<Id>>, provider: &str, key: &str, id: &str) {
    let Some(values) = map.get_mut(provider) else { return };
    if let Some(ids) = values.get_mut(key) {
        ids.retain(|i| &**i != id);
        if ids.is_empty() {
            values.remove(key);
        }
    }
}

impl Directory {
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    // ---- users -------------------------------------------------------------------------------

    /// Adds or replaces a user, unless the directory already holds a newer version of it.
    /// A user the server wrote, or read afresh: applied unless the watch already delivered it.
    pub fn apply_user(&mut self, user: User) -> bool {
        if !self.user_freshness.own_write(&user.name_any(), user.metadata.resource_version.as_deref(), Instant::now()) {
            return false;
        }
        self.index_user(user)
    }

    fn index_user(&mut self, user: User) -> bool {
        let name = user.name_any();
        if let Some(seen) = self.user_resync.as_mut() {
            seen.insert(name.clone());
        }
        self.remove_user_indexes(&name);
        let provider = user.spec.provider_ref.name.clone();
        let shared = self.provider_names.entry(provider.clone()).or_insert_with(|| Arc::from(provider.as_str())).clone();
        let Some(user) = CompactUser::new(user, shared.clone(), &mut self.strings) else {
            self.users.remove(name.as_str());
            return false;
        };
        let (id, name) = (user.id.clone(), user.name.clone());
        self.user_names_by_id.entry(id.clone()).or_default().push(name.clone());
        for gid in user.member_groups() {
            self.labelled_members.entry(gid.to_string()).or_default().insert(id.clone());
        }
        let user_name = folded(&user.user_name);
        self.user_by_name.entry(shared.clone()).or_default().insert(user_name.clone(), name.clone());
        if let Some(e) = user.external_id() {
            self.user_by_external.entry(shared.clone()).or_default().entry(Arc::from(e)).or_default().insert_sorted(id.clone());
        }
        for e in user.email_values() {
            // Usually the userName is the email (Okta's default): one copy serves both indexes.
            let e = if *e == *user_name { user_name.clone() } else { Arc::from(e) };
            self.user_by_email.entry(shared.clone()).or_default().entry(e).or_default().insert_sorted(id.clone());
        }
        self.user_order.entry(shared).or_default().insert(id);
        self.users.insert(name, Arc::new(user));
        true
    }

    /// A user the server deleted.
    pub fn delete_user(&mut self, name: &str) {
        self.user_freshness.own_delete(name, Instant::now());
        self.unindex_user(name);
    }

    fn unindex_user(&mut self, name: &str) {
        self.remove_user_indexes(name);
        self.users.remove(name);
    }

    fn remove_user_indexes(&mut self, name: &str) {
        let Some(old) = self.users.get(name).cloned() else { return };
        let provider = &*old.provider;
        let id = old.id.clone();
        let user_name = folded(&old.user_name);
        if let Some(names) = self.user_by_name.get_mut(provider)
            && names.get(&user_name).is_some_and(|n| &**n == name)
        {
            names.remove(&user_name);
        }
        // The id's other indexes stay while another object (mid-rename) still carries it.
        let others: Few<Arc<str>> = match self.user_names_by_id.get_mut(&id) {
            Some(names) => {
                names.retain(|n| &**n != name);
                names.clone()
            }
            None => Few::default(),
        };
        for gid in old.member_groups() {
            let kept = others.iter().filter_map(|n| self.users.get(n)).any(|u| u.member_groups().any(|g| g == gid));
            if kept {
                continue;
            }
            if let Some(set) = self.labelled_members.get_mut(gid) {
                set.remove(&id);
                if set.is_empty() {
                    self.labelled_members.remove(gid);
                }
            }
        }
        if !others.is_empty() {
            return;
        }
        self.user_names_by_id.remove(&id);
        if let Some(e) = old.external_id() {
            remove_from(&mut self.user_by_external, provider, e, &id);
        }
        for e in old.email_values() {
            remove_from(&mut self.user_by_email, provider, &e, &id);
        }
        if let Some(ids) = self.user_order.get_mut(provider) {
            ids.remove(&id);
            if ids.is_empty() {
                self.user_order.remove(provider);
            }
        }
    }

    /// The user with SCIM id `id`: while a rename leaves two objects with one id, the one applied
    /// last (each apply moves its name to the end).
    fn compact(&self, provider: &str, id: &str) -> Option<&Arc<CompactUser>> {
        let u = self.user_names_by_id.get(id)?.iter().filter_map(|n| self.users.get(n)).next_back()?;
        (&*u.provider == provider).then_some(u)
    }

    /// The user with SCIM id `id` in `provider`.
    pub fn user(&self, provider: &str, id: &str) -> Option<User> {
        self.compact(provider, id).map(|u| u.to_user())
    }

    pub fn user_by_user_name(&self, provider: &str, user_name: &str) -> Option<User> {
        let name = self.user_by_name.get(provider)?.get(lower(user_name).as_str())?;
        self.users.get(name).map(|u| u.to_user())
    }

    /// The UID and whether the user is active, by userName: what the authorization webhook asks
    /// on every request, without building the whole User.
    pub fn user_access(&self, provider: &str, user_name: &str) -> Option<(&str, bool)> {
        let name = self.user_by_name.get(provider)?.get(lower(user_name).as_str())?;
        let u = self.users.get(name)?;
        Some((u.uid().unwrap_or_default(), u.active.unwrap_or(true)))
    }

    /// What a session check and a token need of the user with object name `name`, without
    /// building the whole User.
    pub fn login_user(&self, name: &str) -> Option<LoginUser<'_>> {
        let u = self.users.get(name)?;
        Some(LoginUser {
            uid: u.uid().unwrap_or_default(),
            active: u.active.unwrap_or(true),
            user_name: &u.user_name,
            id: &u.id,
            login_groups: &u.login_groups,
            last_login: u.annotation(crate::api::annotations::LAST_LOGIN),
        })
    }

    pub fn users_by_external_id(&self, provider: &str, external_id: &str) -> Vec<User> {
        self.ids_to_users(provider, self.user_by_external.get(provider).and_then(|m| m.get(external_id)))
    }

    pub fn users_by_email(&self, provider: &str, email: &str) -> Vec<User> {
        self.ids_to_users(provider, self.user_by_email.get(provider).and_then(|m| m.get(lower(email).as_str())))
    }

    fn ids_to_users(&self, provider: &str, ids: Option<&Few<Id>>) -> Vec<User> {
        ids.into_iter().flat_map(|ids| ids.iter()).filter_map(|id| self.user(provider, id)).collect()
    }

    fn user_ids(&self, provider: &str) -> impl Iterator<Item = &Id> {
        self.user_order.get(provider).into_iter().flatten()
    }

    /// Every user of `provider`, in a stable order (by id).
    pub fn users(&self, provider: &str) -> Vec<User> {
        self.user_ids(provider).filter_map(|id| self.user(provider, id)).collect()
    }

    /// One page of `users(provider)` (`start` is 0-based) and how many users there are in all,
    /// without materializing the others.
    pub fn users_page(&self, provider: &str, start: usize, count: usize) -> (usize, Vec<User>) {
        let total = self.user_ids(provider).count();
        let page = self.user_ids(provider).skip(start).take(count).filter_map(|id| self.user(provider, id)).collect();
        (total, page)
    }

    /// The dashboard's Users list: the users of every provider whose userName, displayName or an
    /// email contains `query` (ignoring case; every user when it is empty), ordered by provider
    /// and userName. One page (`start` is 0-based) and how many match. Only the page's users are
    /// materialized, and emails are matched through their index, so that this stays fast with
    /// tens of thousands of users.
    pub fn search_users(&self, query: &str, start: usize, count: usize) -> (usize, Vec<User>) {
        let q = lower(query.trim());
        let by_email: HashSet<(&str, &str)> = if q.is_empty() {
            HashSet::new()
        } else {
            self.user_by_email
                .iter()
                .flat_map(|(p, emails)| {
                    emails.iter().filter(|(e, _)| e.contains(q.as_str())).flat_map(move |(_, ids)| ids.iter().map(move |id| (&**p, &**id)))
                })
                .collect()
        };
        let contains = |s: &str| crate::scim::case::fold_case(s).contains(q.as_str());
        // Every object once; of the two objects a rename briefly has for one id, the newer.
        let current = |u: &&Arc<CompactUser>| match self.user_names_by_id.get(&u.id) {
            Some(names) if names.len() > 1 => self.compact(&u.provider, &u.id).is_some_and(|c| Arc::ptr_eq(c, u)),
            _ => true,
        };
        let mut hits: Vec<&CompactUser> = self
            .users
            .values()
            .filter(current)
            .filter(|u| {
                q.is_empty()
                    || contains(&u.user_name)
                    || u.display_name().is_some_and(contains)
                    || by_email.contains(&(&*u.provider, &*u.id))
            })
            .map(|u| &**u)
            .collect();
        let total = hits.len();
        // Only the page is put in order completely: the rest only needs to be on the right side.
        let end = start.saturating_add(count).min(total);
        if start < total {
            let cmp = |a: &&CompactUser, b: &&CompactUser| {
                a.provider.cmp(&b.provider).then_with(|| {
                    a.user_name.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.user_name.bytes().map(|c| c.to_ascii_lowercase()))
                })
            };
            if end < total {
                hits.select_nth_unstable_by(end, cmp);
            }
            let head = &mut hits[..end];
            if start > 0 {
                head.select_nth_unstable_by(start, cmp);
            }
            hits[start..end].sort_by(cmp);
        }
        (total, hits.get(start..end).unwrap_or_default().iter().map(|u| u.to_user()).collect())
    }

    /// The object name and UID of the user with SCIM id `id`, for writes that address it.
    pub fn user_object(&self, provider: &str, id: &str) -> Option<(String, Option<String>)> {
        self.compact(provider, id).map(|u| (u.name.to_string(), u.uid().map(str::to_string)))
    }

    /// The groups `user_id` belongs to, as (id, displayName). Labels naming a group that does not
    /// exist (deleted while the user's label was being removed) are ignored.
    pub fn groups_of(&self, provider: &str, user_id: &str) -> Vec<(String, String)> {
        let labelled = self.compact(provider, user_id).into_iter().flat_map(|u| u.member_groups());
        let legacy = self.member_of.get(user_id).into_iter().flatten().map(String::as_str);
        let ids: BTreeSet<&str> = labelled.chain(legacy).collect();
        ids.into_iter()
            .filter_map(|gid| self.group(provider, gid))
            .map(|g| (scim_id(g.as_ref()).unwrap_or_default().to_string(), g.spec.display_name.clone()))
            .collect()
    }

    // ---- groups ------------------------------------------------------------------------------

    /// A group the server wrote, or read afresh: applied unless the watch already delivered it.
    pub fn apply_group(&mut self, group: Group) -> bool {
        if !self.group_freshness.own_write(&group.name_any(), group.metadata.resource_version.as_deref(), Instant::now()) {
            return false;
        }
        self.index_group(group)
    }

    fn index_group(&mut self, mut group: Group) -> bool {
        let name = group.name_any();
        if let Some(seen) = self.group_resync.as_mut() {
            seen.insert(name.clone());
        }
        group.metadata.managed_fields = None;
        self.remove_group_indexes(&name);
        let Some(id) = scim_id(&group).map(str::to_string) else { return false };
        let provider = group.spec.provider_ref.name.clone();
        self.group_by_id.insert(id.clone(), name.clone());
        self.group_by_display.entry((provider.clone(), lower(&group.spec.display_name))).or_default().insert(id.clone());
        if let Some(e) = &group.spec.external_id {
            self.group_by_external.entry((provider.clone(), e.clone())).or_default().insert(id.clone());
        }
        for m in &group.spec.members {
            self.member_of.entry(m.value.clone()).or_default().insert(id.clone());
        }
        self.group_order.insert((provider, id));
        self.groups.insert(name, Arc::new(group));
        true
    }

    /// A group the server deleted.
    pub fn delete_group(&mut self, name: &str) {
        self.group_freshness.own_delete(name, Instant::now());
        self.unindex_group(name);
    }

    fn unindex_group(&mut self, name: &str) {
        self.remove_group_indexes(name);
        self.groups.remove(name);
    }

    fn remove_group_indexes(&mut self, name: &str) {
        let Some(old) = self.groups.get(name).cloned() else { return };
        let provider = old.spec.provider_ref.name.clone();
        let Some(id) = scim_id(old.as_ref()).map(str::to_string) else { return };
        self.group_by_id.remove(&id);
        if let Some(set) = self.group_by_display.get_mut(&(provider.clone(), lower(&old.spec.display_name))) {
            set.remove(&id);
        }
        if let Some(e) = &old.spec.external_id
            && let Some(set) = self.group_by_external.get_mut(&(provider.clone(), e.clone()))
        {
            set.remove(&id);
        }
        for m in &old.spec.members {
            if let Some(set) = self.member_of.get_mut(&m.value) {
                set.remove(&id);
                if set.is_empty() {
                    self.member_of.remove(&m.value);
                }
            }
        }
        self.group_order.remove(&(provider, id));
    }

    pub fn group(&self, provider: &str, id: &str) -> Option<Arc<Group>> {
        let g = self.groups.get(self.group_by_id.get(id)?)?;
        (g.spec.provider_ref.name == provider).then(|| g.clone())
    }

    pub fn groups_by_display_name(&self, provider: &str, display_name: &str) -> Vec<Arc<Group>> {
        let ids = self.group_by_display.get(&(provider.to_string(), lower(display_name)));
        ids.into_iter().flatten().filter_map(|id| self.group(provider, id)).collect()
    }

    pub fn groups_by_external_id(&self, provider: &str, external_id: &str) -> Vec<Arc<Group>> {
        let ids = self.group_by_external.get(&(provider.to_string(), external_id.to_string()));
        ids.into_iter().flatten().filter_map(|id| self.group(provider, id)).collect()
    }

    pub fn groups(&self, provider: &str) -> Vec<Arc<Group>> {
        self.group_order
            .range((provider.to_string(), String::new())..)
            .take_while(|(p, _)| p == provider)
            .filter_map(|(_, id)| self.group(provider, id))
            .collect()
    }

    /// Members of `group` that exist, as (id, display as the client wrote it): those listed in its
    /// legacy `spec.members` in their order, then those labelled as members, by id. Legacy members
    /// whose user is gone (deleted before the controller moved the group) are left out rather
    /// than shown dangling.
    pub fn members_of(&self, group: &Group) -> Vec<(String, Option<String>)> {
        let provider = &group.spec.provider_ref.name;
        let gid = scim_id(group).unwrap_or_default();
        let mut seen = HashSet::new();
        let mut out = vec![];
        for m in &group.spec.members {
            if seen.insert(m.value.as_str()) && self.compact(provider, &m.value).is_some() {
                out.push((m.value.clone(), m.display.clone()));
            }
        }
        for id in self.labelled_members.get(gid).into_iter().flatten() {
            if let Some(u) = self.compact(provider, id).filter(|_| seen.insert(&**id)) {
                out.push((id.to_string(), u.member_display(gid).map(str::to_string)));
            }
        }
        out
    }

    /// How many members `group` has at most (those [`Self::members_of`] lists, counting legacy
    /// members whose user is gone), without listing them.
    pub fn member_count(&self, group: &Group) -> usize {
        let labelled = scim_id(group).and_then(|gid| self.labelled_members.get(gid)).map_or(0, BTreeSet::len);
        group.spec.members.len() + labelled
    }

    /// The display stored for member `id` of group `gid` (see [`Self::members_of`]).
    pub fn member_display(&self, provider: &str, gid: &str, id: &str) -> Option<String> {
        self.compact(provider, id)?.member_display(gid).map(str::to_string)
    }

    /// The ids of `group`'s members that exist (see [`Self::members_of`]).
    pub fn member_ids(&self, group: &Group) -> HashSet<String> {
        let provider = &group.spec.provider_ref.name;
        let legacy = group.spec.members.iter().map(|m| m.value.as_str());
        let labelled = scim_id(group).and_then(|gid| self.labelled_members.get(gid)).into_iter().flatten().map(|id| &**id);
        legacy.chain(labelled).filter(|id| self.compact(provider, id).is_some()).map(str::to_string).collect()
    }

    /// The ids of the users labelled as members of group `gid`.
    pub fn labelled_member_ids(&self, gid: &str) -> HashSet<String> {
        self.labelled_members.get(gid).into_iter().flatten().map(|id| id.to_string()).collect()
    }

    // ---- watch events ------------------------------------------------------------------------

    pub fn on_user_event(&mut self, event: watcher::Event<User>) {
        let now = Instant::now();
        match event {
            watcher::Event::Init => {
                self.user_resync = Some(HashSet::new());
                self.user_freshness.relist_started();
            }
            watcher::Event::InitApply(u) | watcher::Event::Apply(u) => {
                if self.user_freshness.watched(&u.name_any(), u.metadata.resource_version.as_deref(), false, now) {
                    self.index_user(u);
                }
            }
            watcher::Event::Delete(u) => {
                if self.user_freshness.watched(&u.name_any(), u.metadata.resource_version.as_deref(), true, now) {
                    self.unindex_user(&u.name_any());
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.user_resync.take() {
                    let gone: Vec<String> = self.users.keys().filter(|n| !seen.contains(&***n)).map(|n| n.to_string()).collect();
                    for n in gone {
                        self.unindex_user(&n);
                    }
                }
                self.user_freshness.relist_done();
            }
        }
    }

    pub fn on_group_event(&mut self, event: watcher::Event<Group>) {
        let now = Instant::now();
        match event {
            watcher::Event::Init => {
                self.group_resync = Some(HashSet::new());
                self.group_freshness.relist_started();
            }
            watcher::Event::InitApply(g) | watcher::Event::Apply(g) => {
                if self.group_freshness.watched(&g.name_any(), g.metadata.resource_version.as_deref(), false, now) {
                    self.index_group(g);
                }
            }
            watcher::Event::Delete(g) => {
                if self.group_freshness.watched(&g.name_any(), g.metadata.resource_version.as_deref(), true, now) {
                    self.unindex_group(&g.name_any());
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.group_resync.take() {
                    let gone: Vec<String> = self.groups.keys().filter(|n| !seen.contains(*n)).cloned().collect();
                    for n in gone {
                        self.unindex_group(&n);
                    }
                }
                self.group_freshness.relist_done();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GroupMember, GroupSpec, ProviderRef, UserSpec, labels};
    use serde_json::json;

    fn user(name: &str, id: &str, provider: &str, user_name: &str, rv: u64) -> User {
        let mut u = User::new(
            name,
            UserSpec {
                provider_ref: ProviderRef { name: provider.into() },
                user_name: user_name.into(),
                external_id: Some(format!("ext-{id}")),
                display_name: None,
                active: Some(true),
                attributes: Some(json!({"emails": [{"value": format!("{user_name}@Example.com")}]}).as_object().unwrap().clone()),
            },
        );
        u.metadata.labels = Some([(labels::SCIM_ID.to_string(), id.to_string())].into());
        u.metadata.resource_version = Some(rv.to_string());
        u
    }

    fn group(name: &str, id: &str, members: &[&str], rv: u64) -> Group {
        let mut g = Group::new(
            name,
            GroupSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                display_name: format!("Group {id}"),
                external_id: None,
                members: members.iter().map(|m| GroupMember { value: m.to_string(), ..Default::default() }).collect(),
            },
        );
        g.metadata.labels = Some([(labels::SCIM_ID.to_string(), id.to_string())].into());
        g.metadata.resource_version = Some(rv.to_string());
        g
    }

    #[test]
    fn users_are_searched_and_paged_in_name_order() {
        let mut d = Directory::default();
        for (i, name) in ["carol", "Alice", "bob", "dave", "erin"].iter().enumerate() {
            d.apply_user(user(&format!("u{i}"), &format!("id{i}"), "okta", name, 1));
        }
        d.apply_user(user("x1", "idx", "azure", "zed", 1));
        let names = |(total, users): (usize, Vec<User>)| (total, users.into_iter().map(|u| u.spec.user_name).collect::<Vec<_>>());
        // Providers in order, then userNames ignoring case.
        assert_eq!(
            names(d.search_users("", 0, 10)),
            (6, vec!["zed".into(), "Alice".into(), "bob".into(), "carol".into(), "dave".into(), "erin".into()])
        );
        assert_eq!(names(d.search_users("", 2, 2)), (6, vec!["bob".into(), "carol".into()]));
        assert_eq!(names(d.search_users("", 5, 2)), (6, vec!["erin".into()]));
        assert_eq!(names(d.search_users("", 9, 2)), (6, vec![]));
        // By userName, ignoring case, and by email (the fixtures' emails are <userName>@Example.com).
        assert_eq!(names(d.search_users(" ALI ", 0, 10)), (1, vec!["Alice".into()]));
        assert_eq!(names(d.search_users("@example.COM", 1, 2)), (6, vec!["Alice".into(), "bob".into()]));
        assert_eq!(names(d.search_users("nobody", 0, 10)), (0, vec![]));
    }
    #[test]
    fn lookups_are_scoped_to_the_provider_and_case_insensitive() {
        let mut d = Directory::default();
        d.apply_user(user("u-a", "1", "okta", "Alice", 1));
        d.apply_user(user("u-b", "2", "azure", "alice", 2));
        assert_eq!(scim_id(&d.user_by_user_name("okta", "ALICE").unwrap()), Some("1"));
        assert_eq!(scim_id(&d.user_by_user_name("azure", "alice").unwrap()), Some("2"));
        assert!(d.user("azure", "1").is_none(), "a provider must not see another's users");
        assert_eq!(d.users_by_external_id("okta", "ext-1").len(), 1);
        assert!(d.users_by_external_id("okta", "ext-2").is_empty());
        assert_eq!(d.users_by_email("okta", "alice@example.COM").len(), 1);
        assert_eq!(d.users("okta").len(), 1);
    }

    #[test]
    fn only_ascii_letters_fold_in_the_indexes() {
        let mut d = Directory::default();
        d.apply_user(user("u-k", "1", "okta", "kate", 1));
        d.apply_user(user("u-kelvin", "2", "okta", "\u{212A}ate", 2));
        assert_eq!(scim_id(&d.user_by_user_name("okta", "KATE").unwrap()), Some("1"));
        assert_eq!(scim_id(&d.user_by_user_name("okta", "\u{212A}ATE").unwrap()), Some("2"));
        assert_eq!(scim_id(&d.user_by_user_name("okta", "\u{212A}ate").unwrap()), Some("2"));
        assert_eq!(d.users("okta").len(), 2);
        assert_eq!(d.users_by_email("okta", "KATE@example.com").len(), 1);
        assert!(d.user_by_user_name("okta", "strasse").is_none());
        d.apply_user(user("u-s", "3", "okta", "straße", 3));
        assert!(d.user_by_user_name("okta", "STRASSE").is_none());
        assert!(d.user_by_user_name("okta", "straße").is_some());
    }

    #[test]
    fn pages_are_stable_slices_with_a_total() {
        let mut d = Directory::default();
        for i in 0..10 {
            d.apply_user(user(&format!("u-{i}"), &format!("id-{i}"), "okta", &format!("user{i}"), 1));
        }
        d.apply_user(user("u-other", "id-x", "azure", "x", 1));
        let (total, page) = d.users_page("okta", 3, 4);
        assert_eq!(total, 10);
        let ids: Vec<String> = page.iter().map(|u| scim_id(u).unwrap().to_string()).collect();
        assert_eq!(ids, vec!["id-3", "id-4", "id-5", "id-6"]);
        assert_eq!(d.users_page("okta", 9, 4).1.len(), 1);
        assert!(d.users_page("okta", 20, 4).1.is_empty());
    }

    #[test]
    fn late_watch_events_never_undo_the_servers_own_writes() {
        let mut d = Directory::default();
        let watched = |d: &mut Directory, u: User| d.on_user_event(watcher::Event::Apply(u));
        watched(&mut d, user("u-a", "1", "okta", "old-name", 4));
        // The server's write (version 10: as text it sorts before 4, which must not matter).
        assert!(d.apply_user(user("u-a", "1", "okta", "alice", 10)));
        watched(&mut d, user("u-a", "1", "okta", "older-name", 7));
        d.on_user_event(watcher::Event::Delete(user("u-a", "1", "okta", "older-name", 8)));
        assert_eq!(d.user("okta", "1").unwrap().spec.user_name, "alice", "events from before the write are ignored");
        watched(&mut d, user("u-a", "1", "okta", "alice", 10));
        watched(&mut d, user("u-a", "1", "okta", "alice2", 11));
        assert!(d.user_by_user_name("okta", "alice").is_none());
        assert!(d.user_by_user_name("okta", "alice2").is_some(), "events after the write's own are applied");
        // A write the watch has already delivered, with something newer after it, is not applied.
        assert!(!d.apply_user(user("u-a", "1", "okta", "alice", 10)));
        assert!(d.user_by_user_name("okta", "alice2").is_some());

        // The server's delete: an update from before it does not bring the user back.
        d.delete_user("u-a");
        watched(&mut d, user("u-a", "1", "okta", "alice3", 12));
        assert!(d.user("okta", "1").is_none());
        d.on_user_event(watcher::Event::Delete(user("u-a", "1", "okta", "alice3", 13)));
        watched(&mut d, user("u-a", "1", "okta", "again", 14));
        assert_eq!(d.user("okta", "1").unwrap().spec.user_name, "again", "a new object of the same name");
        assert_eq!(d.user_access("okta", "AGAIN").map(|(_, active)| active), Some(true));
        let mut inactive = user("u-a", "1", "okta", "again", 15);
        inactive.spec.active = Some(false);
        d.on_user_event(watcher::Event::Apply(inactive));
        assert_eq!(d.user_access("okta", "again").map(|(_, active)| active), Some(false));
        assert_eq!(d.user_access("other", "again"), None);
    }

    #[test]
    fn login_user_by_object_name() {
        let mut d = Directory::default();
        let mut u = user("u-a", "1", "okta", "kate", 1);
        u.metadata.uid = Some("uid-a".into());
        u.metadata.annotations = Some([(crate::api::annotations::LAST_LOGIN.to_string(), "2026-11-30T21:05:09Z".to_string())].into());
        u.status = Some(crate::api::UserStatus { login_groups: Some(vec!["ops".into(), "dev".into()]), ..Default::default() });
        d.on_user_event(watcher::Event::Apply(u));
        let l = d.login_user("u-a").unwrap();
        assert_eq!((l.uid, l.active, l.user_name, l.id, l.last_login), ("uid-a", true, "kate", "1", Some("2026-11-30T21:05:09Z")));
        assert_eq!(l.login_groups.iter().map(|g| &**g).collect::<Vec<_>>(), ["ops", "dev"]);
        assert!(d.login_user("u-b").is_none());
    }

    #[test]
    fn late_watch_events_never_undo_the_servers_own_group_writes() {
        let mut d = Directory::default();
        let named = |rv: u64, display: &str| {
            let mut g = group("g-a", "g1", &[], rv);
            g.spec.display_name = display.into();
            g
        };
        assert!(d.apply_group(named(10, "eng")));
        d.on_group_event(watcher::Event::Apply(named(9, "old")));
        assert_eq!(d.group("okta", "g1").unwrap().spec.display_name, "eng");
        d.on_group_event(watcher::Event::Apply(named(10, "eng")));
        d.on_group_event(watcher::Event::Apply(named(11, "platform")));
        assert_eq!(d.group("okta", "g1").unwrap().spec.display_name, "platform");
    }

    #[test]
    fn a_rename_keeps_the_id_while_two_objects_exist() {
        let mut d = Directory::default();
        d.apply_user(user("u-old", "1", "okta", "alice", 5));
        d.apply_user(user("u-new", "1", "okta", "alicia", 6));
        assert_eq!(d.user("okta", "1").unwrap().spec.user_name, "alicia");
        assert_eq!(d.users("okta").len(), 1, "one user, not two");
        d.delete_user("u-old");
        assert_eq!(d.user("okta", "1").unwrap().spec.user_name, "alicia");
        assert!(d.user_by_user_name("okta", "alice").is_none());
        assert_eq!(d.users_by_external_id("okta", "ext-1").len(), 1);
        d.delete_user("u-new");
        assert!(d.user("okta", "1").is_none());
        assert!(d.users("okta").is_empty());
    }

    #[test]
    fn memberships_follow_group_changes() {
        let mut d = Directory::default();
        d.apply_user(user("u-a", "1", "okta", "alice", 1));
        d.apply_user(user("u-b", "2", "okta", "bob", 1));
        d.apply_group(group("g-x", "gx", &["1", "2", "gone"], 1));
        assert_eq!(d.groups_of("okta", "1"), vec![("gx".to_string(), "Group gx".to_string())]);
        let g = d.group("okta", "gx").unwrap();
        assert_eq!(d.members_of(&g).len(), 2, "dangling members are not shown");
        d.apply_group(group("g-x", "gx", &["2"], 2));
        assert!(d.groups_of("okta", "1").is_empty());
        assert_eq!(d.groups_by_display_name("okta", "group GX").len(), 1);
        d.delete_group("g-x");
        assert!(d.groups_of("okta", "2").is_empty());
        assert!(d.groups("okta").is_empty());
    }

    fn labelled(mut u: User, groups: &[&str]) -> User {
        let l = u.metadata.labels.get_or_insert_default();
        for g in groups {
            l.insert(crate::api::member_label(g), String::new());
        }
        u
    }

    #[test]
    fn memberships_are_read_from_user_labels_and_legacy_lists_alike() {
        let mut d = Directory::default();
        d.apply_user(labelled(user("u-a", "1", "okta", "alice", 1), &["gx", "gone"]));
        d.apply_user(user("u-b", "2", "okta", "bob", 1));
        d.apply_group(group("g-x", "gx", &["2"], 1));
        let g = d.group("okta", "gx").unwrap();
        let ids: Vec<String> = d.members_of(&g).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["2", "1"], "legacy members first, then labelled ones");
        assert_eq!(d.member_ids(&g), HashSet::from(["1".to_string(), "2".to_string()]));
        assert_eq!(d.groups_of("okta", "1"), vec![("gx".to_string(), "Group gx".to_string())], "a label of a deleted group is ignored");
        assert_eq!(d.groups_of("okta", "2").len(), 1);
        // The label goes with a write that drops it, and with the user.
        d.apply_user(user("u-a", "1", "okta", "alice", 2));
        assert_eq!(d.member_ids(&g), HashSet::from(["2".to_string()]));
        d.apply_user(labelled(user("u-a", "1", "okta", "alice", 3), &["gx"]));
        d.delete_user("u-a");
        assert!(d.labelled_member_ids("gx").is_empty());
    }

    #[test]
    fn a_rename_keeps_memberships_while_either_object_carries_them() {
        let mut d = Directory::default();
        d.apply_user(labelled(user("u-old", "1", "okta", "alice", 5), &["gx"]));
        d.apply_user(labelled(user("u-new", "1", "okta", "alicia", 6), &["gx"]));
        d.apply_group(group("g-x", "gx", &[], 1));
        d.delete_user("u-old");
        assert_eq!(d.labelled_member_ids("gx"), HashSet::from(["1".to_string()]));
        assert_eq!(d.groups_of("okta", "1").len(), 1);
    }

    #[test]
    fn a_relist_drops_what_disappeared() {
        let mut d = Directory::default();
        d.apply_user(user("u-a", "1", "okta", "alice", 1));
        d.apply_user(user("u-b", "2", "okta", "bob", 1));
        d.on_user_event(watcher::Event::Init);
        d.on_user_event(watcher::Event::InitApply(user("u-b", "2", "okta", "bob", 3)));
        d.on_user_event(watcher::Event::InitDone);
        assert!(d.user("okta", "1").is_none());
        assert!(d.user("okta", "2").is_some());
    }
}

//! Writes of Users and Groups through the API server. A write is acknowledged only after the API
//! server has stored it, and it is applied to this replica's directory at once, so the client
//! reads its own write here and every replica sees it after its watch catches up.
//!
//! Membership is a label on each member (`group.infrahq.com/<group id>`, [`member_label`]):
//! adding or removing a member is one small merge patch of that User, whatever the group's size,
//! followed by one small patch of the Group's lastModified (its SCIM version). Errors are this
//! module's own [`StoreError`]; each HTTP edge (SCIM, login) maps them to its answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Directory;
use super::codec::scim_id;
use super::naming::{group_object_name, new_id, user_object_name};
use crate::api::{Group, GroupSpec, IdentityProvider, MEMBER_LABEL_PREFIX, User, UserSpec, annotations, labels, member_label};
use crate::api_server::FieldManager;

/// Attempts at a write that keeps conflicting with concurrent writers.
pub const WRITE_ATTEMPTS: usize = 5;
/// Membership patches one request sends at a time: a PATCH adding 100 members costs about 100 /
/// this round trips.
const MEMBER_WRITES_IN_FLIGHT: usize = 16;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the object since it was read: re-read and try again.
    #[error("the object changed since it was read")]
    Conflict,
    #[error("{0}")]
    NotFound(String),
    /// The userName is taken (the API server refused a second object of that name).
    #[error("{0}")]
    AlreadyExists(String),
    /// The API server refused the content, or a member is not a user of the provider.
    #[error("{0}")]
    Invalid(String),
    /// The object is larger than the API server stores; retrying cannot help.
    #[error("{0}")]
    TooLarge(String),
    /// The IdentityProvider the write is for no longer exists.
    #[error("{0}")]
    ProviderGone(String),
    /// The API server is unavailable; retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Cloned for every request (axum clones a router's state per call), so it is one `Arc`.
#[derive(Clone)]
pub struct DirectoryStore {
    inner: Arc<Shared>,
}

struct Shared {
    users: Api<User>,
    groups: Api<Group>,
    providers: Store<IdentityProvider>,
    directory: RwLock<Directory>,
}

// Users and groups are written by the server only.
fn params() -> PostParams {
    FieldManager::SERVER.post()
}

fn patch_params() -> PatchParams {
    FieldManager::SERVER.patch()
}

/// Whether the API server refused a write because the object is too large to store: etcd's
/// limit on one request (1.5 MiB by default; the API server passes etcd's "etcdserver: request is
/// too large" on, as a 500), its etcd client's limit on what it sends (2 MiB: "trying to send
/// message larger than max"), or the API server's own body limit (413, "Request entity too
/// large"). Retrying cannot help, so this must not look like an outage.
fn is_too_large(s: &kube::core::Status) -> bool {
    let message = s.message.to_ascii_lowercase();
    s.code == 413 || ["request is too large", "request entity too large", "message larger than max"].iter().any(|m| message.contains(m))
}

fn api_error(err: kube::Error, what: &str) -> StoreError {
    match err {
        kube::Error::Api(s) if is_too_large(&s) => {
            tracing::warn!(code = s.code, message = %s.message, "API server refused a write as too large");
            StoreError::TooLarge(format!(
                "{what}: the resource is too large to store (the cluster refuses objects over about 1.5 MiB); make it smaller"
            ))
        }
        kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict" => StoreError::Conflict,
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => StoreError::Invalid(format!("{what}: {}", s.message)),
        kube::Error::Api(s) if s.code == 404 => StoreError::NotFound(format!("{what}: the resource no longer exists")),
        ref e if crate::api_server::is_unavailable(e) => {
            tracing::warn!(error = %e, "{what}: the API server is unavailable");
            StoreError::Unavailable("storage is temporarily unavailable; retry".into())
        }
        other => {
            tracing::error!(error = %other, "{what} failed");
            StoreError::Internal(format!("{what} failed"))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// The membership labels of `labels`.
fn memberships(labels: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    labels.iter().filter(|(k, _)| k.starts_with(MEMBER_LABEL_PREFIX))
}

pub use crate::scim::members::MemberChange;

impl DirectoryStore {
    pub fn new(users: Api<User>, groups: Api<Group>, providers: Store<IdentityProvider>) -> Self {
        Self { inner: Arc::new(Shared { users, groups, providers, directory: Default::default() }) }
    }

    /// The directory, to read. Only the store and the watches (below) change it.
    pub fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.inner.directory.read().expect("directory lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.inner.directory.write().expect("directory lock")
    }

    pub fn on_user_event(&self, event: watcher::Event<User>) {
        self.write().on_user_event(event);
    }

    pub fn on_group_event(&self, event: watcher::Event<Group>) {
        self.write().on_group_event(event);
    }

    /// Users and groups belong to their provider: deleting the IdentityProvider deletes them
    /// (garbage collection through this owner reference).
    fn owner(&self, provider: &str) -> Result<OwnerReference> {
        // A handful of providers: a scan of the store, without copying it.
        let idp = self
            .inner
            .providers
            .find(|p| p.name_any() == provider)
            .ok_or_else(|| StoreError::ProviderGone(format!("IdentityProvider {provider:?} no longer exists")))?;
        let mut owner = idp.controller_owner_ref(&()).ok_or_else(|| internal("provider without uid"))?;
        owner.controller = Some(false);
        owner.block_owner_deletion = Some(false);
        Ok(owner)
    }

    fn metadata(&self, provider: &str, name: String, id: &str, created: String) -> Result<kube::api::ObjectMeta> {
        Ok(kube::api::ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (labels::PROVIDER.to_string(), provider.to_string()),
                (labels::SCIM_ID.to_string(), id.to_string()),
                (labels::MANAGED_BY.to_string(), FieldManager::SERVER.name().to_string()),
            ])),
            annotations: Some(BTreeMap::from([
                (annotations::CREATED.to_string(), created),
                (annotations::LAST_MODIFIED.to_string(), now()),
            ])),
            owner_references: Some(vec![self.owner(provider)?]),
            ..Default::default()
        })
    }

    // ---- users -------------------------------------------------------------------------------

    pub async fn create_user(&self, provider: &str, spec: UserSpec) -> Result<User> {
        self.create_user_by(provider, spec, None).await
    }

    /// [`Self::create_user`], noting what created it (`login`) in an annotation.
    pub async fn create_user_by(&self, provider: &str, spec: UserSpec, created_by: Option<&str>) -> Result<User> {
        let id = new_id().map_err(internal)?;
        let name = user_object_name(provider, &spec.user_name);
        let mut metadata = self.metadata(provider, name, &id, now())?;
        if let Some(by) = created_by {
            metadata.annotations.get_or_insert_default().insert(annotations::CREATED_BY.to_string(), by.to_string());
        }
        let user = User { metadata, spec, status: None };
        match self.inner.users.create(&params(), &user).await {
            Ok(created) => {
                self.write().apply_user(created.clone());
                Ok(created)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err(StoreError::AlreadyExists(format!("a user with userName {:?} already exists", user.spec.user_name)))
            }
            Err(e) => Err(api_error(e, "creating the user")),
        }
    }

    /// Replaces `current` with `spec`. A changed userName (other than in case) moves the user to
    /// the object name of the new userName, keeping its id and its memberships, so uniqueness
    /// stays with the API server.
    pub async fn update_user(&self, current: &User, spec: UserSpec) -> Result<User> {
        let provider = spec.provider_ref.name.clone();
        let new_name = user_object_name(&provider, &spec.user_name);
        let mut next = current.clone();
        next.spec = spec;
        next.metadata.annotations.get_or_insert_default().insert(annotations::LAST_MODIFIED.into(), now());
        // The directory keeps no owner references; a replace must carry them again.
        next.metadata.owner_references = Some(vec![self.owner(&provider)?]);
        if new_name == current.name_any() {
            let stored = self.inner.users.replace(&new_name, &params(), &next).await.map_err(|e| api_error(e, "updating the user"))?;
            self.write().apply_user(stored.clone());
            return Ok(stored);
        }
        let id = scim_id(current).unwrap_or_default().to_string();
        let created = current.annotations().get(annotations::CREATED).cloned().unwrap_or_else(now);
        let mut moved = User { metadata: self.metadata(&provider, new_name.clone(), &id, created)?, spec: next.spec, status: None };
        // Memberships move with the user: the labels, and the displays written for them.
        let carried = memberships(current.labels()).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
        moved.metadata.labels.get_or_insert_default().extend(carried);
        let displays = memberships(current.annotations()).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
        moved.metadata.annotations.get_or_insert_default().extend(displays);
        let stored = match self.inner.users.create(&params(), &moved).await {
            Ok(u) => u,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours from an interrupted earlier attempt (same id): finish the move. Anyone else's:
                // the new userName is taken.
                let existing = self.inner.users.get(&new_name).await.map_err(|e| api_error(e, "reading the user"))?;
                if scim_id(&existing) != Some(id.as_str()) {
                    return Err(StoreError::AlreadyExists(format!("a user with userName {:?} already exists", moved.spec.user_name)));
                }
                let mut again = existing.clone();
                again.spec = moved.spec.clone();
                self.inner.users.replace(&new_name, &params(), &again).await.map_err(|e| api_error(e, "updating the user"))?
            }
            Err(e) => return Err(api_error(e, "renaming the user")),
        };
        let stored = self.finish_move(current, stored).await?;
        self.write().apply_user(stored.clone());
        self.write().delete_user(&current.name_any());
        Ok(stored)
    }

    /// A rename creates a new object, and a create cannot set status: copy what logins recorded
    /// (above all the subject the user is bound to) and the memberships from the old object, then
    /// delete it at the version read, so a membership added to it meanwhile (on another replica)
    /// is carried too rather than lost. The directory keeps no status, so the old one is read.
    async fn finish_move(&self, old: &User, mut moved: User) -> Result<User> {
        let mut status_done = false;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(fresh) = self.inner.users.get_opt(&old.name_any()).await.map_err(|e| api_error(e, "reading the user"))? else {
                return Ok(moved);
            };
            if fresh.uid() != old.uid() {
                return Ok(moved);
            }
            if let Some(status) = fresh.status.as_ref().filter(|_| !status_done) {
                if status.login_subject.is_some() || status.login_groups.is_some() || status.last_login_time.is_some() {
                    let patch = json!({"status": {
                        "loginSubject": status.login_subject,
                        "loginGroups": status.login_groups,
                        "lastLoginTime": status.last_login_time,
                    }});
                    moved = self
                        .inner
                        .users
                        .patch_status(&moved.name_any(), &patch_params(), &Patch::Merge(&patch))
                        .await
                        .map_err(|e| api_error(e, "keeping the user's login status"))?;
                }
                status_done = true;
            }
            // Memberships added to the old object since it was read are copied; those copied from
            // it but removed since are removed (others on the new object were added to it directly).
            let mut changed: serde_json::Map<String, serde_json::Value> =
                memberships(fresh.labels()).filter(|(k, _)| !moved.labels().contains_key(*k)).map(|(k, v)| (k.clone(), json!(v))).collect();
            for (k, _) in memberships(old.labels()) {
                if !fresh.labels().contains_key(k) && moved.labels().contains_key(k) {
                    changed.insert(k.clone(), serde_json::Value::Null);
                }
            }
            if !changed.is_empty() {
                // A membership's display goes and comes with its label.
                let displays: serde_json::Map<String, serde_json::Value> =
                    changed.keys().map(|k| (k.clone(), fresh.annotations().get(k).map_or(serde_json::Value::Null, |v| json!(v)))).collect();
                let patch = json!({"metadata": {"labels": changed, "annotations": displays}});
                moved = self
                    .inner
                    .users
                    .patch(&moved.name_any(), &patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| api_error(e, "keeping the user's groups"))?;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: fresh.uid(), resource_version: fresh.resource_version() }),
                ..Default::default()
            };
            match self.inner.users.delete(&fresh.name_any(), &dp).await {
                Ok(_) => return Ok(moved),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(moved),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(api_error(e, "deleting the renamed user's old object")),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Deletes a user. Its memberships are labels on it, so it leaves every group at the same
    /// moment; groups of earlier versions that still list it in `spec.members` stop showing it at
    /// once (the directory shows only members that exist) and lose it when the controller moves them.
    pub async fn delete_user(&self, user: &User) -> Result<()> {
        self.delete_object(&self.inner.users, user).await?;
        self.write().delete_user(&user.name_any());
        Ok(())
    }

    /// Fresh copies from the API server, for a retry after a conflict.
    pub async fn reload_user(&self, user: &User) -> Result<Option<User>> {
        let fresh = self.inner.users.get_opt(&user.name_any()).await.map_err(|e| api_error(e, "reading the user"))?;
        if let Some(u) = &fresh {
            self.write().apply_user(u.clone());
        }
        Ok(fresh)
    }

    // ---- groups ------------------------------------------------------------------------------

    /// Creates the group, then labels its members. The members are checked first; a failure
    /// while labelling answers an error and leaves the group with the members labelled so far,
    /// which the client's retry finds (Okta and Entra look a group up by displayName or
    /// externalId before creating it) and completes with a PATCH.
    pub async fn create_group(&self, provider: &str, mut spec: GroupSpec) -> Result<Group> {
        let members: Vec<MemberChange> = spec.members.drain(..).map(|m| MemberChange::Add { id: m.value, display: m.display }).collect();
        let added: Vec<String> = members.iter().map(|c| c.id().to_string()).collect();
        self.resolve_members(provider, &added).await?;
        let id = new_id().map_err(internal)?;
        let group = Group { metadata: self.metadata(provider, group_object_name(&id), &id, now())?, spec, status: None };
        let created = self.inner.groups.create(&params(), &group).await.map_err(|e| api_error(e, "creating the group"))?;
        self.write().apply_group(created.clone());
        self.write_labels(provider, &id, &members).await?;
        Ok(created)
    }

    /// Replaces `current` with `spec`: the Group object is replaced at the version read (so a
    /// concurrent change conflicts), then each member added or removed gets its label set or
    /// cleared. `members`, when given, is the complete new member list; when `None`,
    /// `spec.members` is. Either way the stored `spec.members` ends up empty.
    pub async fn update_group(&self, current: &Group, mut spec: GroupSpec, members: Option<&[(String, Option<String>)]>) -> Result<Group> {
        let provider = spec.provider_ref.name.clone();
        let gid = scim_id(current).unwrap_or_default().to_string();
        // Each wanted member with the display the client wrote.
        let wanted: HashMap<String, Option<String>> = match members {
            Some(m) => m.iter().cloned().collect(),
            None => spec.members.drain(..).map(|m| (m.value, m.display)).collect(),
        };
        spec.members.clear();
        let (before, labelled) = {
            let dir = self.read();
            (dir.member_ids(current), dir.labelled_member_ids(&gid))
        };
        let added: Vec<String> = wanted.keys().filter(|id| !before.contains(*id)).cloned().collect();
        self.resolve_members(&provider, &added).await?;
        // Labels first, then the group: a failure in between leaves the change half made but the
        // group as it was, so the client's retry (or the controller, for spec.members) finishes it.
        // A member already labelled is written again only when its display changes.
        let mut changes: Vec<MemberChange> = {
            let dir = self.read();
            wanted
                .iter()
                .filter(|(id, display)| !labelled.contains(*id) || dir.member_display(&provider, &gid, id) != **display)
                .map(|(id, display)| MemberChange::Add { id: id.clone(), display: display.clone() })
                .collect()
        };
        changes.extend(labelled.iter().filter(|id| !wanted.contains_key(*id)).map(|id| MemberChange::Remove { id: id.clone() }));
        if current.spec == spec {
            // Only members change: no need to serialize on the group's version.
            if changes.is_empty() {
                return Ok(current.clone());
            }
            self.write_labels(&provider, &gid, &changes).await?;
            return self.touch_group(current).await;
        }
        let mut next = current.clone();
        next.spec = spec;
        next.metadata.annotations.get_or_insert_default().insert(annotations::LAST_MODIFIED.into(), now());
        if current.spec.members.is_empty() {
            // Fail on a conflict before touching any member.
            let stored =
                self.inner.groups.replace(&current.name_any(), &params(), &next).await.map_err(|e| api_error(e, "updating the group"))?;
            self.write().apply_group(stored.clone());
            if changes.is_empty() {
                return Ok(stored);
            }
            self.write_labels(&provider, &gid, &changes).await?;
            return self.touch_group(&stored).await;
        }
        self.write_labels(&provider, &gid, &changes).await?;
        let stored =
            self.inner.groups.replace(&current.name_any(), &params(), &next).await.map_err(|e| api_error(e, "updating the group"))?;
        self.write().apply_group(stored.clone());
        Ok(stored)
    }

    /// Adds and removes members of `group` (a SCIM PATCH of members only): one label write per
    /// member changed, then the group's lastModified. Nothing is read or written in proportion to
    /// the group's size. Groups of earlier versions (members in `spec.members`) take the general
    /// path, which moves them.
    pub async fn change_members(&self, group: &Group, changes: &[MemberChange]) -> Result<Group> {
        let provider = group.spec.provider_ref.name.clone();
        if !group.spec.members.is_empty() {
            let mut wanted: HashMap<String, Option<String>> = self.read().members_of(group).into_iter().collect();
            for change in changes {
                match change {
                    MemberChange::Add { id, display } => wanted.insert(id.clone(), display.clone()),
                    MemberChange::Remove { id } => wanted.remove(id),
                };
            }
            let wanted: Vec<(String, Option<String>)> = wanted.into_iter().collect();
            return self.update_group(group, GroupSpec { members: vec![], ..group.spec.clone() }, Some(&wanted)).await;
        }
        let gid = scim_id(group).unwrap_or_default().to_string();
        let added: Vec<String> = changes.iter().filter(|c| matches!(c, MemberChange::Add { .. })).map(|c| c.id().to_string()).collect();
        self.resolve_members(&provider, &added).await?;
        // Both are stored before the answer, and neither depends on the other: one round trip.
        let (_, touched) = futures::future::try_join(self.write_labels(&provider, &gid, changes), self.touch_group(group)).await?;
        Ok(touched)
    }

    /// Records that the group changed (its lastModified, and so its version) with a merge patch,
    /// which concurrent member changes on any replica cannot conflict on.
    async fn touch_group(&self, group: &Group) -> Result<Group> {
        let patch = json!({"metadata": {"annotations": {annotations::LAST_MODIFIED: now()}}});
        let stored = self
            .inner
            .groups
            .patch(&group.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_error(e, "updating the group"))?;
        self.write().apply_group(stored.clone());
        Ok(stored)
    }

    /// Sets or clears the membership label of group `gid` on each user named, a few at a time,
    /// with the member's `display` in the annotation of the same key (cleared when none).
    /// Each patch names the user's UID, so a user deleted and re-created under the same object
    /// name is never touched; a user that is gone counts as removed, and as an invalid member
    /// when it was to be added.
    async fn write_labels(&self, provider: &str, gid: &str, changes: &[MemberChange]) -> Result<()> {
        let key = member_label(gid);
        let targets: Vec<(String, Option<String>, MemberChange)> = {
            let dir = self.read();
            changes.iter().filter_map(|c| dir.user_object(provider, c.id()).map(|(name, uid)| (name, uid, c.clone()))).collect()
        };
        futures::stream::iter(targets)
            .map(|(name, uid, change)| {
                let key = key.clone();
                async move {
                    let (member, id) = (matches!(change, MemberChange::Add { .. }), change.id().to_string());
                    let (value, display) = match &change {
                        MemberChange::Add { display, .. } => (json!(""), json!(display)),
                        MemberChange::Remove { .. } => (json!(null), json!(null)),
                    };
                    let mut patch = json!({"metadata": {"labels": {&key: value}, "annotations": {&key: display}}});
                    if let Some(uid) = uid {
                        patch["metadata"]["uid"] = json!(uid);
                    }
                    match self.inner.users.patch(&name, &patch_params(), &Patch::Merge(&patch)).await {
                        Ok(stored) => {
                            self.write().apply_user(stored);
                            Ok(())
                        }
                        // Gone, or replaced by another user of the same name (the UID differs).
                        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) && !is_too_large(&s) => {
                            if member {
                                Err(StoreError::Invalid(format!("member {id:?} is not a user of this provider")))
                            } else {
                                Ok(())
                            }
                        }
                        Err(e) => Err(api_error(e, "updating the group's members")),
                    }
                }
            })
            .buffer_unordered(MEMBER_WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// Every member a write adds must be a user of this provider, as the API server knows it now:
    /// this replica's watch may lag behind a user created, or deleted, through another replica a
    /// moment ago. Users the directory does not know are looked up, 50 to a request, and added
    /// to it.
    async fn resolve_members(&self, provider: &str, added: &[String]) -> Result<()> {
        let unknown: Vec<&str> = {
            let dir = self.read();
            added.iter().map(String::as_str).filter(|id| dir.user_object(provider, id).is_none()).collect()
        };
        for chunk in unknown.chunks(50) {
            let selector = format!("{}={provider},{} in ({})", labels::PROVIDER, labels::SCIM_ID, chunk.join(","));
            let found =
                self.inner.users.list(&ListParams::default().labels(&selector)).await.map_err(|e| api_error(e, "looking up members"))?;
            let known: HashSet<&str> = found.items.iter().filter_map(|u| scim_id(u)).collect();
            if let Some(missing) = chunk.iter().find(|id| !known.contains(*id)) {
                return Err(StoreError::Invalid(format!("member {missing:?} is not a user of this provider")));
            }
            let mut dir = self.write();
            for user in found.items {
                dir.apply_user(user);
            }
        }
        Ok(())
    }

    /// Deletes the group, then clears its label from its members (a label naming a group that no
    /// longer exists is ignored everywhere, so a failure here leaves nothing visible).
    pub async fn delete_group(&self, group: &Group) -> Result<()> {
        self.delete_object(&self.inner.groups, group).await?;
        self.write().delete_group(&group.name_any());
        let gid = scim_id(group).unwrap_or_default().to_string();
        let changes: Vec<MemberChange> = self.read().labelled_member_ids(&gid).into_iter().map(|id| MemberChange::Remove { id }).collect();
        if let Err(e) = self.write_labels(&group.spec.provider_ref.name, &gid, &changes).await {
            tracing::warn!(error = %e, group = %group.name_any(), "could not clear the deleted group's labels from its members");
        }
        Ok(())
    }

    pub async fn reload_group(&self, group: &Group) -> Result<Option<Group>> {
        let fresh = self.inner.groups.get_opt(&group.name_any()).await.map_err(|e| api_error(e, "reading the group"))?;
        if let Some(g) = &fresh {
            self.write().apply_group(g.clone());
        }
        Ok(fresh)
    }

    /// Deletes exactly this object (its UID), so a newer object of the same name is never hit.
    async fn delete_object<K>(&self, api: &Api<K>, obj: &K) -> Result<()>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: obj.meta().uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&obj.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(api_error(e, "deleting")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn too_large_writes_are_their_own_error() {
        for e in [
            // What kube-apiserver answers when etcd refuses the write (it has used 500 for this).
            status(500, "InternalError", "etcdserver: request is too large"),
            status(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"),
            status(
                500,
                "InternalError",
                "rpc error: code = ResourceExhausted desc = trying to send message larger than max (2200000 vs. 2097152)",
            ),
            status(413, "", ""),
        ] {
            let StoreError::TooLarge(detail) = api_error(e, "updating the group") else { panic!("not too large") };
            assert!(detail.starts_with("updating the group: the resource is too large"), "{detail}");
        }
    }

    #[test]
    fn outages_conflicts_and_bad_values_are_told_apart() {
        assert!(matches!(api_error(status(500, "InternalError", "etcdserver: leader changed"), "x"), StoreError::Unavailable(_)));
        assert!(matches!(api_error(status(429, "TooManyRequests", "slow down"), "x"), StoreError::Unavailable(_)));
        assert!(matches!(api_error(status(422, "Invalid", "spec.displayName: Required value"), "x"), StoreError::Invalid(_)));
        assert!(matches!(api_error(status(409, "Conflict", "the object has been modified"), "x"), StoreError::Conflict));
        assert!(matches!(api_error(status(404, "NotFound", "gone"), "x"), StoreError::NotFound(_)));
    }
}

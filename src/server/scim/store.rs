//! Writes of Users and Groups through the API server. A write is acknowledged only after the API
//! server has stored it, and it is applied to this replica's directory at once, so the client
//! reads its own write here and every replica sees it after its watch catches up.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};

use super::error::{internal, unavailable, ScimError};
use crate::api::{annotations, labels, Group, GroupSpec, IdentityProvider, User, UserSpec};
use crate::directory::codec::scim_id;
use crate::directory::naming::{group_object_name, new_id, user_object_name};
use crate::directory::Directory;

pub const FIELD_MANAGER: &str = "infra-server";
/// Attempts at a write that keeps conflicting with concurrent writers.
pub const WRITE_ATTEMPTS: usize = 5;

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// Someone else wrote the object since it was read: re-read and try again.
    Conflict,
    Scim(ScimError),
}

impl From<ScimError> for WriteError {
    fn from(e: ScimError) -> Self {
        Self::Scim(e)
    }
}

#[derive(Clone)]
pub struct DirectoryStore {
    pub users: Api<User>,
    pub groups: Api<Group>,
    pub providers: Store<IdentityProvider>,
    pub directory: Arc<RwLock<Directory>>,
}

fn params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Whether the API server refused a write because the object is too large to store: etcd's
/// limit on one request (1.5 MiB by default; the API server passes etcd's "etcdserver: request is
/// too large" on, as a 500), its etcd client's limit on what it sends (2 MiB: "trying to send
/// message larger than max"), or the API server's own body limit (413, "Request entity too
/// large"). Retrying cannot help, so this must not look like an outage.
fn is_too_large(s: &kube::core::Status) -> bool {
    let message = s.message.to_ascii_lowercase();
    s.code == 413
        || ["request is too large", "request entity too large", "message larger than max"].iter().any(|m| message.contains(m))
}

/// The SCIM error for a write the API server will never accept because of its size: a permanent
/// 413, since Okta and Entra retry a 503 forever.
fn too_large(what: &str) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("{what}: the resource is too large to store (the cluster refuses objects over about 1.5 MiB); make it smaller"),
    )
}

fn api_error(err: kube::Error, what: &str) -> WriteError {
    match err {
        kube::Error::Api(s) if is_too_large(&s) => {
            tracing::warn!(code = s.code, message = %s.message, "API server refused a write as too large");
            WriteError::Scim(too_large(what))
        }
        kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict" => WriteError::Conflict,
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
            WriteError::Scim(ScimError::invalid_value(format!("{what}: {}", s.message)))
        }
        kube::Error::Api(s) if s.code == 404 => WriteError::Scim(ScimError::not_found(format!("{what}: the resource no longer exists"))),
        ref e if crate::api_server::is_unavailable(e) => {
            tracing::warn!(error = %e, "{what}: the API server is unavailable");
            WriteError::Scim(unavailable("storage is temporarily unavailable; retry"))
        }
        other => {
            tracing::error!(error = %other, "{what} failed");
            WriteError::Scim(internal(format!("{what} failed")))
        }
    }
}

fn now() -> String {
    Timestamp::now().to_string()
}

impl DirectoryStore {
    /// Users and groups belong to their provider: deleting the IdentityProvider deletes them
    /// (garbage collection through this owner reference).
    fn owner(&self, provider: &str) -> Result<OwnerReference, ScimError> {
        let idp = self
            .providers
            .state()
            .into_iter()
            .find(|p| p.name_any() == provider)
            .ok_or_else(|| ScimError::new(401, None, format!("IdentityProvider {provider:?} no longer exists")))?;
        let mut owner = idp.controller_owner_ref(&()).ok_or_else(|| internal("provider without uid"))?;
        owner.controller = Some(false);
        owner.block_owner_deletion = Some(false);
        Ok(owner)
    }

    fn metadata(&self, provider: &str, name: String, id: &str, created: String) -> Result<kube::api::ObjectMeta, ScimError> {
        Ok(kube::api::ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (labels::PROVIDER.to_string(), provider.to_string()),
                (labels::SCIM_ID.to_string(), id.to_string()),
                (labels::MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
            ])),
            annotations: Some(BTreeMap::from([
                (annotations::CREATED.to_string(), created),
                (annotations::LAST_MODIFIED.to_string(), now()),
            ])),
            owner_references: Some(vec![self.owner(provider)?]),
            ..Default::default()
        })
    }

    pub async fn create_user(&self, provider: &str, spec: UserSpec) -> Result<User, ScimError> {
        let id = new_id().map_err(|e| internal(e.to_string()))?;
        let name = user_object_name(provider, &spec.user_name);
        let user = User { metadata: self.metadata(provider, name, &id, now())?, spec, status: None };
        match self.users.create(&params(), &user).await {
            Ok(created) => {
                self.directory.write().expect("directory lock").apply_user(created.clone());
                Ok(created)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err(ScimError::uniqueness(format!("a user with userName {:?} already exists", user.spec.user_name)))
            }
            Err(e) => Err(scim_of(api_error(e, "creating the user"))),
        }
    }

    /// Replaces `current` with `spec`. A changed userName (other than in case) moves the user to
    /// the object name of the new userName, keeping its id, so uniqueness stays with the API server.
    pub async fn update_user(&self, current: &User, spec: UserSpec) -> Result<User, WriteError> {
        let provider = spec.provider_ref.name.clone();
        let new_name = user_object_name(&provider, &spec.user_name);
        let mut next = current.clone();
        next.spec = spec;
        next.metadata.annotations.get_or_insert_default().insert(annotations::LAST_MODIFIED.into(), now());
        // The directory keeps no owner references; a replace must carry them again.
        next.metadata.owner_references = Some(vec![self.owner(&provider)?]);
        if new_name == current.name_any() {
            let stored = self.users.replace(&new_name, &params(), &next).await.map_err(|e| api_error(e, "updating the user"))?;
            self.directory.write().expect("directory lock").apply_user(stored.clone());
            return Ok(stored);
        }
        let id = scim_id(current).unwrap_or_default().to_string();
        let created = current.annotations().get(annotations::CREATED).cloned().unwrap_or_else(now);
        let moved = User { metadata: self.metadata(&provider, new_name.clone(), &id, created)?, spec: next.spec, status: None };
        let stored = match self.users.create(&params(), &moved).await {
            Ok(u) => u,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours from an interrupted earlier attempt (same id): finish the move. Anyone else's:
                // the new userName is taken.
                let existing = self.users.get(&new_name).await.map_err(|e| api_error(e, "reading the user"))?;
                if scim_id(&existing) != Some(id.as_str()) {
                    return Err(WriteError::Scim(ScimError::uniqueness(format!(
                        "a user with userName {:?} already exists",
                        moved.spec.user_name
                    ))));
                }
                let mut again = existing.clone();
                again.spec = moved.spec.clone();
                self.users.replace(&new_name, &params(), &again).await.map_err(|e| api_error(e, "updating the user"))?
            }
            Err(e) => return Err(api_error(e, "renaming the user")),
        };
        let stored = self.carry_login_status(current, stored).await?;
        self.directory.write().expect("directory lock").apply_user(stored.clone());
        self.delete_object(&self.users, current).await?;
        self.directory.write().expect("directory lock").delete_user(&current.name_any());
        Ok(stored)
    }

    /// A rename creates a new object, and a create cannot set status: copy what logins recorded
    /// (above all the subject the user is bound to) from the old object before it is deleted, so
    /// a rename never unbinds a user. The directory keeps no status, so the old one is read.
    async fn carry_login_status(&self, old: &User, moved: User) -> Result<User, WriteError> {
        let Some(status) = self.users.get_opt(&old.name_any()).await.map_err(|e| api_error(e, "reading the user"))?.and_then(|u| u.status) else {
            return Ok(moved);
        };
        if status.login_subject.is_none() && status.login_groups.is_none() && status.last_login_time.is_none() {
            return Ok(moved);
        }
        let patch = serde_json::json!({"status": {
            "loginSubject": status.login_subject,
            "loginGroups": status.login_groups,
            "lastLoginTime": status.last_login_time,
        }});
        self.users
            .patch_status(&moved.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_error(e, "keeping the user's login status"))
    }

    /// Deletes a user, then removes it from every group, so no group lists a deleted member. The
    /// groups are read from the API server rather than this replica's directory: another replica
    /// may have added the user to a group a moment ago. (Deleting first means such an addition,
    /// arriving later, finds no user and is refused.)
    pub async fn delete_user(&self, user: &User) -> Result<(), ScimError> {
        let provider = user.spec.provider_ref.name.clone();
        let id = scim_id(user).unwrap_or_default().to_string();
        self.delete_object(&self.users, user).await.map_err(scim_of)?;
        self.directory.write().expect("directory lock").delete_user(&user.name_any());
        let selector = format!("{}={provider}", labels::PROVIDER);
        let groups = self.groups.list(&ListParams::default().labels(&selector)).await.map_err(|e| scim_of(api_error(e, "listing groups")))?;
        for group in groups.items.into_iter().filter(|g| g.spec.members.iter().any(|m| m.value == id)) {
            self.directory.write().expect("directory lock").apply_group(group.clone());
            let gid = scim_id(&group).unwrap_or_default().to_string();
            self.modify_group(&provider, &gid, |spec| spec.members.retain(|m| m.value != id)).await?;
        }
        Ok(())
    }

    pub async fn create_group(&self, provider: &str, spec: GroupSpec) -> Result<Group, ScimError> {
        self.check_members(provider, &spec, None).await?;
        let id = new_id().map_err(|e| internal(e.to_string()))?;
        let group = Group { metadata: self.metadata(provider, group_object_name(&id), &id, now())?, spec, status: None };
        let created = self.groups.create(&params(), &group).await.map_err(|e| scim_of(api_error(e, "creating the group")))?;
        self.directory.write().expect("directory lock").apply_group(created.clone());
        Ok(created)
    }

    pub async fn update_group(&self, current: &Group, spec: GroupSpec) -> Result<Group, WriteError> {
        self.check_members(&spec.provider_ref.name, &spec, Some(&current.spec)).await?;
        let mut next = current.clone();
        next.spec = spec;
        next.metadata.annotations.get_or_insert_default().insert(annotations::LAST_MODIFIED.into(), now());
        let stored = self.groups.replace(&current.name_any(), &params(), &next).await.map_err(|e| api_error(e, "updating the group"))?;
        self.directory.write().expect("directory lock").apply_group(stored.clone());
        Ok(stored)
    }

    pub async fn delete_group(&self, group: &Group) -> Result<(), ScimError> {
        self.delete_object(&self.groups, group).await.map_err(scim_of)?;
        self.directory.write().expect("directory lock").delete_group(&group.name_any());
        Ok(())
    }

    /// Applies `change` to the group with id `gid`, re-reading it from the API server on conflicts.
    async fn modify_group(&self, provider: &str, gid: &str, change: impl Fn(&mut GroupSpec)) -> Result<(), ScimError> {
        let mut current = self.directory.read().expect("directory lock").group(provider, gid).map(|g| (*g).clone());
        for _ in 0..WRITE_ATTEMPTS {
            let Some(group) = current.take() else { return Ok(()) };
            let mut spec = group.spec.clone();
            change(&mut spec);
            if spec == group.spec {
                return Ok(());
            }
            let mut next = group.clone();
            next.spec = spec;
            match self.groups.replace(&group.name_any(), &params(), &next).await {
                Ok(stored) => {
                    self.directory.write().expect("directory lock").apply_group(stored);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    current = self.groups.get_opt(&group.name_any()).await.map_err(|e| scim_of(api_error(e, "reading the group")))?;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(scim_of(api_error(e, "updating the group"))),
            }
        }
        Err(scim_of(WriteError::Conflict))
    }

    /// Every member a write adds must be a user of this provider, as the API server knows it now:
    /// this replica's watch may lag behind a user created, or deleted, through another replica a
    /// moment ago. Members the group already had are not asked about again.
    async fn check_members(&self, provider: &str, spec: &GroupSpec, previous: Option<&GroupSpec>) -> Result<(), ScimError> {
        // A set: groups such as Okta's Everyone have thousands of members, and every PATCH of one
        // compares the whole list.
        let before: HashSet<&str> = previous.into_iter().flat_map(|p| p.members.iter().map(|m| m.value.as_str())).collect();
        let added: Vec<&str> = spec.members.iter().map(|m| m.value.as_str()).filter(|id| !before.contains(id)).collect();
        // Set-based selectors keep this to one request per 50 new members.
        for chunk in added.chunks(50) {
            let selector = format!("{}={provider},{} in ({})", labels::PROVIDER, labels::SCIM_ID, chunk.join(","));
            let found = self
                .users
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| scim_of(api_error(e, "looking up members")))?;
            let known: HashSet<&str> = found.items.iter().filter_map(|u| scim_id(u)).collect();
            if let Some(missing) = chunk.iter().find(|id| !known.contains(*id)) {
                return Err(ScimError::invalid_value(format!("member {missing:?} is not a user of this provider")));
            }
            let mut dir = self.directory.write().expect("directory lock");
            for user in found.items {
                dir.apply_user(user);
            }
        }
        Ok(())
    }

    /// Deletes exactly this object (its UID), so a newer object of the same name is never hit.
    async fn delete_object<K>(&self, api: &Api<K>, obj: &K) -> Result<(), WriteError>
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

    /// Fresh copies from the API server, for a retry after a conflict.
    pub async fn reload_user(&self, user: &User) -> Result<Option<User>, ScimError> {
        let fresh = self.users.get_opt(&user.name_any()).await.map_err(|e| scim_of(api_error(e, "reading the user")))?;
        if let Some(u) = &fresh {
            self.directory.write().expect("directory lock").apply_user(u.clone());
        }
        Ok(fresh)
    }

    pub async fn reload_group(&self, group: &Group) -> Result<Option<Group>, ScimError> {
        let fresh = self.groups.get_opt(&group.name_any()).await.map_err(|e| scim_of(api_error(e, "reading the group")))?;
        if let Some(g) = &fresh {
            self.directory.write().expect("directory lock").apply_group(g.clone());
        }
        Ok(fresh)
    }
}

pub fn scim_of(e: WriteError) -> ScimError {
    match e {
        WriteError::Conflict => unavailable("the resource kept changing while updating it; retry"),
        WriteError::Scim(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    fn mapped(e: kube::Error) -> ScimError {
        scim_of(api_error(e, "updating the group"))
    }

    #[test]
    fn too_large_writes_are_permanent_413s() {
        for e in [
            // What kube-apiserver answers when etcd refuses the write (it has used 500 for this).
            status(500, "InternalError", "etcdserver: request is too large"),
            status(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"),
            status(500, "InternalError", "rpc error: code = ResourceExhausted desc = trying to send message larger than max (2200000 vs. 2097152)"),
            status(413, "", ""),
        ] {
            let s = mapped(e);
            assert_eq!(s.status, 413, "{}", s.detail);
            assert!(s.detail.starts_with("updating the group: the resource is too large"), "{}", s.detail);
        }
    }

    #[test]
    fn outages_stay_retryable_and_bad_values_stay_400() {
        assert_eq!(mapped(status(500, "InternalError", "etcdserver: leader changed")).status, 503);
        assert_eq!(mapped(status(429, "TooManyRequests", "slow down")).status, 503);
        assert_eq!(mapped(status(422, "Invalid", "spec.displayName: Required value")).status, 400);
        assert!(matches!(api_error(status(409, "Conflict", "the object has been modified"), "x"), WriteError::Conflict));
    }
}

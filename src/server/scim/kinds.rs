//! What differs between Users and Groups, behind one trait, so the handlers are written once.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::error::ScimError;
use crate::api::{Group, GroupSpec, User, UserSpec};
use crate::directory::Directory;
use crate::directory::codec::{self, Member, Membership};
use crate::directory::store::MemberChange;
use crate::directory::{DirectoryStore, StoreError};
use crate::scim::ResourceType;

pub trait ScimKind: kube::Resource + Clone + Send + Sync + 'static {
    const RT: ResourceType;
    type Spec: Send + 'static;

    fn lookup(dir: &Directory, provider: &str, id: &str) -> Option<Self>;
    /// Every resource of `provider`, in a stable order.
    fn all(dir: &Directory, provider: &str) -> Vec<Self>;
    /// One page (0-based `start`) of `all`, and the total.
    fn page(dir: &Directory, provider: &str, start: usize, count: usize) -> (usize, Vec<Self>);
    /// Candidates for `attr eq value` from an index, or `None` when no index covers `attr`.
    fn indexed(dir: &Directory, provider: &str, attr: &str, value: &str) -> Option<Vec<Self>>;
    fn render(dir: &Directory, obj: &Self, base_url: &str) -> Value;
    /// `render`, leaving out a group's members when `members` is false (the caller's projection
    /// drops them anyway).
    fn render_shaped(dir: &Directory, obj: &Self, base_url: &str, _members: bool) -> Value {
        Self::render(dir, obj, base_url)
    }
    /// About how many bytes `obj` renders to (with or without a group's members): decides whether
    /// work on it runs on the async worker or the blocking pool (`work::sized`).
    fn weight(dir: &Directory, obj: &Self, members: bool) -> usize;
    fn spec_from(resource: &Value, provider: &str) -> Result<Self::Spec, ScimError>;
    fn create(store: &DirectoryStore, provider: &str, spec: Self::Spec) -> impl Future<Output = Result<Self, ScimError>> + Send;
    fn update(store: &DirectoryStore, current: &Self, spec: Self::Spec) -> impl Future<Output = Result<Self, StoreError>> + Send;
    fn delete(store: &DirectoryStore, obj: &Self) -> impl Future<Output = Result<(), ScimError>> + Send;
    fn reload(store: &DirectoryStore, obj: &Self) -> impl Future<Output = Result<Option<Self>, ScimError>> + Send;
    /// The member changes of a PATCH that only adds and removes members (`scim::members`), for
    /// kinds that have members.
    fn member_changes(_request: &Value) -> Option<Vec<MemberChange>> {
        None
    }
    /// Applies what [`Self::member_changes`] found.
    fn change_members(
        store: &DirectoryStore,
        current: &Self,
        changes: &[MemberChange],
    ) -> impl Future<Output = Result<Self, StoreError>> + Send;
}

impl ScimKind for User {
    const RT: ResourceType = ResourceType::User;
    type Spec = UserSpec;

    fn lookup(dir: &Directory, provider: &str, id: &str) -> Option<Self> {
        dir.user(provider, id)
    }
    fn all(dir: &Directory, provider: &str) -> Vec<Self> {
        dir.users(provider)
    }
    fn page(dir: &Directory, provider: &str, start: usize, count: usize) -> (usize, Vec<Self>) {
        dir.users_page(provider, start, count)
    }
    fn indexed(dir: &Directory, provider: &str, attr: &str, value: &str) -> Option<Vec<Self>> {
        Some(match attr {
            "userName" => dir.user_by_user_name(provider, value).into_iter().collect(),
            "id" => dir.user(provider, value).into_iter().collect(),
            "externalId" => dir.users_by_external_id(provider, value),
            "emails.value" => dir.users_by_email(provider, value),
            _ => return None,
        })
    }
    fn render(dir: &Directory, user: &Self, base_url: &str) -> Value {
        let id = codec::scim_id(user).unwrap_or_default();
        let groups = dir.groups_of(&user.spec.provider_ref.name, id);
        let memberships: Vec<Membership> = groups.iter().map(|(id, name)| Membership { id, display_name: name }).collect();
        codec::user_to_scim(user, &memberships, base_url)
    }
    fn weight(_: &Directory, user: &Self, _: bool) -> usize {
        BASE_WEIGHT + user.spec.attributes.as_ref().map_or(0, |a| a.values().map(json_weight).sum())
    }
    fn spec_from(resource: &Value, provider: &str) -> Result<UserSpec, ScimError> {
        codec::user_spec_from_scim(resource, provider)
    }
    async fn create(store: &DirectoryStore, provider: &str, spec: UserSpec) -> Result<Self, ScimError> {
        Ok(store.create_user(provider, spec).await?)
    }
    async fn update(store: &DirectoryStore, current: &Self, spec: UserSpec) -> Result<Self, StoreError> {
        store.update_user(current, spec).await
    }
    async fn delete(store: &DirectoryStore, obj: &Self) -> Result<(), ScimError> {
        Ok(store.delete_user(obj).await?)
    }
    async fn reload(store: &DirectoryStore, obj: &Self) -> Result<Option<Self>, ScimError> {
        Ok(store.reload_user(obj).await?)
    }
    async fn change_members(_: &DirectoryStore, _: &Self, _: &[MemberChange]) -> Result<Self, StoreError> {
        Err(StoreError::Internal("users have no members".into()))
    }
}

/// A resource's fixed part as rendered (schemas, meta, names), and one member's entry.
const BASE_WEIGHT: usize = 512;
const MEMBER_WEIGHT: usize = 96;

/// About how many bytes `v` serializes to, without serializing it.
fn json_weight(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 4,
        Value::Array(a) => 2 + a.iter().map(json_weight).sum::<usize>(),
        Value::Object(o) => 2 + o.iter().map(|(k, v)| k.len() + 4 + json_weight(v)).sum::<usize>(),
        _ => 8,
    }
}

fn owned(g: Arc<Group>) -> Group {
    Arc::unwrap_or_clone(g)
}

impl ScimKind for Group {
    const RT: ResourceType = ResourceType::Group;
    type Spec = GroupSpec;

    fn lookup(dir: &Directory, provider: &str, id: &str) -> Option<Self> {
        dir.group(provider, id).map(owned)
    }
    fn all(dir: &Directory, provider: &str) -> Vec<Self> {
        dir.groups(provider).into_iter().map(owned).collect()
    }
    fn page(dir: &Directory, provider: &str, start: usize, count: usize) -> (usize, Vec<Self>) {
        let all = dir.groups(provider);
        (all.len(), all.into_iter().skip(start).take(count).map(owned).collect())
    }
    fn indexed(dir: &Directory, provider: &str, attr: &str, value: &str) -> Option<Vec<Self>> {
        let found = match attr {
            "displayName" => dir.groups_by_display_name(provider, value),
            "id" => dir.group(provider, value).into_iter().collect(),
            "externalId" => dir.groups_by_external_id(provider, value),
            _ => return None,
        };
        Some(found.into_iter().map(owned).collect())
    }
    fn render(dir: &Directory, group: &Self, base_url: &str) -> Value {
        let members = dir.members_of(group);
        let members: Vec<Member> = members.iter().map(|(id, display)| Member { id, display: display.as_deref() }).collect();
        codec::group_to_scim(group, &members, base_url)
    }
    fn render_shaped(dir: &Directory, group: &Self, base_url: &str, members: bool) -> Value {
        if members {
            return Self::render(dir, group, base_url);
        }
        let mut out = codec::group_to_scim(group, &[], base_url);
        if let Some(o) = out.as_object_mut() {
            o.remove("members");
        }
        out
    }
    fn weight(dir: &Directory, group: &Self, members: bool) -> usize {
        BASE_WEIGHT + if members { dir.member_count(group) * MEMBER_WEIGHT } else { 0 }
    }
    fn spec_from(resource: &Value, provider: &str) -> Result<GroupSpec, ScimError> {
        codec::group_spec_from_scim(resource, provider)
    }
    async fn create(store: &DirectoryStore, provider: &str, spec: GroupSpec) -> Result<Self, ScimError> {
        Ok(store.create_group(provider, spec).await?)
    }
    async fn update(store: &DirectoryStore, current: &Self, spec: GroupSpec) -> Result<Self, StoreError> {
        store.update_group(current, spec, None).await
    }
    async fn delete(store: &DirectoryStore, obj: &Self) -> Result<(), ScimError> {
        Ok(store.delete_group(obj).await?)
    }
    async fn reload(store: &DirectoryStore, obj: &Self) -> Result<Option<Self>, ScimError> {
        Ok(store.reload_group(obj).await?)
    }
    fn member_changes(request: &Value) -> Option<Vec<MemberChange>> {
        crate::scim::members::member_changes(request)
    }
    async fn change_members(store: &DirectoryStore, current: &Self, changes: &[MemberChange]) -> Result<Self, StoreError> {
        store.change_members(current, changes).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ProviderRef;
    use crate::server::scim::work::INLINE_BYTES;

    fn user(attributes: Value) -> User {
        let spec = UserSpec {
            provider_ref: ProviderRef { name: "okta".into() },
            user_name: "kate@example.com".into(),
            external_id: None,
            display_name: None,
            active: Some(true),
            attributes: attributes.as_object().cloned(),
        };
        User::new("u-1", spec)
    }

    #[test]
    fn a_usual_user_is_light_and_one_with_thousands_of_emails_is_not() {
        let dir = Directory::default();
        let usual = user(json!({"name": {"givenName": "Kate"}, "emails": [{"value": "kate@example.com", "primary": true}]}));
        let usual_bytes = serde_json::to_string(&usual.spec.attributes).unwrap().len();
        let weight = User::weight(&dir, &usual, true);
        assert!(weight >= usual_bytes && weight <= INLINE_BYTES, "{weight}");
        let emails: Vec<Value> = (0..8000).map(|i| json!({"value": format!("kate{i}@example.com")})).collect();
        let heavy = user(json!({"emails": emails}));
        assert!(User::weight(&dir, &heavy, true) > INLINE_BYTES);
    }
}

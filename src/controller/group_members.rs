//! Keeps group membership consistent with the users that exist. The server removes a deleted
//! user from every group itself, but a member added on one replica while the user is deleted on
//! another, or a User deleted with kubectl, would otherwise stay in the Group for good.

use std::collections::HashSet;
use std::sync::Arc;

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::context::{Context, Error};
use crate::api::{labels, Group, User};

pub const KIND: &str = "Group";

/// Member ids of `group` that no cached user carries.
pub fn unknown_members(group: &Group, known: &HashSet<String>) -> Vec<String> {
    group.spec.members.iter().map(|m| m.value.clone()).filter(|id| !known.contains(id)).collect()
}

pub async fn reconcile(group: Arc<Group>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer(KIND);
    // Membership is judged against the user cache, so nothing is decided before it has synced.
    tokio::time::timeout(std::time::Duration::from_secs(30), ctx.users.wait_until_ready())
        .await
        .map_err(|_| Error::UsersNotSynced)?
        .map_err(|_| Error::UsersNotSynced)?;
    let provider = &group.spec.provider_ref.name;
    let known: HashSet<String> = ctx
        .users
        .state()
        .iter()
        .filter(|u| u.labels().get(labels::PROVIDER) == Some(provider))
        .filter_map(|u| u.labels().get(labels::SCIM_ID).cloned())
        .collect();
    let suspects = unknown_members(&group, &known);
    if suspects.is_empty() {
        ctx.metrics.reconciled(KIND, "consistent");
        return Ok(Action::await_change());
    }
    // The cache may lag behind a user created a moment ago: only the API server may say a member
    // is gone.
    let ns = group.namespace().unwrap_or_default();
    let users: Api<User> = Api::namespaced(ctx.kube.client.clone(), &ns);
    let mut gone = vec![];
    for chunk in suspects.chunks(50) {
        let selector = format!("{}={provider},{} in ({})", labels::PROVIDER, labels::SCIM_ID, chunk.join(","));
        let found = users.list_metadata(&ListParams::default().labels(&selector)).await?;
        let present: HashSet<&str> = found.items.iter().filter_map(|u| u.labels().get(labels::SCIM_ID).map(String::as_str)).collect();
        gone.extend(chunk.iter().filter(|id| !present.contains(id.as_str())).cloned());
    }
    if gone.is_empty() {
        ctx.metrics.reconciled(KIND, "consistent");
        return Ok(Action::await_change());
    }
    let mut next = (*group).clone();
    next.spec.members.retain(|m| !gone.contains(&m.value));
    let groups: Api<Group> = Api::namespaced(ctx.kube.client.clone(), &ns);
    // A replace with the resource version read: a concurrent change makes it fail and requeue.
    groups.replace(&group.name_any(), &ctx.kube.manager.post(), &next).await?;
    tracing::info!(group = %group.name_any(), removed = gone.len(), "removed members whose users no longer exist");
    ctx.metrics.reconciled(KIND, "cleaned");
    Ok(Action::await_change())
}

pub fn error_policy(group: Arc<Group>, err: &Error, ctx: Arc<Context>) -> Action {
    super::context::error_policy(KIND, group.as_ref(), err, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GroupMember, GroupSpec, ProviderRef};

    #[test]
    fn unknown_members_are_those_no_user_carries() {
        let g = Group::new(
            "g",
            GroupSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                display_name: "eng".into(),
                external_id: None,
                members: ["a", "b", "c"].iter().map(|v| GroupMember { value: v.to_string(), ..Default::default() }).collect(),
            },
        );
        let known: HashSet<String> = ["a".to_string(), "c".to_string()].into();
        assert_eq!(unknown_members(&g, &known), vec!["b".to_string()]);
    }
}

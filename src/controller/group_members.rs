//! Moves memberships that earlier versions stored in a Group's `spec.members` onto the member
//! Users (the label `group.infrahq.com/<group id>`, see [`crate::api::member_label`]), dropping
//! members whose users no longer exist, then empties `spec.members`. Memberships recorded as
//! labels need no cleanup: a deleted User takes its labels with it.

use std::collections::HashSet;
use std::sync::Arc;

use kube::api::{ListParams, Patch};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::context::{Context, Error};
use crate::api::{Group, User, labels, member_label};

pub const KIND: &str = "Group";

/// Member ids of `group` that no cached user carries.
pub fn unknown_members(group: &Group, known: &HashSet<String>) -> Vec<String> {
    group.spec.members.iter().map(|m| m.value.clone()).filter(|id| !known.contains(id)).collect()
}

pub async fn reconcile(group: Arc<Group>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer(KIND);
    if group.spec.members.is_empty() {
        ctx.metrics.reconciled(KIND, "consistent");
        return Ok(Action::await_change());
    }
    // Membership is judged against the user cache, so nothing is decided before it has synced.
    tokio::time::timeout(std::time::Duration::from_secs(30), ctx.users.wait_until_ready())
        .await
        .map_err(|_| Error::UsersNotSynced)?
        .map_err(|_| Error::UsersNotSynced)?;
    let provider = &group.spec.provider_ref.name;
    let mut found: Vec<Arc<PartialObjectMeta<User>>> =
        ctx.users.state().into_iter().filter(|u| u.labels().get(labels::PROVIDER) == Some(provider)).collect();
    let known: HashSet<String> = found.iter().filter_map(|u| u.labels().get(labels::SCIM_ID).cloned()).collect();
    // The cache may lag behind a user created a moment ago: only the API server may say a member
    // is gone.
    let ns = group.namespace().unwrap_or_default();
    let users: Api<User> = Api::namespaced(ctx.kube.client.clone(), &ns);
    let suspects = unknown_members(&group, &known);
    for chunk in suspects.chunks(50) {
        let selector = format!("{}={provider},{} in ({})", labels::PROVIDER, labels::SCIM_ID, chunk.join(","));
        found.extend(users.list_metadata(&ListParams::default().labels(&selector)).await?.items.into_iter().map(Arc::new));
    }
    // Everyone listed who exists gets the label (a merge patch naming the UID, so a user
    // re-created under the same name is not touched); then the list is emptied at the version
    // read, so a concurrent change makes this fail and requeue.
    // Each listed member with the display the client wrote, which moves along (an annotation of
    // the label's key) so that SCIM returns it as before.
    let listed: std::collections::HashMap<&str, Option<&str>> =
        group.spec.members.iter().map(|m| (m.value.as_str(), m.display.as_deref())).collect();
    let key = member_label(group.labels().get(labels::SCIM_ID).map(String::as_str).unwrap_or_default());
    let pp = ctx.kube.manager.patch();
    let mut kept = HashSet::new();
    for user in found.iter().filter(|u| u.labels().get(labels::SCIM_ID).is_some_and(|id| listed.contains_key(id.as_str()))) {
        let id = user.labels()[labels::SCIM_ID].as_str();
        if !user.labels().contains_key(&key) {
            let patch = serde_json::json!({"metadata": {"uid": user.uid(), "labels": {&key: ""}, "annotations": {&key: listed[id]}}});
            match users.patch_metadata(&user.name_any(), &pp, &Patch::Merge(&patch)).await {
                Ok(_) => {}
                // Deleted or replaced since it was read: it is no member any more.
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        kept.insert(id);
    }
    let gone = listed.len() - kept.len();
    let mut next = (*group).clone();
    next.spec.members.clear();
    let groups: Api<Group> = Api::namespaced(ctx.kube.client.clone(), &ns);
    groups.replace(&group.name_any(), &ctx.kube.manager.post(), &next).await?;
    tracing::info!(group = %group.name_any(), moved = kept.len(), removed = gone, "moved the group's members onto its users");
    ctx.metrics.reconciled(KIND, if gone == 0 { "migrated" } else { "cleaned" });
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

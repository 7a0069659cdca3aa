use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProviderRef;

/// The SCIM attributes of the group.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "Group",
    plural = "groups",
    shortname = "igroup",
    category = "infra",
    namespaced,
    doc = "A group of users as their identity provider pushes it. Its SCIM id is the label infrahq.com/scim-id.",
    status = "GroupStatus",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    /// The provider this group belongs to. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "providerRef is immutable"}]))]
    pub provider_ref: ProviderRef,
    /// The group's name.
    #[schemars(length(min = 1, max = 1024))]
    pub display_name: String,
    /// The provider's own identifier for the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Members written by versions before memberships moved onto the Users (each member's User
    /// carries the label `group.infrahq.com/<group id>`). Read together with those labels; the
    /// controller moves what it finds here onto the Users and empties it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<GroupMember>,
}

/// The prefix of the label that makes a User a member of a group: `group.infrahq.com/<group's
/// SCIM id>` (the value is empty). Membership lives on the members, so adding or removing one is
/// a small write to one User whatever the group's size, and a deleted User leaves every group.
pub const MEMBER_LABEL_PREFIX: &str = "group.infrahq.com/";

/// The membership label of the group with SCIM id `group_id` (a label value, so also a valid
/// label name).
pub fn member_label(group_id: &str) -> String {
    format!("{MEMBER_LABEL_PREFIX}{group_id}")
}

/// The group ids a User's labels make it a member of.
pub fn member_groups<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> impl Iterator<Item = &'a str> {
    labels.into_iter().filter_map(|(k, _)| k.strip_prefix(MEMBER_LABEL_PREFIX))
}

/// A member of a group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct GroupMember {
    /// The SCIM id of the member (the User's infrahq.com/scim-id label).
    pub value: String,
    /// The member's `display` as the provider wrote it (Okta sends the userName), returned as
    /// written. Absent when the provider sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// `User` (the only member type this server accepts).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions about the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

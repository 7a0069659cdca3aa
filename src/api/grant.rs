use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who gets access and to what.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "Grant",
    plural = "grants",
    shortname = "grant",
    category = "infra",
    namespaced,
    doc = "Access for an Infra user or group: a RoleBinding in spec.namespace, or a ClusterRoleBinding without one. The subject is the Kubernetes identity Infra's tokens carry (infra:<provider>:<userName> or infra:<provider>:<group>), so a Grant may exist before its user or group does.",
    status = "GrantStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.subject.provider"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.subject.user"}"#,
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".spec.subject.group"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role.name"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.namespace"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Binding","type":"string","priority":1,"jsonPath":".status.binding"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.role.kind == 'ClusterRole' || has(self.__namespace__)", "message": "a Role exists in one namespace: set namespace, or grant a ClusterRole"},
    {"rule": "!(has(self.expiresAfter) && has(self.expiresAt))", "message": "set expiresAfter or expiresAt, not both"},
]))]
#[serde(rename_all = "camelCase")]
pub struct GrantSpec {
    pub subject: GrantSubject,
    pub role: GrantRole,
    /// The namespace the access applies to. Without it the grant is cluster-wide (a
    /// ClusterRoleBinding, ClusterRoles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Temporary access: how long after the Grant's creation it ends, such as `8h` or `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h|d|w))+$"))]
    pub expires_after: Option<String>,
    /// Temporary access: when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// An Infra user or group of one provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.user) != has(self.group)", "message": "name exactly one of user and group"},
]))]
pub struct GrantSubject {
    /// The IdentityProvider's name.
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    /// A userName (compared as Infra folds it: ASCII letters in lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub user: Option<String>,
    /// A group's displayName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub group: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub enum RoleKind {
    ClusterRole,
    Role,
}

/// The role to bind. Only roles on the operator's allow-list are bound.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GrantRole {
    pub kind: RoleKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the binding exists as the grant says (reasons `Bound`, `RoleNotFound`,
    /// `RoleNotAllowed`, `NamespaceNotFound`, `Expired`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `Active`, `Pending` (cannot be bound yet, see Ready) or `Expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<GrantPhase>,
    /// The RoleBinding (in spec.namespace) or ClusterRoleBinding that carries the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// When temporary access ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// The one condition type of a Grant.
pub const READY: &str = "Ready";

super::conditions::phases! {
    /// Where a Grant is: bound, waiting for something (its role, its namespace, the allow-list), or
    /// past its expiry.
    pub enum GrantPhase {
        /// Cannot be bound yet: see the `Ready` condition.
        Pending,
        /// The binding exists.
        Active,
        /// Past `expiresAt`/`expiresAfter`; the binding was removed.
        Expired,
    }
}

super::conditions::reasons! {
    /// Why a Grant is or is not Ready.
    pub enum GrantReason {
        Bound,
        Expired,
        RoleNotAllowed,
        RoleNotFound,
        NamespaceNotFound,
    }
}

impl GrantReason {
    pub fn phase(self) -> GrantPhase {
        match self {
            Self::Bound => GrantPhase::Active,
            Self::Expired => GrantPhase::Expired,
            Self::RoleNotAllowed | Self::RoleNotFound | Self::NamespaceNotFound => GrantPhase::Pending,
        }
    }
}

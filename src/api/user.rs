use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProviderRef;

/// The SCIM attributes of the user.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "User",
    plural = "users",
    shortname = "iuser",
    category = "infra",
    namespaced,
    doc = "A person as their identity provider describes them. One User per person per provider; its SCIM id is the label infrahq.com/scim-id, which stays when a rename changes the object name.",
    status = "UserStatus",
    printcolumn = r#"{"name":"User Name","type":"string","jsonPath":".spec.userName"}"#,
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Active","type":"boolean","jsonPath":".spec.active"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Last Login","type":"date","jsonPath":".status.lastLoginTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The provider this user belongs to. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "providerRef is immutable"}]))]
    pub provider_ref: ProviderRef,
    /// The unique login name, unique per provider regardless of case.
    #[schemars(length(min = 1, max = 1024))]
    pub user_name: String,
    /// The provider's own identifier for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The name to display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The SCIM `active` the provider wrote: false deactivates the user (listed but refused at
    /// login); true or absent (never sent, or removed) lets the user log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The remaining SCIM attributes (name, emails, phoneNumbers, the enterprise extension under
    /// its schema URN, and so on), in SCIM wire form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::free_form_object")]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

impl UserSpec {
    /// Whether the user may log in: unless the provider deactivated them (`active: false`).
    ///
    /// An unassigned `active` is kept unassigned and lets the user log in. RFC 7644 §3.5.2.2 says a
    /// removed attribute "SHALL be considered unassigned", so `remove active` cannot store `false`:
    /// that would assert a deactivation the client never sent, and the user would read back
    /// `active: false` rather than without `active`. RFC 7643 §2.5 makes unassigned and null the
    /// same state, and a User created without `active` (RFC 7643 §4.1's minimal user has none)
    /// must be able to log in, so that state cannot mean deactivated either. RFC 7643 §4.1.1 leaves
    /// the meaning of `active` to the service provider and gives `false` as the suspended state;
    /// Okta and Entra deactivate by writing `active: false`, which this honours.
    pub fn is_active(&self) -> bool {
        self.active != Some(false)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions about the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The groups the provider asserted at this user's last login (in the ID token or userinfo,
    /// after the provider's groupsFilter). Replaced at every login; SCIM group memberships are
    /// kept in the Group objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_groups: Option<Vec<String>>,
    /// The provider's subject (`sub`) of the person who first logged in as this user. A later
    /// login with another subject is refused (`subject_mismatch`): the account at the provider
    /// was replaced, or another account claims this userName. Written by login only; SCIM writes
    /// and renames keep it. To let a new account take over the user, remove this field (or
    /// delete the User).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_subject: Option<String>,
    /// When the user last logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

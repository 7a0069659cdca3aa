use k8s_openapi::jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A login session. The server creates it when someone logs in and deletes it at logout; the
/// controller re-checks it with the provider and ends it when the provider no longer vouches for
/// it. It holds only non-secret facts and the SHA-256 of the session token (never the token). The
/// provider's refresh token, a real secret, is in the Secret `infra-session-<name>`, which only
/// the controller reads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "Session",
    plural = "sessions",
    shortname = "isession",
    category = "infra",
    namespaced,
    doc = "A login session of a User (owned by it). Created by the server at login, deleted at logout, expiry or when the provider stops vouching for it; `kubectl delete session` ends it everywhere at once.",
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.user"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","format":"date-time","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    #[serde(flatten)]
    pub record: SessionRecord,
    /// The SHA-256 (hex) of the session token. The token itself is never stored.
    pub token_hash: String,
}

/// The non-secret facts of a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The userName the person logged in as.
    pub user: String,
    /// The object name of the User.
    pub user_object: String,
    /// The IdentityProvider the person logged in through.
    pub provider: String,
    /// When the session started.
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: Timestamp,
    /// The absolute end of the session.
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub expires_at: Timestamp,
    /// When the provider last confirmed the session (by redeeming its refresh token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub checked_at: Option<Timestamp>,
    /// The issuer that vouched for the login. Absent in sessions from before the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token endpoint the refresh token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
}

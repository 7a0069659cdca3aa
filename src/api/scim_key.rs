use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::SignedDuration;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProviderRef;

/// Data key of a ScimKey's Secret: the SHA-256 (hex) of the key. The key itself is never stored.
pub const KEY_HASH_DATA: &str = "keyHash";
/// Data key of the key itself, in Secrets generated before keys were stored hashed; the controller
/// replaces it with [`KEY_HASH_DATA`] and the server accepts it until then.
pub const LEGACY_KEY_DATA: &str = "key";

/// Type of the Secret that holds a ScimKey's hash.
pub const SECRET_TYPE: &str = "infrahq.com/scim-key";

/// Which provider the key is for and how long it lasts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "ScimKey",
    plural = "scimkeys",
    shortname = "sk",
    category = "infra",
    namespaced,
    doc = "A bearer key that an identity provider uses to provision users and groups over SCIM. The operator generates it once into a Secret owned by this object; deleting the ScimKey revokes the key.",
    status = "ScimKeyStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Key ID","type":"string","jsonPath":".status.keyID"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","priority":1,"jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.expiresAfter) == has(oldSelf.expiresAfter) && (!has(self.expiresAfter) || self.expiresAfter == oldSelf.expiresAfter)",
    "message": "expiresAfter is immutable: the expiry is fixed when the key is generated; create a new ScimKey instead"
}]))]
#[serde(rename_all = "camelCase")]
pub struct ScimKeySpec {
    /// The IdentityProvider whose users and groups this key may read and write. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "providerRef is immutable: a key is bound to one provider; create a new ScimKey instead"
    }]))]
    pub provider_ref: ProviderRef,

    /// How long the key stays valid after it is generated, such as `90d`, `720h` or `1w`. Without
    /// it the key never expires. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h|d|w))+$"))]
    pub expires_after: Option<String>,

    /// What the key is for, such as `Okta production SCIM app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimKeyStatus {
    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Active`, `Expired` or `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<KeyPhase>,
    /// `Ready` says whether the key is issued and usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The Secret that holds the key's hash (data key `keyHash`), which the controller copies to
    /// `keyHash` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// A non-secret identifier of the key: the part before the dot. Safe to log and share.
    #[serde(default, rename = "keyID", skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The SHA-256 (hex) of the key, which the server checks presented keys against. Not a
    /// secret: the key is 256 random bits, so its hash cannot be turned back into it. Only the
    /// controller may write status, so nobody else can plant a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// When the key was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// When the key stops working, if it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The key, sealed to the one-time public key that `infra scim-keys create` put in the
    /// `infrahq.com/key-recipient` annotation: only that process can open it. Keys created
    /// without a recipient are never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
}

/// The one condition type of a ScimKey.
pub const READY: &str = "Ready";

super::conditions::phases! {
    /// Where a key is in its life.
    pub enum KeyPhase {
        /// Not usable yet: its provider does not exist.
        Pending,
        /// Issued and accepted.
        Active,
        /// Past its expiry and refused.
        Expired,
    }
}

super::conditions::reasons! {
    /// Why a ScimKey is or is not Ready.
    pub enum KeyReason {
        Active,
        Expired,
        ProviderNotFound,
        SecretMissing,
    }
}

impl KeyReason {
    pub fn phase(self) -> KeyPhase {
        match self {
            Self::Active => KeyPhase::Active,
            Self::Expired => KeyPhase::Expired,
            Self::ProviderNotFound | Self::SecretMissing => KeyPhase::Pending,
        }
    }
}

/// Parses `90d`, `12h`, `1w2d`, `30m`, `45s` (the forms the CRD's pattern admits).
pub fn parse_duration(raw: &str) -> Option<SignedDuration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in raw.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (digits.is_empty() && total > 0).then(|| SignedDuration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(SignedDuration::from_hours(90 * 24)));
        assert_eq!(parse_duration("1w2d"), Some(SignedDuration::from_hours(9 * 24)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("45s"), Some(SignedDuration::from_secs(45)));
        for bad in ["", "10", "h", "1x", "0s", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

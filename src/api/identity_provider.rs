use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state: where the provider is and which client to use.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "IdentityProvider",
    plural = "identityproviders",
    shortname = "idp",
    category = "infra",
    namespaced,
    doc = "An identity provider that people log in through and that provisions users over SCIM. The client secret stays in a Secret; the operator checks the provider and reports each check as a condition.",
    status = "IdentityProviderStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".status.issuer"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderSpec {
    /// Which kind of provider this is. `okta` accepts the Okta domain as pasted from the admin
    /// console; `azure` a Microsoft Entra ID tenant issuer; `google` Google's issuer; `oidc` any
    /// OpenID Connect issuer URL.
    pub kind: ProviderKind,

    /// Where the provider lives. For Okta, the domain (`example.okta.com`), with or without
    /// `https://`; the `-admin` console host is accepted, and a path such as `/oauth2/default`
    /// selects a custom authorization server. For `oidc`, the issuer URL. For `azure`,
    /// `login.microsoftonline.com/<tenant-id>/v2.0`. For `google`, `accounts.google.com`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,

    /// The OAuth client ID of the application registered at the provider.
    #[serde(rename = "clientID")]
    #[schemars(length(min = 1, max = 512))]
    pub client_id: String,

    /// The Secret (in this namespace) and key that hold the OAuth client secret.
    pub client_secret_ref: SecretKeyRef,

    /// OAuth scopes requested at login. Defaults to `openid email profile`, plus `groups` and
    /// `offline_access` (for a refresh token) when the provider supports them (its discovery
    /// document lists them, or lists no scopes at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,

    /// Which ID token claims carry the username and the groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimMapping>,

    /// Only groups whose name matches this regular expression are taken from the provider.
    /// Defaults to `.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub groups_filter: Option<String>,

    /// PEM-encoded CA certificates to trust when talking to this provider, for providers behind a
    /// private CA. Public providers such as Okta do not need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Okta,
    Azure,
    Google,
    Oidc,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Okta => "okta",
            Self::Azure => "azure",
            Self::Google => "google",
            Self::Oidc => "oidc",
        })
    }
}

/// A key in a Secret of the same namespace. The Secret must be of type `infrahq.com/client-secret`:
/// the operator reads no other Secret for a provider, so that a provider can never be pointed at a
/// Secret that was not made for it (and have its value sent to the provider's token endpoint).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret (of type `infrahq.com/client-secret`).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret. Defaults to `clientSecret`.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

pub const DEFAULT_SECRET_KEY: &str = "clientSecret";

/// The only Secret type that may back `spec.clientSecretRef` (as Pinniped requires
/// `secrets.pinniped.dev/oidc-client`). Creating a Secret of this type is an explicit act of
/// someone allowed to create Secrets, which the holder of a role on IdentityProviders alone is not.
/// The Secret `infra providers add` and the dashboard keep provider `provider`'s client secret in.
pub fn client_secret_name(provider: &str) -> String {
    format!("{provider}-client-secret")
}

/// Provider names become parts of Secret names and URLs, so they follow DNS label rules.
pub fn check_provider_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(format!(
            "invalid provider name {name:?}: use 1-48 lowercase letters, digits and dashes, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

pub const CLIENT_SECRET_TYPE: &str = "infrahq.com/client-secret";

fn default_secret_key() -> String {
    DEFAULT_SECRET_KEY.to_string()
}

/// Claim names in the ID token (or userinfo response).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ClaimMapping {
    /// The claim that holds the username. Defaults to `email`, falling back to `preferred_username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The claim that holds the list of groups. Defaults to `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
}

/// What the operator found when it checked the provider, and what to paste into the provider's
/// admin console.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Failed` or `Pending`: a summary of the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ProviderPhase>,
    /// Checks: `SecretValid`, `SettingsValid`, `DiscoverySucceeded`, `ClientCredentialsValid` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The issuer the URL resolved to, as confirmed by the discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Endpoints from the discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<ProviderEndpoints>,
    /// The scopes the provider's discovery document says it supports (`scopes_supported`), when
    /// it lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Sign-in redirect URIs to register at the provider: the CLI's loopback URI and the
    /// dashboard's callback.
    #[serde(default, rename = "redirectURIs", skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// The SCIM 2.0 base URL to configure in the provider's provisioning settings.
    #[serde(default, rename = "scimURL", skip_serializing_if = "Option::is_none")]
    pub scim_url: Option<String>,
    /// When the provider was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEndpoints {
    /// The OAuth 2.0 authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// The OAuth 2.0 token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The OpenID Connect userinfo endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<String>,
    /// Where the provider publishes its signing keys.
    #[serde(default, rename = "jwksURI", skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// How Infra authenticates to the token endpoint: `client_secret_basic` (HTTP Basic, the
    /// default) or `client_secret_post`, when the provider accepts only that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_auth_method: Option<String>,
}

impl IdentityProvider {
    /// Whether the operator's last check found the provider usable for logins.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| super::conditions::is_true(&s.conditions, READY))
    }
}

/// Condition types of an IdentityProvider, in the order they are checked; `Ready` sums them up.
pub const SECRET_VALID: &str = "SecretValid";
/// Settings that need no network to check: today, that `spec.groupsFilter` compiles.
pub const SETTINGS_VALID: &str = "SettingsValid";
pub const DISCOVERY: &str = "DiscoverySucceeded";
pub const CREDENTIALS: &str = "ClientCredentialsValid";
pub const READY: &str = "Ready";

super::conditions::phases! {
    /// A summary of the conditions.
    pub enum ProviderPhase {
        /// Some check has not finished.
        Pending,
        /// Every check passed: people can log in and SCIM keys work.
        Ready,
        /// A check failed; the `Ready` condition says which and what to do.
        Failed,
    }
}

super::conditions::reasons! {
    /// Why an IdentityProvider's condition is what it is.
    pub enum ProviderReason {
        // SecretValid
        Found,
        Waiting,
        SecretNotFound,
        SecretWrongType,
        SecretForOtherProvider,
        SecretKeyMissing,
        SecretEmpty,
        SecretNotText,
        // SettingsValid
        Valid,
        InvalidGroupsFilter,
        // DiscoverySucceeded
        Discovered,
        InvalidURL,
        InvalidCABundle,
        NotOpenIDProvider,
        IssuerMismatch,
        InvalidDocument,
        AddressRefused,
        Unreachable,
        ProviderError,
        // ClientCredentialsValid
        Accepted,
        InvalidClient,
        UnauthorizedClient,
        NoTokenEndpoint,
        UnexpectedResponse,
        SecretInvalid,
        DiscoveryFailed,
        // Ready
        Ready,
    }
}

impl ProviderReason {
    /// Whether the failure may heal by itself ("try again soon") rather than needing someone to
    /// fix the configuration.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unreachable | Self::ProviderError)
    }
}

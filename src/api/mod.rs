//! Custom resource types (group `infrahq.com`, version `v1alpha1`) and the helpers they share.
//! Nothing here does I/O.

pub mod conditions;
pub mod device_authorization;
pub mod grant;
pub mod group;
pub mod identity_provider;
pub mod scim_key;
pub mod session;
pub mod user;

pub use device_authorization::{DeviceAuthorization, DeviceAuthorizationSpec, DeviceDecider, DeviceRequester, DeviceState};
pub use grant::{Grant, GrantPhase, GrantReason, GrantRole, GrantSpec, GrantStatus, GrantSubject, RoleKind};
pub use group::{Group, GroupMember, GroupSpec, GroupStatus, MEMBER_LABEL_PREFIX, member_groups, member_label};
pub use identity_provider::{
    CLIENT_SECRET_TYPE, ClaimMapping, DEFAULT_SECRET_KEY, IdentityProvider, IdentityProviderSpec, IdentityProviderStatus,
    ProviderEndpoints, ProviderKind, ProviderPhase, ProviderReason, SecretKeyRef, check_provider_name, client_secret_name,
};
pub use scim_key::{KEY_HASH_DATA, KeyPhase, KeyReason, LEGACY_KEY_DATA, ScimKey, ScimKeySpec, ScimKeyStatus};
pub use session::{Session, SessionRecord, SessionSpec};
pub use user::{User, UserSpec, UserStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "infrahq.com";

/// Labels the operator and the CLI put on what they create, so that ownership is visible to
/// `kubectl get -l` and so that the server can watch only the Secrets it needs.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const PROVIDER: &str = "infrahq.com/provider";
    pub const SCIM_KEY: &str = "infrahq.com/scim-key";
    pub const KEY_ID: &str = "infrahq.com/key-id";
    /// The SCIM id of a User or Group; it moves with the user when a rename changes its object name.
    pub const SCIM_ID: &str = "infrahq.com/scim-id";
    /// On Sessions and their refresh-token Secrets: the session id (the non-secret part of the
    /// token, and the Session's name).
    pub const SESSION: &str = "infrahq.com/session";
    /// On Sessions: the object name of the session's User.
    pub const USER: &str = "infrahq.com/user";
    /// On Sessions: a hash of the login's nonce, so that a nonce is used only once.
    pub const NONCE_HASH: &str = "infrahq.com/nonce-hash";
    /// On the Secret that holds the key the servers sign login state with.
    pub const LOGIN_STATE_KEY: &str = "infrahq.com/login-state-key";
}

/// Annotations on generated Secrets. The expiry is written once, when the key is generated, so
/// that the server enforces it without trusting a status that anyone with status access can edit.
pub mod annotations {
    pub const EXPIRES_AT: &str = "infrahq.com/expires-at";
    /// SCIM `meta.created` and `meta.lastModified` of Users and Groups (the creation timestamp of
    /// the object is not enough: a rename creates a new object).
    pub const CREATED: &str = "infrahq.com/created";
    pub const LAST_MODIFIED: &str = "infrahq.com/last-modified";
    /// On a User a sign-in created (rather than SCIM): `login`. Shown by the dashboard.
    pub const CREATED_BY: &str = "infrahq.com/created-by";
    /// On a User: when the person last signed in (also `status.lastLoginTime`), in metadata so
    /// that the server's compact directory, which keeps no status, can list it.
    pub const LAST_LOGIN: &str = "infrahq.com/last-login";
    /// On Sessions: when the session was last used (for the idle timeout).
    pub const LAST_SEEN: &str = "infrahq.com/last-seen";
    /// On a ScimKey: the one-time public key of whoever asked for it (see `crate::sealed`).
    pub const KEY_RECIPIENT: &str = "infrahq.com/key-recipient";
    /// On a ScimKey's Secret: the key sealed to that recipient, written with the Secret.
    pub const SEALED_KEY: &str = "infrahq.com/sealed-key";
}

/// A reference to an IdentityProvider in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct ProviderRef {
    /// Name of the IdentityProvider in this namespace.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// An object the API server stores as is, nested values included. (`additionalProperties: true`
/// would make the API server prune everything below the first level.)
pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Every CRD the operator serves, in a stable order (the order of `crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        label_sized_name(IdentityProvider::crd()),
        label_sized_name(ScimKey::crd()),
        User::crd(),
        Group::crd(),
        Grant::crd(),
        DeviceAuthorization::crd(),
        Session::crd(),
    ]
}

/// The longest name of an object whose name becomes a label value (`infrahq.com/provider`,
/// `infrahq.com/scim-key`).
pub const MAX_LABEL_NAME: usize = 63;

/// Makes the API server refuse names longer than a label value may be: without this, an object
/// with a 64-character name is accepted and then nothing can ever be labelled with it (its
/// ScimKey Secret is never created, its users never stored), and the reconcile fails forever.
fn label_sized_name(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let rule = serde_json::json!([{
        "rule": format!("self.metadata.name.size() <= {MAX_LABEL_NAME}"),
        "message": format!("metadata.name must be at most {MAX_LABEL_NAME} characters: it is used as a label value"),
    }]);
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations = serde_json::from_value(rule.clone()).ok();
        }
    }
    crd
}

/// The CRDs as one multi-document YAML stream, exactly what `infra-operator crds` prints and what
/// `crds/` holds.
pub fn crds_yaml() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    crds()
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            Ok((file, serde_saphyr::to_string(&crd)?))
        })
        .collect()
}

/// Where `infra-operator crds --chart-dir` writes the CRDs as chart templates.
pub const CHART_CRD_DIR: &str = "charts/infra/templates/crds";

/// The CRDs as templates of the Helm chart: the YAML of `crds_yaml` with the release's labels,
/// rendered only with `crds.enabled` and kept on uninstall with `crds.keep` (as cert-manager's
/// chart does). Templates rather than the chart's `crds/` folder because Helm installs that
/// folder once and never upgrades it.
pub fn crd_chart_templates() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    crds_yaml().map(|crds| crds.into_iter().map(|(file, yaml)| (file, chart_template(&yaml))).collect())
}

/// One CRD's YAML as a chart template (see `crd_chart_templates`).
pub fn chart_template(crd_yaml: &str) -> String {
    const METADATA: &str = concat!(
        "  labels:\n",
        "    {{- include \"infra.labels\" . | nindent 4 }}\n",
        "  {{- if .Values.crds.keep }}\n",
        "  annotations:\n",
        "    # Uninstalling the chart leaves the CRDs, and so every provider, key, user and group.\n",
        "    helm.sh/resource-policy: keep\n",
        "  {{- end }}\n",
    );
    // Text such as a description must reach the API server as written, not as a template action.
    let yaml = crd_yaml.replace("{{", "{{ \"{{\" }}");
    let (head, spec) = yaml.split_once("\nspec:\n").expect("a CRD has metadata, then spec");
    format!(
        "{{{{- if .Values.crds.enabled }}}}\n\
         # Generated from the Rust types by `infra-operator crds --dir crds --chart-dir {CHART_CRD_DIR}`;\n\
         # do not edit (tests/crds.rs fails on drift).\n\
         {head}\n{METADATA}spec:\n{spec}{{{{- end }}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::chart_template;

    #[test]
    fn chart_template_wraps_a_crd_and_escapes_template_text() {
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.infrahq.com\nspec:\n  description: use {{ braces }}\n";
        let t = chart_template(crd);
        assert!(t.starts_with("{{- if .Values.crds.enabled }}\n"), "{t}");
        assert!(t.ends_with("  description: use {{ \"{{\" }} braces }}\n{{- end }}\n"), "{t}");
        assert!(t.contains("  name: a.infrahq.com\n  labels:\n"), "{t}");
        assert!(t.contains("    helm.sh/resource-policy: keep\n  {{- end }}\nspec:\n"), "{t}");
    }
}

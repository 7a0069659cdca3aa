//! The binding a Grant asks for: its name, subject and role, derived from the Grant alone (pure),
//! so the controller that creates it and the CLI that names Grants agree.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::identity;
use crate::api::{GrantSpec, RoleKind, labels};
use crate::api_server::FieldManager;

/// On every binding a Grant made: the binding's key (see [`Target::key`]).
pub const BINDING_LABEL: &str = "infrahq.com/grant-binding";

/// The binding a Grant asks for. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `None`: a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub name: String,
    pub key: String,
    pub subject_kind: &'static str,
    pub subject: String,
    pub role_kind: &'static str,
    pub role: String,
}

impl Target {
    pub fn of(spec: &GrantSpec) -> Self {
        let provider = &spec.subject.provider;
        let (subject_kind, subject) = match (&spec.subject.user, &spec.subject.group) {
            (Some(user), _) => ("User", identity::username(provider, user)),
            (None, Some(group)) => ("Group", identity::group(provider, group)),
            // The CRD refuses a subject with neither; a Grant from before that rule binds nobody.
            (None, None) => ("User", identity::username(provider, "")),
        };
        let role_kind = match spec.role.kind {
            RoleKind::ClusterRole => "ClusterRole",
            RoleKind::Role => "Role",
        };
        let mut h = Sha256::new();
        for part in [subject_kind, &subject, role_kind, &spec.role.name, spec.namespace.as_deref().unwrap_or("")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let key = crate::keys::hex(&h.finalize())[..20].to_string();
        Target {
            namespace: spec.namespace.clone(),
            name: format!("infra-grant-{key}"),
            key,
            subject_kind,
            subject,
            role_kind,
            role: spec.role.name.clone(),
        }
    }

    /// The RoleBinding or ClusterRoleBinding, for server-side apply.
    pub fn manifest(&self) -> serde_json::Value {
        let kind = if self.namespace.is_some() { "RoleBinding" } else { "ClusterRoleBinding" };
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {
                "name": self.name,
                "labels": {labels::MANAGED_BY: FieldManager::CONTROLLER.name(), BINDING_LABEL: self.key},
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": self.role_kind, "name": self.role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": self.subject_kind, "name": self.subject}],
        })
    }
}

/// Whether `name` of `kind` may be bound. Entries are role names; they allow the ClusterRole
/// and, in a namespace, a Role of that name.
pub fn allowed(allow_list: &[String], name: &str) -> bool {
    allow_list.iter().any(|a| a == name)
}

/// When the Grant ends, if it is temporary. An unparseable `expiresAfter` (the CRD's pattern
/// prevents it) counts as already expired: access is never granted by mistake.
pub fn expiry(spec: &GrantSpec, created: Option<Timestamp>) -> Option<Timestamp> {
    if let Some(at) = &spec.expires_at {
        return Some(at.0);
    }
    let after = spec.expires_after.as_deref()?;
    let created = created.unwrap_or(Timestamp::MIN);
    Some(crate::api::scim_key::parse_duration(after).and_then(|d| created.checked_add(d).ok()).unwrap_or(Timestamp::MIN))
}

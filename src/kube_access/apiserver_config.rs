//! What the API server needs to trust Infra: a structured `AuthenticationConfiguration`
//! (`--authentication-config`). Printed by `infra kube apiserver-config`, used by the local
//! control plane and rendered by the chart.

use serde_json::{Value, json};

use super::identity::{PREFIX, SESSION_EXTRA};

/// The parameters of the configuration.
pub struct Issuer<'a> {
    /// The issuer URL (https; the API server fetches `<url>/.well-known/openid-configuration`).
    pub url: &'a str,
    /// The cluster's audience (`--cluster-name`).
    pub audience: &'a str,
    /// PEM of the CA that signed the issuer's serving certificate, when it is not a public one.
    pub certificate_authority: Option<&'a str>,
}

/// The `AuthenticationConfiguration` (apiserver.config.k8s.io/v1) with one JWT authenticator for
/// Infra. The claim rules accept only names under `infra:`; the user rules refuse `system:`
/// whatever a token claims, so even a stolen signing key cannot assert a system identity.
pub fn authentication(issuer: &Issuer) -> Value {
    let mut iss = json!({"url": issuer.url, "audiences": [issuer.audience]});
    if let Some(ca) = issuer.certificate_authority {
        iss["certificateAuthority"] = json!(ca);
    }
    json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": iss,
            "claimValidationRules": [
                {"expression": format!("claims.username.startsWith('{PREFIX}')"), "message": format!("Infra usernames start with {PREFIX}")},
                {"expression": "has(claims.sid) && claims.sid != ''", "message": "Infra tokens name their session"},
            ],
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
                "uid": {"claim": "sub"},
                "extra": [{"key": SESSION_EXTRA, "valueExpression": "claims.sid"}],
            },
            // Claims are untyped in claimValidationRules; the mapped groups are a list here.
            "userValidationRules": [
                {"expression": "!user.username.startsWith('system:')", "message": "usernames starting with system: are reserved for Kubernetes"},
                {"expression": "user.groups.all(g, !g.startsWith('system:'))", "message": "groups starting with system: are reserved for Kubernetes"},
                {"expression": format!("user.groups.all(g, g.startsWith('{PREFIX}'))"), "message": format!("Infra groups start with {PREFIX}")},
            ],
        }],
    })
}

/// The `AuthorizationConfiguration` (apiserver.config.k8s.io/v1, `--authorization-config`) that
/// asks Infra's webhook first about `infra:` users only, without caching its answers (a revoked
/// session must be refused at once), then the Node and RBAC authorizers as kubeadm sets them. The
/// webhook answers "deny" or "no opinion", never "allow": RBAC grants. When Infra is unreachable
/// the webhook has no opinion, so access falls back to RBAC and the token lifetime.
pub fn authorization(webhook_kubeconfig: &str) -> Value {
    json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthorizationConfiguration",
        "authorizers": [
            {
                "type": "Webhook",
                "name": "infra",
                "webhook": {
                    "timeout": "3s",
                    "subjectAccessReviewVersion": "v1",
                    "matchConditionSubjectAccessReviewVersion": "v1",
                    "failurePolicy": "NoOpinion",
                    "cacheAuthorizedRequests": false,
                    "cacheUnauthorizedRequests": false,
                    "connectionInfo": {"type": "KubeConfigFile", "kubeConfigFile": webhook_kubeconfig},
                    "matchConditions": [{"expression": format!("request.user.startsWith('{PREFIX}')")}],
                },
            },
            {"type": "Node", "name": "node"},
            {"type": "RBAC", "name": "rbac"},
        ],
    })
}

/// The kubeconfig the API server reaches the webhook with: `<issuer>/api/kube/authorize`.
pub fn webhook_kubeconfig(issuer: &Issuer) -> Value {
    let mut cluster = json!({"server": format!("{}{}", issuer.url.trim_end_matches('/'), super::paths::AUTHORIZE)});
    if let Some(ca) = issuer.certificate_authority {
        cluster["certificate-authority-data"] = json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "infra", "cluster": cluster}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "infra", "context": {"cluster": "infra", "user": "kube-apiserver"}}],
        "current-context": "infra",
    })
}

pub fn to_yaml(config: &Value) -> String {
    serde_saphyr::to_string(config).expect("configuration serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_the_issuer_and_refuses_system_names() {
        let c = authentication(&Issuer {
            url: "https://infra.example.com",
            audience: "prod",
            certificate_authority: Some("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"),
        });
        let jwt = &c["jwt"][0];
        assert_eq!(jwt["issuer"]["url"], "https://infra.example.com");
        assert_eq!(jwt["issuer"]["audiences"], json!(["prod"]));
        assert_eq!(jwt["claimMappings"]["uid"]["claim"], "sub");
        assert_eq!(jwt["claimMappings"]["extra"][0]["key"], "infrahq.com/session-id");
        let rules = jwt["userValidationRules"].to_string();
        assert!(rules.contains("!user.username.startsWith('system:')"), "{rules}");
        let yaml = to_yaml(&c);
        assert!(yaml.contains("kind: AuthenticationConfiguration"), "{yaml}");
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, c);
        let authz = authorization("/etc/kubernetes/infra-webhook.kubeconfig");
        assert_eq!(authz["authorizers"][0]["webhook"]["cacheAuthorizedRequests"], false);
        assert_eq!(authz["authorizers"][0]["webhook"]["matchConditions"][0]["expression"], "request.user.startsWith('infra:')");
        assert_eq!(authz["authorizers"][2]["type"], "RBAC");
        let kc = webhook_kubeconfig(&Issuer { url: "https://infra.example.com/", audience: "prod", certificate_authority: Some("PEM") });
        assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://infra.example.com/api/kube/authorize");
        let public = authentication(&Issuer { url: "https://i", audience: "a", certificate_authority: None });
        assert!(public["jwt"][0]["issuer"].get("certificateAuthority").is_none());
    }
}

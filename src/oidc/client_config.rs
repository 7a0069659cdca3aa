//! What acting as a provider's client needs besides its URL: the client secret from its Secret and
//! an HTTP client that trusts the provider's CA.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::{http_client, reqwest, HttpClientError};
use crate::api::conditions::Check;
use crate::api::IdentityProvider;

pub const SECRET_VALID: &str = "SecretValid";

/// Reads the client secret. `Err` carries the failed `SecretValid` check; the secret itself is
/// only ever held in memory and handed to the token endpoint.
pub async fn read_client_secret(client: &Client, ns: &str, idp: &IdentityProvider) -> Result<Result<String, Check>, kube::Error> {
    let r = &idp.spec.client_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(secret) = secrets.get_opt(&r.name).await? else {
        return Ok(Err(Check::failed(
            SECRET_VALID,
            "SecretNotFound",
            format!("Secret {:?} does not exist in namespace {ns:?}; create it with the client secret under key {:?}", r.name, r.key),
        )));
    };
    let data = secret.data.unwrap_or_default();
    let Some(value) = data.get(&r.key) else {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Ok(Err(Check::failed(
            SECRET_VALID,
            "SecretKeyMissing",
            format!("Secret {:?} has no key {:?} (it has: {}); set spec.clientSecretRef.key or add the key", r.name, r.key, keys.join(", ")),
        )));
    };
    // `kubectl create secret --from-file` keeps a file's trailing newline; client secrets never
    // contain whitespace, so it is safe to trim.
    match std::str::from_utf8(&value.0).map(str::trim) {
        Ok("") => Ok(Err(Check::failed(SECRET_VALID, "SecretEmpty", format!("key {:?} of Secret {:?} is empty", r.key, r.name)))),
        Ok(s) => Ok(Ok(s.to_string())),
        Err(_) => Ok(Err(Check::failed(
            SECRET_VALID,
            "SecretNotText",
            format!("key {:?} of Secret {:?} is not UTF-8 text", r.key, r.name),
        ))),
    }
}

/// The operator's HTTP client, or, for a provider with its own CA bundle, one that also trusts it.
/// Built once per use: a reconcile, a login, a session re-check.
pub fn provider_http(base: &reqwest::Client, extra_ca: Option<&[u8]>, idp: &IdentityProvider) -> Result<reqwest::Client, HttpClientError> {
    match &idp.spec.ca_bundle {
        None => Ok(base.clone()),
        Some(bundle) => {
            let mut bundles = vec![bundle.as_bytes()];
            if let Some(extra) = extra_ca {
                bundles.push(extra);
            }
            http_client(&bundles)
        }
    }
}


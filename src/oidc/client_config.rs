//! What acting as a provider's client needs besides its URL: the client secret from its Secret and
//! an HTTP client that trusts the provider's CA.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::{HttpClientError, ProviderHttp};
use crate::api::conditions::Check;
use crate::api::identity_provider::SECRET_VALID;
use crate::api::{CLIENT_SECRET_TYPE, IdentityProvider, ProviderReason, SecretKeyRef, labels};

/// Reads the client secret. `Err` carries the failed `SecretValid` check; the secret itself is
/// only ever held in memory and handed to the token endpoint.
///
/// Only a Secret of type `infrahq.com/client-secret` is read: anyone who may edit providers could
/// otherwise name any Secret of the namespace (a session, a SCIM key) and have its value sent to a
/// token endpoint of their choosing. A Secret of another type is not looked into at all, and no
/// message ever lists a Secret's keys.
pub async fn read_client_secret(
    client: &Client,
    ns: &str,
    idp: &IdentityProvider,
) -> Result<Result<String, Check<ProviderReason>>, kube::Error> {
    let r = &idp.spec.client_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get_opt(&r.name).await?;
    Ok(client_secret_value(ns, &idp.name_any(), r, secret.as_ref()))
}

/// The decision behind [`read_client_secret`], apart from the read.
pub fn client_secret_value(ns: &str, provider: &str, r: &SecretKeyRef, secret: Option<&Secret>) -> Result<String, Check<ProviderReason>> {
    let Some(secret) = secret else {
        return Err(Check::failed(
            SECRET_VALID,
            ProviderReason::SecretNotFound,
            format!(
                "Secret {:?} does not exist in namespace {ns:?}; create it with type {CLIENT_SECRET_TYPE:?} and the client secret under key {:?}: \
                 kubectl -n {ns} create secret generic {} --type={CLIENT_SECRET_TYPE} --from-literal={}=<client secret>",
                r.name, r.key, r.name, r.key
            ),
        ));
    };
    let found = secret.type_.as_deref().unwrap_or("Opaque");
    if found != CLIENT_SECRET_TYPE {
        return Err(Check::failed(
            SECRET_VALID,
            ProviderReason::SecretWrongType,
            format!(
                "Secret {:?} has type {found:?}, but an IdentityProvider may only use a Secret of type {CLIENT_SECRET_TYPE:?}, \
                 so that providers cannot be pointed at Secrets made for something else; nothing was read from it. \
                 A Secret's type cannot be changed in place: recreate it with \
                 `kubectl -n {ns} create secret generic {} --type={CLIENT_SECRET_TYPE} --from-literal={}=<client secret> --dry-run=client -o yaml | kubectl replace --force -f -`, \
                 or run `infra providers edit {provider} --client-secret-stdin`",
                r.name, r.name, r.key
            ),
        ));
    }
    // A Secret labelled for one provider (as `infra providers add` and the samples do) backs only
    // that provider, so a new provider cannot borrow another one's client secret.
    if let Some(owner) = secret.metadata.labels.as_ref().and_then(|l| l.get(labels::PROVIDER)).filter(|p| p.as_str() != provider) {
        return Err(Check::failed(
            SECRET_VALID,
            ProviderReason::SecretForOtherProvider,
            format!(
                "Secret {:?} is labelled {}={owner:?}: it holds the client secret of another provider and was not read; \
                 create a Secret of type {CLIENT_SECRET_TYPE:?} for this provider",
                r.name,
                labels::PROVIDER
            ),
        ));
    }
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(&r.key)) else {
        return Err(Check::failed(
            SECRET_VALID,
            ProviderReason::SecretKeyMissing,
            format!("Secret {:?} has no key {:?}; set spec.clientSecretRef.key or add the key", r.name, r.key),
        ));
    };
    // `kubectl create secret --from-file` keeps a file's trailing newline; client secrets never
    // contain whitespace, so it is safe to trim.
    match std::str::from_utf8(&value.0).map(str::trim) {
        Ok("") => Err(Check::failed(SECRET_VALID, ProviderReason::SecretEmpty, format!("key {:?} of Secret {:?} is empty", r.key, r.name))),
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(Check::failed(
            SECRET_VALID,
            ProviderReason::SecretNotText,
            format!("key {:?} of Secret {:?} is not UTF-8 text", r.key, r.name),
        )),
    }
}

/// The operator's HTTP client, or, for a provider with its own CA bundle, one that also trusts it.
/// Built once per use: a reconcile, a login, a session re-check.
pub fn provider_http(base: &ProviderHttp, extra_ca: Option<&[u8]>, idp: &IdentityProvider) -> Result<ProviderHttp, HttpClientError> {
    match &idp.spec.ca_bundle {
        None => Ok(base.clone()),
        Some(bundle) => {
            let mut bundles = vec![bundle.as_bytes()];
            if let Some(extra) = extra_ca {
                bundles.push(extra);
            }
            ProviderHttp::new(&bundles, base.policy())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(type_: Option<&str>, data: &[(&str, &str)]) -> Secret {
        Secret {
            type_: type_.map(Into::into),
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect::<BTreeMap<_, _>>()),
            ..Default::default()
        }
    }

    fn reference() -> SecretKeyRef {
        SecretKeyRef { name: "okta-client-secret".into(), key: "clientSecret".into() }
    }

    #[test]
    fn only_client_secret_typed_secrets_are_read() {
        let good = secret(Some(CLIENT_SECRET_TYPE), &[("clientSecret", "s3cret\n")]);
        assert_eq!(client_secret_value("ns", "okta", &reference(), Some(&good)).unwrap(), "s3cret");
        for other in
            [None, Some("Opaque"), Some("infrahq.com/session"), Some("infrahq.com/scim-key"), Some("kubernetes.io/service-account-token")]
        {
            let s = secret(other, &[("clientSecret", "stolen"), ("refreshToken", "rt")]);
            let check = client_secret_value("ns", "okta", &reference(), Some(&s)).unwrap_err();
            assert_eq!(check.reason, ProviderReason::SecretWrongType, "{other:?}");
            assert!(check.message.contains(CLIENT_SECRET_TYPE), "{}", check.message);
            assert!(!check.message.contains("stolen") && !check.message.contains("refreshToken"), "{}", check.message);
        }
    }

    #[test]
    fn a_secret_labelled_for_another_provider_is_not_read() {
        let mut s = secret(Some(CLIENT_SECRET_TYPE), &[("clientSecret", "okta's")]);
        s.metadata.labels = Some(BTreeMap::from([(labels::PROVIDER.to_string(), "okta".to_string())]));
        assert_eq!(client_secret_value("ns", "okta", &reference(), Some(&s)).unwrap(), "okta's");
        let check = client_secret_value("ns", "evil", &reference(), Some(&s)).unwrap_err();
        assert_eq!(check.reason, ProviderReason::SecretForOtherProvider);
        assert!(!check.message.contains("okta's"));
    }

    #[test]
    fn a_missing_key_does_not_list_the_secrets_keys() {
        let s = secret(Some(CLIENT_SECRET_TYPE), &[("other", "x"), ("tokenHash", "y")]);
        let check = client_secret_value("ns", "okta", &reference(), Some(&s)).unwrap_err();
        assert_eq!(check.reason, ProviderReason::SecretKeyMissing);
        assert!(!check.message.contains("other") && !check.message.contains("tokenHash"), "{}", check.message);
        assert_eq!(client_secret_value("ns", "okta", &reference(), None).unwrap_err().reason, ProviderReason::SecretNotFound);
        let empty = secret(Some(CLIENT_SECRET_TYPE), &[("clientSecret", " \n")]);
        assert_eq!(client_secret_value("ns", "okta", &reference(), Some(&empty)).unwrap_err().reason, ProviderReason::SecretEmpty);
    }
}

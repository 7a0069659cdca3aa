//! Reconciles ScimKeys: generates the key once, keeps only its hash in a Secret the ScimKey owns,
//! hands the key itself to whoever asked (sealed to their one-time public key), and reports the
//! key's id, creation and expiry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::context::{Context, Error, now};
use crate::api::conditions::{self, Check};
use crate::api::scim_key::{READY, SECRET_TYPE, parse_duration};
use crate::api::{IdentityProvider, KEY_HASH_DATA, KeyReason, LEGACY_KEY_DATA, ScimKey, annotations, labels};
use crate::{keys, sealed};

pub const KIND: &str = "ScimKey";
/// How often to look again for a provider that does not exist yet.
const PROVIDER_RECHECK: Duration = Duration::from_secs(30);

pub async fn reconcile(key: Arc<ScimKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer(KIND);
    let ns = key.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.client.clone(), &ns);
    let old = key.status.clone().unwrap_or_default();
    let mut status = old.clone();

    let secret = match owned_secret(&secrets, &key).await? {
        Some(secret) => hash_legacy_key(&secrets, secret, &ctx).await?,
        None => {
            if old.key_id.is_some() {
                tracing::warn!(scimkey = %key.name_any(), "the key's Secret is gone; generating a new key");
                let check =
                    Check::failed(READY, KeyReason::SecretMissing, "the Secret holding the key was deleted; a new key was generated");
                ctx.record(key.as_ref(), &check).await;
            }
            create_secret(&secrets, &key, &ctx).await?
        }
    };
    let (key_id, created, expires) = describe(&secret);
    status.sealed_key = secret.annotations().get(annotations::SEALED_KEY).cloned();
    status.secret_name = secret.metadata.name.clone();
    status.key_id = key_id;
    // What the server authenticates with: it reads ScimKeys, never Secrets.
    status.key_hash = secret.data.as_ref().and_then(|d| d.get(KEY_HASH_DATA)).and_then(|v| String::from_utf8(v.0.clone()).ok());
    status.created_at = created.map(Time);
    status.expires_at = expires.map(Time);

    let providers: Api<IdentityProvider> = Api::namespaced(ctx.kube.client.clone(), &ns);
    let provider = &key.spec.provider_ref.name;
    let provider_exists = providers.get_opt(provider).await?.is_some();
    let check = readiness(provider, provider_exists, expires, now());
    let changed = conditions::set(&mut status.conditions, &check, key.metadata.generation, now());
    status.observed_generation = key.metadata.generation;
    status.phase = Some(check.reason.phase());
    if status != old {
        ctx.apply_status(key.as_ref(), &status).await?;
    }
    if changed {
        ctx.record(key.as_ref(), &check).await;
    }
    ctx.metrics.reconciled(KIND, &crate::metrics::reason_label(check.reason.as_str()));
    Ok(match (check.reason, expires) {
        (KeyReason::ProviderNotFound, _) => Action::requeue(PROVIDER_RECHECK),
        // Wake up when the key expires, so its phase flips at that moment.
        (KeyReason::Active, Some(at)) => Action::requeue(until(at).min(Duration::from_secs(3600))),
        _ => Action::await_change(),
    })
}

pub fn error_policy(key: Arc<ScimKey>, err: &Error, ctx: Arc<Context>) -> Action {
    super::context::error_policy(KIND, key.as_ref(), err, &ctx)
}

/// The Secret this ScimKey owns, found by label and owner UID so that a retried reconcile adopts
/// the key it generated instead of generating a second one.
async fn owned_secret(secrets: &Api<Secret>, key: &ScimKey) -> Result<Option<Secret>, Error> {
    let selector = format!("{}={}", labels::SCIM_KEY, key.name_any());
    let uid = key.uid().unwrap_or_default();
    let list = secrets.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.into_iter().find(|s| s.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true))))
}

async fn create_secret(secrets: &Api<Secret>, key: &ScimKey, ctx: &Context) -> Result<Secret, Error> {
    let generated = keys::generate()?;
    let created = now();
    let expires = match &key.spec.expires_after {
        Some(raw) => Some(parse_duration(raw).and_then(|d| created.checked_add(d).ok()).ok_or_else(|| Error::InvalidExpiry(raw.clone()))?),
        None => None,
    };
    let mut annotations = BTreeMap::new();
    if let Some(at) = expires {
        annotations.insert(annotations::EXPIRES_AT.to_string(), at.to_string());
    }
    // The key leaves the controller only sealed to the one who asked; written with the Secret, so
    // that it is published exactly when the key's hash is stored.
    match key.annotations().get(annotations::KEY_RECIPIENT) {
        Some(recipient) => match sealed::seal(recipient, &generated.token) {
            Ok(sealed) => {
                annotations.insert(annotations::SEALED_KEY.to_string(), sealed);
            }
            Err(e) => tracing::warn!(scimkey = %key.name_any(), error = %e, "cannot hand out the key; it is generated but never shown"),
        },
        None => {
            tracing::info!(scimkey = %key.name_any(), "no key recipient: the key is generated but never shown (create keys with `infra scim-keys create`)")
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("scimkey-{}", generated.id)),
            labels: Some(BTreeMap::from([
                (labels::SCIM_KEY.to_string(), key.name_any()),
                (labels::KEY_ID.to_string(), generated.id.clone()),
                (labels::PROVIDER.to_string(), key.spec.provider_ref.name.clone()),
                (labels::MANAGED_BY.to_string(), "infra-operator".to_string()),
            ])),
            annotations: Some(annotations),
            owner_references: Some(vec![key.controller_owner_ref(&()).expect("a ScimKey from the API has a name and uid")]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(KEY_HASH_DATA.to_string(), ByteString(keys::hash_hex(&generated.token).into_bytes()))])),
        ..Default::default()
    };
    let created = secrets.create(&ctx.kube.manager.post(), &secret).await?;
    tracing::info!(scimkey = %key.name_any(), key_id = %generated.id, "generated SCIM key");
    Ok(created)
}

/// Replaces the key that Secrets generated before hashing hold with its hash. The server accepts
/// either form, so keys keep working through the change.
async fn hash_legacy_key(secrets: &Api<Secret>, secret: Secret, ctx: &Context) -> Result<Secret, Error> {
    let data = secret.data.as_ref();
    let Some(plain) = data.and_then(|d| d.get(LEGACY_KEY_DATA)).and_then(|v| std::str::from_utf8(&v.0).ok()) else {
        return Ok(secret);
    };
    let hash = ByteString(keys::hash_hex(plain).into_bytes());
    let patch = serde_json::json!({"data": {KEY_HASH_DATA: hash, LEGACY_KEY_DATA: null}});
    let name = secret.name_any();
    let patched = secrets.patch(&name, &ctx.kube.manager.patch(), &Patch::Merge(&patch)).await?;
    tracing::info!(secret = %name, "replaced a stored SCIM key with its hash");
    Ok(patched)
}

/// Key id, creation time and expiry, all from the Secret (its metadata is written once, when the
/// key is generated).
fn describe(secret: &Secret) -> (Option<String>, Option<Timestamp>, Option<Timestamp>) {
    let id = secret.labels().get(labels::KEY_ID).cloned();
    let created = secret.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let expires = secret.annotations().get(annotations::EXPIRES_AT).and_then(|s| s.parse().ok());
    (id, created, expires)
}

pub fn readiness(provider: &str, provider_exists: bool, expires: Option<Timestamp>, now: Timestamp) -> Check<KeyReason> {
    if expires.is_some_and(|at| at <= now) {
        return Check::failed(
            READY,
            KeyReason::Expired,
            "the key has expired and is refused; create a new ScimKey and update the provider",
        );
    }
    if !provider_exists {
        return Check::failed(
            READY,
            KeyReason::ProviderNotFound,
            format!("IdentityProvider {provider:?} does not exist in this namespace; the key is refused until it does"),
        );
    }
    Check::passed(READY, KeyReason::Active, format!("the key is active for provider {provider:?}"))
}

fn until(at: Timestamp) -> Duration {
    let left = at.duration_since(now());
    Duration::try_from(left).unwrap_or(Duration::ZERO) + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_prefers_expiry() {
        let t = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(readiness("okta", true, None, t(100)).reason, KeyReason::Active);
        assert_eq!(readiness("okta", true, Some(t(200)), t(100)).reason, KeyReason::Active);
        assert_eq!(readiness("okta", true, Some(t(100)), t(100)).reason, KeyReason::Expired);
        assert_eq!(readiness("okta", false, Some(t(50)), t(100)).reason, KeyReason::Expired);
        assert_eq!(readiness("okta", false, None, t(100)).reason, KeyReason::ProviderNotFound);
    }
}

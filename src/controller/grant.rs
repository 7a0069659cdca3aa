//! Reconciles Grants into RoleBindings (with a namespace) and ClusterRoleBindings (without).
//!
//! A binding is named after what it binds (subject, role, namespace), so several Grants for the
//! same access share one binding and never fight over it; the binding goes when the last Grant
//! that wants it does. Grants live in Infra's namespace and bindings elsewhere, so owner
//! references cannot tie them together: every Grant carries a finalizer, a watch of the
//! bindings repairs drift, and a sweep deletes bindings no Grant wants (left by a Grant deleted
//! while the controller was down). Only roles on the allow-list are ever bound, which the
//! controller's own RBAC (`bind` with resourceNames) enforces as well.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use super::context::{Context, Error, now};
use crate::api::conditions::{self, Check};
use crate::api::grant::READY;
use crate::api::{Grant, GrantReason, labels};
use crate::api_server::FieldManager;
use crate::kube_access::binding::{BINDING_LABEL, Target, allowed, expiry};

pub const KIND: &str = "Grant";
pub const FINALIZER: &str = "infrahq.com/grant-binding";
/// How often to look again for a role or namespace that does not exist yet.
const MISSING_RECHECK: Duration = Duration::from_secs(30);
/// Drift is repaired from the binding watch; this is the safety net.
const RESYNC: Duration = Duration::from_secs(600);

pub struct Grants {
    pub ctx: Arc<Context>,
    /// Role names Grants may bind (`--grant-allowed-roles`).
    pub allowed_roles: Vec<String>,
    /// Every Grant, for "does another Grant still want this binding?".
    pub store: Store<Grant>,
}

/// Whether `grant` currently wants its binding (used to decide if a binding may go).
fn wants_binding(grant: &Grant, allow_list: &[String], now: Timestamp) -> bool {
    let created = grant.metadata.creation_timestamp.as_ref().map(|t| t.0);
    grant.metadata.deletion_timestamp.is_none()
        && allowed(allow_list, &grant.spec.role.name)
        && expiry(&grant.spec, created).is_none_or(|at| at > now)
}

pub async fn reconcile(grant: Arc<Grant>, g: Arc<Grants>) -> Result<Action, Error> {
    let _timer = g.ctx.metrics.reconcile_timer(KIND);
    let api: Api<Grant> = Api::namespaced(g.ctx.kube.client.clone(), &grant.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, grant, |event| async {
        match event {
            Event::Apply(grant) => apply(&grant, &g).await,
            Event::Cleanup(grant) => {
                release(&g, &Target::of(&grant.spec), &grant).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn apply(grant: &Grant, g: &Grants) -> Result<Action, Error> {
    let ctx = &g.ctx;
    let target = Target::of(&grant.spec);
    let created = grant.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let expires = expiry(&grant.spec, created);
    let now = now();
    let (check, requeue) = if expires.is_some_and(|at| at <= now) {
        release(g, &target, grant).await?;
        (Check::failed(READY, GrantReason::Expired, "the grant has expired; its binding was removed"), None)
    } else if !allowed(&g.allowed_roles, &target.role) {
        release(g, &target, grant).await?;
        let message = format!(
            "{} {:?} is not on the operator's allow-list ({}); an administrator can add it (chart value grants.allowedRoles)",
            target.role_kind,
            target.role,
            g.allowed_roles.join(", ")
        );
        (Check::failed(READY, GrantReason::RoleNotAllowed, message), None)
    } else if let Some(missing) = missing(ctx, &target).await? {
        missing
    } else {
        bind(ctx, &target).await?;
        let scope = target.namespace.as_deref().map(|ns| format!("in namespace {ns}")).unwrap_or_else(|| "cluster-wide".into());
        let message = format!("{} {} may use {} {} {scope}", target.subject_kind, target.subject, target.role_kind, target.role);
        (Check::passed(READY, GrantReason::Bound, message), expires.map(|at| until(at, now)).or(Some(RESYNC)))
    };

    let old = grant.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let changed = conditions::set(&mut status.conditions, &check, grant.metadata.generation, now);
    status.observed_generation = grant.metadata.generation;
    status.phase = Some(check.reason.phase());
    status.binding = check.is_true().then(|| target.name.clone());
    status.expires_at = expires.map(Time);
    if status != old {
        ctx.apply_status(grant, &status).await?;
    }
    if changed {
        ctx.record(grant, &check).await;
    }
    ctx.metrics.reconciled(KIND, &crate::metrics::reason_label(check.reason.as_str()));
    Ok(requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO).max(Duration::from_secs(1))
}

/// A failed check when the namespace or the role does not exist, with when to look again.
async fn missing(ctx: &Context, t: &Target) -> Result<Option<(Check<GrantReason>, Option<Duration>)>, Error> {
    let client = ctx.kube.client.clone();
    if let Some(ns) = &t.namespace
        && Api::<Namespace>::all(client.clone()).get_opt(ns).await?.is_none()
    {
        return Ok(Some((
            Check::failed(READY, GrantReason::NamespaceNotFound, format!("namespace {ns} does not exist")),
            Some(MISSING_RECHECK),
        )));
    }
    let exists = match (t.role_kind, &t.namespace) {
        ("Role", Some(ns)) => Api::<Role>::namespaced(client, ns).get_opt(&t.role).await?.is_some(),
        _ => Api::<ClusterRole>::all(client).get_opt(&t.role).await?.is_some(),
    };
    if !exists {
        let place = match (t.role_kind, &t.namespace) {
            ("Role", Some(ns)) => format!(" in namespace {ns}"),
            _ => String::new(),
        };
        let check = Check::failed(READY, GrantReason::RoleNotFound, format!("{} {} does not exist{place}", t.role_kind, t.role));
        return Ok(Some((check, Some(MISSING_RECHECK))));
    }
    Ok(None)
}

/// Creates or repairs the binding (server-side apply, forced: the binding is Infra's). A binding
/// whose roleRef was changed cannot be patched back (roleRef is immutable): it is replaced.
async fn bind(ctx: &Context, t: &Target) -> Result<(), Error> {
    let params = FieldManager::CONTROLLER.apply();
    let manifest = t.manifest();
    let result = match &t.namespace {
        Some(ns) => {
            Api::<RoleBinding>::namespaced(ctx.kube.client.clone(), ns).patch(&t.name, &params, &Patch::Apply(&manifest)).await.map(|_| ())
        }
        None => Api::<ClusterRoleBinding>::all(ctx.kube.client.clone()).patch(&t.name, &params, &Patch::Apply(&manifest)).await.map(|_| ()),
    };
    match result {
        Err(kube::Error::Api(s)) if s.code == 422 => {
            tracing::warn!(binding = %t.name, "the binding's roleRef was changed; replacing the binding");
            delete(ctx, t.namespace.as_deref(), &t.name).await?;
            Box::pin(bind(ctx, t)).await
        }
        other => Ok(other?),
    }
}

async fn delete(ctx: &Context, namespace: Option<&str>, name: &str) -> Result<(), Error> {
    let dp = DeleteParams::default();
    let result = match namespace {
        Some(ns) => Api::<RoleBinding>::namespaced(ctx.kube.client.clone(), ns).delete(name, &dp).await.map(|_| ()),
        None => Api::<ClusterRoleBinding>::all(ctx.kube.client.clone()).delete(name, &dp).await.map(|_| ()),
    };
    match result {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => Ok(other?),
    }
}

/// Deletes `grant`'s binding unless another Grant still wants the same one.
async fn release(g: &Grants, t: &Target, grant: &Grant) -> Result<(), Error> {
    let now = now();
    let me = grant.uid();
    let shared = g
        .store
        .state()
        .iter()
        .any(|other| other.uid() != me && Target::of(&other.spec).key == t.key && wants_binding(other, &g.allowed_roles, now));
    if !shared {
        delete(&g.ctx, t.namespace.as_deref(), &t.name).await?;
    }
    Ok(())
}

/// Deletes bindings made for Grants that no Grant wants any more (deleted while the controller
/// was down, or whose finalizer was removed by hand). Runs with a synced store only.
pub async fn sweep_orphans(g: &Grants) -> Result<usize, Error> {
    let now = now();
    let wanted: std::collections::HashSet<String> =
        g.store.state().iter().filter(|gr| wants_binding(gr, &g.allowed_roles, now)).map(|gr| Target::of(&gr.spec).key).collect();
    let lp = ListParams::default().labels(&format!("{}={},{BINDING_LABEL}", labels::MANAGED_BY, FieldManager::CONTROLLER.name()));
    let mut swept = 0;
    for rb in Api::<RoleBinding>::all(g.ctx.kube.client.clone()).list_metadata(&lp).await? {
        if rb.labels().get(BINDING_LABEL).is_some_and(|k| !wanted.contains(k)) {
            delete(&g.ctx, rb.namespace().as_deref(), &rb.name_any()).await?;
            swept += 1;
        }
    }
    for crb in Api::<ClusterRoleBinding>::all(g.ctx.kube.client.clone()).list_metadata(&lp).await? {
        if crb.labels().get(BINDING_LABEL).is_some_and(|k| !wanted.contains(k)) {
            delete(&g.ctx, None, &crb.name_any()).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

pub fn error_policy(grant: Arc<Grant>, err: &Error, g: Arc<Grants>) -> Action {
    super::context::error_policy(KIND, grant.as_ref(), err, &g.ctx)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::SignedDuration;

    use super::*;
    use crate::api::{GrantRole, GrantSpec, GrantSubject, RoleKind};

    fn spec(user: Option<&str>, group: Option<&str>, role: &str, ns: Option<&str>) -> GrantSpec {
        GrantSpec {
            subject: GrantSubject { provider: "okta".into(), user: user.map(String::from), group: group.map(String::from) },
            role: GrantRole { kind: RoleKind::ClusterRole, name: role.into() },
            namespace: ns.map(String::from),
            expires_after: None,
            expires_at: None,
        }
    }

    #[test]
    fn grants_for_the_same_access_share_one_binding() {
        let a = Target::of(&spec(Some("Alice@Example.com"), None, "view", Some("default")));
        let b = Target::of(&spec(Some("alice@example.com"), None, "view", Some("default")));
        assert_eq!(a, b, "userNames fold like Infra's identity");
        assert_eq!(a.subject, "infra:okta:alice@example.com");
        assert_eq!(a.subject_kind, "User");
        assert!(a.name.starts_with("infra-grant-") && a.name.len() <= 63, "{}", a.name);
        for other in [
            spec(Some("alice@example.com"), None, "edit", Some("default")),
            spec(Some("alice@example.com"), None, "view", Some("kube-system")),
            spec(Some("alice@example.com"), None, "view", None),
            spec(None, Some("alice@example.com"), "view", Some("default")),
        ] {
            assert_ne!(Target::of(&other).key, a.key, "{other:?}");
        }
        let g = Target::of(&spec(None, Some("SRE"), "view", None));
        assert_eq!((g.subject_kind, g.subject.as_str()), ("Group", "infra:okta:SRE"));
        assert_eq!(g.manifest()["kind"], "ClusterRoleBinding");
        assert_eq!(a.manifest()["kind"], "RoleBinding");
        assert_eq!(a.manifest()["metadata"]["labels"][BINDING_LABEL], a.key.as_str());
    }

    #[test]
    fn the_allow_list_and_expiry() {
        let list = vec!["view".to_string(), "edit".to_string()];
        assert!(allowed(&list, "view"));
        assert!(!allowed(&list, "cluster-admin"));
        let created = Timestamp::from_second(1_800_000_000).unwrap();
        let mut s = spec(Some("a"), None, "view", None);
        assert_eq!(expiry(&s, Some(created)), None);
        s.expires_after = Some("8h".into());
        assert_eq!(expiry(&s, Some(created)), Some(created.checked_add(SignedDuration::from_secs(8 * 3600)).unwrap()));
        s.expires_after = Some("garbage".into());
        assert_eq!(expiry(&s, Some(created)), Some(Timestamp::MIN), "unreadable means expired, never forever");
        s.expires_after = None;
        s.expires_at = Some(Time(created));
        assert_eq!(expiry(&s, None), Some(created));
    }
}

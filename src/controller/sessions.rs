//! Ends login sessions the provider no longer vouches for. Each session with a refresh token is
//! re-checked every `--session-recheck-interval` by redeeming that token: a refusal (the user was
//! disabled or removed, or the grant revoked) ends the session; an unreachable provider does not,
//! and is retried. Sessions past their lifetime or idle timeout are deleted too, although the
//! server already refuses them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::context::{Context, Error};
use crate::api::{IdentityProvider, Session as SessionObject};
use crate::metrics::Metrics;
use crate::oidc::login::LoginError;
use crate::session::Verdict;
use crate::session::store::parse;

/// The kind in metrics and logs.
pub const KIND: &str = "Session";
/// How soon an unreachable provider is tried again.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(60);

fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO).max(Duration::from_secs(1))
}

pub async fn reconcile(object: Arc<SessionObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer(KIND);
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // Ending already.
    }
    let Some(session) = parse(&object) else {
        ctx.metrics.reconciled(KIND, "malformed");
        return Ok(Action::await_change());
    };
    let (r, policy, now) = (&session.record, ctx.sessions.policy, Timestamp::now());
    let (id, c) = (&session.id, &ctx);
    let end = |reason: &'static str| async move {
        c.sessions.delete(id).await?;
        Metrics::count(&c.metrics.sessions_ended, reason);
        c.metrics.reconciled(KIND, "ended");
        tracing::info!(user = %r.user, provider = %r.provider, reason, "session ended");
        Ok::<Action, Error>(Action::await_change())
    };
    match policy.evaluate(r, session.last_seen, now) {
        Verdict::Expired => return end("expired").await,
        Verdict::Idle => return end("idle").await,
        Verdict::Valid => {}
    }
    let deadline = r.expires_at.min(policy.idle_deadline(session.last_seen));
    // The refresh token the controller stored when it redeemed the login's code; the Session now
    // owns its Secret, so the two go together.
    let stored = ctx.refresh_tokens.get(id).await?;
    if let Some((secret, _)) = &stored
        && !ctx.refresh_tokens.adopt(secret, &object).await?
    {
        tracing::warn!(session = %id, "the session's refresh-token Secret belongs to something else; not using it");
        ctx.metrics.reconciled(KIND, "valid");
        return Ok(Action::requeue(until(deadline, now)));
    }
    let Some((secret, refresh_token)) = stored else {
        // Nothing to re-check with (the provider granted no refresh token); the lifetimes still apply.
        ctx.metrics.reconciled(KIND, "valid");
        return Ok(Action::requeue(until(deadline, now)));
    };
    let next = policy.next_check(r);
    if now < next {
        ctx.metrics.reconciled(KIND, "valid");
        return Ok(Action::requeue(until(next.min(deadline), now)));
    }
    let Some(idp) = ctx.kube.api::<IdentityProvider>().get_opt(&r.provider).await? else { return end("provider_gone").await };
    let client = match ctx.access.client(&idp).await {
        Ok(c) => c,
        Err(message) => {
            tracing::warn!(user = %r.user, provider = %r.provider, %message, "cannot re-check the session now");
            ctx.metrics.reconciled(KIND, "unreachable");
            return Ok(Action::requeue(RETRY_UNREACHABLE));
        }
    };
    // The refresh token belongs to the issuer that granted it; a provider re-pointed elsewhere
    // must never receive it.
    if r.provider_changed(Some(&client.issuer), Some(&client.token_url)) {
        return end("provider_changed").await;
    }
    match client.refresh(&ctx.access.key_sets, &refresh_token).await {
        Ok(rotated) => {
            let mut record = r.clone();
            record.checked_at = Some(now);
            if let Some(rt) = rotated.as_deref() {
                ctx.refresh_tokens.rotate(&secret, rt).await?;
            }
            ctx.sessions.record_check(&object, &record).await?;
            Metrics::count(&ctx.metrics.session_rechecks, "confirmed");
            ctx.metrics.reconciled(KIND, "confirmed");
            tracing::debug!(user = %r.user, provider = %r.provider, "provider confirmed the session");
            Ok(Action::requeue(until(policy.next_check(&record).min(deadline), now)))
        }
        Err(e @ (LoginError::Unreachable(_) | LoginError::BadResponse(_))) => {
            Metrics::count(&ctx.metrics.session_rechecks, "unreachable");
            ctx.metrics.reconciled(KIND, "unreachable");
            tracing::warn!(user = %r.user, provider = %r.provider, error = %e, "could not re-check the session with the provider; it stays valid, retrying");
            Ok(Action::requeue(RETRY_UNREACHABLE))
        }
        Err(e) => {
            Metrics::count(&ctx.metrics.session_rechecks, "refused");
            tracing::info!(user = %r.user, provider = %r.provider, error = %e, "the provider refused the session's refresh token");
            end("refused").await
        }
    }
}

pub fn error_policy(object: Arc<SessionObject>, err: &Error, ctx: Arc<Context>) -> Action {
    super::context::error_policy(KIND, object.as_ref(), err, &ctx)
}

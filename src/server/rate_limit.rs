//! Rate limits for what an unauthenticated client can make Infra do elsewhere: each `POST
//! /api/login` spends a token request at the provider with Infra's client secret, each `whoami`
//! reads the API server, and failed SCIM authentications are how a key would be guessed. Over the
//! limit the answer is `429 Too Many Requests` with `Retry-After`.
//!
//! Token buckets per client (and, for SCIM, per key id), in memory per replica. The client is the
//! peer address, or with `--trusted-proxy-hops N` the address N entries from the right of
//! `X-Forwarded-For` (what the N proxies in front of Infra appended), since behind an Ingress every
//! peer address is the Ingress's. The number of buckets is bounded: when the table is full, clients
//! not in it share one bucket, so a flood of addresses cannot exhaust memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Requests per minute and burst of one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Limit {
    /// `per_minute`, with a burst of a third of it.
    pub fn per_minute(per_minute: u32) -> Self {
        Self { per_minute: per_minute.max(1), burst: (per_minute / 3).max(1) }
    }
}

/// The limits, from the server's flags.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// `POST /api/login` requests per minute per client (each spends a token request at the
    /// provider). A person logs in a few times a day.
    #[arg(long, env = "INFRA_LOGIN_RATE_LIMIT", value_name = "PER_MINUTE", default_value_t = 30)]
    pub login_rate_limit: u32,

    /// `/api/whoami` and `/api/logout` requests per minute per client.
    #[arg(long, env = "INFRA_WHOAMI_RATE_LIMIT", value_name = "PER_MINUTE", default_value_t = 300)]
    pub whoami_rate_limit: u32,

    /// Failed SCIM authentications per minute, per client and per key id. Requests with a working
    /// key are never limited.
    #[arg(long, env = "INFRA_SCIM_AUTH_FAILURE_LIMIT", value_name = "PER_MINUTE", default_value_t = 20)]
    pub scim_auth_failure_limit: u32,

    /// Device login user codes entered on the `/device` page per minute per client, right or
    /// wrong (a user code has about 34 bits, so guessing must stay slow).
    #[arg(long, env = "INFRA_DEVICE_CODE_GUESS_LIMIT", value_name = "PER_MINUTE", default_value_t = 20)]
    pub device_code_guess_limit: u32,

    /// Device login user codes entered per minute from all clients together (per replica).
    #[arg(long, env = "INFRA_DEVICE_CODE_GLOBAL_GUESS_LIMIT", value_name = "PER_MINUTE", default_value_t = 600)]
    pub device_code_global_guess_limit: u32,

    /// How many proxies (load balancer, Ingress) in front of the server append to
    /// X-Forwarded-For. Limits then key on the client address they saw; 0 uses the peer address
    /// (and ignores X-Forwarded-For, which clients can forge).
    #[arg(long, env = "INFRA_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
}

/// At most this many clients are tracked per limiter.
const MAX_KEYS: usize = 10_000;
const OVERFLOW: &str = "\u{0}overflow";

pub struct RateLimiter {
    limit: Limit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(limit: Limit) -> Self {
        Self { limit, buckets: Mutex::default() }
    }

    /// Takes one token for `key`; `Err` carries how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.limit.per_minute) / 60.0;
        let burst = f64::from(self.limit.burst);
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            // Forget clients whose buckets have refilled (they are as good as new), then share.
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let key = if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS { OVERFLOW } else { key };
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - bucket.tokens) / rate).max(1.0)))
        }
    }
}

/// Who the client is, for rate limiting: see the module comment.
pub fn client_address(req: &Request, trusted_hops: usize) -> String {
    client_of(req.headers(), req.extensions(), trusted_hops)
}

/// [`client_address`] from a request's parts.
pub fn client_of(headers: &HeaderMap, extensions: &axum::http::Extensions, trusted_hops: usize) -> String {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    forwarded_client(headers, trusted_hops).or(peer).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

fn forwarded_client(headers: &HeaderMap, trusted_hops: usize) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return None;
    }
    // Every proxy appends; several headers count as one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    hops.len().checked_sub(trusted_hops).and_then(|i| hops[i].parse().ok())
}

/// Whole seconds for `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil() as u64
}

/// The server's limiters.
pub struct Limits {
    pub login: RateLimiter,
    pub whoami: RateLimiter,
    pub scim_failures_by_client: RateLimiter,
    pub scim_failures_by_key: RateLimiter,
    pub device_guesses_by_client: RateLimiter,
    pub device_guesses: RateLimiter,
    pub trusted_hops: usize,
}

impl Limits {
    pub fn new(args: &LimitArgs) -> Self {
        let scim = Limit::per_minute(args.scim_auth_failure_limit);
        Self {
            login: RateLimiter::new(Limit::per_minute(args.login_rate_limit)),
            whoami: RateLimiter::new(Limit::per_minute(args.whoami_rate_limit)),
            scim_failures_by_client: RateLimiter::new(scim),
            scim_failures_by_key: RateLimiter::new(scim),
            device_guesses_by_client: RateLimiter::new(Limit::per_minute(args.device_code_guess_limit)),
            device_guesses: RateLimiter::new(Limit::per_minute(args.device_code_global_guess_limit)),
            trusted_hops: args.trusted_proxy_hops,
        }
    }

    /// Takes one guess at a device login user code from `client` and from everyone; `Err` says
    /// how long until another is allowed.
    pub fn device_guess(&self, client: &str, now: Instant) -> Result<(), Duration> {
        self.device_guesses_by_client.check(client, now).and_then(|()| self.device_guesses.check("all", now))
    }
}

/// Middleware for the login API: `POST /api/login`, `whoami` and `logout` per client; starting a
/// device login counts as a login, its polls as `whoami`s.
pub async fn login_api(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let limiter = match req.uri().path() {
        "/api/login" | crate::device::AUTHORIZE_PATH => &limits.login,
        "/api/whoami" | "/api/logout" | crate::kube_access::paths::TOKEN | crate::device::TOKEN_PATH => &limits.whoami,
        _ => return next.run(req).await,
    };
    let client = client_address(&req, limits.trusted_hops);
    match limiter.check(&client, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            tracing::info!(%client, path = %req.uri().path(), "rate limited");
            let secs = retry_after_secs(wait);
            let body = Json(json!({"error": "rate_limited", "message": format!("too many requests from this address; retry in {secs} s")}));
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let l = RateLimiter::new(Limit { per_minute: 60, burst: 3 });
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t).is_ok());
        }
        let wait = l.check("a", t).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1);
        assert!(l.check("b", t).is_ok(), "clients are limited separately");
        assert!(l.check("a", t + Duration::from_millis(1000)).is_ok());
        assert!(l.check("a", t + Duration::from_millis(1001)).is_err());
        // Idle long enough: a full burst again, never more.
        for _ in 0..3 {
            assert!(l.check("a", t + Duration::from_secs(3600)).is_ok());
        }
        assert!(l.check("a", t + Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn the_table_is_bounded() {
        let l = RateLimiter::new(Limit { per_minute: 1, burst: 1 });
        let t = Instant::now();
        for i in 0..MAX_KEYS {
            assert!(l.check(&i.to_string(), t).is_ok());
        }
        // Full of drained buckets: newcomers share one.
        assert!(l.check("new-1", t).is_ok());
        assert!(l.check("new-2", t).is_err());
        assert!(l.buckets.lock().unwrap().len() <= MAX_KEYS + 1);
        // Once buckets have refilled, they are forgotten and newcomers get their own.
        assert!(l.check("new-3", t + Duration::from_secs(120)).is_ok());
        assert!(l.buckets.lock().unwrap().len() < 10);
    }

    #[test]
    fn forwarded_for_counts_trusted_hops_from_the_right() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        assert_eq!(forwarded_client(&h, 0), None, "not trusted unless configured");
        assert_eq!(forwarded_client(&h, 1), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(forwarded_client(&h, 2), Some("203.0.113.7".parse().unwrap()), "a client-supplied entry is not used");
        assert_eq!(forwarded_client(&h, 9), None);
    }
}

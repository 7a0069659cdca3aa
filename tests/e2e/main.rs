//! End-to-end tests against the local control plane, the stand-in Okta and the operator that
//! `e2e/up` started. Run them with `e2e/test`; they fail (never skip) without that environment.

mod harness;
mod browser;
mod cli_login;
mod gitops;
mod helm;
mod image;
mod outbound;
mod providers;
mod rate_limits;
mod resources;
mod dashboard;
mod dashboard_forgery;
mod durability;
mod idp;
mod kube_access;
mod leader;
mod login;
mod outage;
mod login_identity;
mod membership;
mod metrics;
mod rbac;
mod scim_entra;
mod scim_keys;
mod shutdown;
mod scim_okta;
mod scim_protocol;
mod scim_bounds;

//! End-to-end tests against the local control plane, the stand-in Okta and the operator that
//! `e2e/up` started. Run them with `e2e/test`; they fail (never skip) without that environment.

mod browser;
mod cli_login;
mod dashboard;
mod dashboard_admin;
mod dashboard_forgery;
mod device_login;
mod durability;
mod gitops;
mod harness;
mod helm;
mod idp;
mod image;
mod kube_access;
mod leader;
mod login;
mod login_identity;
mod membership;
mod metrics;
mod outage;
mod outbound;
mod providers;
mod rate_limits;
mod rbac;
mod resources;
mod scim_bounds;
mod scim_entra;
mod scim_keys;
mod scim_okta;
mod scim_protocol;
mod sessions;
mod shutdown;

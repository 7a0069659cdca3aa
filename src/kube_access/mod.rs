//! Kubernetes access with Infra identities (DESIGN.md, "Identity in Kubernetes"): Infra is a JWT
//! issuer the API server trusts. The server mints short-lived ES256 tokens for signed-in people
//! and serves the issuer's discovery document and key set; the leader controller keeps the
//! signing keys in a Secret and rotates them with overlap. The API server verifies the tokens
//! itself (no proxy in the data path), with the `AuthenticationConfiguration` that
//! [`apiserver_config`] prints.
//!
//! Pure code (`identity`, `signing_keys`, `token`, `apiserver_config`) is kept apart from the
//! HTTP handlers (`issuer`) and the controller loop (`rotation`).

pub mod apiserver_config;
pub mod args;
pub mod binding;
pub mod identity;
pub mod signing_keys;
pub mod token;

pub use args::{IssuerArgs, TokenArgs};

/// The server's paths for Kubernetes access, shared by the server that serves them, the CLI that
/// calls them and the API-server configuration that names them.
pub mod paths {
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    pub const JWKS: &str = "/api/kube/jwks";
    pub const TOKEN: &str = "/api/kube/token";
    pub const CONFIG: &str = "/api/kube/config";
    pub const AUTHORIZE: &str = "/api/kube/authorize";
}

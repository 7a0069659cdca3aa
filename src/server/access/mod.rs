//! Kubernetes access on the server: Infra's issuer (discovery, JWKS, token minting, the CLI's
//! cluster configuration) and the authorization webhook that denies revoked sessions. The pure
//! parts (identity, tokens, keys, the API server's configuration) are in `crate::kube_access`.

pub mod issuer;
pub mod webhook;

//! SCIM 2.0 (RFC 7643/7644) logic with no I/O: schemas, filters, PATCH, attribute projection and
//! sorting over resources in their JSON wire form. The server's handlers and the directory indexes
//! build on it.
//!
//! Resources are `serde_json::Value` objects exactly as returned to clients: `schemas`, `id`,
//! `externalId`, `meta`, the core attributes, and extension attributes in a container keyed by the
//! extension's schema URN. Every module resolves attribute names through [`schema`], so names are
//! case-insensitive everywhere and always written back with their canonical casing. Every module
//! reports problems as a [`ScimError`], which carries the RFC 7644 §3.12 status and `scimType`.
//!
//! Where Okta or Microsoft Entra ID depart from the RFCs, the module that copes says so next to
//! the code, citing the vendor document the behaviour comes from.

pub mod case;
pub mod error;
pub mod filter;
mod json;
pub mod list;
pub mod members;
pub mod patch;
pub mod projection;
pub mod schema;
pub mod sort;
mod values;

pub use error::ScimError;
pub use schema::ResourceType;

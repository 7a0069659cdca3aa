//! Users and groups: how they are named and stored as custom resources, how they look on the SCIM
//! wire, and the in-memory indexes the server answers reads from (all pure), and the store that
//! writes them through the API server and keeps the directory current (`store`, the only I/O).

pub mod codec;
mod compact;
mod few;
mod freshness;
pub mod index;
pub mod naming;
pub mod store;

pub use compact::Interner;
pub use index::Directory;
pub use store::{DirectoryStore, StoreError};

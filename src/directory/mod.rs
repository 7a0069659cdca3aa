//! Users and groups: how they are named and stored as custom resources, how they look on the SCIM
//! wire, and the in-memory indexes the server answers reads from. Pure: no I/O.

pub mod codec;
mod compact;
pub mod index;
pub mod naming;

pub use index::Directory;

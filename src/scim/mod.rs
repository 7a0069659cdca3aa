//! SCIM 2.0 (RFC 7643/7644) logic with no I/O: schemas, filters, PATCH, attribute projection and
//! sorting over resources in their JSON wire form. The server's handlers and the directory indexes
//! build on it.

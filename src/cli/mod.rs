//! The `infra` command line.

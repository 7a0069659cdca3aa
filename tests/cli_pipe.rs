//! The command line used in shell pipelines.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// `infra completion bash | head -1`: the reader is gone before infra writes, and infra ends
/// quietly (no panic, no backtrace) through SIGPIPE, as kubectl and other Unix tools do.
#[test]
fn a_closed_pipe_ends_infra_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(["completion", "bash"])
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "infra wrote to stderr: {stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

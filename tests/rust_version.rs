//! `rust-version` in Cargo.toml is what the dependency tree needs: the highest `rust-version` any
//! locked dependency declares (kube 5 needs 1.89). Lower, and `cargo build` on the stated
//! toolchain fails inside a dependency; higher, and users are turned away for nothing.

use std::process::Command;

fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or_else(|_| panic!("bad version {v}"))).collect();
    parts.resize(3, 0);
    parts
}

/// The host's target triple, from `rustc -vV`.
fn host() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc runs");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host")
}

#[test]
fn rust_version_is_what_the_dependencies_need() {
    // Only the dependencies of a Linux build (the host's; the image is built for Linux too):
    // macOS- and Windows-only crates are not downloaded on a fresh machine, and --offline would
    // then fail to read their manifests.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_tree: std::collections::HashSet<&str> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let (needed, by) = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| in_tree.contains(p["id"].as_str().unwrap()) && p["name"] != env!("CARGO_PKG_NAME"))
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), format!("{} {}", p["name"].as_str()?, p["version"].as_str()?))))
        .max()
        .expect("some dependency declares a rust-version");
    let ours = version(env!("CARGO_PKG_RUST_VERSION"));
    assert_eq!(ours, needed, "Cargo.toml says rust-version {}, the dependencies need {needed:?} ({by})", env!("CARGO_PKG_RUST_VERSION"));
}

//! The container image: images cannot be built here, so this runs the build script the Dockerfile
//! runs and checks that the result is static and starts.

use std::process::Command;

#[test]
fn the_dockerfile_build_produces_static_binaries_that_start() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("RUN build/static-binaries.sh /out"), "the Dockerfile no longer builds with build/static-binaries.sh");
    assert!(
        dockerfile.contains("USER 65532:65532") && dockerfile.contains("distroless/static"),
        "the image must be distroless and non-root"
    );
    // Both architectures, cross-compiled on the builder's platform for buildx's TARGETARCH.
    assert!(
        dockerfile.contains("FROM --platform=$BUILDPLATFORM") && dockerfile.contains("ARG TARGETARCH"),
        "the build stage must cross-compile for TARGETARCH"
    );
    for arch in ["amd64) triple=x86_64-unknown-linux-gnu", "arm64) triple=aarch64-unknown-linux-gnu"] {
        assert!(dockerfile.contains(arch), "the Dockerfile does not build {arch}");
    }
    for label in ["source", "version", "revision", "created", "licenses", "title", "description"] {
        assert!(dockerfile.contains(&format!("org.opencontainers.image.{label}=")), "no OCI label {label}");
    }

    let out = format!("{root}/target/image-test");
    let status = Command::new(format!("{root}/build/static-binaries.sh")).arg(&out).status().unwrap();
    assert!(status.success(), "build/static-binaries.sh failed");
    for bin in ["infra-operator", "infra"] {
        let path = format!("{out}/{bin}");
        // `ldd` on a static executable says so instead of listing libraries.
        let ldd = Command::new("ldd").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
        assert!(text.contains("statically linked") || text.contains("not a dynamic executable"), "{bin} is dynamic:\n{text}");
        let version = Command::new(&path).arg("--version").env_clear().output().unwrap();
        assert!(version.status.success(), "{bin} --version failed");
        assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    // The operator starts and reports a clear error without a cluster, rather than crashing.
    let run = Command::new(format!("{out}/infra-operator"))
        .args(["server", "--external-url", "http://127.0.0.1:1"])
        .env_clear()
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let size = std::fs::metadata(format!("{out}/infra-operator")).unwrap().len();
    println!("infra-operator static binary: {:.1} MiB", size as f64 / 1048576.0);
}

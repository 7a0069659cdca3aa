//! The committed CRD YAML must be exactly what the Rust types generate. Regenerate with
//! `cargo run --bin infra-operator -- crds --dir crds`.

use std::path::Path;

#[test]
fn committed_crds_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = infra::api::crds_yaml().expect("CRDs serialize");
    assert_eq!(generated.len(), 5);
    for (file, yaml) in generated {
        let path = dir.join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            committed == yaml,
            "{} drifted from the Rust types; run `cargo run --bin infra-operator -- crds --dir crds` and commit the result",
            path.display()
        );
    }
}

//! The committed CRD YAML, and the chart's CRD templates, must be exactly what the Rust types
//! generate. Regenerate both with
//! `cargo run --bin infra-operator -- crds --dir crds --chart-dir charts/infra/templates/crds`.

use std::path::Path;

const REGENERATE: &str = "cargo run --bin infra-operator -- crds --dir crds --chart-dir charts/infra/templates/crds";

/// Every generated file is committed as is, and the folder holds no other `.yaml` (a CRD whose type
/// was removed must not linger; `skip` names files that are not CRDs, such as kustomization.yaml).
fn assert_committed(dir: &str, generated: Vec<(String, String)>, skip: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut names: Vec<String> = generated.iter().map(|(file, _)| file.clone()).collect();
    for (file, yaml) in generated {
        let path = dir.join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(committed == yaml, "{} drifted from the Rust types; run `{REGENERATE}` and commit the result", path.display());
    }
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && !skip.contains(&n.as_str()))
        .collect();
    names.sort();
    found.sort();
    assert_eq!(found, names, "{} must hold exactly the generated CRDs", dir.display());
}

#[test]
fn committed_crds_match_the_code() {
    let generated = infra::api::crds_yaml().expect("CRDs serialize");
    assert!(generated.len() >= 4);
    assert_committed("crds", generated, &["kustomization.yaml"]);
}

#[test]
fn chart_crd_templates_match_the_code() {
    let generated = infra::api::crd_chart_templates().expect("CRDs serialize");
    assert_eq!(generated.len(), infra::api::crds().len());
    assert_committed(infra::api::CHART_CRD_DIR, generated, &[]);
}

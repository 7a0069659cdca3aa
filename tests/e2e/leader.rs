//! Leader election: of the two controller replicas exactly one reconciles, and killing it hands
//! over within the lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::harness::*;

const LEASE_DURATION: Duration = Duration::from_secs(15);

async fn holder() -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client().await, &env().namespace);
    leases.get_opt("infra-controller").await.ok().flatten()?.spec?.holder_identity
}

fn leader_gauge(metrics_url: &str) -> Option<u8> {
    let out = std::process::Command::new("curl").args(["-fsS", metrics_url]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("infra_controller_leader ")).and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn killing_the_leader_hands_over_within_the_lease_duration() {
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    let controllers: Vec<String> =
        std::env::var("INFRA_CONTROLLER_URLS").expect("INFRA_CONTROLLER_URLS").split_whitespace().map(String::from).collect();
    let leader = eventually(Duration::from_secs(30), "a leader", holder).await;
    let index: usize = leader.strip_prefix("controller-").and_then(|i| i.parse().ok()).expect("controller-N identity");

    // Exactly one replica says it leads.
    let gauges: Vec<Option<u8>> = controllers.iter().map(|c| leader_gauge(&format!("{c}/metrics"))).collect();
    assert_eq!(gauges.iter().filter(|g| **g == Some(1)).count(), 1, "leader gauges: {gauges:?}");
    assert_eq!(gauges[index], Some(1));

    let pid: i32 = std::fs::read_to_string(format!("{state}/pids/controller-{index}.pid")).unwrap().trim().parse().unwrap();
    let killed_at = Instant::now();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());

    let next = eventually(LEASE_DURATION + Duration::from_secs(10), "another leader", || {
        let leader = leader.clone();
        async move { holder().await.filter(|h| *h != leader) }
    })
    .await;
    let took = killed_at.elapsed();
    assert!(took <= LEASE_DURATION + Duration::from_secs(5), "handover took {took:?}");
    println!("leader {leader} killed; {next} took over after {took:?}");

    // The new leader reconciles: a new provider becomes Ready.
    let name = unique("after-handover");
    infra(&["providers", "add", &name, "--url", &idp_domain_and_path(), "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"])
        .ok();
    infra(&["providers", "remove", &name]).ok();

    // Bring the killed replica back for the rest of the suite.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/scripts/operator-up.sh");
    let status =
        std::process::Command::new(script).env("INFRA_NAMESPACE", &env().namespace).env("RECHECK_INTERVAL", "20s").status().unwrap();
    assert!(status.success());
}

//! `cargo bench --bench directory_memory`: the heap the directory holds for the users and groups
//! of `e2e/bench` (12,000 users, 500 groups of 20 members recorded on the users' labels), fed
//! through watch events as the server receives them, without a cluster. Prints the bytes asked of
//! the allocator, what glibc holds for them (chunk headers and rounding included), and both per
//! user; then the same after another `--users` (100,000 by default) to show the cost per user
//! beyond the first 12,000 (the server's target: <= 2 KiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};

use infra::api::{Group, GroupSpec, ProviderRef, User, UserSpec, annotations, labels, member_label};
use infra::directory::Directory;
use infra::directory::naming::{new_id, user_object_name};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference, Time};
use kube::runtime::watcher::Event;
use serde_json::json;

/// Counts the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (bytes asked for, bytes glibc has handed out including its chunk overhead).
fn heap() -> (f64, f64) {
    let asked = LIVE.load(Ordering::Relaxed) as f64;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let held = unsafe {
        let m = libc::mallinfo2();
        (m.uordblks + m.hblkhd) as f64
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let held = asked;
    (asked, held)
}

const PROVIDER: &str = "bench-scim-k3j9x";
const GROUPS: usize = 500;

/// A User as `e2e/bench` and the SCIM server store it, with what the API server adds.
fn user(i: usize, groups: &[String]) -> User {
    let user_name = format!("user{i}@{PROVIDER}.example.com");
    let now = "2026-11-30T23:59:59.123456789Z".to_string();
    let mut label_map = BTreeMap::from([
        (labels::PROVIDER.to_string(), PROVIDER.to_string()),
        (labels::SCIM_ID.to_string(), new_id().unwrap()),
        (labels::MANAGED_BY.to_string(), "infra-server".to_string()),
    ]);
    for g in groups {
        label_map.insert(member_label(g), String::new());
    }
    let mut u = User::new(
        &user_object_name(PROVIDER, &user_name),
        UserSpec {
            provider_ref: ProviderRef { name: PROVIDER.into() },
            user_name: user_name.clone(),
            external_id: None,
            display_name: Some("Bench User".into()),
            active: Some(true),
            attributes: json!({
                "name": {"givenName": "Bench", "familyName": "User"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
            })
            .as_object()
            .cloned(),
        },
    );
    let m = &mut u.metadata;
    m.namespace = Some("infra-system".into());
    m.labels = Some(label_map);
    m.annotations = Some(BTreeMap::from([(annotations::CREATED.to_string(), now.clone()), (annotations::LAST_MODIFIED.to_string(), now)]));
    m.uid = Some("0b5c3f4e-8a1d-4a53-9a9e-6d1f2c3b4a5e".into());
    m.resource_version = Some((100_000 + i).to_string());
    m.generation = Some(1);
    m.creation_timestamp = Some(Time("2026-11-30T23:59:59Z".parse().unwrap()));
    m.owner_references = Some(vec![OwnerReference {
        api_version: "infrahq.com/v1alpha1".into(),
        kind: "IdentityProvider".into(),
        name: PROVIDER.into(),
        uid: "4f1c2d3e-0000-4000-8000-123456789abc".into(),
        ..Default::default()
    }]);
    m.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("infra-server".into()),
        operation: Some("Update".into()),
        api_version: Some("infrahq.com/v1alpha1".into()),
        ..Default::default()
    }]);
    u
}

fn group(i: usize, id: &str) -> Group {
    let mut g = Group::new(
        &format!("g-{id}"),
        GroupSpec {
            provider_ref: ProviderRef { name: PROVIDER.into() },
            display_name: format!("group {i}"),
            external_id: None,
            members: vec![],
        },
    );
    g.metadata.labels = Some(BTreeMap::from([(labels::SCIM_ID.to_string(), id.to_string())]));
    g.metadata.resource_version = Some(i.to_string());
    g
}

/// Applies users `range` as the server's watch does: each event arrives as JSON, is deserialized on
/// one of the runtime's two workers, and applied under the directory's lock.
fn watch(d: &Mutex<Directory>, range: std::ops::Range<usize>, memberships: &[Vec<String>]) {
    std::thread::scope(|s| {
        for worker in 0..2 {
            let range = range.clone();
            s.spawn(move || {
                for i in range.filter(|i| i % 2 == worker) {
                    let json = serde_json::to_vec(&user(i, memberships.get(i).map(Vec::as_slice).unwrap_or_default())).unwrap();
                    let event: User = serde_json::from_slice(&json).unwrap();
                    d.lock().unwrap().on_user_event(Event::Apply(event));
                }
            });
        }
    });
}

fn report(label: &str, before: (f64, f64), after: (f64, f64), users: usize) {
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let (asked, held) = (after.0 - before.0, after.1 - before.1);
    println!(
        "{label}: {:.1} MiB asked, {:.1} MiB held by malloc; {:.0} / {:.0} bytes per user",
        mib(asked),
        mib(held),
        asked / users as f64,
        held / users as f64
    );
}

fn main() {
    let extra: usize =
        std::env::args().skip_while(|a| a != "--users").nth(1).map(|n| n.parse().expect("--users takes a number")).unwrap_or(100_000);
    let group_ids: Vec<String> = (0..GROUPS).map(|_| new_id().unwrap()).collect();
    // e2e/bench's groups: group i has the users (i * 7 + k) % 1000 for k in 0..20.
    let mut memberships = vec![vec![]; 1000];
    for (i, gid) in group_ids.iter().enumerate() {
        for k in 0..20 {
            memberships[(i * 7 + k) % 1000].push(gid.clone());
        }
    }

    let start = heap();
    let d = Mutex::new(Directory::default());
    {
        let mut d = d.lock().unwrap();
        d.on_user_event(Event::Init);
        d.on_user_event(Event::InitDone);
        d.on_group_event(Event::Init);
        d.on_group_event(Event::InitDone);
    }
    const BASE: usize = 12_000;
    watch(&d, 0..BASE, &memberships);
    for (i, gid) in group_ids.iter().enumerate() {
        d.lock().unwrap().on_group_event(Event::Apply(group(i, gid)));
    }
    let base = heap();
    report(&format!("{BASE} users and {GROUPS} groups"), start, base, BASE);
    watch(&d, BASE..BASE + extra, &memberships);
    report(&format!("{extra} users more"), base, heap(), extra);
    let d = d.into_inner().unwrap();
    assert_eq!(d.user_count(), BASE + extra);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free pages; mallinfo2 only reads statistics.
        let started = std::time::Instant::now();
        let m = unsafe {
            libc::malloc_trim(0);
            libc::mallinfo2()
        };
        let trim_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let anon = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("RssAnon:")).map(|v| v.trim().trim_end_matches("kB").trim().to_string()))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        println!(
            "malloc after a trim ({trim_ms:.2} ms): {:.1} MiB from the system, {:.1} MiB in use, {:.1} MiB free; {:.1} MiB resident anonymous",
            mib(m.arena + m.hblkhd),
            mib(m.uordblks + m.hblkhd),
            mib(m.fordblks),
            anon / 1024.0
        );
    }
}

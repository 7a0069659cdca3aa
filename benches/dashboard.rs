//! The dashboard's `/users` page rendered on the server: search and paging over the in-memory
//! directory, the rows' groups, and the template, for a page of 50 with 10,000 users (500 groups
//! of 20 members) stored. Target: p99 < 20 ms. The baseline, measured in the same run, is the same
//! page with only 50 users stored, so the number shows what 10,000 users cost over 50.
//!
//! `cargo bench --bench dashboard` (`-- --users N --samples N` to change the sizes).

use std::time::{Duration, Instant};

use askama::Template;
use infra::api::{Group, GroupSpec, ProviderRef, User, UserSpec, labels, member_label};
use infra::directory::Directory;
use infra::server::dashboard::directory::users_page;
use infra::server::dashboard::paging::Paging;
use infra::server::web::{Assets, Chrome, Nav};
use serde_json::json;

fn user(i: usize, groups: &[usize]) -> User {
    let name = format!("user{i:06}@example.com");
    let mut u = User::new(
        &format!("okta-u{i}"),
        UserSpec {
            provider_ref: ProviderRef { name: "okta".into() },
            user_name: name.clone(),
            external_id: Some(format!("00u{i:08}")),
            display_name: Some(format!("User {i}")),
            active: Some(true),
            attributes: json!({"emails": [{"value": name, "primary": true}]}).as_object().cloned(),
        },
    );
    let mut l: std::collections::BTreeMap<String, String> = [(labels::SCIM_ID.to_string(), format!("id-{i:06}"))].into();
    for g in groups {
        l.insert(member_label(&format!("gid-{g:04}")), "".into());
    }
    u.metadata.labels = Some(l);
    u.metadata.resource_version = Some("1".into());
    u
}

fn directory(users: usize, groups: usize, members: usize) -> Directory {
    let mut d = Directory::default();
    for g in 0..groups {
        let mut group = Group::new(
            &format!("okta-g{g}"),
            GroupSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                display_name: format!("Group {g}"),
                external_id: None,
                members: vec![],
            },
        );
        group.metadata.labels = Some([(labels::SCIM_ID.to_string(), format!("gid-{g:04}"))].into());
        group.metadata.resource_version = Some("1".into());
        d.apply_group(group);
    }
    for i in 0..users {
        let mine: Vec<usize> = (0..groups).filter(|g| (g * members..(g + 1) * members).contains(&i)).collect();
        d.apply_user(user(i, &mine));
    }
    d
}

fn chrome() -> Chrome {
    Chrome {
        base: "/".into(),
        assets: Assets::get(),
        nav: Some(Nav {
            user: "admin@example.com".into(),
            provider: "okta".into(),
            csrf: "x".repeat(43),
            providers: true,
            users: true,
            groups: true,
            grants: true,
        }),
        section: "users",
    }
}

/// Render times of `samples` pages: every page of the list in turn, and a search every fifth.
fn measure(d: &Directory, samples: usize) -> Vec<Duration> {
    let pages = d.user_count().div_ceil(50).max(1);
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let query = if i % 5 == 4 { format!("user{:03}", i % 100) } else { String::new() };
        let paging = Paging::from_query(Some(&(1 + i % pages).to_string()), Some("50"));
        let t = Instant::now();
        let html = users_page(d, &Default::default(), chrome(), &query, paging).render().expect("renders");
        out.push(t.elapsed());
        assert!(html.contains("id=\"summary\""));
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut users, mut samples) = (10_000usize, 1_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--users" => users = args.next().and_then(|v| v.parse().ok()).expect("--users N"),
            "--samples" => samples = args.next().and_then(|v| v.parse().ok()).expect("--samples N"),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    let big = directory(users, 500, 20);
    let small = directory(50, 3, 20);
    let base = measure(&small, samples);
    let full = measure(&big, samples);
    println!("dashboard /users, a page of 50, server-side render ({samples} samples each):");
    println!("  baseline, 50 users stored:    p50 {:>8.3} ms  p99 {:>8.3} ms", ms(pct(&base, 0.5)), ms(pct(&base, 0.99)));
    println!(
        "  {users} users, 500 groups:    p50 {:>8.3} ms  p99 {:>8.3} ms  (target p99 < 20 ms)",
        ms(pct(&full, 0.5)),
        ms(pct(&full, 0.99))
    );
    let ok = pct(&full, 0.99) < Duration::from_millis(20);
    println!("  {}", if ok { "target met" } else { "TARGET MISSED" });
    if !ok {
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

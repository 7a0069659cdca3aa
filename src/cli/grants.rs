//! `infra grants add|list|remove`: Grants as custom resources, with the caller's kubeconfig.
//! `-n/--namespace` is the namespace a grant applies to, as kubectl reads the flag; Infra's own
//! namespace is `--infra-namespace` (or INFRA_NAMESPACE), in every command.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::kube_client::{KubeArgs, explain};
use super::output::{self, ListArgs, col, wide};
use super::spinner;
use crate::api::{Grant, GrantRole, GrantSpec, GrantSubject, IdentityProvider, RoleKind};
use crate::kube_access::binding::Target;

#[derive(Subcommand, Debug)]
pub enum GrantsCommand {
    /// Give a user (USER ROLE) or a group (--group GROUP ROLE) a role, in a namespace (-n) or
    /// cluster-wide. ROLE is a ClusterRole, or role/NAME for a Role in that namespace.
    #[command(
        after_help = "Examples:\n  infra grants add alice@example.com view -n default\n  infra grants add --group Engineering edit -n team-a --for 8h"
    )]
    Add(SubjectArgs),
    /// List grants.
    #[command(after_help = "Examples:\n  infra grants list\n  infra grants list -o wide")]
    List(ListArgs),
    /// Take a grant away: by its name, or as it was added (USER ROLE or --group GROUP ROLE).
    #[command(after_help = "Examples:\n  infra grants remove alice@example.com view -n default\n  infra grants remove grant-0a1b2c3d4e5f")]
    Remove(SubjectArgs),
}

#[derive(Args, Debug)]
pub struct SubjectArgs {
    /// USER ROLE, or ROLE with --group (for `remove`, also a grant's NAME).
    #[arg(required = true, num_args = 1..=2, value_name = "USER ROLE")]
    pub args: Vec<String>,
    /// Grant to this group (its displayName) instead of a user.
    #[arg(long)]
    pub group: Option<String>,
    /// The namespace the access applies to; without it the grant is cluster-wide.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The identity provider of the user or group (needed when there are several).
    #[arg(long)]
    pub provider: Option<String>,
    /// Temporary access: ends after this long, such as 8h or 7d.
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::config::parse_span, conflicts_with = "until")]
    pub for_: Option<Duration>,
    /// Temporary access: ends at this time (RFC 3339, such as 2026-12-01T18:00:00Z).
    #[arg(long)]
    pub until: Option<Timestamp>,
}

pub async fn run(kube: &KubeArgs, cmd: GrantsCommand) -> anyhow::Result<()> {
    let k = kube.connect().await?;
    let grants: Api<Grant> = Api::namespaced(k.client.clone(), &k.namespace);
    let providers: Api<IdentityProvider> = Api::namespaced(k.client.clone(), &k.namespace);
    match cmd {
        GrantsCommand::Add(a) => add(&grants, &providers, a).await,
        GrantsCommand::List(l) => list(&grants, l).await,
        GrantsCommand::Remove(a) => remove(&grants, &providers, a).await,
    }
}

/// USER ROLE / --group GROUP ROLE into a subject and a role.
fn parse_subject(a: &SubjectArgs, provider: &str) -> anyhow::Result<(GrantSubject, GrantRole)> {
    let (user, role) = match (&a.group, a.args.as_slice()) {
        (Some(_), [role]) => (None, role.clone()),
        (None, [user, role]) => (Some(user.clone()), role.clone()),
        (Some(g), _) => anyhow::bail!("with --group {g}, give only the ROLE"),
        (None, _) => anyhow::bail!("give USER ROLE, or --group GROUP ROLE"),
    };
    let role = match role.split_once('/') {
        Some((kind, name)) if kind.eq_ignore_ascii_case("role") => GrantRole { kind: RoleKind::Role, name: name.into() },
        Some((kind, name)) if kind.eq_ignore_ascii_case("clusterrole") => GrantRole { kind: RoleKind::ClusterRole, name: name.into() },
        Some(_) => anyhow::bail!("{role:?}: give a ClusterRole name, or role/NAME for a Role"),
        None => GrantRole { kind: RoleKind::ClusterRole, name: role },
    };
    if role.kind == RoleKind::Role && a.namespace.is_none() {
        anyhow::bail!("a Role exists in one namespace: pass -n NAMESPACE");
    }
    Ok((GrantSubject { provider: provider.into(), user, group: a.group.clone() }, role))
}

/// The provider named, or the only one there is.
async fn provider(providers: &Api<IdentityProvider>, wanted: Option<&str>) -> anyhow::Result<String> {
    if let Some(p) = wanted {
        return Ok(p.to_string());
    }
    let names: Vec<String> = providers
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| explain(e, "list identity providers"))?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("there is no identity provider yet; add one with `infra providers add`, or pass --provider"),
        many => anyhow::bail!("pass --provider: there are several identity providers ({})", many.join(", ")),
    }
}

/// The object name of a grant: the same access always gets the same name, so adding it again
/// updates it (a new expiry) instead of piling up duplicates.
fn grant_name(spec: &GrantSpec) -> String {
    format!("grant-{}", &Target::of(spec).key[..12])
}

fn describe(spec: &GrantSpec) -> (String, String, String) {
    let subject = match (&spec.subject.user, &spec.subject.group) {
        (Some(u), _) => format!("user {u}"),
        (None, Some(g)) => format!("group {g}"),
        _ => "?".into(),
    };
    let role = match spec.role.kind {
        RoleKind::ClusterRole => spec.role.name.clone(),
        RoleKind::Role => format!("role/{}", spec.role.name),
    };
    let scope = spec.namespace.as_deref().map(|n| format!("namespace {n}")).unwrap_or_else(|| "the whole cluster".into());
    (subject, role, scope)
}

async fn add(grants: &Api<Grant>, providers: &Api<IdentityProvider>, a: SubjectArgs) -> anyhow::Result<()> {
    let provider = provider(providers, a.provider.as_deref()).await?;
    let (subject, role) = parse_subject(&a, &provider)?;
    let spec = GrantSpec {
        subject,
        role,
        namespace: a.namespace.clone(),
        expires_after: a.for_.map(|d| format!("{}s", d.as_secs())),
        expires_at: a.until.map(Time),
    };
    let name = grant_name(&spec);
    let manifest = json!({"apiVersion": "infrahq.com/v1alpha1", "kind": "Grant", "metadata": {"name": name}, "spec": spec});
    grants.patch(&name, &super::MANAGER.apply(), &Patch::Apply(&manifest)).await.map_err(|e| explain(e, "create the Grant"))?;
    let (who, role, scope) = describe(&spec);
    let spin = spinner::start(format!("Granting {role} to {who} in {scope}"));
    let settled = settle(grants, &name).await;
    spin.finish_and_clear();
    match settled {
        Some((true, _)) => println!("Granted {role} to {who} ({provider}) in {scope} (grant {name})"),
        Some((false, message)) => anyhow::bail!("grant {name} is not in effect: {message}"),
        None => println!("Grant {name} created; the operator has not bound it yet (see `infra grants list`)"),
    }
    Ok(())
}

/// Waits (up to 30 s) for the controller's verdict: Ready true or false, with its message.
async fn settle(grants: &Api<Grant>, name: &str) -> Option<(bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(g)) = grants.get_opt(name).await {
            let fresh = g.status.as_ref().and_then(|s| s.observed_generation) == g.metadata.generation;
            let ready = g.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == crate::api::grant::READY).cloned());
            if let Some(c) = ready.filter(|_| fresh) {
                return Some((c.status == "True", c.message));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

async fn list(grants: &Api<Grant>, l: ListArgs) -> anyhow::Result<()> {
    let mut items = grants.list(&l.params()).await.map_err(|e| explain(e, "list grants"))?.items;
    items.sort_by_key(|g| g.name_any());
    let columns =
        [col("NAME"), col("SUBJECT"), col("PROVIDER"), col("ROLE"), col("NAMESPACE"), col("PHASE"), col("EXPIRES"), wide("BINDING")];
    let row = |g: &Grant| {
        let (who, role, _) = describe(&g.spec);
        let status = g.status.clone().unwrap_or_default();
        vec![
            g.name_any(),
            who,
            g.spec.subject.provider.clone(),
            role,
            g.spec.namespace.clone().unwrap_or_else(|| "(cluster)".into()),
            status.phase.map_or("Pending", |p| p.as_str()).to_string(),
            status.expires_at.map(|t| t.0.to_string()).unwrap_or_else(|| "never".into()),
            status.binding.unwrap_or_default(),
        ]
    };
    output::print_list(&l, items, &columns, row, "No grants. Add one with `infra grants add USER ROLE -n NAMESPACE`.")
}

async fn remove(grants: &Api<Grant>, providers: &Api<IdentityProvider>, a: SubjectArgs) -> anyhow::Result<()> {
    let name = match (a.args.as_slice(), &a.group) {
        ([name], None) => name.clone(),
        _ => {
            let provider = provider(providers, a.provider.as_deref()).await?;
            let (subject, role) = parse_subject(&a, &provider)?;
            grant_name(&GrantSpec { subject, role, namespace: a.namespace.clone(), expires_after: None, expires_at: None })
        }
    };
    match grants.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            println!("Removed grant {name}; its binding goes unless another grant gives the same access");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => anyhow::bail!("there is no grant {name:?} (see `infra grants list`)"),
        Err(e) => Err(explain(e, "delete the Grant")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str], group: Option<&str>, ns: Option<&str>) -> SubjectArgs {
        SubjectArgs {
            args: list.iter().map(|s| s.to_string()).collect(),
            group: group.map(String::from),
            namespace: ns.map(String::from),
            provider: None,
            for_: None,
            until: None,
        }
    }

    #[test]
    fn subjects_and_roles_from_the_command_line() {
        let (s, r) = parse_subject(&args(&["alice@example.com", "view"], None, Some("default")), "okta").unwrap();
        assert_eq!((s.user.as_deref(), s.group, r.kind, r.name.as_str()), (Some("alice@example.com"), None, RoleKind::ClusterRole, "view"));
        let (s, r) = parse_subject(&args(&["role/deployer"], Some("SRE"), Some("apps")), "okta").unwrap();
        assert_eq!((s.group.as_deref(), r.kind, r.name.as_str()), (Some("SRE"), RoleKind::Role, "deployer"));
        assert!(parse_subject(&args(&["alice", "role/deployer"], None, None), "okta").unwrap_err().to_string().contains("-n NAMESPACE"));
        assert!(parse_subject(&args(&["alice", "view"], Some("SRE"), None), "okta").is_err());
        assert!(parse_subject(&args(&["view"], None, None), "okta").is_err());
        assert!(parse_subject(&args(&["alice", "thing/view"], None, None), "okta").is_err());
    }

    #[test]
    fn the_same_access_gets_the_same_name() {
        let spec = |ns: &str| {
            let (subject, role) = parse_subject(&args(&["alice", "view"], None, Some(ns)), "okta").unwrap();
            GrantSpec { subject, role, namespace: Some(ns.into()), expires_after: None, expires_at: None }
        };
        assert_eq!(grant_name(&spec("default")), grant_name(&spec("default")));
        assert_ne!(grant_name(&spec("default")), grant_name(&spec("other")));
        assert!(grant_name(&spec("default")).len() <= 63);
    }
}

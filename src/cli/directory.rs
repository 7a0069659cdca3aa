//! `infra users list` and `infra groups list`.

use std::collections::{HashMap, HashSet};

use clap::Subcommand;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::kube_client::{explain, KubeArgs};
use super::output::{self, Format};
use crate::api::{labels, Group, User};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users.
    List {
        /// Only users of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List groups.
    List {
        /// Only groups of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

pub async fn run_users(args: &KubeArgs, cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::List { provider, output } = cmd;
    let kube = args.connect().await?;
    let api: Api<User> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut users = api.list(&ListParams::default()).await.map_err(|e| explain(e, "list users"))?.items;
    if let Some(p) = &provider {
        users.retain(|u| &u.spec.provider_ref.name == p);
    }
    users.sort_by(|a, b| crate::scim::case::fold_case(&a.spec.user_name).cmp(&crate::scim::case::fold_case(&b.spec.user_name)));
    if let Format::Table = output {
        let groups: Api<Group> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let groups = groups.list(&ListParams::default()).await.map_err(|e| explain(e, "list groups"))?.items;
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                let id = crate::directory::codec::scim_id(u).unwrap_or_default();
                let labelled: HashSet<&str> = crate::api::member_groups(u.labels().iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
                // Members are labels on the user, or (groups of earlier versions) listed in the group.
                let member_of: Vec<String> = groups
                    .iter()
                    .filter(|g| g.spec.provider_ref == u.spec.provider_ref)
                    .filter(|g| {
                        crate::directory::codec::scim_id(*g).is_some_and(|gid| labelled.contains(gid)) || g.spec.members.iter().any(|m| m.value == id)
                    })
                    .map(|g| g.spec.display_name.clone())
                    .collect();
                vec![
                    u.spec.user_name.clone(),
                    u.spec.display_name.clone().unwrap_or_default(),
                    u.spec.active.to_string(),
                    u.spec.provider_ref.name.clone(),
                    member_of.join(","),
                ]
            })
            .collect();
        print!("{}", output::table(&["USERNAME", "DISPLAY NAME", "ACTIVE", "PROVIDER", "GROUPS"], &rows));
        return Ok(());
    }
    let users: Vec<User> = users.into_iter().map(output::without_managed_fields).collect();
    print!("{}", output::structured(output, &users)?);
    Ok(())
}

pub async fn run_groups(args: &KubeArgs, cmd: GroupsCommand) -> anyhow::Result<()> {
    let GroupsCommand::List { provider, output } = cmd;
    let kube = args.connect().await?;
    let api: Api<Group> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut groups = api.list(&ListParams::default()).await.map_err(|e| explain(e, "list groups"))?.items;
    if let Some(p) = &provider {
        groups.retain(|g| &g.spec.provider_ref.name == p);
    }
    groups.sort_by(|a, b| crate::scim::case::fold_case(&a.spec.display_name).cmp(&crate::scim::case::fold_case(&b.spec.display_name)));
    if let Format::Table = output {
        // Members are labels on their users: one list of user metadata counts them all.
        let users: Api<User> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let users = users.list_metadata(&ListParams::default()).await.map_err(|e| explain(e, "list users"))?.items;
        let mut counts: HashMap<&str, HashSet<&str>> = HashMap::new();
        for u in &users {
            let id = u.labels().get(labels::SCIM_ID).map(String::as_str).unwrap_or_default();
            for gid in crate::api::member_groups(u.labels().iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                counts.entry(gid).or_default().insert(id);
            }
        }
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                let mut members = counts.get(crate::directory::codec::scim_id(g).unwrap_or_default()).cloned().unwrap_or_default();
                members.extend(g.spec.members.iter().map(|m| m.value.as_str()));
                vec![g.spec.display_name.clone(), members.len().to_string(), g.spec.provider_ref.name.clone()]
            })
            .collect();
        print!("{}", output::table(&["NAME", "MEMBERS", "PROVIDER"], &rows));
        return Ok(());
    }
    let groups: Vec<Group> = groups.into_iter().map(output::without_managed_fields).collect();
    print!("{}", output::structured(output, &groups)?);
    Ok(())
}

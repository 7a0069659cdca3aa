//! `infra users list` and `infra groups list`.

use std::collections::{HashMap, HashSet};

use clap::Subcommand;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::kube_client::{KubeArgs, explain};
use super::output::{self, ListArgs, col, wide};
use crate::api::{Group, User, labels};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users.
    #[command(after_help = "Examples:\n  infra users list --provider okta\n  infra users list -o wide")]
    List {
        /// Only users of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List groups.
    #[command(after_help = "Examples:\n  infra groups list\n  infra groups list -o name")]
    List {
        /// Only groups of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

pub async fn run_users(args: &KubeArgs, cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::List { provider, list } = cmd;
    let kube = args.connect().await?;
    let api: Api<User> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut users = api.list(&list.params()).await.map_err(|e| explain(e, "list users"))?.items;
    if let Some(p) = &provider {
        users.retain(|u| &u.spec.provider_ref.name == p);
    }
    users.sort_by(|a, b| crate::scim::case::fold_case(&a.spec.user_name).cmp(&crate::scim::case::fold_case(&b.spec.user_name)));
    // Group names only for the tables, which show them.
    let groups = if matches!(list.output, output::Format::Table | output::Format::Wide) {
        let groups: Api<Group> = Api::namespaced(kube.client.clone(), &kube.namespace);
        groups.list(&ListParams::default()).await.map_err(|e| explain(e, "list groups"))?.items
    } else {
        vec![]
    };
    let columns =
        [col("USERNAME"), col("DISPLAY NAME"), col("ACTIVE"), col("PROVIDER"), col("GROUPS"), wide("SCIM ID"), wide("LAST LOGIN")];
    let row = |u: &User| {
        let id = crate::directory::codec::scim_id(u).unwrap_or_default();
        let labelled: HashSet<&str> = crate::api::member_groups(u.labels().iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
        // Members are labels on the user, or (groups of earlier versions) listed in the group.
        let member_of: Vec<String> = groups
            .iter()
            .filter(|g| g.spec.provider_ref == u.spec.provider_ref)
            .filter(|g| {
                crate::directory::codec::scim_id(*g).is_some_and(|gid| labelled.contains(gid))
                    || g.spec.members.iter().any(|m| m.value == id)
            })
            .map(|g| g.spec.display_name.clone())
            .collect();
        vec![
            u.spec.user_name.clone(),
            u.spec.display_name.clone().unwrap_or_default(),
            u.spec.is_active().to_string(),
            u.spec.provider_ref.name.clone(),
            member_of.join(","),
            id.to_string(),
            u.status.as_ref().and_then(|s| s.last_login_time.as_ref()).map(|t| t.0.to_string()).unwrap_or_default(),
        ]
    };
    let empty = format!(
        "No users in namespace {:?}. They appear once an identity provider pushes them over SCIM or people log in.",
        kube.namespace
    );
    output::print_list(&list, users, &columns, row, &empty)
}

pub async fn run_groups(args: &KubeArgs, cmd: GroupsCommand) -> anyhow::Result<()> {
    let GroupsCommand::List { provider, list } = cmd;
    let kube = args.connect().await?;
    let api: Api<Group> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut groups = api.list(&list.params()).await.map_err(|e| explain(e, "list groups"))?.items;
    if let Some(p) = &provider {
        groups.retain(|g| &g.spec.provider_ref.name == p);
    }
    groups.sort_by(|a, b| crate::scim::case::fold_case(&a.spec.display_name).cmp(&crate::scim::case::fold_case(&b.spec.display_name)));
    // Members are labels on their users: one list of user metadata counts them all (tables only).
    let users = if matches!(list.output, output::Format::Table | output::Format::Wide) {
        let users: Api<User> = Api::namespaced(kube.client.clone(), &kube.namespace);
        users.list_metadata(&ListParams::default()).await.map_err(|e| explain(e, "list users"))?.items
    } else {
        vec![]
    };
    let mut counts: HashMap<&str, HashSet<&str>> = HashMap::new();
    for u in &users {
        let id = u.labels().get(labels::SCIM_ID).map(String::as_str).unwrap_or_default();
        for gid in crate::api::member_groups(u.labels().iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            counts.entry(gid).or_default().insert(id);
        }
    }
    let columns = [col("NAME"), col("MEMBERS"), col("PROVIDER"), wide("SCIM ID")];
    let row = |g: &Group| {
        let gid = crate::directory::codec::scim_id(g).unwrap_or_default();
        let mut members = counts.get(gid).cloned().unwrap_or_default();
        members.extend(g.spec.members.iter().map(|m| m.value.as_str()));
        vec![g.spec.display_name.clone(), members.len().to_string(), g.spec.provider_ref.name.clone(), gid.to_string()]
    };
    let empty = format!("No groups in namespace {:?}.", kube.namespace);
    output::print_list(&list, groups, &columns, row, &empty)
}

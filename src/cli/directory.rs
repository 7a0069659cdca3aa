//! `infra users list` and `infra groups list`.

use clap::Subcommand;
use kube::api::ListParams;
use kube::Api;

use super::kube_client::{explain, KubeArgs};
use super::output::{self, col, wide, ListArgs};
use crate::api::{Group, User};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users.
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
    let columns = [col("USERNAME"), col("DISPLAY NAME"), col("ACTIVE"), col("PROVIDER"), col("GROUPS"), wide("SCIM ID"), wide("LAST LOGIN")];
    let row = |u: &User| {
        let id = crate::directory::codec::scim_id(u).unwrap_or_default();
        let member_of: Vec<String> = groups
            .iter()
            .filter(|g| g.spec.provider_ref == u.spec.provider_ref && g.spec.members.iter().any(|m| m.value == id))
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
    let empty = format!("No users in namespace {:?}. They appear once an identity provider pushes them over SCIM or people log in.", kube.namespace);
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
    let columns = [col("NAME"), col("MEMBERS"), col("PROVIDER"), wide("SCIM ID")];
    let row = |g: &Group| {
        vec![
            g.spec.display_name.clone(),
            g.spec.members.len().to_string(),
            g.spec.provider_ref.name.clone(),
            crate::directory::codec::scim_id(g).unwrap_or_default().to_string(),
        ]
    };
    let empty = format!("No groups in namespace {:?}.", kube.namespace);
    output::print_list(&list, groups, &columns, row, &empty)
}

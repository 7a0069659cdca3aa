//! `infra users list` and `infra groups list`.

use clap::Subcommand;
use kube::api::ListParams;
use kube::Api;

use super::kube_client::{explain, KubeArgs};
use super::output::{self, Format};
use crate::api::{Group, User};

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
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| vec![g.spec.display_name.clone(), g.spec.members.len().to_string(), g.spec.provider_ref.name.clone()])
            .collect();
        print!("{}", output::table(&["NAME", "MEMBERS", "PROVIDER"], &rows));
        return Ok(());
    }
    let groups: Vec<Group> = groups.into_iter().map(output::without_managed_fields).collect();
    print!("{}", output::structured(output, &groups)?);
    Ok(())
}

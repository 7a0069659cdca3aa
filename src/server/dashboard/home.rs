//! `/`: a signed-in person's own page (who they are, their groups and grants, how to use
//! kubectl), which needs no rights at all; without a session, the sign-in page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use kube::Api;

use super::views::{Home, grant_row, grants_of};
use super::{DashState, page};
use crate::api::Grant;

pub async fn show(State(s): State<Arc<DashState>>, headers: HeaderMap) -> Response {
    let ctx = match s.signed_in(&headers).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    // Read with the server's account: a person may always see the grants that name them, even
    // without the right to list grants.
    let grants: Api<Grant> = s.kube.api();
    let grants = match grants.list(&Default::default()).await {
        Ok(list) => Some(grants_of(&list.items, &ctx.who.provider, &ctx.who.user, &ctx.who.groups).into_iter().map(grant_row).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "listing grants for a person's own page failed");
            None
        }
    };
    let external_url = s.login.args.external_url.as_str().trim_end_matches('/').to_string();
    page(&Home { chrome: s.chrome(&ctx, "home").await, who: &ctx.who, kube_user: ctx.person.username.clone(), grants, external_url })
}

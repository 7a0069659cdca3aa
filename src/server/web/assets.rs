//! The dashboard's stylesheet and script, embedded in the binary (no CDN) and served under names
//! that include a digest of their content, so that browsers may keep them for a year and still
//! fetch the new ones after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../../assets/infra.css");
const JS: &str = include_str!("../../../assets/infra.js");

/// The paths (relative to the external URL's path) the layout links to.
pub struct Assets {
    pub css: String,
    pub js: String,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets { css: path("infra", CSS, "css"), js: path("infra", JS, "js") });

fn path(stem: &str, content: &str, ext: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("assets/{stem}-{short}.{ext}")
}

impl Assets {
    pub fn get() -> &'static Assets {
        &ASSETS
    }
}

/// `GET /assets/{file}`: the stylesheet or the script, by their current names only.
pub async fn serve(Path(file): Path<String>) -> Response {
    let assets = Assets::get();
    let (body, kind) = if assets.css.strip_prefix("assets/") == Some(file.as_str()) {
        (CSS, "text/css; charset=utf-8")
    } else if assets.js.strip_prefix("assets/") == Some(file.as_str()) {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_are_served_by_their_digest_names_with_a_long_cache() {
        let a = Assets::get();
        assert!(a.css.starts_with("assets/infra-") && a.css.ends_with(".css"), "{}", a.css);
        let css = serve(Path(a.css["assets/".len()..].to_string())).await;
        assert_eq!(css.status(), StatusCode::OK);
        assert_eq!(css.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
        let js = serve(Path(a.js["assets/".len()..].to_string())).await;
        assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert_eq!(serve(Path("infra-000000000000.css".into())).await.status(), StatusCode::NOT_FOUND);
    }
}

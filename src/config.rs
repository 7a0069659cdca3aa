//! Operator configuration shared by the controller and server roles.

use std::path::PathBuf;

use clap::Args;
use url::Url;

/// Settings both roles need. Flags have environment-variable twins so that a Helm chart can set
/// them either way.
#[derive(Args, Clone, Debug)]
pub struct OperatorArgs {
    /// Namespace the operator serves: its IdentityProviders, ScimKeys, Users, Groups and Secrets.
    #[arg(long, env = "INFRA_NAMESPACE", default_value = "infra-system")]
    pub namespace: String,

    /// The URL people and identity providers use to reach the server, such as
    /// `https://infra.example.com`. Redirect URIs and the SCIM URL are derived from it.
    #[arg(long, env = "INFRA_EXTERNAL_URL", value_parser = parse_external_url)]
    pub external_url: Url,

    /// PEM file of extra CA certificates to trust when talking to identity providers (for
    /// providers behind a private CA).
    #[arg(long, env = "INFRA_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,
}

fn parse_external_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{raw:?} must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    Ok(url)
}

impl OperatorArgs {
    /// `<external URL>/<path>`, keeping any path prefix the external URL has (an Ingress may serve
    /// Infra below a path).
    pub fn external(&self, path: &str) -> String {
        format!("{}/{}", self.external_url.as_str().trim_end_matches('/'), path.trim_start_matches('/'))
    }

    pub fn login_callback_url(&self) -> String {
        self.external("login/callback")
    }

    pub fn scim_url(&self) -> String {
        self.external("api/scim/v2")
    }

    pub fn read_extra_ca(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.extra_ca_file {
            None => Ok(None),
            Some(path) => std::fs::read(path)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("reading --extra-ca-file {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> OperatorArgs {
        OperatorArgs { namespace: "ns".into(), external_url: parse_external_url(url).unwrap(), extra_ca_file: None }
    }

    #[test]
    fn derived_urls() {
        let a = args("https://infra.example.com");
        assert_eq!(a.login_callback_url(), "https://infra.example.com/login/callback");
        assert_eq!(a.scim_url(), "https://infra.example.com/api/scim/v2");
        let b = args("https://example.com/infra/");
        assert_eq!(b.scim_url(), "https://example.com/infra/api/scim/v2");
    }

    #[test]
    fn external_url_validation() {
        assert!(parse_external_url("infra.example.com").is_err());
        assert!(parse_external_url("ftp://infra.example.com").is_err());
        assert!(parse_external_url("https://infra.example.com?x").is_err());
        assert!(parse_external_url("http://127.0.0.1:8080").is_ok());
    }
}

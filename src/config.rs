//! Operator configuration shared by the controller and server roles.

use std::path::PathBuf;
use std::time::Duration;

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

    /// Loopback redirect URIs `infra login` may use, comma-separated. Each must also be a
    /// sign-in redirect URI of the application at the provider; the server refuses any other.
    #[arg(long, env = "INFRA_CLI_REDIRECT_URIS", value_delimiter = ',', default_value = crate::oidc::CLI_REDIRECT_URI, value_parser = parse_loopback_uri)]
    pub cli_redirect_uris: Vec<String>,

    /// Refuse identity provider URLs (and the endpoints their discovery documents name) that are
    /// or resolve to private, loopback, link-local or other non-public addresses. Provider URLs
    /// are fetched from inside the cluster, so without this anyone who may edit an
    /// IdentityProvider can make the operator connect to internal services. Off by default for
    /// local development; the Helm chart turns it on.
    #[arg(long, env = "INFRA_DENY_INTERNAL_PROVIDER_ADDRESSES", default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub deny_internal_provider_addresses: bool,

    #[command(flatten)]
    pub sessions: SessionArgs,
}

/// How long login sessions last. The server enforces the lifetimes; the controller re-checks
/// sessions with the provider.
#[derive(Args, Clone, Debug)]
pub struct SessionArgs {
    /// Absolute lifetime of a login session, such as 12h or 7d.
    #[arg(long = "session-lifetime", id = "session_lifetime", value_name = "DURATION", env = "INFRA_SESSION_LIFETIME", default_value = "12h", value_parser = parse_span)]
    pub lifetime: Duration,

    /// A session not used for this long ends.
    #[arg(long = "session-idle-timeout", id = "session_idle_timeout", value_name = "DURATION", env = "INFRA_SESSION_IDLE_TIMEOUT", default_value = "2h", value_parser = parse_span)]
    pub idle_timeout: Duration,

    /// How often a session is re-checked with the provider by redeeming its refresh token.
    #[arg(long = "session-recheck-interval", id = "session_recheck_interval", value_name = "DURATION", env = "INFRA_SESSION_RECHECK_INTERVAL", default_value = "1h", value_parser = parse_span)]
    pub recheck_interval: Duration,
}

impl From<&SessionArgs> for crate::session::Policy {
    fn from(a: &SessionArgs) -> Self {
        Self { lifetime: a.lifetime, idle_timeout: a.idle_timeout, recheck_interval: a.recheck_interval }
    }
}

/// A positive duration flag such as `30s`, `15m`, `12h` or `7d` (the syntax of
/// `ScimKey.spec.expiresAfter`), for every binary's clap parsers.
pub fn parse_span(raw: &str) -> Result<Duration, String> {
    crate::api::scim_key::parse_duration(raw)
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| format!("{raw:?} is not a duration such as 30s, 15m, 12h or 7d"))
}

/// `http://localhost:<port>` or `http://127.0.0.1:<port>` with no path: what RFC 8252 calls a
/// loopback redirect URI, and all that `infra login` ever listens on.
fn parse_loopback_uri(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.scheme() != "http" || !loopback || url.port().is_none() || !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(format!("{raw:?} must be a loopback URI such as http://localhost:8301"));
    }
    Ok(raw.trim_end_matches('/').to_string())
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

    /// Whether browsers get session cookies without the `Secure` attribute: only when Infra is
    /// served over plain HTTP on loopback (local development), where they could not be sent back.
    pub fn insecure_cookies(&self) -> bool {
        self.external_url.scheme() == "http"
            && self.external_url.host().is_some_and(|h| match h {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            })
    }

    pub fn login_callback_url(&self) -> String {
        self.external("login/callback")
    }

    pub fn scim_url(&self) -> String {
        self.external("api/scim/v2")
    }

    /// The HTTP client for identity providers, with the extra CA and the address policy.
    pub fn provider_http(&self) -> anyhow::Result<crate::oidc::ProviderHttp> {
        let extra_ca = self.read_extra_ca()?;
        let policy = crate::oidc::AddressPolicy { deny_internal: self.deny_internal_provider_addresses };
        Ok(crate::oidc::ProviderHttp::new(&extra_ca.iter().map(Vec::as_slice).collect::<Vec<_>>(), policy)?)
    }

    pub fn read_extra_ca(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.extra_ca_file {
            None => Ok(None),
            Some(path) => std::fs::read(path).map(Some).map_err(|e| anyhow::anyhow!("reading --extra-ca-file {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> OperatorArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: OperatorArgs,
        }
        Cli::parse_from(["test", "--namespace", "ns", "--external-url", url]).args
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
    fn defaults_and_loopback_uris() {
        let a = args("https://infra.example.com");
        assert_eq!(a.cli_redirect_uris, vec!["http://localhost:8301".to_string()]);
        assert_eq!(a.sessions.recheck_interval, Duration::from_secs(3600));
        assert_eq!(parse_loopback_uri("http://localhost:18301/").unwrap(), "http://localhost:18301");
        for bad in ["https://localhost:8301", "http://evil.example:8301", "http://localhost", "http://localhost:8301/cb"] {
            assert!(parse_loopback_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_url_validation() {
        assert!(parse_external_url("infra.example.com").is_err());
        assert!(parse_external_url("ftp://infra.example.com").is_err());
        assert!(parse_external_url("https://infra.example.com?x").is_err());
        assert!(parse_external_url("http://127.0.0.1:8080").is_ok());
    }
}

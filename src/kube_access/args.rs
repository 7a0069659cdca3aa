//! Flags of Kubernetes access. Both roles take [`TokenArgs`] (the controller keeps retired keys
//! published as long as a token lives); the server also takes [`IssuerArgs`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

/// The longest token lifetime accepted: tokens are short-lived by design; revocation relies on it
/// where the authorization webhook is not configured.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Args, Clone, Debug)]
pub struct TokenArgs {
    /// Lifetime of the tokens the server mints for kubectl (never past the session's end).
    #[arg(long = "kube-token-lifetime", id = "kube_token_lifetime", value_name = "DURATION", env = "INFRA_KUBE_TOKEN_LIFETIME", default_value = "5m", value_parser = parse_lifetime)]
    pub token_lifetime: Duration,
}

#[derive(Args, Clone, Debug)]
pub struct IssuerArgs {
    #[command(flatten)]
    pub tokens: TokenArgs,

    /// This cluster's name: the audience of its tokens and the kubeconfig context `infra:<name>`.
    #[arg(long, env = "INFRA_CLUSTER_NAME", default_value = "kubernetes", value_parser = parse_cluster_name)]
    pub cluster_name: String,

    /// The issuer URL the API server trusts (https). Defaults to --external-url.
    #[arg(long, env = "INFRA_KUBE_ISSUER_URL", value_parser = parse_https)]
    pub kube_issuer_url: Option<Url>,

    /// The API server's URL as people reach it, for the kubeconfig `infra login` writes.
    #[arg(long, env = "INFRA_KUBE_API_SERVER_URL", value_parser = parse_https)]
    pub kube_api_server_url: Option<Url>,

    /// PEM file of the CA of the API server's serving certificate, for that kubeconfig.
    #[arg(long, env = "INFRA_KUBE_API_SERVER_CA_FILE", conflicts_with = "kube_api_server_ca")]
    pub kube_api_server_ca_file: Option<PathBuf>,

    /// The same CA as PEM text (the chart's kubernetes.apiServerCA).
    #[arg(long, env = "INFRA_KUBE_API_SERVER_CA")]
    pub kube_api_server_ca: Option<String>,
}

impl IssuerArgs {
    /// The API server's CA (PEM), from the file or the flag.
    pub fn api_server_ca(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match (&self.kube_api_server_ca_file, &self.kube_api_server_ca) {
            (Some(f), _) => {
                Ok(Some(std::fs::read(f).map_err(|e| anyhow::anyhow!("reading --kube-api-server-ca-file {}: {e}", f.display()))?))
            }
            (None, Some(pem)) if !pem.trim().is_empty() => Ok(Some(pem.as_bytes().to_vec())),
            _ => Ok(None),
        }
    }

    /// The `iss` of tokens, without a trailing slash (the API server compares it exactly).
    pub fn issuer(&self, external_url: &Url) -> String {
        self.kube_issuer_url.as_ref().unwrap_or(external_url).as_str().trim_end_matches('/').to_string()
    }
}

fn parse_lifetime(raw: &str) -> Result<Duration, String> {
    let d = crate::config::parse_span(raw)?;
    if d < Duration::from_secs(60) || d > MAX_TOKEN_LIFETIME {
        return Err(format!("{raw:?} must be between 1m and 1h"));
    }
    Ok(d)
}

/// A DNS label: it becomes a JWT audience and part of a kubeconfig context name.
pub fn parse_cluster_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if ok { Ok(raw.to_string()) } else { Err(format!("{raw:?} must be a DNS label: lower-case letters, digits and '-', at most 63")) }
}

fn parse_https(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if url.scheme() != "https" || url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must be an https URL with a host and no query"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert!(parse_lifetime("5m").is_ok());
        assert!(parse_lifetime("30s").is_err());
        assert!(parse_lifetime("2h").is_err());
        assert!(parse_cluster_name("prod-eu1").is_ok());
        for bad in ["", "Prod", "a:b", "-a", &"a".repeat(64)] {
            assert!(parse_cluster_name(bad).is_err(), "{bad}");
        }
        assert!(parse_https("http://infra.example.com").is_err());
        let a = IssuerArgs {
            tokens: TokenArgs { token_lifetime: Duration::from_secs(300) },
            cluster_name: "k".into(),
            kube_issuer_url: None,
            kube_api_server_url: None,
            kube_api_server_ca_file: None,
            kube_api_server_ca: None,
        };
        assert_eq!(a.issuer(&Url::parse("https://infra.example.com/").unwrap()), "https://infra.example.com");
    }
}

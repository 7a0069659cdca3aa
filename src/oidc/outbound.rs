//! Every request to a provider's URLs goes through [`ProviderHttp`]: those URLs come from an
//! IdentityProvider's spec and from the provider's discovery document, so whoever may edit a
//! provider chooses where the operator connects, from inside the cluster. Hence:
//! - responses are read up to [`MAX_RESPONSE_BYTES`] (a 150 MB "discovery document" must not take
//!   the operator past its memory limit);
//! - redirects are never followed;
//! - with [`AddressPolicy::deny_internal`], private, loopback, link-local and other non-public
//!   addresses are refused, both as literal hosts and as what a name resolves to;
//! - failures are described coarsely ("unreachable", "not trusted"), so that conditions do not
//!   become a port scanner of internal addresses. The full error goes to the operator's log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{HttpClientError, describe_error, reqwest};

/// The most any provider response (discovery, key set, token, userinfo) may be. Real ones are a
/// few kilobytes; Okta's discovery document is about 5 KB and a key set with a dozen keys 10 KB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Idle connections to a provider are reused for at most this long. A server closes a keep-alive
/// connection it has not used for a while (Node's default is 5 s), and a request sent on it as it
/// closes fails with "peer closed connection": the suite saw a Ready provider turn Failed
/// (Unreachable) for one reconcile that way. Staying under such timeouts avoids most of those
/// races; [`ProviderHttp::get_json`] retries the rest.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Which addresses the operator may connect to for providers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Refuse every address that is not globally routable (see [`is_internal`]).
    pub deny_internal: bool,
}

/// An HTTP client for identity providers, bounded as the module says.
#[derive(Clone, Debug)]
pub struct ProviderHttp {
    client: reqwest::Client,
    policy: AddressPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(
        "{0} is not a public address, and this operator refuses private, loopback and link-local provider addresses (--deny-internal-provider-addresses)"
    )]
    Refused(String),
    #[error("{0} is not a valid URL")]
    BadUrl(String),
    #[error("the provider's TLS certificate is not trusted; for a private CA, set spec.caBundle")]
    Untrusted,
    #[error("unreachable (no connection, or no answer in time)")]
    Unreachable,
    #[error("the response is larger than {} KiB, which no identity provider sends", MAX_RESPONSE_BYTES / 1024)]
    TooLarge,
}

impl ProviderHttp {
    /// Trusts the public roots plus `ca_bundles`.
    pub fn new(ca_bundles: &[&[u8]], policy: AddressPolicy) -> Result<Self, HttpClientError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .pool_idle_timeout(IDLE_TIMEOUT)
            .user_agent(concat!("infra-operator/", env!("CARGO_PKG_VERSION")));
        if policy.deny_internal {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        for pem in ca_bundles {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| HttpClientError::CaBundle(e.to_string()))?;
            if certs.is_empty() {
                return Err(HttpClientError::CaBundle("no certificates found".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| HttpClientError::Build(e.to_string()))?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// A GET with `Accept: application/json` (and a bearer token for userinfo). Any status is
    /// returned; the body is capped. A GET is idempotent, so one that failed before an answer
    /// began (a reused connection the provider had just closed) is sent once more; a timeout is
    /// not retried, so a provider that does not answer still fails within the timeout.
    pub async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<(reqwest::StatusCode, Vec<u8>), OutboundError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| OutboundError::BadUrl(url.to_string()))?;
        self.check_host(&parsed)?;
        let send = || {
            let request = self.client.get(parsed.clone()).header("accept", "application/json");
            match bearer {
                Some(token) => request.bearer_auth(token).send(),
                None => request.send(),
            }
        };
        let response = match send().await {
            Err(e) if !e.is_timeout() => {
                tracing::debug!(%url, error = %describe_error(&e), "request to an identity provider failed; retrying once");
                send().await
            }
            first => first,
        };
        let response = response.map_err(|e| classify(url, &e))?;
        let status = response.status();
        Ok((status, read_capped(url, response).await?))
    }

    /// Literal IP hosts never reach the resolver, so they are checked here.
    fn check_host(&self, url: &reqwest::Url) -> Result<(), OutboundError> {
        if !self.policy.deny_internal {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost") => {
                return Err(OutboundError::Refused(d.to_string()));
            }
            _ => return Ok(()),
        };
        if is_internal(ip) { Err(OutboundError::Refused(ip.to_string())) } else { Ok(()) }
    }
}

/// Reads at most [`MAX_RESPONSE_BYTES`], refusing early when the length is announced.
async fn read_capped(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, OutboundError> {
    if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        tracing::warn!(%url, length = response.content_length(), "provider response refused: too large");
        return Err(OutboundError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            tracing::warn!(%url, "provider response refused: too large");
            return Err(OutboundError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The coarse description of a failed request; the detail is logged, not shown.
fn classify(url: &str, err: &reqwest::Error) -> OutboundError {
    let detail = describe_error(err);
    tracing::warn!(%url, error = %detail, "request to an identity provider failed");
    if detail.contains(PublicOnly::REFUSED) {
        return OutboundError::Refused(reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(String::from)).unwrap_or_default());
    }
    let tls = ["certificate", "UnknownIssuer", "tls handshake", "InvalidCertificate"];
    if tls.iter().any(|t| detail.to_ascii_lowercase().contains(&t.to_ascii_lowercase())) {
        OutboundError::Untrusted
    } else {
        OutboundError::Unreachable
    }
}

/// The token endpoint, through openidconnect: same checks and cap as [`ProviderHttp::get_json`].
impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = OutboundError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, OutboundError>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let url = request.uri().to_string();
            let request: reqwest::Request = request.try_into().map_err(|_| OutboundError::BadUrl(url.clone()))?;
            self.check_host(request.url())?;
            let response = self.client.execute(request).await.map_err(|e| classify(&url, &e))?;
            let mut builder = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = read_capped(&url, response).await?;
            builder.body(body).map_err(|_| OutboundError::BadUrl(url))
        })
    }
}

/// A resolver that drops every non-public address, and fails when nothing public is left.
struct PublicOnly;

impl PublicOnly {
    const REFUSED: &'static str = "resolves only to non-public addresses";
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} {}", Self::REFUSED).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is not a globally routable unicast address: loopback, private (RFC 1918, unique
/// local), link-local (including cloud metadata at 169.254.169.254), shared (RFC 6598), unspecified,
/// broadcast, multicast, documentation and benchmarking ranges, and IPv4 embedded in IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2002) // 6to4 (embeds IPv4)
                || is_v4_compatible(v6)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// `::a.b.c.d` (deprecated IPv4-compatible addresses).
fn is_v4_compatible(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    s[..6].iter().all(|&x| x == 0) && !ip.is_unspecified() && !ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one request head (these requests have no body); false when the peer closed first.
    async fn read_head(conn: &mut tokio::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    #[tokio::test]
    async fn a_get_on_a_connection_the_provider_just_closed_is_sent_again() {
        // The provider answers the first request and keeps the connection, then closes it when the
        // second request arrives on it (the race with its keep-alive timeout); a new connection
        // is answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/openid-configuration", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
            let (mut first, _) = listener.accept().await.unwrap();
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert!(read_head(&mut first).await);
            first.write_all(ok).await.unwrap();
            assert!(read_head(&mut first).await, "the second request reuses the connection");
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert!(read_head(&mut second).await);
            second.write_all(ok).await.unwrap();
        });
        let http = ProviderHttp::new(&[], AddressPolicy::default()).unwrap();
        for _ in 0..2 {
            let (status, body) = http.get_json(&url, None).await.unwrap();
            assert_eq!((status.as_u16(), body.as_slice()), (200, &b"{}"[..]));
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_connecting() {
        let deny = ProviderHttp::new(&[], AddressPolicy { deny_internal: true }).unwrap();
        for url in [
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
            "http://169.254.169.254/latest",
            "https://localhost:8443/",
            "https://a.localhost/",
        ] {
            assert!(matches!(deny.check_host(&url.parse().unwrap()), Err(OutboundError::Refused(_))), "{url}");
        }
        assert!(deny.check_host(&"https://example.okta.com/".parse().unwrap()).is_ok());
        let allow = ProviderHttp::new(&[], AddressPolicy::default()).unwrap();
        assert!(allow.check_host(&"https://127.0.0.1/x".parse().unwrap()).is_ok());
    }

    /// A local server that announces a huge body, and one that streams one without announcing it.
    async fn serve(announce: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let head = if announce {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", 150 * 1024 * 1024)
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_string()
                };
                let _ = sock.write_all(head.as_bytes()).await;
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..(4 * MAX_RESPONSE_BYTES / chunk.len()) {
                    if sock.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        });
        format!("http://{addr}/.well-known/openid-configuration")
    }

    #[tokio::test]
    async fn responses_are_capped() {
        let http = ProviderHttp::new(&[], AddressPolicy::default()).unwrap();
        for announce in [true, false] {
            let url = serve(announce).await;
            assert!(matches!(http.get_json(&url, None).await, Err(OutboundError::TooLarge)), "announce={announce}");
        }
    }

    #[tokio::test]
    async fn refused_and_unreachable_say_nothing_about_the_port() {
        let deny = ProviderHttp::new(&[], AddressPolicy { deny_internal: true }).unwrap();
        let err = deny.get_json("http://127.0.0.1:9/", None).await.unwrap_err();
        assert!(matches!(err, OutboundError::Refused(_)), "{err}");
        let allow = ProviderHttp::new(&[], AddressPolicy::default()).unwrap();
        // Port 9 (discard) is closed here: "connection refused" must not show.
        let err = allow.get_json("http://127.0.0.1:9/", None).await.unwrap_err();
        assert_eq!(err.to_string(), OutboundError::Unreachable.to_string());
    }
}

//! The server's own HTTPS listener. The API server fetches the issuer's discovery document and
//! key set over HTTPS only, so where no Ingress terminates TLS the server does, with the same
//! routes as on plain HTTP. The certificate and key are read again whenever either file changes
//! (cert-manager renews them in place), checked at each handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::ConnectInfo;
use clap::Args;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tower::ServiceExt;

#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// Serve HTTPS on this address too (the same routes as --listen-addr), with --tls-cert-file
    /// and --tls-key-file. For the issuer URL the API server fetches, where no Ingress serves it.
    #[arg(long, env = "INFRA_TLS_LISTEN_ADDR", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_listen_addr: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS, read again when it changes.
    #[arg(long, env = "INFRA_TLS_CERT_FILE", requires = "tls_listen_addr")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS, read again when it changes.
    #[arg(long, env = "INFRA_TLS_KEY_FILE", requires = "tls_listen_addr")]
    pub tls_key_file: Option<PathBuf>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| anyhow::anyhow!("{} is not a PEM private key: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// The current certificate, reloaded when a file's modification time changes. A file that cannot
/// be read (mid-renewal) keeps the previous certificate in use.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let stamps = (modified(&self.cert), modified(&self.key));
        let mut current = self.current.lock().expect("certificate lock");
        if (current.0, current.1) != stamps {
            match load(&self.cert, &self.key) {
                Ok(k) => {
                    tracing::info!(cert = %self.cert.display(), "loaded the renewed TLS certificate");
                    *current = (stamps.0, stamps.1, k);
                }
                Err(e) => tracing::warn!(error = %e, "could not load the changed TLS certificate; serving the previous one"),
            }
        }
        Some(current.2.clone())
    }
}

/// Small answers (the webhook's, a token) leave at once instead of waiting for the peer's ACK
/// of the last segment (Nagle's algorithm), which can hold a response back for tens of
/// milliseconds when it is written in more than one piece (TLS records, headers and body).
pub fn nodelay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Serves `app` over HTTPS on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, cert: &Path, key: &Path, app: Router, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let stamps = (modified(cert), modified(key));
    let resolver = Reloading { cert: cert.into(), key: key.into(), current: Mutex::new((stamps.0, stamps.1, load(cert, key)?)) };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving HTTPS");
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a TLS connection failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|v| *v) => return Ok(()),
        };
        nodelay(&tcp);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // What into_make_service_with_connect_info gives the plain listener's requests.
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
}

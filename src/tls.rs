//! TLS: the serving certificate (from PEM files or generated for development),
//! the rustls configuration (TLS 1.2+, ALPN h2 and http/1.1, ring provider),
//! and the accept loop that serves the admission router over it with a
//! graceful drain.
//!
//! The certificate sits behind an [`ArcSwap`] in [`CertResolver`], so a new
//! pair can be swapped in without a restart: handshakes in progress keep the
//! pair they started with, new ones get the new pair.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors setting up TLS. Reported before the port is bound.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate PEM holds no certificate.
    #[error("{0}: no CERTIFICATE block found")]
    NoCertificate(String),
    /// The key PEM holds no usable private key.
    #[error("{0}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)")]
    NoKey(String),
    /// The key does not fit the certificate, or its algorithm is unsupported.
    #[error("{path}: {message}")]
    BadKey {
        /// The key file.
        path: String,
        /// What rustls said.
        message: String,
    },
    /// Only one of --tls-cert and --tls-key was given.
    #[error("--tls-cert and --tls-key go together: give both, or neither to generate a development certificate")]
    HalfPair,
    /// Generating a certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Writing generated files failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a certificate chain and private key from PEM text.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    label: &str,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(label.to_string()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey(label.to_string()))?;
    let provider = ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::BadKey {
        path: label.to_string(),
        message: e.to_string(),
    })?;
    Ok(ck)
}

/// Reads a certificate and key pair from PEM files.
pub fn load_pair(cert: &std::path::Path, key: &std::path::Path) -> Result<CertifiedKey, TlsError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    certified_key(
        &read(cert)?,
        &read(key)?,
        &format!("{} + {}", cert.display(), key.display()),
    )
}

/// Serves the current certificate; [`CertResolver::swap`] replaces it.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Replaces the served certificate.
    pub fn swap(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A development CA and a serving certificate it signed.
#[derive(Debug, Clone)]
pub struct DevCertificates {
    /// The CA certificate (what a webhook configuration's caBundle holds).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

/// Generates a CA and a serving certificate for `sans` (DNS names or IPs).
pub fn generate_dev(sans: &[String]) -> Result<DevCertificates, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "regent development CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(sans.to_vec())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        sans.first()
            .cloned()
            .unwrap_or_else(|| "regent".to_string()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(DevCertificates {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl DevCertificates {
    /// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> Result<(), TlsError> {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| TlsError::Write {
                path: path.display().to_string(),
                source,
            })
        };
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        write("ca.crt", &self.ca_pem)?;
        write("tls.crt", &self.cert_pem)?;
        write("tls.key", &self.key_pem)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join("tls.key");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| TlsError::Write {
                    path: path.display().to_string(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true, then
/// stops accepting and lets open connections finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing remaining connections"),
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    // A closed channel also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_pair_loads() {
        let dev = generate_dev(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        certified_key(dev.cert_pem.as_bytes(), dev.key_pem.as_bytes(), "dev").unwrap();
    }

    #[test]
    fn mismatched_or_missing_parts_are_errors() {
        let a = generate_dev(&["a".into()]).unwrap();
        let b = generate_dev(&["b".into()]).unwrap();
        assert!(matches!(
            certified_key(a.cert_pem.as_bytes(), b.key_pem.as_bytes(), "x"),
            Err(TlsError::BadKey { .. })
        ));
        assert!(matches!(
            certified_key(b"", a.key_pem.as_bytes(), "x"),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(matches!(
            certified_key(a.cert_pem.as_bytes(), b"junk", "x"),
            Err(TlsError::NoKey(_))
        ));
    }
}

//! TLS: the serving certificate (from PEM files or generated for development),
//! the optional client certificate check of the admission port
//! (`--client-ca`, `--client-cn`), and the rustls configuration (TLS 1.2+,
//! ALPN h2 and http/1.1, ring provider). The accept loop that serves over it
//! is [`crate::serve::connections`].
//!
//! The certificate sits behind an [`ArcSwap`] in [`CertResolver`], and the
//! client CA behind one in [`ClientVerifier`], so either can be swapped in
//! without a restart: handshakes in progress keep what they started with,
//! new ones get the new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

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
    /// The client CA file holds no usable CA certificate.
    #[error("{path}: no usable CA certificate for client authentication: {message}")]
    ClientCa {
        /// The CA file.
        path: String,
        /// What was wrong.
        message: String,
    },
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

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1;
/// with `client`, a client certificate that it accepts is required.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client: Option<Arc<ClientVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match client {
        Some(verifier) => builder
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver),
        None => builder.with_no_client_auth().with_cert_resolver(resolver),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client certificate check of the admission port: a certificate
/// signed by the CA in `--client-ca` is required, and with `--client-cn` its
/// subject common name (or one of its DNS names) must be that name. The CA
/// can be swapped without a restart ([`ClientVerifier::reload`]).
#[derive(Debug)]
pub struct ClientVerifier {
    ca: PathBuf,
    name: Option<String>,
    current: ArcSwap<WebPkiHolder>,
}

#[derive(Debug)]
struct WebPkiHolder(Arc<dyn ClientCertVerifier>);

impl ClientVerifier {
    /// Loads the CA bundle at `ca`; `name` pins the client's name.
    pub fn new(ca: &Path, name: Option<String>) -> Result<Arc<Self>, TlsError> {
        let verifier = webpki_verifier(ca)?;
        Ok(Arc::new(Self {
            ca: ca.to_path_buf(),
            name,
            current: ArcSwap::from_pointee(WebPkiHolder(verifier)),
        }))
    }

    /// The CA file.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// Reads the CA file again and swaps it in; on error the current CA stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let verifier = webpki_verifier(&self.ca)?;
        self.current.store(Arc::new(WebPkiHolder(verifier)));
        Ok(())
    }

    fn inner(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.load().0.clone()
    }
}

fn webpki_verifier(ca: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let pem = std::fs::read(ca).map_err(|source| TlsError::Read {
        path: ca.display().to_string(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
        roots.add(cert).map_err(|e| TlsError::ClientCa {
            path: ca.display().to_string(),
            message: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::ClientCa {
            path: ca.display().to_string(),
            message: "no CERTIFICATE block found".to_string(),
        });
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(ring::default_provider()))
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: ca.display().to_string(),
            message: e.to_string(),
        })
}

/// Whether a DER certificate's subject common name, or one of its DNS
/// names, is `name`.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    names
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client sends its certificate whatever the server's
        // CA list says (Go's TLS client does when the list is empty), and
        // the hint list would otherwise have to outlive a CA swap.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner()
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(name) = &self.name {
            if !certificate_names(end_entity).iter().any(|n| n == name) {
                return Err(rustls::Error::General(format!(
                    "client certificate is not for {name:?} (--client-cn)"
                )));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

/// A development CA and a certificate it signed.
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
    generate_with_usage(sans, rcgen::ExtendedKeyUsagePurpose::ServerAuth)
}

/// Generates a CA and a client certificate whose common name is `name`
/// (for `--client-ca` set-ups and tests).
pub fn generate_client(name: &str) -> Result<DevCertificates, TlsError> {
    generate_with_usage(
        &[name.to_string()],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    )
}

fn generate_with_usage(
    sans: &[String],
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> Result<DevCertificates, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
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
    leaf.extended_key_usages = vec![usage];
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

#[cfg(test)]
mod client_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_certificate_names_are_read() {
        let c = generate_client("kube-apiserver").unwrap();
        let der = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        assert!(certificate_names(&der).contains(&"kube-apiserver".to_string()));
        assert!(certificate_names(b"not a certificate").is_empty());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "junk").unwrap();
        assert!(matches!(
            ClientVerifier::new(&path, None),
            Err(TlsError::ClientCa { .. })
        ));
    }
}

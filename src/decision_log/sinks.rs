//! Where decision log records go: standard output, a file rotated by size,
//! or an HTTP(S) endpoint (batched JSON lines, gzip, retries with backoff
//! and jitter, a bearer token re-read when its file changes). Each sink
//! writes a batch of encoded records (one JSON object per line) at a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing a file or a stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP request failed or was refused.
    #[error("{0}")]
    Http(String),
    /// A sink that cannot be built from its flags.
    #[error("{0}")]
    Config(String),
}

/// A sink as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// `stdout`.
    Stdout,
    /// `file:PATH`.
    File(PathBuf),
    /// `http://...` or `https://...`.
    Http(String),
}

impl SinkSpec {
    /// Parses `stdout`, `file:PATH` or an `http(s)://` URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "stdout" {
            Ok(Self::Stdout)
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path (file:/var/log/regent/decisions.log)".into());
            }
            Ok(Self::File(PathBuf::from(path)))
        } else if s.starts_with("http://") || s.starts_with("https://") {
            s.parse::<hyper::Uri>().map_err(|e| format!("{s}: {e}"))?;
            Ok(Self::Http(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a decision log sink: stdout, file:PATH, http://URL or https://URL"
            ))
        }
    }

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::File(_) => "file",
            Self::Http(_) => "http",
        }
    }
}

/// A file rotated by size: `PATH` is written; when a batch would take it
/// past `max_size`, it becomes `PATH.1` (and `PATH.1` `PATH.2`, ...), and at
/// most `max_files` files are kept, `PATH` included.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
    file: Option<std::fs::File>,
    size: u64,
}

impl FileSink {
    /// A sink appending to `path`.
    pub fn new(path: PathBuf, max_size: u64, max_files: usize) -> Self {
        Self {
            path,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            file: None,
            size: 0,
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        // The oldest kept is PATH.(max_files - 1); older ones go.
        let _ = std::fs::remove_file(self.rotated(self.max_files - 1));
        for n in (1..self.max_files.saturating_sub(1)).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        if self.max_files > 1 {
            if self.path.exists() {
                std::fs::rename(&self.path, self.rotated(1))?;
            }
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.size = 0;
        Ok(())
    }

    fn open(&mut self) -> std::io::Result<&mut std::fs::File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the decision log file is not open"))
    }

    /// Appends a batch, rotating whenever the next record would take the
    /// file past its size (a record is never split; one larger than the
    /// size gets a file of its own).
    pub fn write(&mut self, batch: &[Bytes]) -> std::io::Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        self.open()?;
        for record in batch {
            let len = record.len() as u64;
            if self.size + buf.len() as u64 > 0
                && self.size + buf.len() as u64 + len > self.max_size
            {
                self.append(&buf)?;
                buf.clear();
                if self.size > 0 {
                    self.rotate()?;
                    self.open()?;
                }
            }
            buf.extend_from_slice(record);
        }
        self.append(&buf)
    }

    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let f = self.open()?;
        f.write_all(buf)?;
        f.flush()?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

/// A batch as one body: its records joined, gzip-compressed when asked.
pub fn encode_body(batch: &[Bytes], gzip: bool) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(batch.iter().map(Bytes::len).sum());
    for b in batch {
        body.extend_from_slice(b);
    }
    if !gzip {
        return Ok(body);
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(&body)?;
    enc.finish()
}

/// What an HTTP sink is configured with.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Each request's time limit.
    pub timeout: Duration,
    /// Attempts per batch (the first included) before it is dropped.
    pub attempts: u32,
    /// First backoff (doubled per attempt, with jitter, up to 30 s).
    pub backoff: Duration,
    /// A CA to trust instead of the system roots.
    pub ca: Option<PathBuf>,
    /// A file holding a bearer token (re-read when it changes).
    pub token_file: Option<PathBuf>,
    /// Compress request bodies.
    pub gzip: bool,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Batched JSON-lines POSTs.
pub struct HttpSink {
    url: hyper::Uri,
    client: HttpsClient,
    options: HttpOptions,
    token: Option<(SystemTime, String)>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A sink posting to `url`.
    pub fn new(url: &str, options: HttpOptions) -> Result<Self, SinkError> {
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| SinkError::Config(format!("{url}: {e}")))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config_with =
            |roots: rustls::RootCertStore| -> Result<rustls::ClientConfig, SinkError> {
                Ok(
                    rustls::ClientConfig::builder_with_provider(provider.clone())
                        .with_safe_default_protocol_versions()
                        .map_err(|e| SinkError::Config(e.to_string()))?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                )
            };
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &options.ca {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| SinkError::Config(format!("{}: {e}", ca.display())))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pki_certs(&pem)
                    .map_err(|e| SinkError::Config(format!("{}: {e}", ca.display())))?
                {
                    roots
                        .add(cert)
                        .map_err(|e| SinkError::Config(format!("{}: {e}", ca.display())))?;
                }
                builder.with_tls_config(config_with(roots)?)
            }
            None => match hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider.clone())
            {
                Ok(b) => b,
                // No system roots: fine for http://; https:// needs --decision-log-ca.
                Err(_) if url.scheme_str() == Some("http") => {
                    builder.with_tls_config(config_with(rustls::RootCertStore::empty())?)
                }
                Err(e) => {
                    return Err(SinkError::Config(format!(
                        "{url}: no system CA certificates ({e}); give --decision-log-ca"
                    )))
                }
            },
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            url,
            client,
            options,
            token: None,
        })
    }

    /// The bearer token, re-read when its file changed.
    fn token(&mut self) -> Option<String> {
        let path = self.options.token_file.as_ref()?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        match (&self.token, modified) {
            (Some((seen, token)), Some(m)) if *seen == m => Some(token.clone()),
            (_, Some(m)) => {
                let token = std::fs::read_to_string(path).ok()?.trim().to_string();
                self.token = Some((m, token.clone()));
                Some(token)
            }
            (Some((_, token)), None) => Some(token.clone()),
            (None, None) => None,
        }
    }

    /// Whether bodies are gzipped ([`encode_body`] builds them).
    pub fn gzip(&self) -> bool {
        self.options.gzip
    }

    /// Posts a batch's body ([`encode_body`]), retrying with backoff and
    /// jitter; an error after the last attempt.
    pub async fn send(&mut self, body: Bytes) -> Result<(), SinkError> {
        let mut delay = self.options.backoff;
        let mut last = String::new();
        for attempt in 1..=self.options.attempts.max(1) {
            match self.post(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if attempt < self.options.attempts {
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        Err(SinkError::Http(last))
    }

    async fn post(&mut self, body: Bytes) -> Result<(), String> {
        let mut req = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
            .header(
                hyper::header::USER_AGENT,
                concat!("regent/", env!("CARGO_PKG_VERSION")),
            );
        if self.options.gzip {
            req = req.header(hyper::header::CONTENT_ENCODING, "gzip");
        }
        if let Some(token) = self.token() {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(self.options.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {:?}", self.options.timeout))?
            .map_err(|e| format!("{e}"))?;
        let status = resp.status();
        // Read the answer so the connection can be reused.
        let _ = tokio::time::timeout(self.options.timeout, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// `d` give or take a quarter, so retries of many replicas spread out.
pub fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(d.as_nanos() as u64);
    let r = (h.finish() % 1000) as f64 / 1000.0; // 0..1
    d.mul_f64(0.75 + r * 0.5)
}

/// The certificates of a PEM file.
fn rustls_pki_certs(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// Whether a path exists (for the rotation test).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sinks_parse() {
        assert_eq!(SinkSpec::parse("stdout").unwrap(), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("file:/tmp/d.log").unwrap(),
            SinkSpec::File("/tmp/d.log".into())
        );
        assert!(SinkSpec::parse("https://logs.example.com/v1").is_ok());
        assert!(SinkSpec::parse("file:").is_err());
        assert!(SinkSpec::parse("syslog")
            .unwrap_err()
            .contains("stdout, file:PATH"));
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.log");
        let mut f = FileSink::new(path.clone(), 100, 3);
        let line = Bytes::from(format!("{}\n", "x".repeat(39)));
        for _ in 0..20 {
            f.write(std::slice::from_ref(&line)).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["d.log", "d.log.1", "d.log.2"]);
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 100, "{n}: {len}");
        }
        assert!(exists(&path));
    }
}

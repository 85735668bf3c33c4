//! Serving certificate rotation: the `--tls-cert`/`--tls-key` files are
//! watched (cert-manager and the kubelet replace a mounted Secret through
//! `..data` the same way as a ConfigMap), and a new pair is swapped into the
//! TLS resolver without a restart. Handshakes already under way finish with
//! the old pair. A pair that does not load (half-written, mismatched) is
//! rejected, counted and logged, and the old one stays. The client CA of
//! `--client-ca` is watched and swapped the same way.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::dir;
use crate::metrics::Metrics;
use crate::serve::tls::{self, CertResolver, ClientVerifier};

/// Starts watching the pair; `resolver` gets every good new pair.
pub fn spawn(
    cert: PathBuf,
    key: PathBuf,
    resolver: std::sync::Arc<CertResolver>,
    metrics: Metrics,
) -> Result<(), notify::Error> {
    let mut parents: Vec<PathBuf> = [&cert, &key]
        .iter()
        .map(|p| {
            p.parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        })
        .collect();
    parents.dedup();
    let watch = dir::watch(&parents)?;
    tokio::spawn(async move {
        // The whole watch moves in (see reload::dir::spawn).
        let mut watch = watch;
        let mut current = fingerprint(&cert, &key);
        while dir::debounced(&mut watch.events).await {
            let seen = fingerprint(&cert, &key);
            if seen == current {
                continue;
            }
            match tls::load_pair(&cert, &key) {
                Ok(pair) => {
                    resolver.swap(pair);
                    current = seen;
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                }
                Err(e) => {
                    metrics.tls_reloads.with_label_values(&["failure"]).inc();
                    tracing::error!(error = %e, "new serving certificate rejected; keeping the current one");
                }
            }
        }
    });
    Ok(())
}

/// Starts watching the client CA file of `--client-ca`; a CA bundle that
/// loads is swapped in, one that does not is counted and the old one stays.
pub fn spawn_client_ca(
    verifier: std::sync::Arc<ClientVerifier>,
    metrics: Metrics,
) -> Result<(), notify::Error> {
    let ca = verifier.ca_path().to_path_buf();
    let parent = ca
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let watch = dir::watch(&[parent])?;
    tokio::spawn(async move {
        let mut watch = watch;
        let mut current = std::fs::read(&ca).ok().map(|b| Sha256::digest(b).to_vec());
        while dir::debounced(&mut watch.events).await {
            let seen = std::fs::read(&ca).ok().map(|b| Sha256::digest(b).to_vec());
            if seen == current {
                continue;
            }
            match verifier.reload() {
                Ok(()) => {
                    current = seen;
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(ca = %ca.display(), "client CA reloaded");
                }
                Err(e) => {
                    metrics.tls_reloads.with_label_values(&["failure"]).inc();
                    tracing::error!(error = %e, "new client CA rejected; keeping the current one");
                }
            }
        }
    });
    Ok(())
}

fn fingerprint(cert: &PathBuf, key: &PathBuf) -> Option<Vec<u8>> {
    let mut h = Sha256::new();
    h.update(std::fs::read(cert).ok()?);
    h.update(std::fs::read(key).ok()?);
    Some(h.finalize().to_vec())
}

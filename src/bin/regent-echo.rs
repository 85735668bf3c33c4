//! `regent-echo`: the baselines of the load benchmark (`benches/load.sh`).
//! The same TLS configuration, accept loop and body limit as `regent serve`,
//! answering every review "allowed" with its uid, without evaluating
//! anything. By default it is the lightest correct webhook: the body parsed
//! into a `serde_json::Value`, the uid echoed. With `--engine-parse` it
//! parses as `regent serve` does (Regent's `review::parse`, into the
//! engine's value), which attributes that cost. Not for production.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Parser;
use regent::serve::admission::{DEFAULT_MAX_BODY_BYTES, MUTATE_PATH, VALIDATE_PATH};
use regent::serve::tls;
use regent_core::review::{self, Response};

/// The benchmark's no-op admission webhook.
#[derive(Debug, Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9443")]
    addr: SocketAddr,
    /// Serving certificate (PEM).
    #[arg(long)]
    tls_cert: PathBuf,
    /// Serving key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// Parse as `regent serve` does (into the engine's value) instead of
    /// into a `serde_json::Value`.
    #[arg(long)]
    engine_parse: bool,
}

/// The minimal correct answer: the review parsed as plain JSON, its uid
/// echoed, `apiVersion` kept (v1 or v1beta1).
async fn allow_minimal(body: Body) -> axum::response::Response {
    let Ok(bytes) = axum::body::to_bytes(body, DEFAULT_MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    // One UTF-8 check of the whole body, then a parse that trusts it: the
    // fastest way serde_json reads a body (as `regent serve` reads one).
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(review) = serde_json::from_str::<serde_json::Value>(text) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (Some(uid), Some(api_version)) = (
        review["request"]["uid"].as_str(),
        review["apiVersion"].as_str(),
    ) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = serde_json::json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true},
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

async fn allow(body: Body) -> axum::response::Response {
    let Ok(bytes) = axum::body::to_bytes(body, DEFAULT_MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    match review::parse(&bytes) {
        Ok(r) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Response::allow(&r.meta.uid).to_review_bytes(r.version),
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

fn main() -> anyhow::Result<()> {
    // The same allocator options as `regent` (see regent::allocator).
    regent::allocator::reexec_with_lean_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let Args {
        addr,
        tls_cert,
        tls_key,
        engine_parse,
    } = Args::parse();
    let resolver = tls::CertResolver::new(tls::load_pair(&tls_cert, &tls_key)?);
    let config = tls::server_config(resolver, None)?;
    let router = if engine_parse {
        axum::Router::new()
            .route(VALIDATE_PATH, post(allow))
            .route(MUTATE_PATH, post(allow))
    } else {
        axum::Router::new()
            .route(VALIDATE_PATH, post(allow_minimal))
            .route(MUTATE_PATH, post(allow_minimal))
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("listening {}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    regent::serve::connections::serve(
        listener,
        config,
        router,
        regent::serve::connections::ConnectionLimits::default(),
        None,
        stop_rx,
        Duration::from_secs(2),
    )
    .await;
    Ok(())
}

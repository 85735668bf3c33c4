//! `regent serve`: the webhook server. Sets up TLS (reporting certificate
//! problems before binding), compiles the bundle, binds the admission and admin
//! ports, and drains on SIGTERM: readiness turns false, new connections stop
//! after `--shutdown-delay`, in-flight requests finish within
//! `--shutdown-grace`; a second signal exits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::common::DecideArgs;
use crate::metrics::Metrics;
use crate::reload::{self, sources::SourceArgs};
use crate::serve::admission::{AdmissionState, DEFAULT_MAX_BODY_BYTES};
use crate::serve::connections::ConnectionLimits;
use crate::serve::state::Live;
use crate::serve::{admin, admission as server, tls};

/// Arguments of `regent serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Admission (HTTPS) listen address.
    #[arg(long, env = "REGENT_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Admin (plain HTTP: /healthz, /readyz, /metrics) listen address.
    #[arg(long, env = "REGENT_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// TLS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Policy bundle directory, watched for changes (the kubelet's `..data`
    /// layout of a mounted ConfigMap included). Repeatable: the bundles are
    /// composed in the order given, later data overriding earlier.
    #[arg(long, env = "REGENT_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Bundle sources beyond the directory, and how reloads are applied.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Decision settings.
    #[command(flatten)]
    pub decide: DecideArgs,
    /// Policy exceptions: sources and governance.
    #[command(flatten)]
    pub exceptions: crate::exceptions::ExceptionArgs,
    /// The decision log: sinks, what is logged, masking, bounds.
    #[command(flatten)]
    pub decision_log: crate::decision_log::DecisionLogArgs,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "REGENT_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Threads evaluating a candidate bundle in the shadow of admission
    /// traffic (at the lowest scheduling priority).
    #[arg(long, env = "REGENT_SHADOW_WORKERS", default_value_t = 1)]
    pub shadow_workers: usize,
    /// Requests waiting for shadow evaluation at most; beyond it they are
    /// dropped and counted (`regent_candidate_evaluations_total{result="dropped"}`).
    #[arg(long, env = "REGENT_SHADOW_QUEUE", default_value_t = 256)]
    pub shadow_queue: usize,
    /// Connection limits of the admission port.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Heap ceiling of the whole process: evaluations fail (failure mode)
    /// rather than the container being OOM-killed. `auto`: three quarters of
    /// the container's cgroup memory limit (none outside one); `0`: none; or
    /// a size (96Mi, 1Gi).
    #[arg(long, env = "REGENT_HEAP_LIMIT", default_value = "auto")]
    pub heap_limit: String,
    /// After SIGTERM, keep accepting (while not ready) this long so load
    /// balancers notice, then stop accepting.
    #[arg(long, env = "REGENT_SHUTDOWN_DELAY", default_value = "0s", value_parser = super::common::parse_duration)]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests after accepting stops.
    #[arg(long, env = "REGENT_SHUTDOWN_GRACE", default_value = "20s", value_parser = super::common::parse_duration)]
    pub shutdown_grace: Duration,
}

/// Limits on the admission port's connections. The defaults suit an API
/// server as the only client.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ConnectionArgs {
    /// Most admission connections open at once; more wait to be accepted.
    #[arg(long, env = "REGENT_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Longest TLS handshake.
    #[arg(long, env = "REGENT_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = super::common::parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Longest time from a request's first byte to its whole header, and
    /// then to its whole body (slow clients are closed).
    #[arg(long, env = "REGENT_HEADER_TIMEOUT", default_value = "10s", value_parser = super::common::parse_duration)]
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long
    /// (longer than the API server's own 90 s, so the client closes first).
    #[arg(long, env = "REGENT_IDLE_TIMEOUT", default_value = "120s", value_parser = super::common::parse_duration)]
    pub idle_timeout: Duration,
    /// HTTP/2: most concurrent streams per connection.
    #[arg(long, env = "REGENT_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,
}

impl ConnectionArgs {
    /// The limits.
    pub fn limits(&self) -> ConnectionLimits {
        let Self {
            max_connections,
            tls_handshake_timeout,
            header_timeout,
            idle_timeout,
            max_concurrent_streams,
        } = *self;
        ConnectionLimits {
            max_connections: max_connections.max(1),
            handshake_timeout: tls_handshake_timeout,
            header_timeout,
            idle_timeout,
            max_concurrent_streams: max_concurrent_streams.max(1),
        }
    }
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Serving certificate chain (PEM). Without --tls-cert/--tls-key a
    /// development CA and certificate are generated at start.
    #[arg(long, env = "REGENT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Serving private key (PEM).
    #[arg(long, env = "REGENT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Extra names for a generated certificate (besides localhost and 127.0.0.1).
    #[arg(long, env = "REGENT_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Where a generated CA and certificate are written.
    #[arg(long, env = "REGENT_DEV_CERT_DIR")]
    pub dev_cert_dir: Option<PathBuf>,
    /// Require a client certificate signed by this CA (PEM) on the admission
    /// port; the file is watched and reloaded like the serving pair.
    #[arg(long, env = "REGENT_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// With --client-ca: the client certificate's common name (or one of its
    /// DNS names) must be this.
    #[arg(long, env = "REGENT_CLIENT_CN", requires = "client_ca")]
    pub client_cn: Option<String>,
}

impl ServeArgs {
    /// Runs the server until shutdown.
    pub async fn run(self) -> anyhow::Result<u8> {
        let Self {
            addr,
            admin_addr,
            tls,
            policies,
            sources,
            decide,
            exceptions,
            decision_log,
            max_body_bytes,
            shadow_workers,
            shadow_queue,
            connections,
            heap_limit,
            shutdown_delay,
            shutdown_grace,
        } = self;
        let heap = match heap_limit.as_str() {
            "auto" => crate::allocator::heap_limit_for_container(),
            other => match super::common::parse_bytes(other) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(e) => anyhow::bail!("--heap-limit: {e}"),
            },
        };
        regent_core::runtime::limits::set_heap_limit(heap);
        if let Some(h) = heap {
            tracing::info!(
                heap_limit = %regent_core::runtime::limits::bytes(h),
                "evaluations fail rather than grow the heap past this"
            );
        }
        let certificate = serving_certificate(&tls)?;
        let resolver = tls::CertResolver::new(certificate);
        let client = match &tls.client_ca {
            Some(ca) => Some(tls::ClientVerifier::new(ca, tls.client_cn.clone())?),
            None => None,
        };
        let tls_config = tls::server_config(resolver.clone(), client.clone())?;

        let metrics = Metrics::new().context("registering metrics")?;
        let live = Live::new(metrics.clone());

        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let admin_listener = TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("binding {admin_addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, admin = %admin_listener.local_addr()?, "listening");

        crate::exceptions::start(
            live.exceptions(),
            &exceptions,
            sources.namespace.as_deref(),
            true,
        )
        .await?;
        reload::sources::start(&live, policies, &sources, decide.limits.limits()).await?;
        if let (Some(cert), Some(key)) = (&tls.tls_cert, &tls.tls_key) {
            reload::certs::spawn(cert.clone(), key.clone(), resolver, metrics.clone())
                .context("watching the certificate files")?;
        }
        if let Some(client) = client {
            reload::certs::spawn_client_ca(client, metrics.clone())
                .context("watching the client CA file")?;
        }

        let mut signals = Signals::new()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let limits = connections.limits();
        let shadow = crate::rollout::shadow::Shadow::start(
            live.clone(),
            crate::rollout::shadow::ShadowOptions {
                workers: shadow_workers,
                queue: shadow_queue,
            },
        )
        .context("starting the shadow-evaluation threads")?;
        let replica = sources
            .pod_name
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "regent".to_string());
        let decisions = crate::decision_log::DecisionLog::start(&decision_log, metrics.clone())?;
        let router = server::router(AdmissionState {
            live: live.clone(),
            options: decide.options(),
            max_body_bytes,
            body_timeout: limits.header_timeout,
            shadow: Some(shadow),
            in_flight: Default::default(),
            decision_log: decisions.clone(),
            replica,
        });
        let admission = tokio::spawn(crate::serve::connections::serve(
            listener,
            tls_config,
            router,
            limits,
            Some(metrics.clone()),
            stop_rx.clone(),
            shutdown_grace,
        ));
        let mut admin_stop = stop_rx;
        let admin_app = admin::router(live.clone());
        let admin_server = tokio::spawn(async move {
            let served = axum::serve(admin_listener, admin_app)
                .with_graceful_shutdown(async move {
                    let _ = admin_stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin server failed");
            }
        });

        signals.next().await;
        live.start_draining();
        tracing::info!(
            ?shutdown_delay,
            ?shutdown_grace,
            "shutdown requested: not ready, draining"
        );
        tokio::select! {
            _ = tokio::time::sleep(shutdown_delay) => {}
            _ = signals.next() => {
                tracing::warn!("second signal: exiting now");
                return Ok(super::common::EXIT_OK);
            }
        }
        let _ = stop_tx.send(true);
        tokio::select! {
            _ = admission => {}
            _ = signals.next() => {
                tracing::warn!("second signal: exiting now");
                return Ok(super::common::EXIT_OK);
            }
        }
        if let Some(log) = &decisions {
            log.close(shutdown_grace).await;
        }
        let _ = admin_server.await;
        tracing::info!("stopped");
        Ok(super::common::EXIT_OK)
    }
}

/// The serving certificate: the given PEM pair, or a generated development one.
fn serving_certificate(args: &TlsArgs) -> anyhow::Result<rustls::sign::CertifiedKey> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(tls::load_pair(cert, key)?),
        (None, None) => {
            let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            sans.extend(args.tls_san.iter().cloned());
            let dev = tls::generate_dev(&sans)?;
            let dir = args
                .dev_cert_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("regent-dev-certs"));
            dev.write(&dir)?;
            tracing::warn!(
                ca = %dir.join("ca.crt").display(),
                names = %sans.join(","),
                "no --tls-cert/--tls-key: serving a generated development certificate; trust the CA to call the webhook"
            );
            Ok(tls::certified_key(
                dev.cert_pem.as_bytes(),
                dev.key_pem.as_bytes(),
                "generated",
            )?)
        }
        _ => Err(tls::TlsError::HalfPair.into()),
    }
}

/// SIGTERM and SIGINT, as a stream of "a signal arrived".
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

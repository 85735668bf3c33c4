//! The in-cluster audit's settings (`regent audit --cluster`): its admin
//! address, bundle and exception sources, scan interval, report rate,
//! workers and leader election.

use std::net::SocketAddr;
use std::time::Duration;

use crate::reload::sources::SourceArgs;

/// Settings of the in-cluster audit.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Admin (plain HTTP) listen address: /healthz, /readyz, /metrics, /status.
    #[arg(
        long = "admin-addr",
        env = "REGENT_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: SocketAddr,
    /// Bundle sources, as for `regent serve`.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Policy exceptions, as for `regent serve` (`--exceptions` also
    /// applies to the offline audit).
    #[command(flatten)]
    pub exceptions: crate::exceptions::ExceptionArgs,
    /// Audit every object again this often (besides every watch event and
    /// every bundle change); 0 for never.
    #[arg(long, env = "REGENT_AUDIT_INTERVAL", default_value = "1h", value_parser = regent_core::units::parse_duration)]
    pub audit_interval: Duration,
    /// Most report writes per second.
    #[arg(long, env = "REGENT_REPORT_QPS", default_value_t = 20.0)]
    pub report_qps: f64,
    /// Threads evaluating objects (default: the machine's cores).
    #[arg(long, env = "REGENT_AUDIT_WORKERS")]
    pub workers: Option<usize>,
    /// Elect one writer among replicas with a Lease.
    #[arg(long, env = "REGENT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The Lease's name (in the audit's own namespace).
    #[arg(long, env = "REGENT_LEASE_NAME", default_value = "regent-audit")]
    pub lease_name: String,
    /// How long the Lease holds without renewal; a standby takes over within it.
    #[arg(long, env = "REGENT_LEASE_DURATION", default_value = "15s", value_parser = regent_core::units::parse_duration)]
    pub lease_duration: Duration,
}

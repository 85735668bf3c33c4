//! What a bundle source is: something that sends the files of its part of
//! the bundle now and after every change, on a channel the
//! [`super::Reloader`] reads. A new source (an OCI registry, a Git
//! repository, ...) is a new type implementing [`BundleSource`]; the
//! reloader composes every source's files in the order of their
//! [`SourceId`]s and never names a kind of source.

use tokio::sync::mpsc;

use super::ConfigMapRef;
use crate::metrics::Metrics;
use regent_core::bundle::{BundleError, Entry};

/// Which source an update is from, and where its files go in the
/// composition: lower `order` first (the embedded default bundle, the
/// directories in the order given, ConfigMaps last), later data overriding
/// earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId {
    /// The place in the composition.
    pub order: u16,
    /// The metric and log label (`directory`, `configmaps`, ...).
    pub kind: &'static str,
    /// For a source that holds only a candidate bundle: the kind of source
    /// it stands for in the candidate (`--candidate-policies` stands for
    /// the live directories). It is never part of the live bundle.
    pub candidate_for: Option<&'static str>,
}

impl SourceId {
    /// A label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        self.kind
    }
}

/// What one source gives one bundle.
#[derive(Debug)]
pub struct View {
    /// Its files, or why they could not be read.
    pub files: Result<Vec<Entry>, BundleError>,
    /// The ConfigMaps behind them whose status this bundle reports.
    pub configmaps: Vec<ConfigMapRef>,
}

/// The current files of one source.
#[derive(Debug)]
pub struct SourceUpdate {
    /// Which source.
    pub source: SourceId,
    /// Human-readable origin ("/etc/regent/policies", "ConfigMaps labelled ...").
    pub origin: String,
    /// The directory the files were read from, if they were: in a
    /// composition, its files are named under it.
    pub root: Option<String>,
    /// Its files, or why they could not be read.
    pub files: Result<Vec<Entry>, BundleError>,
    /// The ConfigMaps behind it (ConfigMap source only).
    pub configmaps: Vec<ConfigMapRef>,
    /// Its part of the candidate bundle when that differs from `files`: the
    /// ConfigMap source while candidate ConfigMaps exist (their
    /// ConfigMaps only in `configmaps`). `None`: no candidate here.
    pub candidate: Option<View>,
}

/// A source of bundle files.
pub trait BundleSource: Send {
    /// Its identity and place in the composition.
    fn id(&self) -> SourceId;

    /// A description for the log (`directory /etc/regent/policies`).
    fn describe(&self) -> String;

    /// Starts it on the async runtime: it sends its files on `updates` now
    /// and after every change, and counts its read failures in `metrics`.
    /// An error here (a directory that cannot be watched) stops the process
    /// from starting; later failures are updates with an error.
    fn start(
        self: Box<Self>,
        updates: mpsc::Sender<SourceUpdate>,
        metrics: Metrics,
    ) -> anyhow::Result<()>;
}

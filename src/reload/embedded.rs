//! The embedded default bundle as a source, for `--with-default-bundle`:
//! first in the composition, so every other source's data overrides it. It
//! sends its files once; they never change.

use tokio::sync::mpsc;

use super::source::{BundleSource, SourceId, SourceUpdate};
use crate::metrics::Metrics;
use regent_core::bundle::{self, Entry};

/// The embedded default bundle, under the other sources.
#[derive(Debug, Default)]
pub struct EmbeddedSource;

impl EmbeddedSource {
    /// Its identity: first in the composition.
    pub const ID: SourceId = SourceId {
        order: 0,
        kind: "embedded",
        candidate_for: None,
    };
}

impl BundleSource for EmbeddedSource {
    fn id(&self) -> SourceId {
        Self::ID
    }

    fn describe(&self) -> String {
        "the embedded default bundle".to_string()
    }

    fn start(
        self: Box<Self>,
        updates: mpsc::Sender<SourceUpdate>,
        _metrics: Metrics,
    ) -> anyhow::Result<()> {
        let entries: Vec<Entry> = bundle::embedded_files()
            .into_iter()
            .map(|(path, bytes)| Entry::at_path(path.clone(), &path, bytes))
            .collect();
        tokio::spawn(async move {
            let _ = updates
                .send(SourceUpdate {
                    source: Self::ID,
                    origin: "embedded default bundle".to_string(),
                    root: None,
                    files: Ok(entries),
                    configmaps: Vec::new(),
                    candidate: None,
                })
                .await;
        });
        Ok(())
    }
}

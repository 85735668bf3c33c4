//! The directory source (`--policies DIR`): reads the bundle at start and
//! again whenever the tree changes, including the kubelet's layout for a
//! mounted ConfigMap, where visible files link through `..data` and an update
//! is one atomic rename of `..data` to a new timestamped folder.
//!
//! Bursts of filesystem events are debounced, and a read during which more
//! events arrived is thrown away and redone, so a half-written tree is never
//! sent as a bundle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::source::{BundleSource, SourceId, SourceUpdate};
use crate::metrics::Metrics;
use regent_core::bundle;

/// Quiet time after the last event before a directory is read.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a burst of events may postpone a read.
pub const MAX_DELAY: Duration = Duration::from_millis(600);

/// A filesystem watch on some paths, delivering "something changed" signals.
pub struct PathWatch {
    _watcher: Box<dyn Watcher + Send>,
    /// Signals, one per raw event (coalesce them with [`debounced`]).
    pub events: mpsc::UnboundedReceiver<()>,
}

/// Watches `paths` (recursively). Falls back to polling once a second when
/// the platform watcher cannot be set up (inotify limits, exotic filesystems).
pub fn watch(paths: &[PathBuf]) -> Result<PathWatch, notify::Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |res: notify::Result<notify::Event>| {
        // Our own reads show up as access events: only changes count. Errors
        // also trigger a re-read, which reports what is wrong.
        if let Ok(event) = &res {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
        }
        let _ = tx.send(());
    };
    let mut watcher: Box<dyn Watcher + Send> = match notify::recommended_watcher(handler.clone()) {
        Ok(w) => Box::new(w),
        Err(e) => {
            tracing::warn!(error = %e, "filesystem notifications unavailable; polling every second");
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(1));
            Box::new(notify::PollWatcher::new(handler, config)?)
        }
    };
    for path in paths {
        watcher.watch(path, RecursiveMode::Recursive)?;
    }
    Ok(PathWatch {
        _watcher: watcher,
        events: rx,
    })
}

/// Waits for the next change and the quiet time after it. Returns false when
/// the watch has ended.
pub async fn debounced(events: &mut mpsc::UnboundedReceiver<()>) -> bool {
    if events.recv().await.is_none() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        let quiet = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            more = events.recv() => {
                if more.is_none() { return false; }
                if tokio::time::Instant::now() >= deadline { return true; }
            }
            _ = quiet => return true,
        }
    }
}

/// A watched directory of bundle files: one of `--policies` (live), or
/// `--candidate-policies` (the candidate, standing for the live directories).
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
    id: SourceId,
}

impl DirectorySource {
    /// The `index`-th `--policies` directory: after the embedded bundle, in
    /// the order given.
    pub fn live(dir: PathBuf, index: u8) -> Self {
        Self {
            dir,
            id: SourceId {
                order: 1 + u16::from(index),
                kind: "directory",
                candidate_for: None,
            },
        }
    }

    /// `--candidate-policies`: the candidate bundle's files in place of the
    /// live directories'.
    pub fn candidate(dir: PathBuf) -> Self {
        Self {
            dir,
            id: SourceId {
                order: 300,
                kind: "candidate-directory",
                candidate_for: Some("directory"),
            },
        }
    }
}

impl BundleSource for DirectorySource {
    fn id(&self) -> SourceId {
        self.id
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn start(
        self: Box<Self>,
        updates: mpsc::Sender<SourceUpdate>,
        metrics: Metrics,
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let dir = self.dir.clone();
        spawn(self.dir, self.id, updates, metrics)
            .with_context(|| format!("watching {}", dir.display()))
    }
}

/// Starts the directory source: sends the bundle now and after every change.
fn spawn(
    dir: PathBuf,
    source: SourceId,
    updates: mpsc::Sender<SourceUpdate>,
    metrics: Metrics,
) -> Result<(), notify::Error> {
    let watch = watch(std::slice::from_ref(&dir))?;
    tokio::spawn(async move {
        // Move the whole watch in: a closure capturing only `events` would
        // drop the watcher, and with it every notification.
        let mut watch = watch;
        loop {
            // Read, and read again if the tree changed while we read it.
            let update = loop {
                let d = dir.clone();
                let files = tokio::task::spawn_blocking(move || bundle::read_dir_entries(&d))
                    .await
                    .unwrap_or_else(|e| Err(task_error(&dir, e)));
                let mut changed = false;
                while watch.events.try_recv().is_ok() {
                    changed = true;
                }
                if changed {
                    tokio::time::sleep(DEBOUNCE).await;
                    continue;
                }
                break files;
            };
            if let Err(e) = &update {
                metrics
                    .source_errors
                    .with_label_values(&[source.as_str()])
                    .inc();
                tracing::warn!(dir = %dir.display(), error = %e, "reading the bundle directory failed");
            }
            let sent = updates
                .send(SourceUpdate {
                    source,
                    origin: dir.display().to_string(),
                    root: Some(dir.display().to_string()),
                    files: update,
                    configmaps: Vec::new(),
                    candidate: None,
                })
                .await;
            if sent.is_err() || !debounced(&mut watch.events).await {
                return;
            }
            tracing::debug!(dir = %dir.display(), "bundle directory changed");
        }
    });
    Ok(())
}

fn task_error(dir: &Path, e: tokio::task::JoinError) -> bundle::BundleError {
    bundle::BundleError::Io {
        path: dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_change_is_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch(&[dir.path().to_path_buf()]).unwrap();
        std::fs::write(dir.path().join("x.rego"), "package x").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), debounced(&mut w.events)).await;
        assert_eq!(got.ok(), Some(true));
    }
}

#[cfg(test)]
mod kubelet_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_data_swap_is_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("..v1/validate")).unwrap();
        std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/validate", root.join("validate")).unwrap();
        let mut w = watch(&[root.to_path_buf()]).unwrap();
        std::fs::create_dir_all(root.join("..v2/validate")).unwrap();
        std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), debounced(&mut w.events)).await;
        assert_eq!(got.ok(), Some(true));
    }
}

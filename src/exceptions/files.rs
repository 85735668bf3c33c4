//! PolicyExceptions from files (`--exceptions PATH`: one YAML file, or a
//! directory of them, multi-document), watched like a bundle directory and
//! reloaded within a second; also how the offline commands read them.

use std::path::{Path, PathBuf};

use super::registry::{Loaded, Registry, Source};
use regent_core::exceptions;

/// Reads every PolicyException under `path` (a file, or every `.yaml`,
/// `.yml` and `.json` file of a directory). A file that is not YAML is an
/// error; a PolicyException that does not parse is kept with its problems.
pub fn read(path: &Path) -> Result<Loaded, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    if path.is_dir() {
        for entry in walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .follow_links(true)
        {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let hidden = entry.path().strip_prefix(path).ok().is_some_and(|rel| {
                rel.components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
            });
            let ext = entry
                .path()
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            if entry.file_type().is_file() && !hidden && matches!(ext, "yaml" | "yml" | "json") {
                files.push(entry.path().to_path_buf());
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut loaded = Loaded::default();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        if bytes.len() > regent_core::bundle::MAX_FILE_BYTES {
            return Err(format!(
                "{}: larger than {} bytes",
                f.display(),
                regent_core::bundle::MAX_FILE_BYTES
            ));
        }
        let text =
            String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", f.display()))?;
        for item in exceptions::read_documents(&f.display().to_string(), &text)? {
            match item {
                Ok(e) => loaded.exceptions.push(e),
                Err(bad) => loaded.unreadable.push(bad),
            }
        }
    }
    Ok(loaded)
}

/// Watches `path` and keeps the registry's file exceptions current. A read
/// that fails keeps the exceptions read before (and says so).
pub fn spawn(path: PathBuf, registry: std::sync::Arc<Registry>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let watch_root = if path.is_dir() {
        path.clone()
    } else {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let watch = crate::reload::dir::watch(std::slice::from_ref(&watch_root))
        .with_context(|| format!("watching {}", watch_root.display()))?;
    let first = read(&path).map_err(anyhow::Error::msg)?;
    registry.set_source(Source::Files, first);
    tokio::spawn(async move {
        // Move the whole watch in: capturing only `events` would drop the
        // watcher, and with it every notification.
        let mut watch = watch;
        while crate::reload::dir::debounced(&mut watch.events).await {
            let p = path.clone();
            match tokio::task::spawn_blocking(move || read(&p)).await {
                Ok(Ok(loaded)) => registry.set_source(Source::Files, loaded),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading policy exceptions failed; keeping the ones read before")
                }
                Err(e) => tracing::warn!(error = %e, "reading policy exceptions failed"),
            }
        }
    });
    Ok(())
}

//! Reading a bundle's files: a directory (the kubelet's `..data` layout of
//! a mounted ConfigMap included), the default bundle embedded at build
//! time, and OPA bundle archives; each file size-checked, each classified
//! by its name.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use super::{is_schema_file, BundleError, Entry, MAX_BUNDLE_BYTES, MAX_FILE_BYTES};

/// The default bundle (`policies/`), embedded at build time.
static DEFAULT_BUNDLE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../policies");

/// Largest number of files unpacked from one archive.
pub const MAX_ARCHIVE_FILES: usize = 10_000;

/// Unpacks an OPA bundle archive (`.tar.gz`): `.manifest`, data files and
/// modules, each labelled `<label>:<path inside>`. Paths that climb out
/// (`..`), oversized contents and too many files are refused.
pub fn unpack_archive(label: &str, bytes: &[u8]) -> Result<Vec<Entry>, BundleError> {
    use std::io::Read;
    let archive_err = |message: String| BundleError::Archive {
        path: label.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    let mut total = 0usize;
    let files = archive.entries().map_err(|e| archive_err(e.to_string()))?;
    for file in files {
        let file = file.map_err(|e| archive_err(e.to_string()))?;
        if !file.header().entry_type().is_file() {
            continue;
        }
        let raw = file
            .path()
            .map_err(|e| archive_err(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if path.split('/').any(|c| c == "..") {
            return Err(archive_err(format!(
                "entry {raw:?} climbs out of the bundle"
            )));
        }
        if out.len() >= MAX_ARCHIVE_FILES {
            return Err(archive_err(format!("more than {MAX_ARCHIVE_FILES} files")));
        }
        let mut data = Vec::new();
        let limit = (MAX_FILE_BYTES + 1) as u64;
        file.take(limit)
            .read_to_end(&mut data)
            .map_err(|e| archive_err(e.to_string()))?;
        if data.len() > MAX_FILE_BYTES {
            return Err(BundleError::TooLarge {
                path: format!("{label}:{path}"),
                size: data.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        total += data.len();
        if total > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                path: label.to_string(),
                size: total,
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let mut entry = Entry::at_path(format!("{label}:{path}"), &path, data);
        entry.archive = Some(label.to_string());
        out.push(entry);
    }
    Ok(out)
}

/// Reads the bundle files under `dir`. Hidden entries (a leading `.`) are
/// skipped, so the kubelet's `..data` and timestamped folders of a mounted
/// ConfigMap are read once, through the visible links.
pub fn read_dir_entries(dir: &Path) -> Result<Vec<Entry>, BundleError> {
    let mut entries = Vec::new();
    let mut total = 0usize;
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| BundleError::Io {
            path: e.path().unwrap_or(dir).display().to_string(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
        })?;
        if !entry.file_type().is_file() || !is_bundle_file(entry.path()) {
            continue;
        }
        let rel = relative(dir, entry.path());
        let bytes = std::fs::read(entry.path()).map_err(|source| BundleError::Io {
            path: rel.clone(),
            source,
        })?;
        total += bytes.len();
        if total > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                path: dir.display().to_string(),
                size: total,
                limit: MAX_BUNDLE_BYTES,
            });
        }
        entries.push(Entry::at_path(rel.clone(), &rel, bytes));
    }
    Ok(entries)
}

/// The embedded default bundle's files (`policies/` at build time), as
/// `(relative path, contents)`, for `regent bundle export`.
pub fn embedded_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    collect_embedded(&DEFAULT_BUNDLE, &mut files);
    files
}

fn collect_embedded(dir: &Dir<'static>, out: &mut Vec<(String, Vec<u8>)>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        if is_bundle_file(file.path()) {
            out.push((path, file.contents().to_vec()));
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn is_bundle_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".rego")
        || is_data_file(&name)
        || is_schema_file(&name)
        || name.ends_with(".yaml")
        || name.ends_with(".yml")
}

pub(super) fn is_data_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(name, "data.json" | "data.yaml" | "data.yml")
}

fn relative(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf());
    rel.to_string_lossy().replace('\\', "/")
}

/// The `data` path of a data file: its directory components.
pub(super) fn mount_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    parts.pop();
    parts.retain(|p| !p.is_empty() && p != ".");
    parts
}

//! Bundle files: the Rego modules and data documents of a policy bundle, read
//! from a directory or from the default bundle embedded in the binary.
//!
//! Reading is all this module does; compiling is [`crate::engine`]'s job. Data
//! files (`data.json`, `data.yaml`, `data.yml`) are mapped into `data` by their
//! directory path, as OPA bundles do: `validate/registries/data.yaml` becomes
//! `data.validate.registries`. Every file is size-checked and must be UTF-8;
//! every error names the file it came from.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// The default bundle (`policies/`), embedded at build time.
static DEFAULT_BUNDLE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/policies");

/// Largest single bundle file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Largest bundle accepted (all files together), in bytes.
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

/// Errors reading bundle files.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory or one of its files could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: String,
    },
    /// A file, or the bundle as a whole, is larger than the limit.
    #[error("{path}: {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The file (or the bundle root).
        path: String,
        /// Its size.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A data file does not parse.
    #[error("{path}:{line}:{column}: {message}")]
    Data {
        /// The data file.
        path: String,
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Two data files write the same key.
    #[error("data conflict at data.{key}: set by both {first} and {second}")]
    DataConflict {
        /// The dotted key both files set.
        key: String,
        /// The file that set it first.
        first: String,
        /// The file that set it again.
        second: String,
    },
}

/// One Rego module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Where it came from, as shown in errors: a path relative to the bundle
    /// root, or `configmap/key` for other sources.
    pub path: String,
    /// The Rego source.
    pub source: String,
}

impl ModuleFile {
    /// Test modules (`*_test.rego`) are compiled by `regent test` only.
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// One data document of a bundle, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Where it came from, as shown in errors.
    pub path: String,
    /// The `data` path it is mounted at (its directory's components).
    pub mount: Vec<String>,
    /// The document.
    pub value: Json,
}

/// The files of one bundle, before compilation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleFiles {
    /// A human-readable name for the source ("embedded default bundle", a path).
    pub origin: String,
    /// The Rego modules, sorted by path.
    pub modules: Vec<ModuleFile>,
    /// The data documents, sorted by path.
    pub data: Vec<DataFile>,
    /// A content hash over every file, stable across machines.
    pub revision: String,
}

impl BundleFiles {
    /// The default bundle embedded in the binary.
    pub fn embedded() -> Result<Self, BundleError> {
        let mut files = Vec::new();
        collect_embedded(&DEFAULT_BUNDLE, &mut files);
        Self::from_files("embedded default bundle", files)
    }

    /// Reads every `.rego` module and data file under `dir`. Hidden entries
    /// (a leading `.`) are skipped, so the kubelet's `..data` and timestamped
    /// folders of a mounted ConfigMap are read once, through the visible links.
    pub fn from_dir(dir: &Path) -> Result<Self, BundleError> {
        let mut files = Vec::new();
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
            files.push((rel, bytes));
        }
        Self::from_files(&dir.display().to_string(), files)
    }

    /// Builds a bundle from `(relative path, contents)` pairs: the common
    /// path of every source (directory, embedded copy, ConfigMaps).
    pub fn from_files(
        origin: &str,
        mut files: Vec<(String, Vec<u8>)>,
    ) -> Result<Self, BundleError> {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        let mut modules = Vec::new();
        let mut data = Vec::new();
        for (path, bytes) in files {
            if bytes.len() > MAX_FILE_BYTES {
                return Err(BundleError::TooLarge {
                    path,
                    size: bytes.len(),
                    limit: MAX_FILE_BYTES,
                });
            }
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            let text = String::from_utf8(bytes)
                .map_err(|_| BundleError::NotUtf8 { path: path.clone() })?;
            if path.ends_with(".rego") {
                modules.push(ModuleFile { path, source: text });
            } else if is_data_file(&path) {
                let value = parse_data(&path, &text)?;
                let mount = mount_of(&path);
                data.push(DataFile { path, mount, value });
            }
        }
        let digest = hasher.finalize();
        let revision = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            origin: origin.to_string(),
            modules,
            data,
            revision,
        })
    }

    /// Merges every data file into one `data` document. Two files that set the
    /// same leaf are a conflict naming both.
    pub fn merged_data(&self) -> Result<Json, BundleError> {
        let mut root = Json::Object(Map::new());
        let mut owners: Vec<(String, String)> = Vec::new();
        for file in &self.data {
            let mut doc = file.value.clone();
            for segment in file.mount.iter().rev() {
                let mut m = Map::new();
                m.insert(segment.clone(), doc);
                doc = Json::Object(m);
            }
            merge(&mut root, doc, &mut Vec::new(), &file.path, &mut owners)?;
        }
        Ok(root)
    }
}

fn merge(
    target: &mut Json,
    incoming: Json,
    at: &mut Vec<String>,
    file: &str,
    owners: &mut Vec<(String, String)>,
) -> Result<(), BundleError> {
    match (target, incoming) {
        (Json::Object(t), Json::Object(i)) => {
            for (k, v) in i {
                at.push(k.clone());
                match t.get_mut(&k) {
                    Some(existing) => merge(existing, v, at, file, owners)?,
                    None => {
                        owners.push((at.join("."), file.to_string()));
                        t.insert(k, v);
                    }
                }
                at.pop();
            }
            Ok(())
        }
        _ => {
            let key = at.join(".");
            let first = owners
                .iter()
                .rev()
                .find(|(k, _)| key.starts_with(k.as_str()))
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            Err(BundleError::DataConflict {
                key,
                first,
                second: file.to_string(),
            })
        }
    }
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
    name.ends_with(".rego") || is_data_file(&name)
}

fn is_data_file(path: &str) -> bool {
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
fn mount_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    parts.pop();
    parts.retain(|p| !p.is_empty() && p != ".");
    parts
}

/// Parses a data document: JSON for `.json`, YAML (one document) otherwise.
/// An empty YAML file is an empty object.
pub fn parse_data(path: &str, text: &str) -> Result<Json, BundleError> {
    let value = if path.ends_with(".json") {
        serde_json::from_str::<Json>(text).map_err(|e| BundleError::Data {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?
    } else {
        if text.trim().is_empty() {
            return Ok(Json::Object(Map::new()));
        }
        serde_yaml_ng::from_str::<Json>(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            BundleError::Data {
                path: path.to_string(),
                line,
                column,
                message: e.to_string(),
            }
        })?
    };
    if !value.is_object() {
        return Err(BundleError::Data {
            path: path.to_string(),
            line: 1,
            column: 1,
            message: "a data file must hold an object (a mapping of keys to values)".to_string(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn embedded_bundle_has_modules_and_data() {
        let b = BundleFiles::embedded().unwrap();
        assert!(b
            .modules
            .iter()
            .any(|m| m.path == "validate/privileged/policy.rego"));
        let data = b.merged_data().unwrap();
        assert_eq!(data["validate"]["privileged"]["enforcement"], "deny");
        assert_eq!(b.revision.len(), 16);
    }

    #[test]
    fn data_files_mount_at_their_directory() {
        assert_eq!(mount_of("a/b/data.yaml"), vec!["a", "b"]);
        assert!(mount_of("data.json").is_empty());
    }

    #[test]
    fn conflicting_data_names_both_files() {
        let files = vec![
            ("a/data.json".to_string(), br#"{"x": 1}"#.to_vec()),
            ("data.json".to_string(), br#"{"a": {"x": 2}}"#.to_vec()),
        ];
        let b = BundleFiles::from_files("t", files).unwrap();
        let err = b.merged_data().unwrap_err().to_string();
        assert!(err.contains("data.a.x"), "{err}");
        assert!(
            err.contains("a/data.json") && err.contains("and data.json"),
            "{err}"
        );
    }

    #[test]
    fn revision_is_a_content_hash() {
        let one =
            BundleFiles::from_files("a", vec![("p.rego".into(), b"package p".to_vec())]).unwrap();
        let same =
            BundleFiles::from_files("b", vec![("p.rego".into(), b"package p".to_vec())]).unwrap();
        let other =
            BundleFiles::from_files("a", vec![("p.rego".into(), b"package q".to_vec())]).unwrap();
        assert_eq!(one.revision, same.revision);
        assert_ne!(one.revision, other.revision);
    }

    #[test]
    fn bad_data_is_reported_with_position() {
        let err = parse_data("x/data.yaml", "a: [1, 2\nb: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x/data.yaml:"), "{err}");
        let err = parse_data("x/data.json", "{\"a\": }")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x/data.json:1:"), "{err}");
        let err = parse_data("x/data.yaml", "- 1\n- 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must hold an object"), "{err}");
    }

    #[test]
    fn yaml_bomb_is_refused() {
        let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n\
                    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n\
                    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n\
                    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
                    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n\
                    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
                    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
                    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n\
                    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        let err = parse_data("bomb/data.yaml", bomb).unwrap_err().to_string();
        assert!(err.contains("bomb/data.yaml"), "{err}");
    }

    #[test]
    fn non_utf8_file_is_named() {
        let err =
            BundleFiles::from_files("t", vec![("p.rego".into(), vec![0xff, 0xfe])]).unwrap_err();
        assert_eq!(err.to_string(), "p.rego: not UTF-8 text");
    }

    #[test]
    fn directory_skips_hidden_entries_and_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("..2026_11_21");
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("p.rego"), "package validate.p\n").unwrap();
        std::os::unix::fs::symlink("..2026_11_21", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/p.rego", dir.path().join("p.rego")).unwrap();
        let b = BundleFiles::from_dir(dir.path()).unwrap();
        assert_eq!(b.modules.len(), 1);
        assert_eq!(b.modules[0].path, "p.rego");
    }
}

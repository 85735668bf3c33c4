//! Bundle files: the Rego modules and data documents of a policy bundle, read
//! from a directory or from the default bundle embedded in the binary.
//!
//! Reading is all this module does; compiling is [`crate::compose`]'s job. Data
//! files (`data.json`, `data.yaml`, `data.yml`) are mapped into `data` by their
//! directory path, as OPA bundles do: `validate/registries/data.yaml` becomes
//! `data.validate.registries`. Every file is size-checked and must be UTF-8;
//! every error names the file it came from.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::objects::{self, ObjectDoc};

/// The default bundle (`policies/`), embedded at build time.
static DEFAULT_BUNDLE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../policies");

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
    /// Two sources provide the same file.
    #[error("{path} is provided by both {first} and {second}")]
    DuplicateFile {
        /// The bundle path both provide.
        path: String,
        /// The first source.
        first: String,
        /// The second source.
        second: String,
    },
    /// An OPA bundle archive is malformed.
    #[error("{path}: {message}")]
    Archive {
        /// The archive (and entry, when known).
        path: String,
        /// What is wrong.
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
    /// root, or `configmap/<name>/<key>` for ConfigMaps.
    pub path: String,
    /// The Rego source.
    pub source: String,
    /// Restricted modules (from ConfigMaps) may only declare policy packages.
    pub restricted: bool,
}

impl ModuleFile {
    /// Test modules (`*_test.rego`) are compiled by `regent test` only.
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// One data document of a bundle (or a policy's parameters schema),
/// already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Where it came from, as shown in errors.
    pub path: String,
    /// The `data` path it is mounted at (its directory's components).
    pub mount: Vec<String>,
    /// The document.
    pub value: Json,
    /// Its text, to place an error about a key at its line.
    pub text: String,
    /// Which bundle of a composition it belongs to (0 for the first, or
    /// only, bundle): a higher layer's data overrides a lower one's.
    pub layer: usize,
}

/// Where something in a bundle's data is: a file, a line and a column
/// (0 when only the file is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: String,
    /// 1-based line, or 0.
    pub line: usize,
    /// 1-based column, or 0.
    pub column: usize,
}

/// The file name of a native policy's parameters schema, in its folder.
pub const SCHEMA_FILES: [&str; 3] = [
    "parameters.schema.yaml",
    "parameters.schema.yml",
    "parameters.schema.json",
];

/// Whether a file (by its name) is a native policy's parameters schema.
pub fn is_schema_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    SCHEMA_FILES.contains(&name)
}

/// What a file of a bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A Rego module.
    Module,
    /// A data document mounted at this `data` path.
    Data(Vec<String>),
    /// A native policy's parameters schema, for the policy at this path.
    Schema(Vec<String>),
    /// A YAML file of Kubernetes objects; the Gatekeeper ones are loaded.
    Objects,
    /// An OPA bundle `.manifest`.
    Manifest,
    /// Anything else (skipped).
    Other,
}

/// One file of a bundle, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it came from, as shown in errors.
    pub label: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Modules that may only declare policy packages (ConfigMap sources).
    pub restricted: bool,
    /// The OPA archive it was unpacked from, if any.
    pub archive: Option<String>,
}

impl Entry {
    /// A file at `path` inside a bundle tree, classified as OPA does: `.rego`
    /// modules, `data.json`/`data.yaml` mounted at their directory, `.manifest`.
    pub fn at_path(label: String, path: &str, bytes: Vec<u8>) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        let kind = if name.ends_with(".rego") {
            EntryKind::Module
        } else if is_schema_file(name) {
            EntryKind::Schema(mount_of(path))
        } else if is_data_file(name) {
            EntryKind::Data(mount_of(path))
        } else if name == ".manifest" {
            EntryKind::Manifest
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            EntryKind::Objects
        } else {
            EntryKind::Other
        };
        Self {
            label,
            kind,
            bytes,
            restricted: false,
            archive: None,
        }
    }
}

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

/// The files of one bundle, before compilation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleFiles {
    /// A human-readable name for the source ("embedded default bundle", a path).
    pub origin: String,
    /// The Rego modules, sorted by path.
    pub modules: Vec<ModuleFile>,
    /// The data documents, sorted by path.
    pub data: Vec<DataFile>,
    /// Native policies' parameters schemas, sorted by path.
    pub schemas: Vec<DataFile>,
    /// Policy objects (Gatekeeper's), by file and position; which YAML
    /// documents those are is [`crate::objects`]' call.
    pub objects: Vec<ObjectDoc>,
    /// A content hash over every file, stable across machines.
    pub revision: String,
    /// The directory it was read from, if any: in a composition, the
    /// files of every bundle after the first are labelled under it
    /// (`my-bundle/validate/x/data.yaml`), so each label says whose it is.
    pub root: Option<String>,
}

impl BundleFiles {
    /// The default bundle embedded in the binary.
    pub fn embedded() -> Result<Self, BundleError> {
        Self::from_files("embedded default bundle", embedded_files())
    }

    /// Reads every `.rego` module and data file under `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, BundleError> {
        let origin = dir.display().to_string();
        let mut files = Self::from_entries(&origin, read_dir_entries(dir)?)?;
        files.root = Some(origin);
        Ok(files)
    }

    /// Builds a bundle from `(relative path, contents)` pairs of a bundle
    /// tree (directory or embedded copy).
    pub fn from_files(origin: &str, files: Vec<(String, Vec<u8>)>) -> Result<Self, BundleError> {
        let entries = files
            .into_iter()
            .map(|(path, bytes)| Entry::at_path(path.clone(), &path, bytes))
            .collect();
        Self::from_entries(origin, entries)
    }

    /// Builds a bundle from classified entries: the common path of every
    /// source. The revision is a content hash, or the `.manifest` revision
    /// when the whole bundle is one OPA archive that declares one.
    pub fn from_entries(origin: &str, mut entries: Vec<Entry>) -> Result<Self, BundleError> {
        entries.sort_by(|a, b| a.label.cmp(&b.label));
        let mut hasher = Sha256::new();
        let mut modules = Vec::new();
        let mut data = Vec::new();
        let mut schemas = Vec::new();
        let mut object_docs = Vec::new();
        let mut manifest_revision = None;
        let single_archive = entries.first().and_then(|e| e.archive.clone()).filter(|a| {
            entries
                .iter()
                .all(|e| e.archive.as_deref() == Some(a.as_str()))
        });
        for entry in entries {
            let Entry {
                label,
                kind,
                bytes,
                restricted,
                ..
            } = entry;
            if kind == EntryKind::Other {
                continue;
            }
            if kind == EntryKind::Objects {
                // Only files with Gatekeeper objects belong to the bundle;
                // other YAML (a kustomization, a chart's values) is skipped.
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                if !objects::holds_policy_objects(text) {
                    continue;
                }
            }
            if bytes.len() > MAX_FILE_BYTES {
                return Err(BundleError::TooLarge {
                    path: label,
                    size: bytes.len(),
                    limit: MAX_FILE_BYTES,
                });
            }
            hasher.update(label.as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            let text = String::from_utf8(bytes).map_err(|_| BundleError::NotUtf8 {
                path: label.clone(),
            })?;
            match kind {
                EntryKind::Module => modules.push(ModuleFile {
                    path: label,
                    source: text,
                    restricted,
                }),
                EntryKind::Data(mount) => {
                    let value = parse_data(&label, &text)?;
                    data.push(DataFile {
                        path: label,
                        mount,
                        value,
                        text,
                        layer: 0,
                    });
                }
                EntryKind::Schema(mount) => {
                    let value = parse_data(&label, &text)?;
                    schemas.push(DataFile {
                        path: label,
                        mount,
                        value,
                        text,
                        layer: 0,
                    });
                }
                EntryKind::Objects => {
                    object_docs.extend(objects::parse_policy_objects(&label, &text).map_err(
                        |e| BundleError::Data {
                            path: e.path,
                            line: e.line,
                            column: e.column,
                            message: e.message,
                        },
                    )?)
                }
                EntryKind::Manifest => {
                    let manifest = parse_data(&format!("{label}.json"), &text)?;
                    manifest_revision = manifest
                        .get("revision")
                        .and_then(Json::as_str)
                        .filter(|r| !r.is_empty())
                        .map(str::to_string);
                }
                EntryKind::Other => {}
            }
        }
        let digest = hasher.finalize();
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let revision = match (single_archive, manifest_revision) {
            (Some(_), Some(r)) => r,
            _ => hash,
        };
        Ok(Self {
            origin: origin.to_string(),
            modules,
            data,
            schemas,
            objects: object_docs,
            revision,
            root: None,
        })
    }

    /// Where `path` (below `data`) is set: the data file whose mount is
    /// the longest prefix of it, and the line of the deepest part of the
    /// path found in that file (the key itself when present).
    pub fn locate(&self, path: &[String]) -> Option<Location> {
        let file = self
            .data
            .iter()
            .filter(|f| path.starts_with(&f.mount))
            .max_by_key(|f| {
                let rest = &path[f.mount.len()..];
                // Prefer the file that actually holds the key.
                let holds = rest.iter().try_fold(&f.value, |at, k| at.get(k)).is_some();
                (holds, f.layer, f.mount.len())
            })?;
        Some(locate_in(file, &path[file.mount.len()..]))
    }

    /// The parameters schema of the policy at `mount` (`validate/<name>`).
    pub fn schema_for(&self, mount: &[String]) -> Option<&DataFile> {
        self.schemas.iter().find(|f| f.mount == mount)
    }
}

/// Where `rest` (below the file's mount) is in `file`.
pub fn locate_in(file: &DataFile, rest: &[String]) -> Location {
    let (line, column) = crate::positions::nearest(&file.text, rest).unwrap_or((0, 0));
    Location {
        path: file.path.clone(),
        line,
        column,
    }
}

impl BundleFiles {
    /// Merges every data file into one `data` document. Within one bundle,
    /// two files that set the same leaf are a conflict naming both; in a
    /// composition, a later bundle's data overrides an earlier one's.
    pub fn merged_data(&self) -> Result<Json, BundleError> {
        self.merged_data_with_overrides().map(|(data, _)| data)
    }

    /// [`BundleFiles::merged_data`], and every value a later bundle of a
    /// composition overrides, so an override is never silent.
    pub fn merged_data_with_overrides(&self) -> Result<(Json, Vec<Override>), BundleError> {
        let mut root = Json::Object(Map::new());
        let mut overrides = Vec::new();
        let mut below: Vec<(String, String)> = Vec::new();
        let top = self.data.iter().map(|f| f.layer).max().unwrap_or(0);
        for layer in 0..=top {
            let mut merged = Json::Object(Map::new());
            let mut owners: Vec<(String, String)> = Vec::new();
            for file in self.data.iter().filter(|f| f.layer == layer) {
                let mut doc = file.value.clone();
                for segment in file.mount.iter().rev() {
                    let mut m = Map::new();
                    m.insert(segment.clone(), doc);
                    doc = Json::Object(m);
                }
                merge(&mut merged, doc, &mut Vec::new(), &file.path, &mut owners)?;
            }
            overlay(
                &mut root,
                merged,
                &mut Vec::new(),
                &owners,
                &below,
                &mut overrides,
            );
            below.extend(owners);
        }
        Ok((root, overrides))
    }
}

/// A value of a lower bundle replaced by a later bundle of a composition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The dotted key below `data`.
    pub key: String,
    /// The file that sets it now.
    pub by: String,
    /// The file whose value it replaces.
    pub replaces: String,
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "data.{} from {} overrides {}",
            self.key, self.by, self.replaces
        )
    }
}

/// Lays a later bundle's merged data over the data so far: objects merge,
/// anything else replaces (and is recorded as an override).
fn overlay(
    target: &mut Json,
    upper: Json,
    at: &mut Vec<String>,
    owners: &[(String, String)],
    below: &[(String, String)],
    out: &mut Vec<Override>,
) {
    let owner = |list: &[(String, String)], key: &str| {
        list.iter()
            .rev()
            .find(|(k, _)| key == k || key.starts_with(&format!("{k}.")))
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    };
    match (target, upper) {
        (Json::Object(t), Json::Object(u)) => {
            for (k, v) in u {
                at.push(k.clone());
                match t.get_mut(&k) {
                    Some(existing) => overlay(existing, v, at, owners, below, out),
                    None => {
                        t.insert(k, v);
                    }
                }
                at.pop();
            }
        }
        (target, upper) => {
            let key = at.join(".");
            out.push(Override {
                by: owner(owners, &key),
                replaces: owner(below, &key),
                key,
            });
            *target = upper;
        }
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

impl BundleFiles {
    /// Composes bundles as one, bottom first (the embedded default bundle,
    /// then `--policies` in the order given, then ConfigMaps): modules,
    /// Gatekeeper objects and schemas side by side, data laid over (a later
    /// bundle's value overrides an earlier one's, and says so in
    /// [`BundleFiles::merged_data_with_overrides`]). A file path in two
    /// bundles, or two schemas for one policy, is an error naming both. The
    /// revision hashes the revisions in order.
    pub fn compose(layers: Vec<BundleFiles>) -> Result<Self, BundleError> {
        let mut layers = layers.into_iter();
        let Some(mut out) = layers.next() else {
            return Ok(Self::default());
        };
        let mut hasher = Sha256::new();
        hasher.update(out.revision.as_bytes());
        let mut origins = vec![out.origin.clone()];
        for (index, mut layer) in layers.enumerate() {
            let layer_no = index + 1;
            if let Some(root) = layer.root.clone() {
                let under = |p: &mut String| *p = format!("{}/{p}", root.trim_end_matches('/'));
                layer.modules.iter_mut().for_each(|m| under(&mut m.path));
                layer.data.iter_mut().for_each(|d| under(&mut d.path));
                layer.schemas.iter_mut().for_each(|d| under(&mut d.path));
                layer.objects.iter_mut().for_each(|o| under(&mut o.path));
            }
            let taken = |path: &str, out: &BundleFiles| {
                out.modules
                    .iter()
                    .map(|m| &m.path)
                    .chain(out.data.iter().map(|d| &d.path))
                    .chain(out.schemas.iter().map(|d| &d.path))
                    .any(|p| p == path)
            };
            for path in layer
                .modules
                .iter()
                .map(|m| &m.path)
                .chain(layer.data.iter().map(|d| &d.path))
                .chain(layer.schemas.iter().map(|d| &d.path))
            {
                if taken(path, &out) {
                    return Err(BundleError::DuplicateFile {
                        path: path.clone(),
                        first: origins.join(" + "),
                        second: layer.origin.clone(),
                    });
                }
            }
            if let Some(s) = layer
                .schemas
                .iter()
                .find(|s| out.schemas.iter().any(|o| o.mount == s.mount))
            {
                return Err(BundleError::DuplicateFile {
                    path: format!("{}/parameters.schema", s.mount.join("/")),
                    first: origins.join(" + "),
                    second: layer.origin.clone(),
                });
            }
            hasher.update([0]);
            hasher.update(layer.revision.as_bytes());
            origins.push(layer.origin.clone());
            out.modules.extend(layer.modules);
            out.data.extend(layer.data.into_iter().map(|mut d| {
                d.layer = layer_no;
                d
            }));
            out.schemas.extend(layer.schemas.into_iter().map(|mut d| {
                d.layer = layer_no;
                d
            }));
            out.objects.extend(layer.objects);
        }
        if origins.len() > 1 {
            let digest = hasher.finalize();
            out.revision = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            out.origin = origins.join(" + ");
        }
        out.modules.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
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
    fn oversized_files_and_archives_that_climb_out_are_refused() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let err = BundleFiles::from_files("t", vec![("big.rego".into(), big)]).unwrap_err();
        assert!(
            matches!(&err, BundleError::TooLarge { path, .. } if path == "big.rego"),
            "{err}"
        );
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let text = b"package validate.x";
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        // `set_path` refuses `..`; write the name the way a hostile archive would.
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.reg");
        header.set_cksum();
        builder.append(&header, &text[..]).unwrap();
        let gz = builder.into_inner().unwrap().finish().unwrap();
        let err = unpack_archive("cm/b.tar.gz", &gz).unwrap_err().to_string();
        assert!(err.contains("climbs out of the bundle"), "{err}");
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

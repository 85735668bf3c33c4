//! Bundle files: the Rego modules and data documents of a policy bundle, read
//! from a directory or from the default bundle embedded in the binary.
//!
//! Reading is all this module does; compiling is [`crate::compose`]'s job. Data
//! files (`data.json`, `data.yaml`, `data.yml`) are mapped into `data` by their
//! directory path, as OPA bundles do: `validate/registries/data.yaml` becomes
//! `data.validate.registries`. Every file is size-checked and must be UTF-8;
//! every error names the file it came from.

use std::path::Path;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::objects::{self, ObjectDoc};

mod data;
mod read;

pub use data::{locate_in, parse_data, Override};
pub use read::{embedded_files, read_dir_entries, unpack_archive, MAX_ARCHIVE_FILES};
use read::{is_data_file, mount_of};

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

#[cfg(test)]
mod tests;

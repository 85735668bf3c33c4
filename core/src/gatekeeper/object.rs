//! What every Gatekeeper loader shares: the error that names the object and
//! its place in the file, and reading names and string lists.

use serde_json::Value as Json;

use crate::objects::ObjectDoc;

/// Errors loading Gatekeeper objects. Each names the object first (so that
/// in a bundle of fifty templates the one to fix or drop is the first thing
/// an operator reads), then the file and line, then what is wrong: one line.
#[derive(Debug, thiserror::Error)]
pub enum GatekeeperError {
    /// An object is malformed or refers to something missing.
    #[error("{object}: {path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line the object starts at.
        line: usize,
        /// `Kind name`.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// A template's Rego does not compile.
    #[error(
        "ConstraintTemplate {template} does not compile: {path}:{file_line}: {field}:{line}:{column}: {message}"
    )]
    Rego {
        /// The file.
        path: String,
        /// The line in the file (0 when it could not be located).
        file_line: usize,
        /// The template.
        template: String,
        /// Which source: `spec.targets[0].rego`, `...libs[1]`, `...code[0].source.rego`.
        field: String,
        /// 1-based line inside that source.
        line: usize,
        /// 1-based column inside that source.
        column: usize,
        /// What regorus said (first line).
        message: String,
        /// The full report.
        detail: String,
    },
    /// A Constraint's parameters do not fit its template's schema.
    #[error("{kind} {constraint}: {path}:{line}: {field}: {message} (schema of ConstraintTemplate {template})")]
    Parameters {
        /// The file.
        path: String,
        /// 1-based line the Constraint starts at.
        line: usize,
        /// The Constraint's kind.
        kind: String,
        /// The Constraint.
        constraint: String,
        /// The template.
        template: String,
        /// The field, e.g. `spec.parameters.labels[0].key`.
        field: String,
        /// Why it does not fit.
        message: String,
    },
}

/// An object's `metadata.name`, which every Gatekeeper object needs.
pub fn name_of(doc: &ObjectDoc) -> Result<String, GatekeeperError> {
    doc.value["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(doc, "metadata.name is missing"))
}

/// The strings of a JSON array (others and non-arrays: none).
pub fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// An [`GatekeeperError::Invalid`] for `doc`.
pub fn invalid(doc: &ObjectDoc, message: impl Into<String>) -> GatekeeperError {
    GatekeeperError::Invalid {
        path: doc.path.clone(),
        line: doc.line,
        object: doc.describe(),
        message: message.into(),
    }
}

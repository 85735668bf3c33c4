//! A native policy's settings, read strictly: the data at the policy's own
//! path (`data.validate.<name>`: `enforcement`, `match`, `order`,
//! `severity`, `category`, `parameters`) and, when the policy's folder has
//! one, its parameters schema (`parameters.schema.yaml`).
//!
//! A typo in settings must not silently change what a policy does:
//! `enforcment: warn` left the policy denying, `minReplica` turned a rule
//! off, `minReplicas: "2"` made it fire on everything. So every key is
//! known or an error, every value has its type, parameters are checked
//! against the policy's schema in closed mode ([`crate::schema::Mode`]),
//! and each error names the file, line and column of the key, with the
//! closest valid name as a hint. Every problem of every policy is reported
//! at once.

use serde_json::Value as Json;

use crate::bundle::{locate_in, BundleFiles};
use crate::native::policy::{Match, Policy, PolicyKind, POD_KINDS};
use crate::outcome::{Enforcement, Severity};
use crate::runtime::check::{closest, Finding};
use crate::schema;

/// The keys of a policy's settings.
pub const KEYS: [&str; 7] = [
    "enforcement",
    "match",
    "order",
    "severity",
    "category",
    "exceptions",
    "parameters",
];

/// The keys under `match`.
pub const MATCH_KEYS: [&str; 4] = ["kinds", "operations", "namespaces", "excludedNamespaces"];

/// Admission operations a policy may match.
pub const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "*"];

const ENFORCEMENTS: [&str; 4] = ["deny", "warn", "dryrun", "off"];
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// Reads and checks the settings of policy `kind`/`name` (declared in
/// `source`) from `data`, filling in its parameters' schema defaults. The
/// errors are every problem found, each placed in its file.
pub fn read(
    kind: PolicyKind,
    name: &str,
    source: &str,
    data: &mut Json,
    files: &BundleFiles,
) -> Result<Policy, Vec<Finding>> {
    let base = vec![kind.root().to_string(), name.to_string()];
    let mut reader = Reader {
        base: base.clone(),
        files,
        findings: Vec::new(),
    };
    let mut policy = Policy::new(kind, name, source);
    let schema_file = files.schema_for(&base);
    if let Some(file) = schema_file {
        for m in schema::lint(&file.value) {
            let at = locate_in(file, &m.path);
            reader.findings.push(Finding {
                path: at.path,
                line: at.line,
                column: at.column,
                message: format!("parameters schema: {}: {}", m.field, m.message),
                hint: m.hint,
            });
        }
    }
    let node = data.get_mut(kind.root()).and_then(|k| k.get_mut(name));
    let Some(node) = node else {
        if let Some(file) = schema_file.filter(|_| reader.findings.is_empty()) {
            // No settings at all: the schema's defaults, or its `required`.
            let mut parameters = Json::Object(serde_json::Map::new());
            match schema::check_mode(
                &file.value,
                &mut parameters,
                "parameters",
                schema::Mode::Closed,
            ) {
                Ok(()) => insert_parameters(data, &base, parameters),
                Err(m) => reader.at(
                    &["parameters"],
                    format!("{}: {}", m.field, m.message),
                    m.hint,
                ),
            }
        }
        return finish(policy, reader.findings);
    };
    let Json::Object(settings) = node else {
        reader.at(
            &[],
            "a policy's settings must be a mapping".to_string(),
            None,
        );
        return finish(policy, reader.findings);
    };
    for key in settings.keys() {
        if !KEYS.contains(&key.as_str()) {
            reader.at(
                &[key],
                format!(
                    "unknown setting {key:?}; a policy's settings are {}",
                    KEYS.join(", ")
                ),
                closest(key, KEYS.into_iter()),
            );
        }
    }
    if let Some(v) = settings.get("enforcement") {
        match v.as_str() {
            Some(text) => match serde_json::from_value::<Enforcement>(v.clone()) {
                Ok(e) => policy.enforcement = e,
                Err(_) => reader.at(
                    &["enforcement"],
                    format!(
                        "{text:?} is not an enforcement; use one of {}",
                        ENFORCEMENTS.join(", ")
                    ),
                    closest(text, ENFORCEMENTS.into_iter()),
                ),
            },
            None => reader.at(&["enforcement"], must_be("a string", v), None),
        }
    }
    if let Some(v) = settings.get("match") {
        if let Some(m) = reader.matching(v) {
            policy.matching = m;
        }
    }
    if let Some(v) = settings.get("order") {
        match v.as_i64() {
            Some(n) => policy.order = n,
            None => reader.at(&["order"], must_be("an integer", v), None),
        }
    }
    if let Some(v) = settings.get("severity") {
        match v.as_str().map(|t| (t, Severity::parse(t))) {
            Some((_, Some(s))) => policy.severity = Some(s),
            Some((t, None)) => reader.at(
                &["severity"],
                format!(
                    "{t:?} is not a severity; use one of {}",
                    SEVERITIES.join(", ")
                ),
                closest(&t.to_ascii_lowercase(), SEVERITIES.into_iter()),
            ),
            None => reader.at(&["severity"], must_be("a string", v), None),
        }
    }
    if let Some(v) = settings.get("exceptions") {
        match v.as_str() {
            Some("allowed") => {}
            Some("forbidden") => policy.exceptions_forbidden = true,
            Some(t) => reader.at(
                &["exceptions"],
                format!("{t:?} is not allowed or forbidden"),
                closest(t, ["allowed", "forbidden"].into_iter()),
            ),
            None => reader.at(&["exceptions"], must_be("a string", v), None),
        }
    }
    if let Some(v) = settings.get("category") {
        match v.as_str() {
            Some(c) => policy.category = Some(c.to_string()),
            None => reader.at(&["category"], must_be("a string", v), None),
        }
    }
    let lint_ok = reader
        .findings
        .iter()
        .all(|f| !f.message.starts_with("parameters schema"));
    match (settings.get_mut("parameters"), schema_file) {
        (Some(p), _) if !p.is_object() && !p.is_null() => {
            let message = must_be("a mapping", p);
            reader.at(&["parameters"], message, None);
        }
        (p, Some(file)) if lint_ok => {
            let mut parameters = match p {
                Some(v @ Json::Object(_)) => v.clone(),
                _ => Json::Object(serde_json::Map::new()),
            };
            match schema::check_mode(
                &file.value,
                &mut parameters,
                "parameters",
                schema::Mode::Closed,
            ) {
                Ok(()) => {
                    settings.insert("parameters".to_string(), parameters);
                }
                Err(m) => {
                    let mut path = vec!["parameters".to_string()];
                    path.extend(m.path);
                    reader.at_path(&path, format!("{}: {}", m.field, m.message), m.hint);
                }
            }
        }
        _ => {}
    }
    finish(policy, reader.findings)
}

fn finish(policy: Policy, mut findings: Vec<Finding>) -> Result<Policy, Vec<Finding>> {
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    if findings.is_empty() {
        Ok(policy)
    } else {
        Err(findings)
    }
}

fn insert_parameters(data: &mut Json, base: &[String], parameters: Json) {
    let mut at = data;
    for key in base {
        if !at.is_object() {
            *at = Json::Object(serde_json::Map::new());
        }
        let Json::Object(m) = at else { return };
        at = m
            .entry(key.clone())
            .or_insert_with(|| Json::Object(serde_json::Map::new()));
    }
    if let Json::Object(m) = at {
        m.insert("parameters".to_string(), parameters);
    }
}

fn must_be(what: &str, v: &Json) -> String {
    format!("must be {what}, got {v}")
}

struct Reader<'a> {
    base: Vec<String>,
    files: &'a BundleFiles,
    findings: Vec<Finding>,
}

impl Reader<'_> {
    fn at(&mut self, key: &[&str], message: String, hint: Option<String>) {
        let path: Vec<String> = key.iter().map(|k| k.to_string()).collect();
        self.at_path(&path, message, hint);
    }

    /// A finding about `key` (below the policy's settings), placed in the
    /// file that sets it.
    fn at_path(&mut self, key: &[String], message: String, hint: Option<String>) {
        let mut full = self.base.clone();
        full.extend(key.iter().cloned());
        let location = self.files.locate(&full);
        let (path, line, column) = location
            .map(|l| (l.path, l.line, l.column))
            .unwrap_or_else(|| (format!("data.{}", self.base.join(".")), 0, 0));
        let dotted = full.join(".");
        self.findings.push(Finding {
            path,
            line,
            column,
            message: format!("data.{dotted}: {message}"),
            hint,
        });
    }

    fn strings(&mut self, key: &str, v: &Json) -> Option<Vec<String>> {
        let Json::Array(items) = v else {
            self.at(&["match", key], must_be("a list of strings", v), None);
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    let index = i.to_string();
                    self.at(&["match", key, &index], must_be("a string", item), None);
                }
            }
        }
        Some(out)
    }

    fn matching(&mut self, v: &Json) -> Option<Match> {
        let Json::Object(m) = v else {
            self.at(&["match"], must_be("a mapping", v), None);
            return None;
        };
        for key in m.keys() {
            if !MATCH_KEYS.contains(&key.as_str()) {
                self.at(
                    &["match", key],
                    format!("unknown key {key:?}; match takes {}", MATCH_KEYS.join(", ")),
                    closest(key, MATCH_KEYS.into_iter()),
                );
            }
        }
        let mut out = Match::default();
        if let Some(kinds) = m.get("kinds").and_then(|v| self.strings("kinds", v)) {
            for (i, kind) in kinds.iter().enumerate() {
                let lower = kind.to_ascii_lowercase();
                let known = POD_KINDS.iter().find(|k| k.to_ascii_lowercase() == lower);
                if let Some(k) = known.filter(|k| **k != kind) {
                    let index = i.to_string();
                    self.at(
                        &["match", "kinds", &index],
                        format!("{kind:?} is not a kind; kinds are written as the API has them"),
                        Some(k.to_string()),
                    );
                }
            }
            out.kinds = kinds;
        }
        if let Some(ops) = m
            .get("operations")
            .and_then(|v| self.strings("operations", v))
        {
            for (i, op) in ops.iter().enumerate() {
                if !OPERATIONS.contains(&op.as_str()) {
                    let index = i.to_string();
                    self.at(
                        &["match", "operations", &index],
                        format!("{op:?} is not an operation; use {}", OPERATIONS.join(", ")),
                        closest(&op.to_ascii_uppercase(), OPERATIONS.into_iter()),
                    );
                }
            }
            out.operations = ops;
        }
        if let Some(ns) = m
            .get("namespaces")
            .and_then(|v| self.strings("namespaces", v))
        {
            out.namespaces = ns;
        }
        if let Some(ns) = m
            .get("excludedNamespaces")
            .and_then(|v| self.strings("excludedNamespaces", v))
        {
            out.excluded_namespaces = ns;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> BundleFiles {
        BundleFiles::from_files(
            "t",
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
                .collect(),
        )
        .unwrap()
    }

    fn read_p(files: &[(&str, &str)]) -> Result<(Policy, Json), Vec<Finding>> {
        let b = bundle(files);
        let mut data = b.merged_data().unwrap();
        read(
            PolicyKind::Validate,
            "p",
            "validate/p/policy.rego",
            &mut data,
            &b,
        )
        .map(|p| (p, data))
    }

    const SCHEMA: &str = "type: object\nproperties:\n  minReplicas: {type: integer, minimum: 1, default: 2}\n  mode: {type: string, enum: [strict, lax]}\n";

    #[test]
    fn a_misspelled_key_is_an_error_at_its_line_with_a_hint() {
        let e = read_p(&[("validate/p/data.yaml", "# settings\nenforcment: warn\n")]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "validate/p/data.yaml:2:1: data.validate.p.enforcment: unknown setting \"enforcment\"; a policy's settings are enforcement, match, order, severity, category, exceptions, parameters (did you mean enforcement?)"
        );
    }

    #[test]
    fn values_are_checked_and_every_problem_is_reported() {
        let e = read_p(&[(
            "validate/p/data.yaml",
            "enforcement: wran\nmatch:\n  kinds: Pod\n  operations: [CREAT]\n  excludeNamespaces: [a]\norder: first\nseverity: urgent\n",
        )])
        .unwrap_err();
        let found: Vec<(usize, Option<&str>)> =
            e.iter().map(|f| (f.line, f.hint.as_deref())).collect();
        assert_eq!(
            found,
            vec![
                (1, Some("warn")),
                (3, None),
                (4, Some("CREATE")),
                (5, Some("excludedNamespaces")),
                (6, None),
                (7, None),
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn parameters_follow_the_schema_with_defaults_and_closed_fields() {
        let (_, data) = read_p(&[
            ("validate/p/data.yaml", "enforcement: warn\n"),
            ("validate/p/parameters.schema.yaml", SCHEMA),
        ])
        .unwrap();
        assert_eq!(data["validate"]["p"]["parameters"]["minReplicas"], 2);
        let e = read_p(&[
            ("validate/p/data.yaml", "parameters:\n  minReplica: 3\n"),
            ("validate/p/parameters.schema.yaml", SCHEMA),
        ])
        .unwrap_err();
        assert_eq!(e[0].line, 2);
        assert_eq!(e[0].hint.as_deref(), Some("minReplicas"));
        let e = read_p(&[
            (
                "validate/p/data.yaml",
                "parameters:\n  minReplicas: \"2\"\n",
            ),
            ("validate/p/parameters.schema.yaml", SCHEMA),
        ])
        .unwrap_err();
        assert!(
            e[0].message
                .contains("must be of type integer, got string \"2\""),
            "{e:?}"
        );
        assert_eq!((e[0].path.as_str(), e[0].line), ("validate/p/data.yaml", 2));
    }

    #[test]
    fn a_schema_with_a_typo_is_an_error_in_the_schema_file() {
        let e = read_p(&[
            ("validate/p/data.yaml", "parameters: {}\n"),
            (
                "validate/p/parameters.schema.yaml",
                "type: object\nproperties:\n  a: {tpye: string}\n",
            ),
        ])
        .unwrap_err();
        assert_eq!(e[0].path, "validate/p/parameters.schema.yaml");
        assert_eq!(e[0].line, 3);
        assert_eq!(e[0].hint.as_deref(), Some("type"));
    }
}

//! Checking parameters against an OpenAPI v3 schema, as the API server
//! checks a custom resource against its CRD: types, `required`, `enum`,
//! `pattern`, bounds, `items`, `additionalProperties`, `nullable`,
//! `x-kubernetes-int-or-string` and the `allOf`/`anyOf`/`oneOf`/`not`
//! combinators. `default` values are filled in for missing properties, as
//! the API server does. Shared by the two kinds of policy that take
//! parameters: a Constraint's `spec.parameters` against its template's
//! schema, and a native policy's `parameters` against the
//! `parameters.schema.yaml` in its folder.
//!
//! Two modes. **Open** (Constraints): fields the schema does not declare
//! are kept, not refused (the API server prunes them; a template's Rego
//! never sees a difference that matters). **Closed** (native policies): a
//! field an object schema with `properties` does not declare is an error
//! with the closest declared name, because a misspelled parameter
//! (`minReplica`) otherwise silently turns a rule off; a schema opens an
//! object again with `additionalProperties`.
//!
//! Hand-written rather than a JSON Schema crate: OpenAPI's structural-schema
//! rules (`nullable`, the `x-kubernetes-*` extensions, defaulting) are not
//! JSON Schema's, and the error must name the field the way `kubectl` does.

use serde_json::Value as Json;

/// A value that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field, as `kubectl` names it (`spec.parameters.repos[0]`).
    pub field: String,
    /// The same field as components below the checked value (`repos`, `0`),
    /// to find it in a file.
    pub path: Vec<String>,
    /// Why it does not fit.
    pub message: String,
    /// The closest declared name, for a field the schema does not declare.
    pub hint: Option<String>,
}

/// Whether fields a schema does not declare are kept or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kept (Constraints, as the API server prunes them).
    Open,
    /// Refused where an object schema declares `properties` and says
    /// nothing of `additionalProperties` (native policies' parameters).
    Closed,
}

/// Checks `value` against `schema` in [`Mode::Open`], filling in defaults.
/// The error names the first field that does not fit
/// (`spec.parameters.repos[0]`) and why.
pub fn check(schema: &Json, value: &mut Json, at: &str) -> Result<(), Mismatch> {
    check_in(schema, value, at, &mut Vec::new(), Mode::Open)
}

/// [`check`] in the given mode.
pub fn check_mode(schema: &Json, value: &mut Json, at: &str, mode: Mode) -> Result<(), Mismatch> {
    check_in(schema, value, at, &mut Vec::new(), mode)
}

fn mismatch(at: &str, path: &[String], message: String) -> Mismatch {
    Mismatch {
        field: at.to_string(),
        path: path.to_vec(),
        message,
        hint: None,
    }
}

fn check_in(
    schema: &Json,
    value: &mut Json,
    at: &str,
    path: &mut Vec<String>,
    mode: Mode,
) -> Result<(), Mismatch> {
    let Json::Object(s) = schema else {
        return Ok(());
    };
    if value.is_null() {
        if s.get("nullable").and_then(Json::as_bool) == Some(true) || s.is_empty() {
            return Ok(());
        }
        if let Some(t) = s.get("type").and_then(Json::as_str) {
            return Err(mismatch(at, path, format!("must be of type {t}, got null")));
        }
    }
    if s.get("x-kubernetes-int-or-string").and_then(Json::as_bool) == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            return Err(mismatch(
                at,
                path,
                format!("must be an integer or a string, got {}", type_of(value)),
            ));
        }
    } else if let Some(t) = s.get("type").and_then(Json::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            return Err(mismatch(
                at,
                path,
                format!("must be of type {t}, got {} {value}", type_of(value)),
            ));
        }
    }
    if let Some(Json::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(Json::to_string).collect();
            let mut m = mismatch(
                at,
                path,
                format!(
                    "{value} is not one of the allowed values: {}",
                    list.join(", ")
                ),
            );
            if let Json::String(text) = value {
                m.hint =
                    crate::runtime::check::closest(text, options.iter().filter_map(Json::as_str));
            }
            return Err(m);
        }
    }
    match value {
        Json::String(text) => check_string(s, text, at, path)?,
        Json::Number(n) => check_number(s, n.as_f64().unwrap_or(0.0), at, path)?,
        Json::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Json::as_u64) {
                if count < min {
                    return Err(mismatch(
                        at,
                        path,
                        format!("must have at least {min} items"),
                    ));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Json::as_u64) {
                if count > max {
                    return Err(mismatch(at, path, format!("must have at most {max} items")));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    check_in(item_schema, item, &format!("{at}[{i}]"), path, mode)?;
                    path.pop();
                }
            }
        }
        Json::Object(fields) => {
            let properties = s.get("properties").and_then(Json::as_object);
            if let Some(required) = s.get("required").and_then(Json::as_array) {
                for name in required.iter().filter_map(Json::as_str) {
                    if !fields.contains_key(name) {
                        let mut p = path.clone();
                        p.push(name.to_string());
                        return Err(mismatch(
                            &format!("{at}.{name}"),
                            &p,
                            "is required".to_string(),
                        ));
                    }
                }
            }
            if let Some(props) = properties {
                for (name, prop) in props {
                    if !fields.contains_key(name) {
                        if let Some(default) = prop.get("default") {
                            fields.insert(name.clone(), default.clone());
                        }
                    }
                }
            }
            for (name, field) in fields.iter_mut() {
                let child = format!("{at}.{name}");
                path.push(name.clone());
                match properties.and_then(|p| p.get(name)) {
                    Some(prop) => check_in(prop, field, &child, path, mode)?,
                    None => match s.get("additionalProperties") {
                        Some(Json::Bool(false)) if properties.is_some() => {
                            return Err(undeclared(&child, path, properties))
                        }
                        Some(extra @ Json::Object(_)) => {
                            check_in(extra, field, &child, path, mode)?
                        }
                        None if mode == Mode::Closed && properties.is_some() => {
                            return Err(undeclared(&child, path, properties))
                        }
                        _ => {}
                    },
                }
                path.pop();
            }
        }
        _ => {}
    }
    combinators(s, value, at, path, mode)
}

fn undeclared(
    at: &str,
    path: &[String],
    properties: Option<&serde_json::Map<String, Json>>,
) -> Mismatch {
    let name = path.last().map(String::as_str).unwrap_or_default();
    let declared: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    Mismatch {
        field: at.to_string(),
        path: path.to_vec(),
        message: format!(
            "is not a declared field (declared: {})",
            declared.join(", ")
        ),
        hint: crate::runtime::check::closest(name, declared.into_iter()),
    }
}

/// Keywords of the OpenAPI v3 subset [`check`] reads, and those it leaves
/// to documentation; anything else in a schema is a typo.
const KEYWORDS: [&str; 31] = [
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "nullable",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "description",
    "title",
    "example",
    "format",
    "uniqueItems",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
];

/// Problems in a schema itself: an unknown keyword (a typo such as
/// `tpye`), a `type` that is not an OpenAPI type, `properties` or `items`
/// of the wrong shape, a `pattern` that does not compile. Each names the
/// keyword's path (components) and, for a typo, the closest keyword.
pub fn lint(schema: &Json) -> Vec<Mismatch> {
    let mut out = Vec::new();
    lint_in(schema, &mut Vec::new(), &mut out);
    out
}

fn lint_in(schema: &Json, path: &mut Vec<String>, out: &mut Vec<Mismatch>) {
    let Json::Object(s) = schema else {
        out.push(mismatch(
            &path.join("."),
            path,
            format!("a schema must be a mapping, got {}", type_of(schema)),
        ));
        return;
    };
    for (key, value) in s {
        path.push(key.clone());
        let here = path.join(".");
        match key.as_str() {
            k if !KEYWORDS.contains(&k) => out.push(Mismatch {
                field: here,
                path: path.clone(),
                message: "is not an OpenAPI v3 schema keyword".to_string(),
                hint: crate::runtime::check::closest(k, KEYWORDS.into_iter()),
            }),
            "type" => {
                const TYPES: [&str; 6] =
                    ["object", "array", "string", "integer", "number", "boolean"];
                match value.as_str() {
                    Some(t) if TYPES.contains(&t) => {}
                    Some(t) => out.push(Mismatch {
                        field: here,
                        path: path.clone(),
                        message: format!(
                            "{t:?} is not a type (object, array, string, integer, number, boolean)"
                        ),
                        hint: crate::runtime::check::closest(t, TYPES.into_iter()),
                    }),
                    None => out.push(mismatch(&here, path, "must be a string".to_string())),
                }
            }
            "properties" => match value {
                Json::Object(props) => {
                    for (name, prop) in props {
                        path.push(name.clone());
                        lint_in(prop, path, out);
                        path.pop();
                    }
                }
                _ => out.push(mismatch(
                    &here,
                    path,
                    "must be a mapping of field names to schemas".to_string(),
                )),
            },
            "items" | "not" => lint_in(value, path, out),
            "additionalProperties" if value.is_object() => lint_in(value, path, out),
            "allOf" | "anyOf" | "oneOf" => match value {
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(i.to_string());
                        lint_in(item, path, out);
                        path.pop();
                    }
                }
                _ => out.push(mismatch(
                    &here,
                    path,
                    "must be a list of schemas".to_string(),
                )),
            },
            "required" | "enum" if !value.is_array() => {
                out.push(mismatch(&here, path, "must be a list".to_string()))
            }
            "pattern" => {
                if let Some(Err(e)) = value.as_str().map(regex::Regex::new) {
                    out.push(mismatch(&here, path, format!("does not compile: {e}")));
                }
            }
            _ => {}
        }
        path.pop();
    }
}

fn combinators(
    s: &serde_json::Map<String, Json>,
    value: &Json,
    at: &str,
    path: &[String],
    mode: Mode,
) -> Result<(), Mismatch> {
    let fits =
        |schema: &Json| check_in(schema, &mut value.clone(), at, &mut path.to_vec(), mode).is_ok();
    if let Some(Json::Array(all)) = s.get("allOf") {
        for schema in all {
            check_in(schema, &mut value.clone(), at, &mut path.to_vec(), mode)?;
        }
    }
    if let Some(Json::Array(any)) = s.get("anyOf") {
        if !any.iter().any(fits) {
            return Err(mismatch(
                at,
                path,
                "fits none of the anyOf schemas".to_string(),
            ));
        }
    }
    if let Some(Json::Array(one)) = s.get("oneOf") {
        let n = one.iter().filter(|schema| fits(schema)).count();
        if n != 1 {
            return Err(mismatch(
                at,
                path,
                format!("must fit exactly one of the oneOf schemas, fits {n}"),
            ));
        }
    }
    if let Some(not) = s.get("not") {
        if fits(not) {
            return Err(mismatch(
                at,
                path,
                "fits the schema under `not`".to_string(),
            ));
        }
    }
    Ok(())
}

fn check_string(
    s: &serde_json::Map<String, Json>,
    text: &str,
    at: &str,
    path: &[String],
) -> Result<(), Mismatch> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Json::as_u64) {
        if len < min {
            return Err(mismatch(
                at,
                path,
                format!("must be at least {min} characters"),
            ));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Json::as_u64) {
        if len > max {
            return Err(mismatch(
                at,
                path,
                format!("must be at most {max} characters"),
            ));
        }
    }
    if let Some(pattern) = s.get("pattern").and_then(Json::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                return Err(mismatch(
                    at,
                    path,
                    format!("{text:?} does not match {pattern:?}"),
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(mismatch(
                    at,
                    path,
                    format!("the schema's pattern {pattern:?} is invalid: {e}"),
                ))
            }
        }
    }
    Ok(())
}

fn check_number(
    s: &serde_json::Map<String, Json>,
    n: f64,
    at: &str,
    path: &[String],
) -> Result<(), Mismatch> {
    let exclusive = |key| s.get(key).and_then(Json::as_bool) == Some(true);
    if let Some(min) = s.get("minimum").and_then(Json::as_f64) {
        if n < min || (exclusive("exclusiveMinimum") && n == min) {
            return Err(mismatch(at, path, format!("must be at least {min}")));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Json::as_f64) {
        if n > max || (exclusive("exclusiveMaximum") && n == max) {
            return Err(mismatch(at, path, format!("must be at most {max}")));
        }
    }
    Ok(())
}

fn type_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "number",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> Json {
        json!({
            "type": "object",
            "properties": {
                "labels": {"type": "array", "items": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {"key": {"type": "string", "minLength": 1},
                                   "allowedRegex": {"type": "string"}}}},
                "mode": {"type": "string", "enum": ["strict", "lax"], "default": "lax"},
                "ratio": {"type": "number", "minimum": 0},
                "port": {"x-kubernetes-int-or-string": true}
            }
        })
    }

    #[test]
    fn fitting_parameters_get_their_defaults() {
        let mut v = json!({"labels": [{"key": "owner"}], "extra": 1, "port": "http"});
        check(&schema(), &mut v, "spec.parameters").unwrap();
        assert_eq!(v["mode"], "lax");
        assert_eq!(v["extra"], 1);
    }

    #[test]
    fn closed_mode_refuses_undeclared_fields_with_the_closest_name() {
        let mut v = json!({"labels": [{"key": "owner"}], "mdoe": "strict"});
        check(&schema(), &mut v.clone(), "parameters").unwrap();
        let m = check_mode(&schema(), &mut v, "parameters", Mode::Closed).unwrap_err();
        assert_eq!(m.field, "parameters.mdoe");
        assert_eq!(m.path, vec!["mdoe".to_string()]);
        assert_eq!(m.hint.as_deref(), Some("mode"));
        let mut nested = json!({"labels": [{"key": "owner", "allowedRegx": "x"}]});
        let m = check_mode(&schema(), &mut nested, "parameters", Mode::Closed).unwrap_err();
        assert_eq!(m.path, vec!["labels", "0", "allowedRegx"]);
        assert_eq!(m.hint.as_deref(), Some("allowedRegex"));
    }

    #[test]
    fn lint_finds_typos_and_bad_types_in_a_schema() {
        let problems = lint(&json!({"type": "object", "properties": {
            "a": {"tpye": "string"}, "b": {"type": "strng"}, "c": {"type": "string", "pattern": "("}}}));
        let found: Vec<(String, Option<String>)> = problems
            .iter()
            .map(|m| (m.field.clone(), m.hint.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("properties.a.tpye".to_string(), Some("type".to_string())),
                ("properties.b.type".to_string(), Some("string".to_string())),
                ("properties.c.pattern".to_string(), None),
            ]
        );
        assert!(lint(&schema()).is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        for (value, field, says) in [
            (
                json!({"labels": [{"key": 3}]}),
                "spec.parameters.labels[0].key",
                "type string",
            ),
            (
                json!({"labels": [{}]}),
                "spec.parameters.labels[0].key",
                "required",
            ),
            (
                json!({"labels": "owner"}),
                "spec.parameters.labels",
                "type array",
            ),
            (
                json!({"mode": "loose"}),
                "spec.parameters.mode",
                "allowed values",
            ),
            (json!({"ratio": -1}), "spec.parameters.ratio", "at least 0"),
            (
                json!({"port": 1.5}),
                "spec.parameters.port",
                "integer or a string",
            ),
            (
                json!({"labels": [{"key": ""}]}),
                "spec.parameters.labels[0].key",
                "at least 1",
            ),
        ] {
            let mut v = value;
            let m = check(&schema(), &mut v, "spec.parameters").unwrap_err();
            assert_eq!(m.field, field);
            assert!(m.message.contains(says), "{}", m.message);
        }
    }
}

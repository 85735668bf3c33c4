//! Checking a Constraint's `parameters` against its template's
//! `openAPIV3Schema`, as the API server checks a custom resource against its
//! CRD: types, `required`, `enum`, `pattern`, bounds, `items`,
//! `additionalProperties`, `nullable`, `x-kubernetes-int-or-string` and the
//! `allOf`/`anyOf`/`oneOf`/`not` combinators. Fields the schema does not
//! declare are kept, not refused (the API server prunes them; a template's
//! Rego never sees a difference that matters). `default` values are filled
//! in for missing properties, as the API server does.
//!
//! Hand-written rather than a JSON Schema crate: OpenAPI's structural-schema
//! rules (`nullable`, the `x-kubernetes-*` extensions, defaulting) are not
//! JSON Schema's, and the error must name the field the way `kubectl` does.

use serde_json::Value as Json;

/// Checks `value` against `schema`, filling in defaults. The error names the
/// first field that does not fit (`spec.parameters.repos[0]`) and why.
pub fn check(schema: &Json, value: &mut Json, at: &str) -> Result<(), (String, String)> {
    let Json::Object(s) = schema else {
        return Ok(());
    };
    if value.is_null() {
        if s.get("nullable").and_then(Json::as_bool) == Some(true) || s.is_empty() {
            return Ok(());
        }
        if let Some(t) = s.get("type").and_then(Json::as_str) {
            return Err((at.to_string(), format!("must be of type {t}, got null")));
        }
    }
    if s.get("x-kubernetes-int-or-string").and_then(Json::as_bool) == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            return Err((
                at.to_string(),
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
            return Err((
                at.to_string(),
                format!("must be of type {t}, got {}", type_of(value)),
            ));
        }
    }
    if let Some(Json::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(Json::to_string).collect();
            return Err((
                at.to_string(),
                format!(
                    "{value} is not one of the allowed values: {}",
                    list.join(", ")
                ),
            ));
        }
    }
    match value {
        Json::String(text) => check_string(s, text, at)?,
        Json::Number(n) => check_number(s, n.as_f64().unwrap_or(0.0), at)?,
        Json::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Json::as_u64) {
                if count < min {
                    return Err((at.to_string(), format!("must have at least {min} items")));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Json::as_u64) {
                if count > max {
                    return Err((at.to_string(), format!("must have at most {max} items")));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        Json::Object(fields) => {
            let properties = s.get("properties").and_then(Json::as_object);
            if let Some(required) = s.get("required").and_then(Json::as_array) {
                for name in required.iter().filter_map(Json::as_str) {
                    if !fields.contains_key(name) {
                        return Err((format!("{at}.{name}"), "is required".to_string()));
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
                match properties.and_then(|p| p.get(name)) {
                    Some(prop) => check(prop, field, &child)?,
                    None => match s.get("additionalProperties") {
                        Some(Json::Bool(false)) if properties.is_some() => {
                            return Err((child, "is not a declared field".to_string()))
                        }
                        Some(extra @ Json::Object(_)) => check(extra, field, &child)?,
                        _ => {}
                    },
                }
            }
        }
        _ => {}
    }
    combinators(s, value, at)
}

fn combinators(
    s: &serde_json::Map<String, Json>,
    value: &Json,
    at: &str,
) -> Result<(), (String, String)> {
    let fits = |schema: &Json| check(schema, &mut value.clone(), at).is_ok();
    if let Some(Json::Array(all)) = s.get("allOf") {
        for schema in all {
            check(schema, &mut value.clone(), at)?;
        }
    }
    if let Some(Json::Array(any)) = s.get("anyOf") {
        if !any.iter().any(fits) {
            return Err((at.to_string(), "fits none of the anyOf schemas".to_string()));
        }
    }
    if let Some(Json::Array(one)) = s.get("oneOf") {
        let n = one.iter().filter(|schema| fits(schema)).count();
        if n != 1 {
            return Err((
                at.to_string(),
                format!("must fit exactly one of the oneOf schemas, fits {n}"),
            ));
        }
    }
    if let Some(not) = s.get("not") {
        if fits(not) {
            return Err((at.to_string(), "fits the schema under `not`".to_string()));
        }
    }
    Ok(())
}

fn check_string(
    s: &serde_json::Map<String, Json>,
    text: &str,
    at: &str,
) -> Result<(), (String, String)> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Json::as_u64) {
        if len < min {
            return Err((at.to_string(), format!("must be at least {min} characters")));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Json::as_u64) {
        if len > max {
            return Err((at.to_string(), format!("must be at most {max} characters")));
        }
    }
    if let Some(pattern) = s.get("pattern").and_then(Json::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                return Err((
                    at.to_string(),
                    format!("{text:?} does not match {pattern:?}"),
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err((
                    at.to_string(),
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
) -> Result<(), (String, String)> {
    let exclusive = |key| s.get(key).and_then(Json::as_bool) == Some(true);
    if let Some(min) = s.get("minimum").and_then(Json::as_f64) {
        if n < min || (exclusive("exclusiveMinimum") && n == min) {
            return Err((at.to_string(), format!("must be at least {min}")));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Json::as_f64) {
        if n > max || (exclusive("exclusiveMaximum") && n == max) {
            return Err((at.to_string(), format!("must be at most {max}")));
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
            let (at, message) = check(&schema(), &mut v, "spec.parameters").unwrap_err();
            assert_eq!(at, field);
            assert!(message.contains(says), "{message}");
        }
    }
}

//! Rule specialization: a template's partial set rule that the template
//! only ever reads with a field of its key fixed to a constant gets a copy
//! per constant whose bodies start by binding that field, so an evaluation
//! computes only the part of the set it reads.
//!
//! The gatekeeper-library's container templates all have this shape:
//!
//! ```rego
//! violation[{"msg": msg}] { general_violation[{"msg": msg, "field": "containers"}] }
//! violation[{"msg": msg}] { general_violation[{"msg": msg, "field": "initContainers"}] }
//!
//! general_violation[{"msg": msg, "field": field}] {
//!   container := input.review.object.spec[field][_]
//!   ...
//! }
//! ```
//!
//! Evaluated as written (by OPA too), `general_violation` walks every field
//! of `spec` (volumes, tolerations, the security context's values ...) in
//! each of its bodies, and the references then keep the elements whose
//! `field` is the constant. The rewrite adds `general_violation__regent_0`,
//! each body of it beginning with `field = "containers"`, and points the
//! first reference at it (likewise `_1` for `initContainers`). The set a
//! reference sees is the same: the elements of the original set whose
//! `field` equals the constant, which are exactly those a body yields when
//! `field` is that constant from its start. OPA does the same for a
//! reference whose whole key is ground (it unifies the head before the
//! body); this is the partly ground case.
//!
//! The rewrite is conservative; a rule is left alone unless:
//!
//! - every definition of it is a partial set rule with a plain name and an
//!   object literal for its key, the field in question being a variable in
//!   each (so a body can bind it);
//! - every mention of its name in the module is one of its heads or a
//!   reference `name[{...}]` whose object literal gives that field a scalar
//!   literal (a name in a comment or a string is not a mention);
//! - nothing can reach the rule by a path: no module mentions the package's
//!   name (`data.<package>.<rule>`, an import) and none indexes `data`
//!   dynamically (`data[x]`);
//! - each body's first statement follows its `{` (a one-line `if` body in
//!   Rego v1 is left alone).
//!
//! A rewritten template that does not compile is compiled as written
//! instead (`template::compile`), and `tests/evaluators.rs` compares the
//! rewritten template on the VM with the written one on the interpreter.
//! Specialized copies are appended after the module's last line: an
//! evaluation error inside one names a line past the end of the template
//! as written.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Expr, Lexer, Parser, Rule, RuleHead, Source, Token, TokenKind};
use regorus::Value;

/// The suffix of a specialized copy's name (then its number).
const SUFFIX: &str = "__regent_";

/// What a rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specialized {
    /// The module's source with the copies appended and the references
    /// pointing at them.
    pub source: String,
    /// The rules specialized, each with the field bindings of its copies
    /// (`general_violation: field="containers"`).
    pub copies: Vec<String>,
}

/// A partial set rule's definitions: for each, the span of the whole rule,
/// of its name in the head, of each body's first statement, and the
/// head key's fields that are variables (field name → variable name).
struct Definition {
    rule: (usize, usize),
    name: (usize, usize),
    bodies: Vec<usize>,
    variables: BTreeMap<String, String>,
}

/// The rewrite of `source` (the template's main module; `others` are its
/// libraries), or `None` when no rule qualifies or anything does not parse.
pub fn specialize(source: &str, others: &[&str], v1: bool) -> Option<Specialized> {
    let module = parse(source, v1)?;
    let package = Parser::get_path_ref_components(&module.package.refr).ok()?;
    let package_name = package.last()?.text().to_string();
    let tokens = tokens_of(source)?;
    // Anything that could reach a rule by a path disqualifies the module.
    let mentions_package =
        |toks: &[Token]| toks.iter().filter(|t| is_ident(t, &package_name)).count();
    let data_indexed = |toks: &[Token]| {
        toks.windows(2)
            .any(|w| matches!(w, [a, b] if is_ident(a, "data") && is_symbol(b, "[")))
    };
    if mentions_package(&tokens) != 1 || data_indexed(&tokens) {
        return None;
    }
    for other in others {
        let toks = tokens_of(other)?;
        if mentions_package(&toks) != 0 || data_indexed(&toks) {
            return None;
        }
    }

    // Partial set rules by name; a name any other kind of rule also uses
    // is out.
    let mut sets: BTreeMap<String, Vec<Definition>> = BTreeMap::new();
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    for rule in &module.policy {
        let (head_ref, definition) = match rule.as_ref() {
            Rule::Spec {
                span,
                head:
                    RuleHead::Set {
                        refr,
                        key: Some(key),
                        ..
                    },
                bodies,
            } => (refr, set_definition(span, refr, key, bodies, &tokens)),
            Rule::Spec {
                head:
                    RuleHead::Set { refr, .. }
                    | RuleHead::Compr { refr, .. }
                    | RuleHead::Func { refr, .. },
                ..
            } => (refr, None),
            Rule::Default { refr, .. } => (refr, None),
        };
        let first = Parser::get_path_ref_components(head_ref)
            .ok()
            .and_then(|c| c.first().map(|s| s.text().to_string()))?;
        match definition {
            Some(d) if matches!(head_ref.as_ref(), Expr::Var { .. }) => {
                sets.entry(first).or_default().push(d)
            }
            _ => {
                excluded.insert(first);
            }
        }
    }

    let names: BTreeSet<&str> = tokens
        .iter()
        .filter(|t| matches!(t.0, TokenKind::Ident))
        .map(|t| t.1.text())
        .collect();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut appended = String::new();
    let mut copies = Vec::new();
    let mut counter = 0usize;
    for (name, definitions) in &sets {
        if excluded.contains(name) {
            continue;
        }
        // Fields that are a variable in every definition's head.
        let Some((first, rest)) = definitions.split_first() else {
            continue;
        };
        let mut fields: BTreeSet<&String> = first.variables.keys().collect();
        for d in rest {
            fields.retain(|f| d.variables.contains_key(*f));
        }
        let heads: BTreeSet<usize> = definitions.iter().map(|d| d.name.0).collect();
        let Some(references) = references(source, &tokens, name, &heads, &fields) else {
            continue;
        };
        if references.is_empty() {
            continue;
        }
        // One copy per distinct set of bindings.
        let mut by_binding: BTreeMap<Vec<(String, String)>, String> = BTreeMap::new();
        let mut rule_edits = Vec::new();
        let mut rule_text = String::new();
        for (start, end, binding) in references {
            let copy = match by_binding.get(&binding) {
                Some(copy) => copy.clone(),
                None => {
                    let copy = loop {
                        let candidate = format!("{name}{SUFFIX}{counter}");
                        counter += 1;
                        if !names.contains(candidate.as_str()) {
                            break candidate;
                        }
                    };
                    rule_text.push_str(&copies_of(source, definitions, &copy, &binding)?);
                    copies.push(format!(
                        "{name}: {}",
                        binding
                            .iter()
                            .map(|(f, v)| format!("{f}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    by_binding.insert(binding.clone(), copy.clone());
                    copy
                }
            };
            rule_edits.push((start, end, copy));
        }
        edits.extend(rule_edits);
        appended.push_str(&rule_text);
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(source.len() + appended.len() + 1);
    let mut at = 0;
    for (start, end, text) in edits {
        out.push_str(source.get(at..start)?);
        out.push_str(&text);
        at = end;
    }
    out.push_str(source.get(at..)?);
    out.push('\n');
    out.push_str(&appended);
    Some(Specialized {
        source: out,
        copies,
    })
}

/// A partial set rule definition, if its key is an object literal whose
/// keys are strings, and each body's first statement follows its `{`.
fn set_definition(
    span: &regorus::unstable::Span,
    refr: &regorus::unstable::Ref<Expr>,
    key: &regorus::unstable::Ref<Expr>,
    bodies: &[regorus::unstable::RuleBody],
    tokens: &[Token],
) -> Option<Definition> {
    let Expr::Object { fields, .. } = key.as_ref() else {
        return None;
    };
    let mut variables = BTreeMap::new();
    for (_, k, v) in fields {
        let k = string_key(k)?;
        if let Expr::Var {
            value: Value::String(var),
            ..
        } = v.as_ref()
        {
            if var.as_ref() != "_" {
                variables.insert(k.to_string(), var.to_string());
            }
        }
    }
    // A variable the rule assigns (`v := ...`) or declares (`some v`) cannot
    // be bound before its bodies.
    let (from, to) = (span.start, span.end);
    // Tokens are in source order: the rule's are one run of them.
    let first = tokens.partition_point(|t| t.1.start < from);
    let last = tokens.partition_point(|t| t.1.start < to);
    let inside: Vec<&Token> = tokens
        .get(first..last)?
        .iter()
        .filter(|t| t.1.end <= to)
        .collect();
    for (i, t) in inside.iter().enumerate() {
        if !matches!(t.0, TokenKind::Ident) {
            continue;
        }
        let assigned = inside.get(i + 1).is_some_and(|n| is_symbol(n, ":="));
        let declared = inside[..i]
            .iter()
            .rev()
            .take_while(|p| p.1.line == t.1.line)
            .any(|p| is_ident(p, "some"));
        if assigned || declared {
            variables.retain(|_, var| var.as_str() != t.1.text());
        }
    }
    let mut starts = Vec::new();
    for body in bodies {
        let first = body.query.stmts.first()?;
        let start = first.span.start as usize;
        let at = tokens
            .binary_search_by_key(&start, |t| t.1.start as usize)
            .ok()?;
        if !is_symbol(tokens.get(at.checked_sub(1)?)?, "{") {
            return None;
        }
        starts.push(start);
    }
    if starts.is_empty() {
        return None;
    }
    Some(Definition {
        rule: (span.start as usize, span.end as usize),
        name: (refr.span().start as usize, refr.span().end as usize),
        bodies: starts,
        variables,
    })
}

/// Every mention of `name` that is not a head: `(start, end, binding)` for
/// each, the binding being the fields of `fields` the reference's object
/// literal sets to a scalar literal; `None` if any mention is not such a
/// reference.
#[allow(clippy::type_complexity)]
fn references(
    source: &str,
    tokens: &[Token],
    name: &str,
    heads: &BTreeSet<usize>,
    fields: &BTreeSet<&String>,
) -> Option<Vec<(usize, usize, Vec<(String, String)>)>> {
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !is_ident(token, name) {
            continue;
        }
        let start = token.1.start as usize;
        if heads.contains(&start) {
            continue;
        }
        if i.checked_sub(1)
            .and_then(|p| tokens.get(p))
            .is_some_and(|t| is_symbol(t, "."))
        {
            return None;
        }
        let open = tokens.get(i + 1)?;
        if !is_symbol(open, "[") {
            return None;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            if is_symbol(t, "[") {
                depth += 1;
            } else if is_symbol(t, "]") {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    close = Some(j);
                    break;
                }
            }
        }
        let close = tokens.get(close?)?;
        let index = source.get(open.1.end as usize..close.1.start as usize)?;
        let binding = binding(index, fields)?;
        if binding.is_empty() {
            return None;
        }
        out.push((start, token.1.end as usize, binding));
    }
    Some(out)
}

/// The fields of `fields` that the object literal `index` sets to a
/// scalar literal, with the literal's text; `None` if `index` is not an
/// object literal with string keys.
fn binding(index: &str, fields: &BTreeSet<&String>) -> Option<Vec<(String, String)>> {
    let source = Source::from_contents("reference".to_string(), index.to_string()).ok()?;
    let mut parser = Parser::new(&source).ok()?;
    let expr = parser.parse_expr().ok()?;
    if !parser.token_text().is_empty() {
        return None;
    }
    let Expr::Object {
        fields: entries, ..
    } = &expr
    else {
        return None;
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (_, k, v) in entries {
        let k = string_key(k)?;
        if !seen.insert(k.to_string()) {
            return None;
        }
        let scalar = matches!(
            v.as_ref(),
            Expr::String { .. }
                | Expr::RawString { .. }
                | Expr::Number { .. }
                | Expr::Bool { .. }
                | Expr::Null { .. }
        );
        if scalar && fields.contains(&k.to_string()) {
            let literal = match v.as_ref() {
                // A string's span is its contents: written back as JSON.
                Expr::String {
                    value: Value::String(text),
                    ..
                }
                | Expr::RawString {
                    value: Value::String(text),
                    ..
                } => serde_json::to_string(text.as_ref()).ok()?,
                other => other.span().text().to_string(),
            };
            out.push((k.to_string(), literal));
        }
    }
    Some(out)
}

/// The text of every definition of a rule, renamed `copy`, each body
/// beginning by binding the head variable of each field in `binding`.
fn copies_of(
    source: &str,
    definitions: &[Definition],
    copy: &str,
    binding: &[(String, String)],
) -> Option<String> {
    let mut out = String::new();
    for d in definitions {
        let mut inserts: Vec<(usize, String)> = vec![(d.name.0, String::new())];
        for &body in &d.bodies {
            // The first statement's indentation, for the lines put before it.
            let line_start = source.get(..body)?.rfind('\n').map_or(0, |n| n + 1);
            let indent = source
                .get(line_start..body)
                .filter(|i| i.chars().all(char::is_whitespace))
                .unwrap_or(" ");
            let mut text = String::new();
            for (field, literal) in binding {
                let var = d.variables.get(field)?;
                text.push_str(&format!("{var} = {literal}\n{indent}"));
            }
            inserts.push((body, text));
        }
        let mut at = d.rule.0;
        out.push('\n');
        for (pos, text) in inserts {
            if pos == d.name.0 {
                out.push_str(source.get(at..pos)?);
                out.push_str(copy);
                at = d.name.1;
            } else {
                out.push_str(source.get(at..pos)?);
                out.push_str(&text);
                at = pos;
            }
        }
        out.push_str(source.get(at..d.rule.1)?);
        out.push('\n');
    }
    Some(out)
}

fn parse(source: &str, v1: bool) -> Option<regorus::unstable::Module> {
    let source = Source::from_contents("template".to_string(), source.to_string()).ok()?;
    let mut parser = Parser::new(&source).ok()?;
    if v1 {
        parser.enable_rego_v1().ok()?;
    }
    parser.parse().ok()
}

fn tokens_of(text: &str) -> Option<Vec<Token>> {
    let source = Source::from_contents("template".to_string(), text.to_string()).ok()?;
    let mut lexer = Lexer::new(&source);
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token().ok()?;
        if matches!(token.0, TokenKind::Eof) {
            return Some(out);
        }
        out.push(token);
    }
}

/// An object literal's key, if it is a string.
fn string_key(k: &regorus::unstable::Ref<Expr>) -> Option<&str> {
    match k.as_ref() {
        Expr::String {
            value: Value::String(k),
            ..
        } => Some(k.as_ref()),
        _ => None,
    }
}

fn is_ident(t: &Token, name: &str) -> bool {
    matches!(t.0, TokenKind::Ident) && t.1.text() == name
}

fn is_symbol(t: &Token, symbol: &str) -> bool {
    matches!(t.0, TokenKind::Symbol) && t.1.text() == symbol
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const CONTAINERS: &str = r#"package k8sexample

import data.lib.exempt.is_exempt

violation[{"msg": msg}] {
  general_violation[{"msg": msg, "field": "containers"}]
}

violation[{"msg": msg}] {
  general_violation[{"msg": msg, "field": "initContainers"}]
}

# general_violation[...] in a comment is not a mention
general_violation[{"msg": msg, "field": field}] {
  container := input.review.object.spec[field][_]
  not is_exempt(container)
  not container.resources
  msg := sprintf("container <%v> has no resources", [container.name])
}

general_violation[{"msg": msg, "field": field}] {
  container := input.review.object.spec[field][_]
  container.image == "general_violation"
  msg := "named after the rule"
}
"#;

    #[test]
    fn a_rule_read_with_a_fixed_field_gets_a_copy_per_constant() {
        let s = specialize(
            CONTAINERS,
            &["package lib.exempt\n\nis_exempt(c) { c.x }\n"],
            false,
        )
        .expect("specialized");
        assert_eq!(
            s.copies,
            vec![
                r#"general_violation: field="containers""#.to_string(),
                r#"general_violation: field="initContainers""#.to_string(),
            ]
        );
        assert!(s
            .source
            .contains(r#"general_violation__regent_0[{"msg": msg, "field": "containers"}]"#));
        assert!(s
            .source
            .contains(r#"general_violation__regent_1[{"msg": msg, "field": "initContainers"}]"#));
        // Both definitions are copied for each constant, the binding first.
        assert_eq!(
            s.source
                .matches("general_violation__regent_0[{\"msg\": msg, \"field\": field}] {\n  field = \"containers\"\n  container := ")
                .count(),
            2,
            "{}",
            s.source
        );
        // The original rule stays as written.
        assert!(
            s.source.starts_with(&CONTAINERS[..CONTAINERS.len() - 1])
                || s.source
                    .contains("general_violation[{\"msg\": msg, \"field\": field}] {")
        );
    }

    #[test]
    fn a_rule_read_any_other_way_is_left_alone() {
        let with = |extra: &str| format!("{CONTAINERS}\n{extra}\n");
        // Read whole, or with a variable field.
        for extra in [
            "n := count(general_violation)",
            "violation[{\"msg\": m}] { general_violation[{\"msg\": m, \"field\": f}]; f != \"x\" }",
            "violation[{\"msg\": m}] { x := general_violation[_]; m := x.msg }",
        ] {
            assert!(parse(&with(extra), false).is_some(), "{extra} parses");
            assert_eq!(specialize(&with(extra), &[], false), None, "{extra}");
        }
        // Reachable by a path: the package named, or `data` indexed.
        for extra in [
            "violation[{\"msg\": m}] { data.k8sexample.general_violation[{\"msg\": m, \"field\": \"x\"}] }",
            "violation[{\"msg\": m}] { p := \"k8sexample\"; data[p].nothing; m := \"\" }",
        ] {
            assert!(parse(&with(extra), false).is_some(), "{extra} parses");
            assert_eq!(specialize(&with(extra), &[], false), None, "{extra}");
        }
        let lib = "package lib.reach\n\nr { data.k8sexample.general_violation }\n";
        assert_eq!(specialize(CONTAINERS, &[lib], false), None);
        // Another kind of rule with the same name.
        assert_eq!(
            specialize(&with("general_violation[\"x\"] = 1 { true }"), &[], false),
            None
        );
    }

    #[test]
    fn a_field_the_rule_assigns_or_declares_is_not_bound() {
        let src = r#"package p

violation[{"msg": m}] { r[{"msg": "fixed", "field": "containers"}]; m := "x" }

r[{"msg": msg, "field": field}] {
  c := input.review.object.spec[field][_]
  msg := c.name
}
"#;
        let s = specialize(src, &[], false).expect("field is bound");
        assert_eq!(s.copies, vec![r#"r: field="containers""#.to_string()]);
        assert!(!s.source.contains("msg = \"fixed\""), "{}", s.source);
        let declared = src.replace("  c := input", "  some field\n  c := input");
        assert_eq!(specialize(&declared, &[], false), None);
    }

    #[test]
    fn rego_v1_bodies_in_braces_are_specialized_and_one_line_bodies_not() {
        let braces = r#"package p

violation contains {"msg": m} if { r[{"msg": m, "field": "containers"}] }

r contains {"msg": msg, "field": field} if {
  c := input.review.object.spec[field][_]
  msg := c.name
}
"#;
        let s = specialize(braces, &[], true).expect("specialized");
        assert!(
            s.source.contains("r__regent_0 contains {\"msg\": msg, \"field\": field} if {\n  field = \"containers\"\n  c := input"),
            "{}",
            s.source
        );
        let one_line = r#"package p

violation contains {"msg": m} if { r[{"msg": m, "field": "containers"}] }

r contains {"msg": c.name, "field": field} if c := input.review.object.spec[field][_]
"#;
        assert_eq!(specialize(one_line, &[], true), None);
    }

    #[test]
    fn a_copy_name_already_taken_is_skipped() {
        let src = CONTAINERS.replace(
            "# general_violation[...]",
            "general_violation__regent_0 = 1 { true }\n#",
        );
        let s = specialize(&src, &[], false).expect("specialized");
        assert!(s
            .source
            .contains("general_violation__regent_1[{\"msg\": msg, \"field\": \"containers\"}]"));
        assert!(s.source.contains(
            "general_violation__regent_2[{\"msg\": msg, \"field\": \"initContainers\"}]"
        ));
    }
}

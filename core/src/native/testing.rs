//! Rego unit tests, as `opa test` runs them: finding the `test_*` rules of
//! a test module (each *definition* its own test, so two definitions named
//! `test_x` are `test_x` and `test_x#01` and one failing is never hidden by
//! the other passing), running one with its `print` output kept, and saying
//! why a failing one failed: the first statement of its body that does not
//! hold, with the values of its operands.
//!
//! A module with repeated test names is compiled with each further
//! definition renamed (`test_x__regent_def_1`); the name shown is OPA's.
//! Explaining a failure compiles probe rules in the test's own package and
//! imports (a clone of the engine, only when a test fails), each holding the
//! test's first statements, to find the first one that is undefined or
//! false, then evaluates that statement's operands after the statements
//! before it.

use std::collections::BTreeMap;

use regorus::unstable::{Expr, Literal, LiteralStmt, Module, Parser, Rule, RuleHead, Source};
use regorus::Value;

use crate::runtime::{Budget, Program, RunError};

/// A `test_*` rule definition found in a test module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The rule evaluated (`data.pkg.test_x`, or a renamed further
    /// definition `data.pkg.test_x__regent_def_1`).
    pub rule: String,
    /// The name shown, as `opa test` shows it (`data.pkg.test_x#01`).
    pub name: String,
    /// The module it is in.
    pub path: String,
    /// The 1-based line of its definition.
    pub line: usize,
    /// Which definition of the name it is (0 for the first).
    pub definition: usize,
}

/// The suffix of a renamed further definition (then its number).
const RENAMED: &str = "__regent_def_";

/// Parses a module as regorus does when it is added: modern Rego first,
/// then the older syntax; with the syntax that worked (`true`: Rego v1).
fn parse(path: &str, text: &str) -> Option<(Module, bool)> {
    let source = Source::from_contents(path.to_string(), text.to_string()).ok()?;
    let modern = Parser::new(&source).ok().and_then(|mut p| {
        p.enable_rego_v1().ok()?;
        p.parse().ok()
    });
    match modern {
        Some(m) => Some((m, true)),
        None => Parser::new(&source).ok()?.parse().ok().map(|m| (m, false)),
    }
}

/// The static name of a rule's head (`test_x`), and the span of that name.
fn head_name(rule: &Rule) -> Option<(String, usize, usize, usize)> {
    let refr = match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
        Rule::Default { refr, .. } => refr,
    };
    match refr.as_ref() {
        Expr::Var { span, .. } => Some((
            span.text().to_string(),
            span.start as usize,
            span.end as usize,
            span.line as usize,
        )),
        _ => None,
    }
}

/// The test cases of a test module, and its source with every further
/// definition of a repeated name renamed. A module that does not parse has
/// none (compiling it reports why).
pub fn find(path: &str, source: &str) -> (String, Vec<TestCase>) {
    let Some((module, _)) = parse(path, source) else {
        return (source.to_string(), Vec::new());
    };
    let package = format!("data.{}", module.package.refr.span().text());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = Vec::new();
    // Byte ranges to rename, with their new names.
    let mut renames: Vec<(usize, usize, String)> = Vec::new();
    for rule in &module.policy {
        let Some((name, start, end, line)) = head_name(rule) else {
            continue;
        };
        if !name.starts_with("test_") || matches!(rule.as_ref(), Rule::Default { .. }) {
            continue;
        }
        let n = seen.entry(name.clone()).or_insert(0);
        let definition = *n;
        *n += 1;
        let (rule_name, shown) = if definition == 0 {
            (name.clone(), name.clone())
        } else {
            let renamed = format!("{name}{RENAMED}{definition}");
            renames.push((start, end, renamed.clone()));
            (renamed, format!("{name}#{definition:02}"))
        };
        cases.push(TestCase {
            rule: format!("{package}.{rule_name}"),
            name: format!("{package}.{shown}"),
            path: path.to_string(),
            line,
            definition,
        });
    }
    let mut rewritten = source.to_string();
    for (start, end, name) in renames.iter().rev() {
        if rewritten.is_char_boundary(*start) && rewritten.is_char_boundary(*end) {
            rewritten.replace_range(*start..*end, name);
        }
    }
    (rewritten, cases)
}

/// What running one test gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// `Ok(true)` passed, `Ok(false)` failed, `Err` could not be evaluated.
    pub outcome: Result<bool, String>,
    /// Its `print` output, each line `file:line: text`.
    pub prints: Vec<String>,
}

/// Runs one test rule within `budget`, keeping its `print` output.
pub fn run(program: &Program, case: &TestCase, budget: Budget) -> TestRun {
    let (result, prints) = program.eval_rule_printing(&case.rule, Value::Undefined, budget);
    let outcome = match result {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(Value::Undefined) => Ok(false),
        Ok(other) => Err(format!("test rule evaluated to {other}, not true")),
        Err(RunError::Failed(text)) => Err(text),
        Err(e) => Err(e.to_string()),
    };
    TestRun { outcome, prints }
}

/// Why a failed test failed: the first statement of its body that does
/// not hold (with its line), then the value of each of its operands, e.g.
/// `count(violations) == 2` then `count(violations) = 1`. Empty when it
/// cannot be told (a body that passes alone, an `else`, a probe that does
/// not compile).
pub fn explain(program: &Program, case: &TestCase, source: &str, budget: Budget) -> Vec<String> {
    let Some((module, v1)) = parse(&case.path, source) else {
        return Vec::new();
    };
    let Some(rule) = module
        .policy
        .iter()
        .filter(|r| head_name(r).is_some_and(|(n, ..)| n.starts_with("test_")))
        .filter(|r| {
            head_name(r).is_some_and(|(n, ..)| {
                case.name
                    .rsplit('.')
                    .next()
                    .map(|s| s.split('#').next().unwrap_or(s))
                    == Some(n.as_str())
            })
        })
        .nth(case.definition)
    else {
        return Vec::new();
    };
    let Rule::Spec { bodies, .. } = rule.as_ref() else {
        return Vec::new();
    };
    let Some(body) = bodies.first() else {
        return Vec::new();
    };
    let stmts: Vec<&LiteralStmt> = body.query.stmts.iter().collect();
    let header = probe_header(source, &module);
    let package = case.rule.rsplit_once('.').map(|(p, _)| p).unwrap_or("data");
    let mut engine_rules = String::new();
    for k in 1..=stmts.len() {
        let body: Vec<&str> = stmts[..k].iter().map(|s| s.span.text()).collect();
        engine_rules.push_str(&rule_text(&format!("__regent_probe_{k}"), &body, v1));
    }
    let Some(probe) = program.with_module(
        "regent-test-probe.rego",
        &format!("{header}{engine_rules}"),
        v1,
    ) else {
        return Vec::new();
    };
    let failing = (1..=stmts.len()).find(|k| {
        !matches!(
            probe
                .eval_rule_printing(
                    &format!("{package}.__regent_probe_{k}"),
                    Value::Undefined,
                    budget
                )
                .0,
            Ok(Value::Bool(true))
        )
    });
    let Some(k) = failing else {
        return Vec::new();
    };
    let stmt = stmts[k - 1];
    let mut out = vec![format!(
        "line {}: {} does not hold",
        stmt.span.line,
        one_line(stmt.span.text())
    )];
    let operands = operands(stmt);
    if operands.is_empty() {
        return out;
    }
    let withs: Vec<&str> = stmt.with_mods.iter().map(|w| w.span.text()).collect();
    let mut rules = String::new();
    for (i, operand) in operands.iter().enumerate() {
        let mut body: Vec<String> = stmts[..k - 1]
            .iter()
            .map(|s| s.span.text().to_string())
            .collect();
        let with = if withs.is_empty() {
            String::new()
        } else {
            format!(" {}", withs.join(" "))
        };
        body.push(format!("__regent_value := ({operand}){with}"));
        body.push("__regent_out := {\"v\": __regent_value}".to_string());
        let refs: Vec<&str> = body.iter().map(String::as_str).collect();
        rules.push_str(&value_rule(&format!("__regent_operand_{i}"), &refs, v1));
    }
    let Some(probe) =
        program.with_module("regent-test-values.rego", &format!("{header}{rules}"), v1)
    else {
        return out;
    };
    for (i, operand) in operands.iter().enumerate() {
        let (value, _) = probe.eval_rule_printing(
            &format!("{package}.__regent_operand_{i}"),
            Value::Undefined,
            budget,
        );
        let shown = match value {
            Ok(Value::Object(m)) => m
                .get(&Value::from("v"))
                .map(|v| short(&v.to_string()))
                .unwrap_or_else(|| "undefined".to_string()),
            Ok(_) => "undefined".to_string(),
            Err(e) => format!("error: {}", one_line(&e.to_string())),
        };
        out.push(format!("  {} = {shown}", one_line(operand)));
    }
    out
}

/// The package and imports of a test module, for probe rules in it.
fn probe_header(source: &str, module: &Module) -> String {
    let mut out = format!("package {}\n", module.package.refr.span().text());
    for import in &module.imports {
        let _ = source;
        out.push_str(import.span.text());
        out.push('\n');
    }
    out
}

fn rule_text(name: &str, body: &[&str], v1: bool) -> String {
    let keyword = if v1 { " if" } else { "" };
    format!("\n{name}{keyword} {{\n\t{}\n}}\n", body.join("\n\t"))
}

fn value_rule(name: &str, body: &[&str], v1: bool) -> String {
    let keyword = if v1 { " if" } else { "" };
    format!(
        "\n{name} := __regent_out{keyword} {{\n\t{}\n}}\n",
        body.join("\n\t")
    )
}

/// The operands worth showing of a statement that failed: both sides of a
/// comparison, the arguments of a call, the expression under `not`;
/// constants (`2`, `"x"`) are left out, their value is their text.
fn operands(stmt: &LiteralStmt) -> Vec<String> {
    let expr = match &stmt.literal {
        Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => expr,
        _ => return Vec::new(),
    };
    let constant = |e: &Expr| {
        matches!(
            e,
            Expr::Number { .. }
                | Expr::String { .. }
                | Expr::RawString { .. }
                | Expr::Bool { .. }
                | Expr::Null { .. }
        )
    };
    let shown = |e: &Expr| (!constant(e)).then(|| e.span().text().to_string());
    match expr.as_ref() {
        Expr::BoolExpr { lhs, rhs, .. } => [shown(lhs), shown(rhs)].into_iter().flatten().collect(),
        Expr::Call { params, .. } => params.iter().filter_map(|p| shown(p)).collect(),
        other => operands_of(stmt, other),
    }
}

fn operands_of(stmt: &LiteralStmt, expr: &Expr) -> Vec<String> {
    match expr {
        Expr::AssignExpr { rhs, .. } => vec![rhs.span().text().to_string()],
        Expr::Membership {
            value, collection, ..
        } => vec![
            value.span().text().to_string(),
            collection.span().text().to_string(),
        ],
        other if matches!(stmt.literal, Literal::NotExpr { .. }) => {
            vec![other.span().text().to_string()]
        }
        Expr::RefDot { .. } | Expr::RefBrack { .. } | Expr::Var { .. } => {
            vec![expr.span().text().to_string()]
        }
        _ => Vec::new(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value shown in at most 300 characters.
fn short(s: &str) -> String {
    if s.chars().count() <= 300 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(299).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_definition_of_a_test_is_its_own_test() {
        let src = "package p_test\n\nimport rego.v1\n\ntest_x if true\n\ntest_x if false\n\ntest_y if true\n\ntest_x if 1 == 1\n";
        let (rewritten, cases) = find("p_test.rego", src);
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data.p_test.test_x",
                "data.p_test.test_x#01",
                "data.p_test.test_y",
                "data.p_test.test_x#02"
            ]
        );
        assert_eq!(cases[1].rule, "data.p_test.test_x__regent_def_1");
        assert_eq!(cases[1].line, 7);
        assert!(
            rewritten.contains("\ntest_x__regent_def_1 if false\n"),
            "{rewritten}"
        );
        assert!(
            rewritten.contains("\ntest_x__regent_def_2 if 1 == 1\n"),
            "{rewritten}"
        );
        assert!(rewritten.contains("\ntest_x if true\n"), "{rewritten}");
    }
}

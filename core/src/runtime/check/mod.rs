//! A static check of Rego modules before they serve, so an author's mistake
//! fails `regent check` and the reload instead of a request: every function
//! a module calls exists (a builtin, one of Regent's own, or a function
//! some module defines), and every import and `data` reference that enters
//! a package names a rule, a sub-package or data there.
//!
//! regorus resolves a call only when an evaluation reaches it, and an
//! import of a rule that does not exist is simply undefined; a policy with
//! `unit.parse_bytes` (for `units.parse_bytes`) or `import
//! data.regent.lib.workload.container` (for `containers`) compiled, went
//! live, and then failed or silently passed requests. OPA's compiler
//! rejects both (`undefined function`, `undefined ref`). This module reads
//! the same modules regorus compiled, with regorus's own parser, and says
//! where each problem is (`file:line:col`) with the closest name that
//! exists as a hint.
//!
//! Deliberately conservative, so a valid bundle is never refused: a
//! reference is checked only up to its first dynamic index, a name a rule
//! declares locally is never taken for an import, and data below the first
//! component after a package may be absent (optional settings).

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{
    Expr, Literal, LiteralStmt, Module, Parser, Query, Rule, RuleHead, Source, BUILTINS,
};
use serde_json::Value as Json;

/// One problem found, with its position and, when a close name exists, a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}{}", hint.as_ref().map(|h| format!(" (did you mean {h}?)")).unwrap_or_default())]
pub struct Finding {
    /// The module.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The closest existing name, when one is close.
    pub hint: Option<String>,
}

/// Several findings in one line: the first, and how many more.
pub fn summary(findings: &[Finding]) -> String {
    match findings {
        [] => "no problems".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// One module to read: its path as shown in errors, its source, and
/// whether its own calls and references are checked (the built-in library
/// only contributes the names it defines).
#[derive(Debug, Clone, Copy)]
pub struct ModuleText<'a> {
    /// The module's path (bundle path, ConfigMap key).
    pub path: &'a str,
    /// The Rego source.
    pub source: &'a str,
    /// Check this module's calls and references.
    pub checked: bool,
}

/// What the modules define: rules (with whether each is a function) and
/// packages, by their path below `data`.
#[derive(Default)]
struct Symbols {
    rules: BTreeMap<Vec<String>, bool>,
    packages: BTreeSet<Vec<String>>,
}

impl Symbols {
    fn function(&self, path: &[String]) -> Option<bool> {
        self.rules.get(path).copied()
    }

    /// Whether `path` is a rule, lies inside a rule's value, is a package,
    /// or is a prefix of one (a namespace some module defines).
    fn defines(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|n| self.rules.contains_key(&path[..n]))
            || self
                .packages
                .iter()
                .chain(self.rules.keys())
                .any(|p| p.starts_with(path))
    }

    /// The longest package that is a prefix of `path`.
    fn package_of<'a>(&'a self, path: &[String]) -> Option<&'a Vec<String>> {
        self.packages
            .iter()
            .filter(|p| path.starts_with(p))
            .max_by_key(|p| p.len())
    }

    /// The names directly under `prefix`: rules and sub-packages.
    fn children(&self, prefix: &[String]) -> BTreeSet<String> {
        self.packages
            .iter()
            .chain(self.rules.keys())
            .filter(|p| p.len() > prefix.len() && p.starts_with(prefix))
            .map(|p| p[prefix.len()].clone())
            .collect()
    }
}

/// Checks `modules` (those marked `checked`) against what all of them
/// define, the `data` document, and `extra_functions` (functions the
/// engine has beyond the builtins, e.g. registered extensions). Modules
/// that do not parse are skipped: compiling them reports that.
pub fn check(modules: &[ModuleText<'_>], data: &Json, extra_functions: &[&str]) -> Vec<Finding> {
    // Regent's builtins must be in regorus's table before it is first read.
    let _ = super::builtins::register();
    let parsed: Vec<(ModuleText<'_>, Module)> = modules
        .iter()
        .filter_map(|m| parse(m.path, m.source).map(|module| (*m, module)))
        .collect();
    let mut symbols = Symbols::default();
    for (_, module) in &parsed {
        let Some(package) = package_path(module) else {
            continue;
        };
        symbols.packages.insert(package.clone());
        for rule in &module.policy {
            if let Some((name, function)) = rule_name(rule) {
                let mut path = package.clone();
                path.extend(name);
                let entry = symbols.rules.entry(path).or_insert(false);
                *entry |= function;
            }
        }
    }
    let mut findings = Vec::new();
    for (text, module) in parsed.iter().filter(|(m, _)| m.checked) {
        let Some(package) = package_path(module) else {
            continue;
        };
        let mut checker = Checker {
            path: text.path,
            package,
            imports: BTreeMap::new(),
            symbols: &symbols,
            data,
            extra_functions,
            locals: BTreeSet::new(),
            findings: &mut findings,
        };
        checker.module(module);
    }
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    findings.dedup();
    findings
}

/// Parses a module as regorus does when it is added: modern Rego first,
/// then the older syntax.
fn parse(path: &str, text: &str) -> Option<Module> {
    let source = Source::from_contents(path.to_string(), text.to_string()).ok()?;
    let modern = Parser::new(&source).ok().and_then(|mut p| {
        p.enable_rego_v1().ok()?;
        p.parse().ok()
    });
    modern.or_else(|| Parser::new(&source).ok()?.parse().ok())
}

/// A module's package below `data` (`["validate", "privileged"]`).
fn package_path(module: &Module) -> Option<Vec<String>> {
    let (path, complete) = static_path(&module.package.refr);
    let path = path?;
    complete.then(|| path.into_iter().skip_while(|c| c == "data").collect())
}

/// The name a rule defines (its static head path) and whether it is a function.
fn rule_name(rule: &Rule) -> Option<(Vec<String>, bool)> {
    let (refr, function) = match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
            RuleHead::Func { refr, .. } => (refr, true),
        },
        Rule::Default { refr, args, .. } => (refr, !args.is_empty()),
    };
    static_path(refr).0.map(|p| (p, function))
}

/// The static components of a reference (`a.b["c"]` is `a, b, c`), and
/// whether the whole reference is static (no dynamic index).
fn static_path(e: &Expr) -> (Option<Vec<String>>, bool) {
    match e {
        Expr::Var { span, .. } => (Some(vec![span.text().to_string()]), true),
        Expr::RefDot { refr, field, .. } => match static_path(refr) {
            (Some(mut p), true) => {
                p.push(field.0.text().to_string());
                (Some(p), true)
            }
            other => other,
        },
        Expr::RefBrack { refr, index, .. } => match static_path(refr) {
            (Some(mut p), true) => match index.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } => {
                    match value.as_string() {
                        Ok(s) => {
                            p.push(s.to_string());
                            (Some(p), true)
                        }
                        Err(_) => (Some(p), false),
                    }
                }
                _ => (Some(p), false),
            },
            other => other,
        },
        _ => (None, false),
    }
}

/// Where a reference begins (its root's position; regorus spans a
/// `RefDot` at its last field).
fn start_of(e: &Expr) -> &regorus::unstable::Span {
    match e {
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => start_of(refr),
        other => other.span(),
    }
}

/// The names a rule declares for itself (arguments, `some`, `:=`, `every`,
/// and either side of `=`), which shadow an import of the same name.
fn declared(rule: &Rule, out: &mut BTreeSet<String>) {
    fn vars(e: &Expr, out: &mut BTreeSet<String>) {
        match e {
            Expr::Var { span, .. } => {
                out.insert(span.text().to_string());
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| vars(i, out))
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
                vars(k, out);
                vars(v, out);
            }),
            _ => {}
        }
    }
    fn query(q: &Query, out: &mut BTreeSet<String>) {
        for stmt in &q.stmts {
            match &stmt.literal {
                Literal::SomeVars { vars: v, .. } => v.iter().for_each(|s| {
                    out.insert(s.text().to_string());
                }),
                Literal::SomeIn { key, value, .. } => {
                    if let Some(k) = key {
                        vars(k, out);
                    }
                    vars(value, out);
                }
                Literal::Every {
                    key,
                    value,
                    query: q,
                    ..
                } => {
                    if let Some(k) = key {
                        out.insert(k.text().to_string());
                    }
                    out.insert(value.text().to_string());
                    query(q, out);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => expr_(expr, out),
            }
        }
    }
    fn expr_(e: &Expr, out: &mut BTreeSet<String>) {
        match e {
            Expr::AssignExpr { lhs, rhs, op, .. } => {
                vars(lhs, out);
                if matches!(op, regorus::unstable::AssignOp::Eq) {
                    vars(rhs, out);
                }
            }
            Expr::ArrayCompr { query: q, .. }
            | Expr::SetCompr { query: q, .. }
            | Expr::ObjectCompr { query: q, .. } => query(q, out),
            _ => {}
        }
    }
    match rule {
        Rule::Spec { head, bodies, .. } => {
            if let RuleHead::Func { args, .. } = head {
                args.iter().for_each(|a| vars(a, out));
            }
            for body in bodies {
                query(&body.query, out);
            }
        }
        Rule::Default { args, .. } => args.iter().for_each(|a| vars(a, out)),
    }
}

struct Checker<'a, 'f> {
    path: &'a str,
    package: Vec<String>,
    /// Import alias → its target path (`data`/`input` first); `None` for an
    /// import already reported as unknown (its uses are not reported again).
    imports: BTreeMap<String, Option<Vec<String>>>,
    symbols: &'a Symbols,
    data: &'a Json,
    extra_functions: &'a [&'a str],
    locals: BTreeSet<String>,
    findings: &'f mut Vec<Finding>,
}

impl Checker<'_, '_> {
    fn report(&mut self, span: &regorus::unstable::Span, message: String, hint: Option<String>) {
        self.findings.push(Finding {
            path: self.path.to_string(),
            line: span.line as usize,
            column: span.col as usize,
            message,
            hint,
        });
    }

    fn module(&mut self, module: &Module) {
        for import in &module.imports {
            let (Some(path), true) = static_path(&import.refr) else {
                continue;
            };
            let alias = match &import.r#as {
                Some(span) => span.text().to_string(),
                None => path.last().cloned().unwrap_or_default(),
            };
            match path.first().map(String::as_str) {
                Some("data") => {
                    let below = &path[1..];
                    match self.unknown_data(below) {
                        None => {
                            self.imports.insert(alias, Some(path));
                        }
                        Some((message, hint)) => {
                            let span = start_of(&import.refr).clone();
                            self.report(
                                &span,
                                format!("import {}: {message}", path.join(".")),
                                hint,
                            );
                            self.imports.insert(alias, None);
                        }
                    }
                }
                Some("input") => {
                    self.imports.insert(alias, Some(path));
                }
                _ => {}
            }
        }
        for rule in &module.policy {
            self.locals.clear();
            declared(rule, &mut self.locals);
            match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            self.expr_inside_ref(refr);
                            if let Some(a) = assign {
                                self.expr(&a.value);
                            }
                        }
                        RuleHead::Set { refr, key, .. } => {
                            self.expr_inside_ref(refr);
                            if let Some(k) = key {
                                self.expr(k);
                            }
                        }
                        RuleHead::Func { args, assign, .. } => {
                            args.iter().for_each(|a| self.expr(a));
                            if let Some(a) = assign {
                                self.expr(&a.value);
                            }
                        }
                    }
                    for body in bodies {
                        if let Some(a) = &body.assign {
                            self.expr(&a.value);
                        }
                        self.query(&body.query);
                    }
                }
                Rule::Default { value, .. } => self.expr(value),
            }
        }
    }

    fn query(&mut self, q: &Query) {
        for stmt in &q.stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &LiteralStmt) {
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
            Literal::Every { domain, query, .. } => {
                self.expr(domain);
                self.query(query);
            }
        }
        // `with` may replace anything (even what does not exist); only the
        // replacement value is an expression of this module.
        for w in &stmt.with_mods {
            self.expr(&w.r#as);
        }
    }

    /// The dynamic indexes of a rule head's reference.
    fn expr_inside_ref(&mut self, e: &Expr) {
        match e {
            Expr::RefBrack { refr, index, .. } => {
                self.expr_inside_ref(refr);
                self.expr(index);
            }
            Expr::RefDot { refr, .. } => self.expr_inside_ref(refr),
            Expr::Var { .. } => {}
            // A reference into a call's result or a literal: the base.
            base => self.expr(base),
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                self.reference(e);
                self.expr_inside_ref(e);
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| self.expr(i))
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, k, v)| {
                self.expr(k);
                self.expr(v);
            }),
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                self.call(fcn);
                params.iter().for_each(|p| self.expr(p));
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
        }
    }

    /// The path below `data` a reference resolves to, when it goes through
    /// `data` or a `data` import; `Err(())` when it goes through an import
    /// already reported.
    fn resolve(&self, path: &[String]) -> Result<Option<Vec<String>>, ()> {
        let Some(root) = path.first() else {
            return Ok(None);
        };
        if root == "data" {
            return Ok(Some(path[1..].to_vec()));
        }
        if self.locals.contains(root) {
            return Ok(None);
        }
        match self.imports.get(root) {
            Some(None) => Err(()),
            Some(Some(target)) if target.first().is_some_and(|r| r == "data") => {
                let mut full = target[1..].to_vec();
                full.extend(path[1..].iter().cloned());
                Ok(Some(full))
            }
            _ => Ok(None),
        }
    }

    fn reference(&mut self, e: &Expr) {
        let (Some(path), _) = static_path(e) else {
            return;
        };
        let Ok(Some(below)) = self.resolve(&path) else {
            return;
        };
        if let Some((message, hint)) = self.unknown_data(&below) {
            let span = start_of(e).clone();
            self.report(&span, format!("data.{}: {message}", below.join(".")), hint);
        }
    }

    /// Why `path` (below `data`) names nothing, or `None` when it may
    /// name something. Checked only where a package is: the component
    /// right after the deepest package on the path must be a rule, a
    /// sub-package or data; with no package on the path, the first
    /// component must be a package root or data.
    fn unknown_data(&self, path: &[String]) -> Option<(String, Option<String>)> {
        if path.is_empty() || self.symbols.defines(path) || data_has(self.data, path) {
            return None;
        }
        let at = match self.symbols.package_of(path) {
            Some(package) => package.len(),
            None => 0,
        };
        let name = path.get(at)?;
        let parent = &path[..at];
        if data_has(self.data, &path[..=at]) || self.symbols.defines(&path[..=at]) {
            return None;
        }
        let mut candidates = self.symbols.children(parent);
        if let Some(Json::Object(m)) = data_at(self.data, parent) {
            candidates.extend(m.keys().cloned());
        }
        let place = if parent.is_empty() {
            "data".to_string()
        } else {
            format!("data.{}", parent.join("."))
        };
        let message = if at == 0 {
            format!("no package, rule or data is named {name:?}")
        } else {
            format!("{place} has no rule, package or data named {name:?}")
        };
        Some((
            message,
            closest(name, candidates.iter().map(String::as_str)),
        ))
    }

    fn call(&mut self, fcn: &Expr) {
        let (Some(path), true) = static_path(fcn) else {
            return;
        };
        let name = path.join(".");
        if name == "print" {
            return;
        }
        let resolved = match self.resolve(&path) {
            Err(()) => return,
            Ok(Some(below)) => below,
            Ok(None) => {
                let mut local = self.package.clone();
                local.extend(path.iter().cloned());
                if self.symbols.function(&local).is_some()
                    || BUILTINS.contains_key(name.as_str())
                    || self.extra_functions.contains(&name.as_str())
                {
                    if self.symbols.function(&local) == Some(false) {
                        let span = start_of(fcn).clone();
                        self.report(&span, format!("{name} is a rule, not a function"), None);
                    }
                    return;
                }
                let span = start_of(fcn).clone();
                let hint = self.closest_function(&name);
                self.report(&span, format!("unknown function {name}"), hint);
                return;
            }
        };
        match self.symbols.function(&resolved) {
            Some(true) => {}
            Some(false) => {
                let span = start_of(fcn).clone();
                self.report(&span, format!("{name} is a rule, not a function"), None);
            }
            None => {
                let span = start_of(fcn).clone();
                let hint = self.closest_function(&name);
                self.report(
                    &span,
                    format!(
                        "unknown function {name} (data.{} is not defined)",
                        resolved.join(".")
                    ),
                    hint,
                );
            }
        }
    }

    /// The callable name closest to `name`: a builtin, a function of this
    /// package, or a function reached through an import or `data`.
    fn closest_function(&self, name: &str) -> Option<String> {
        let mut candidates: BTreeSet<String> = BUILTINS.keys().map(|k| k.to_string()).collect();
        candidates.extend(self.extra_functions.iter().map(|s| s.to_string()));
        for (path, function) in &self.symbols.rules {
            if !function {
                continue;
            }
            candidates.insert(format!("data.{}", path.join(".")));
            if let Some(rest) = path.strip_prefix(self.package.as_slice()) {
                candidates.insert(rest.join("."));
            }
            for (alias, target) in &self.imports {
                let Some(target) = target else { continue };
                if let Some(rest) = target
                    .get(1..)
                    .and_then(|t| path.strip_prefix(t))
                    .filter(|r| !r.is_empty())
                {
                    candidates.insert(format!("{alias}.{}", rest.join(".")));
                }
                if target.get(1..) == Some(path.as_slice()) {
                    candidates.insert(alias.clone());
                }
            }
        }
        closest(name, candidates.iter().map(String::as_str))
    }
}

/// Whether `data` holds `path`, or a value that is not an object on the
/// way to it (indexing into a value is the policy's business).
fn data_has(data: &Json, path: &[String]) -> bool {
    if !data.is_object() {
        return path.is_empty();
    }
    let mut at = data;
    for c in path {
        match at {
            Json::Object(m) => match m.get(c) {
                Some(v) => at = v,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

fn data_at<'a>(data: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(data, |at, c| at.get(c))
}

/// The candidate closest to `name`, when it is close enough to be a typo:
/// at most two edits, and fewer than a third of the name's length.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).clamp(1, 2);
    candidates
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests;

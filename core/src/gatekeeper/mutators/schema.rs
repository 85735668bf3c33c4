//! The schema check between mutators (Gatekeeper's `pkg/mutation/schema`):
//! two mutators bound to the same group/version/kind and operation must
//! agree on what each field along their locations is. One that walks
//! `spec.containers` as an object and another that walks it as a list, two
//! that key the same list by different fields, or a ModifySet (a list of
//! values) and an AssignImage (a string) at the same field could never both
//! converge. Gatekeeper keeps such mutators but stops running them; Regent
//! refuses the bundle, so that the last good bundle keeps serving.

use std::collections::{BTreeMap, BTreeSet};

use super::mutator::{Mutator, Terminal};
use super::path::Node;

/// What a field along a location is taken to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Object,
    List,
    Terminal(Terminal),
}

#[derive(Debug, Default)]
struct SchemaNode {
    referenced_by: BTreeSet<usize>,
    children: BTreeMap<String, BTreeMap<Shape, SchemaNode>>,
}

fn key(node: &Node) -> &str {
    match node {
        Node::Field(f) => f,
        Node::List { key, .. } => key,
    }
}

fn shape_after(rest: &[Node], terminal: Terminal) -> Shape {
    match rest.get(1) {
        None => Shape::Terminal(terminal),
        Some(Node::List { .. }) => Shape::List,
        Some(Node::Field(_)) => Shape::Object,
    }
}

impl SchemaNode {
    fn add(&mut self, id: usize, rest: &[Node], terminal: Terminal) {
        self.referenced_by.insert(id);
        let Some(first) = rest.first() else {
            return;
        };
        self.children
            .entry(key(first).to_string())
            .or_default()
            .entry(shape_after(rest, terminal))
            .or_default()
            .add(id, &rest[1..], terminal);
    }

    /// Every disagreement below this node: (where, the mutators and what
    /// each takes the field to be).
    fn conflicts(&self, at: &str, out: &mut Vec<(String, Vec<(usize, String)>)>) {
        for (field, shapes) in &self.children {
            let here = if at.is_empty() {
                field.clone()
            } else {
                format!("{at}.{field}")
            };
            let known: Vec<(&Shape, &SchemaNode)> = shapes
                .iter()
                .filter(|(s, _)| **s != Shape::Terminal(Terminal::Unknown))
                .collect();
            let disagree = known.len() > 1
                || known
                    .iter()
                    .any(|(s, n)| **s == Shape::List && n.children.len() > 1);
            if disagree {
                let mut who = Vec::new();
                for (shape, node) in &known {
                    for id in &node.referenced_by {
                        let what = match shape {
                            Shape::Object => "an object".to_string(),
                            Shape::List => {
                                let keys: Vec<String> = node
                                    .children
                                    .iter()
                                    .filter(|(_, s)| {
                                        s.values().any(|n| n.referenced_by.contains(id))
                                    })
                                    .map(|(k, _)| k.clone())
                                    .collect();
                                format!("a list keyed by {}", keys.join(", "))
                            }
                            Shape::Terminal(Terminal::Set) => {
                                "a list of values (ModifySet)".to_string()
                            }
                            Shape::Terminal(Terminal::String) => {
                                "a string (AssignImage)".to_string()
                            }
                            Shape::Terminal(Terminal::Unknown) => "anything".to_string(),
                        };
                        who.push((*id, what));
                    }
                }
                out.push((here.clone(), who));
            }
            for node in shapes.values() {
                node.conflicts(&here, out);
            }
        }
    }
}

/// A disagreement between mutators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `group/version Kind (OPERATION)`.
    pub binding: String,
    /// The field they disagree on.
    pub field: String,
    /// Each mutator (index into the list checked) and what it takes the
    /// field to be.
    pub mutators: Vec<(usize, String)>,
}

/// Checks every pair of mutators with a common binding; the first
/// disagreement found, in binding order.
pub fn check(mutators: &[Mutator]) -> Option<Conflict> {
    let mut trees: BTreeMap<(String, String, String, &'static str), SchemaNode> = BTreeMap::new();
    for (i, m) in mutators.iter().enumerate() {
        // AssignMetadata has no schema (it only adds a label or annotation).
        if m.apply_to.is_empty() {
            continue;
        }
        let mut bindings = BTreeSet::new();
        for a in &m.apply_to {
            for g in &a.groups {
                for v in &a.versions {
                    for k in &a.kinds {
                        for op in a.effective_operations() {
                            bindings.insert((g.clone(), v.clone(), k.clone(), op));
                        }
                    }
                }
            }
        }
        for b in bindings {
            trees
                .entry(b)
                .or_default()
                .add(i, &m.path.nodes, m.kind.terminal());
        }
    }
    for ((group, version, kind, op), tree) in &trees {
        let mut found = Vec::new();
        tree.conflicts("", &mut found);
        if let Some((field, mut who)) = found.into_iter().next() {
            who.sort();
            who.dedup();
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            return Some(Conflict {
                binding: format!("{gv} {kind} ({op})"),
                field,
                mutators: who,
            });
        }
    }
    None
}

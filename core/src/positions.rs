//! Where a key of a YAML (or JSON) document is: the line and column of a
//! mapping key or sequence item, found by its path, so a settings error
//! can name `data.yaml:7:3` rather than only `data.validate.p.parameters`.
//!
//! serde reports positions only for syntax errors; this reads the same
//! text again with an event parser (`yaml-rust2`) that marks every node,
//! only when there is an error to place. Aliases are not expanded (an
//! event stream never copies a node), so a document that is a YAML bomb
//! costs no more here than its text.

use yaml_rust2::parser::{Event, Parser};

/// The 1-based line and column of the node at `path` in the first
/// document of `text` (a mapping key is placed at the key, a sequence item
/// at the item); `None` when the path is not in the text or the text does
/// not parse.
pub fn position(text: &str, path: &[String]) -> Option<(usize, usize)> {
    enum Frame {
        Map { key: Option<String>, want_key: bool },
        Seq { next: usize },
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // The path of the frames' current children (one entry per frame that
    // has a child under way).
    let mut at: Vec<String> = Vec::new();
    loop {
        let (event, mark) = parser.next_token().ok()?;
        let place = (mark.line(), mark.col() + 1);
        // A node begins: it is the value under the enclosing frame's
        // current key, or that sequence's next item.
        let begins_node = matches!(
            event,
            Event::Scalar(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
                | Event::Alias(_)
        );
        if begins_node {
            let depth = stack.len();
            match stack.last_mut() {
                Some(Frame::Map { key, want_key }) if *want_key => {
                    // A key (only scalar keys are followed).
                    let name = match &event {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => String::new(),
                    };
                    at.truncate(depth - 1);
                    at.push(name.clone());
                    if at == path {
                        return Some(place);
                    }
                    *key = Some(name);
                    *want_key = false;
                    if !matches!(event, Event::Scalar(..)) {
                        // A complex key: skip what it contains.
                        skip_node(&mut parser, &event)?;
                    }
                    continue;
                }
                Some(Frame::Map { want_key, .. }) => *want_key = true,
                Some(Frame::Seq { next }) => {
                    at.truncate(depth - 1);
                    at.push(next.to_string());
                    *next += 1;
                    if at == path {
                        return Some(place);
                    }
                }
                None => {}
            }
        }
        match event {
            Event::MappingStart(..) => {
                at.truncate(stack.len());
                stack.push(Frame::Map {
                    key: None,
                    want_key: true,
                });
            }
            Event::SequenceStart(..) => {
                at.truncate(stack.len());
                stack.push(Frame::Seq { next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                at.truncate(stack.len());
                if let Some(Frame::Map { want_key, .. }) = stack.last_mut() {
                    *want_key = true;
                }
            }
            Event::DocumentEnd | Event::StreamEnd => return None,
            _ => {}
        }
    }
}

/// Skips the rest of a node that began with `first` (a mapping or sequence).
fn skip_node(parser: &mut Parser<std::str::Chars<'_>>, first: &Event) -> Option<()> {
    if !matches!(first, Event::MappingStart(..) | Event::SequenceStart(..)) {
        return Some(());
    }
    let mut depth = 1usize;
    while depth > 0 {
        match parser.next_token().ok()?.0 {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            Event::StreamEnd => return None,
            _ => {}
        }
    }
    Some(())
}

/// The position of the deepest part of `path` found in `text` (the key
/// itself, else its parent, ...), so an error about a missing or
/// misplaced field still points near it.
pub fn nearest(text: &str, path: &[String]) -> Option<(usize, usize)> {
    (1..=path.len())
        .rev()
        .find_map(|n| position(text, &path[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_keys_and_items_in_block_and_flow_yaml() {
        let text = "enforcement: warn\n# comment\nmatch:\n  kinds: [Pod, Deployment]\n  excludedNamespaces:\n    - kube-system\n    - other\nparameters: {minReplicas: 2, nested: {a: 1}}\n";
        assert_eq!(position(text, &p(&["enforcement"])), Some((1, 1)));
        assert_eq!(position(text, &p(&["match", "kinds"])), Some((4, 3)));
        assert_eq!(position(text, &p(&["match", "kinds", "1"])), Some((4, 16)));
        assert_eq!(
            position(text, &p(&["match", "excludedNamespaces", "1"])),
            Some((7, 7))
        );
        assert_eq!(
            position(text, &p(&["parameters", "minReplicas"])),
            Some((8, 14))
        );
        assert_eq!(
            position(text, &p(&["parameters", "nested", "a"])),
            Some((8, 39))
        );
        assert_eq!(position(text, &p(&["parameters", "missing"])), None);
        assert_eq!(nearest(text, &p(&["parameters", "missing"])), Some((8, 1)));
    }

    #[test]
    fn finds_keys_in_json() {
        let text = "{\n  \"enforcement\": \"warn\",\n  \"parameters\": {\"x\": [1, 2]}\n}\n";
        assert_eq!(position(text, &p(&["parameters", "x", "1"])), Some((3, 27)));
    }

    #[test]
    fn keys_after_a_nested_value_are_found() {
        let text = "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n";
        assert_eq!(position(text, &p(&["a", "d"])), Some((4, 3)));
        assert_eq!(position(text, &p(&["e"])), Some((5, 1)));
        assert_eq!(position(text, &p(&["a", "b", "c"])), Some((3, 5)));
    }
}

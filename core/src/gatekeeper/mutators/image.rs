//! AssignImage's view of an image reference: domain, path and tag, split,
//! validated and put back together as Gatekeeper's
//! `pkg/mutation/mutators/assignimage` does.
//!
//! `my.registry.io:2000/repo/app:latest` is domain `my.registry.io:2000`,
//! path `repo/app` and tag `:latest`; a digest (`@sha256:...`) is a tag. The
//! first segment is a domain only when it contains `.` or `:` or is
//! `localhost`.

use std::sync::OnceLock;

use regex::Regex;

// Go's `\w` is ASCII-only; these are Gatekeeper's expressions with `\w`
// spelled out.
const DOMAIN: &str =
    r"(^[0-9A-Za-z_][0-9A-Za-z_\-]*\.[0-9A-Za-z_\-\.]*[0-9A-Za-z_](:\d+)?$)|(^localhost(:\d+)?$)";
const PATH: &str = r"^[a-z0-9]+(?:(?:(?:[._/]|__|[-]*)[a-z0-9]+)+)?";
const TAG: &str = r"(^:[0-9A-Za-z_][0-9A-Za-z_.\-]{0,127}$)|(^@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}$)";

fn regex(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

fn matches(cell: &'static OnceLock<Option<Regex>>, pattern: &str, text: &str) -> bool {
    regex(cell, pattern).is_some_and(|r| r.is_match(text))
}

static DOMAIN_RE: OnceLock<Option<Regex>> = OnceLock::new();
static PATH_RE: OnceLock<Option<Regex>> = OnceLock::new();
static TAG_RE: OnceLock<Option<Regex>> = OnceLock::new();

/// Splits off the domain: the part before the first `/` when it looks like
/// a host.
pub fn split_domain(name: &str) -> (&str, &str) {
    match name.find('/') {
        Some(i) if name[..i].contains(['.', ':']) || &name[..i] == "localhost" => {
            (&name[..i], &name[i + 1..])
        }
        _ => ("", name),
    }
}

/// Splits a path from its tag (which starts at the first `:` or `@`).
pub fn split_tag(rest: &str) -> (&str, &str) {
    match rest.find([':', '@']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

/// The image `current` with the parts that are set replaced.
pub fn mutate(domain: &str, path: &str, tag: &str, current: &str) -> String {
    let (old_domain, rest) = split_domain(current);
    let (old_path, old_tag) = split_tag(rest);
    let pick = |old: &str, new: &str| {
        if new.is_empty() {
            old.to_string()
        } else {
            new.to_string()
        }
    };
    let domain = pick(old_domain, domain);
    let mut out = String::new();
    if !domain.is_empty() {
        out.push_str(&domain);
        out.push('/');
    }
    out.push_str(&pick(old_path, path));
    out.push_str(&pick(old_tag, tag));
    out
}

/// Gatekeeper's validation of `assignDomain`, `assignPath` and
/// `assignTag`; the message is Gatekeeper's.
pub fn validate(domain: &str, path: &str, tag: &str) -> Result<(), String> {
    if domain.is_empty() && path.is_empty() && tag.is_empty() {
        return Err("at least one of [assignDomain, assignPath, assignTag] must be set".into());
    }
    if !domain.is_empty() {
        let recognised = split_domain(&format!("{domain}/")) == (domain, "");
        if !matches(&DOMAIN_RE, DOMAIN, domain) || !recognised {
            return Err(format!(
                "assignDomain {domain:?} must be a fully-qualified domain name or localhost"
            ));
        }
    }
    if !path.is_empty() {
        let whole = regex(&PATH_RE, PATH)
            .and_then(|r| r.find(path))
            .is_some_and(|m| m.start() == 0 && m.end() == path.len());
        if !whole {
            return Err(format!(
                "assignPath {path:?} must be a valid docker image path"
            ));
        }
    }
    if !tag.is_empty() && (!matches(&TAG_RE, TAG, tag) || split_tag(tag) != ("", tag)) {
        return Err(format!(
            "assignTag {tag:?} must be a valid docker image tag or digest starting with ':' or '@'"
        ));
    }
    if domain.is_empty() && !split_domain(path).0.is_empty() {
        return Err(format!(
            "assignDomain must be set if the first part of assignPath {path:?} can be interpretted as part of a domain"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from Gatekeeper's assignimage imageparser_test.go and its docs.
    #[test]
    fn mutates_each_part_as_gatekeeper_does() {
        let cases = [
            // (domain, path, tag, current, expected)
            ("", "", ":latest", "nginx", "nginx:latest"),
            ("", "", ":latest", "nginx:1.2", "nginx:latest"),
            ("a.b", "", "", "nginx", "a.b/nginx"),
            ("a.b", "", "", "x.y:5000/nginx:1.0", "a.b/nginx:1.0"),
            (
                "",
                "repo/app",
                "",
                "docker.io/library/nginx@sha256:00",
                "docker.io/repo/app@sha256:00",
            ),
            ("localhost:5000", "", "", "nginx", "localhost:5000/nginx"),
            (
                "",
                "",
                "@sha256:abcde67890123456789abc345678901a",
                "nginx:latest",
                "nginx@sha256:abcde67890123456789abc345678901a",
            ),
            (
                "my.registry.io",
                "repo/app",
                "@sha256:abcde67890123456789abc345678901a",
                "my.registry.io:2000/repo/app:latest",
                "my.registry.io/repo/app@sha256:abcde67890123456789abc345678901a",
            ),
            ("a.b", "c", ":d", "", "a.b/c:d"),
            ("", "", ":v1", "library/nginx", "library/nginx:v1"),
        ];
        for (d, p, t, cur, want) in cases {
            assert_eq!(mutate(d, p, t, cur), want, "{d} {p} {t} on {cur}");
        }
    }

    #[test]
    fn validates_as_gatekeeper_does() {
        let ok = [
            ("my.registry.io", "", ""),
            ("localhost", "", ""),
            ("localhost:5000", "repo/app", ":latest"),
            ("a.b:80", "", ""),
            ("", "library/nginx", ""),
            ("", "", "@sha256:abcde67890123456789abc345678901a"),
            ("", "a__b-c/d.e", ":1.0_x-y"),
        ];
        for (d, p, t) in ok {
            assert_eq!(validate(d, p, t), Ok(()), "{d:?} {p:?} {t:?}");
        }
        let bad = [
            ("", "", ""),
            ("nodot", "", ""),
            ("a.b/c", "", ""),
            ("-a.b", "", ""),
            ("a.b.", "", ""),
            ("", "UPPER", ""),
            ("", "a//b", ""),
            ("", "a/", ""),
            ("", "", "latest"),
            ("", "", ":"),
            ("", "", "@sha256:short"),
            ("", "my.repo.lib/app", ""),
            ("", "localhost/app", ""),
        ];
        for (d, p, t) in bad {
            assert!(validate(d, p, t).is_err(), "{d:?} {p:?} {t:?} should fail");
        }
    }
}

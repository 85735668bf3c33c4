//! The candidate bundle in the audit: every audited object is judged by the
//! candidate too, and what it would judge differently is kept per object
//! (the change classes and their policies, never the object) and summed up
//! for the candidate's ConfigMaps, the log and the metrics.
//!
//! Pure bookkeeping: [`super::cluster`] feeds it and publishes the
//! [`Summary`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use regent_core::diff::{Change, Diff};

/// What the candidate judges differently on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    namespace: Option<String>,
    changes: Vec<(Change, BTreeSet<String>)>,
}

/// Per-object differences of the current candidate revision.
#[derive(Debug, Default)]
pub struct Tracker {
    revision: Option<String>,
    objects: HashMap<String, Record>,
    dirty: bool,
}

impl Tracker {
    /// The revision tracked (`None`: no candidate).
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// Starts over for `revision` (a new candidate, or none).
    pub fn reset(&mut self, revision: Option<String>) {
        self.revision = revision;
        self.objects.clear();
        self.dirty = true;
    }

    /// Records the difference on the object `uid`; returns whether it is a
    /// new or changed difference (worth a log line).
    pub fn observe(&mut self, uid: &str, namespace: Option<&str>, diff: &Diff) -> bool {
        if diff.is_empty() {
            if self.objects.remove(uid).is_some() {
                self.dirty = true;
            }
            return false;
        }
        let record = Record {
            namespace: namespace.map(str::to_string),
            changes: diff
                .changes
                .iter()
                .map(|c| (*c, diff.policies.get(c).cloned().unwrap_or_default()))
                .collect(),
        };
        if self.objects.get(uid) == Some(&record) {
            return false;
        }
        self.objects.insert(uid.to_string(), record);
        self.dirty = true;
        true
    }

    /// Forgets a deleted object.
    pub fn forget(&mut self, uid: &str) {
        if self.objects.remove(uid).is_some() {
            self.dirty = true;
        }
    }

    /// Whether anything changed since the last [`Self::take_dirty`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The sums over every object.
    pub fn summary(&self) -> Summary {
        let mut changes: BTreeMap<Change, ChangeSummary> = BTreeMap::new();
        let mut namespaces: BTreeMap<Change, BTreeSet<&str>> = BTreeMap::new();
        for record in self.objects.values() {
            for (change, policies) in &record.changes {
                let c = changes.entry(*change).or_default();
                c.objects += 1;
                for p in policies {
                    *c.policies.entry(p.clone()).or_default() += 1;
                }
                namespaces
                    .entry(*change)
                    .or_default()
                    .insert(record.namespace.as_deref().unwrap_or(""));
            }
        }
        for (change, set) in namespaces {
            if let Some(c) = changes.get_mut(&change) {
                c.namespaces = set.iter().filter(|n| !n.is_empty()).count();
            }
        }
        Summary {
            revision: self.revision.clone().unwrap_or_default(),
            objects: self.objects.len(),
            changes,
        }
    }
}

/// One change class over every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// Objects with this change.
    pub objects: usize,
    /// Namespaces they are in (cluster-scoped objects count in none).
    pub namespaces: usize,
    /// Objects per policy behind the change.
    pub policies: BTreeMap<String, usize>,
}

/// What a candidate revision would judge differently, over every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The candidate's revision.
    pub revision: String,
    /// Objects judged differently.
    pub objects: usize,
    /// By change class.
    pub changes: BTreeMap<Change, ChangeSummary>,
}

impl Summary {
    /// One sentence for an Event: `candidate 3f2a… would newly deny 37
    /// objects in 5 namespaces: image_tag 30, privileged 7; ...`.
    pub fn text(&self) -> String {
        let short: String = self.revision.chars().take(12).collect();
        let mut parts = Vec::new();
        for change in Change::ALL {
            let Some(c) = self.changes.get(&change) else {
                continue;
            };
            let verb = match change {
                Change::NewlyDenied => "newly deny",
                Change::NoLongerDenied => "no longer deny",
                Change::DenialChanged => "deny for other reasons",
                Change::NewWarning => "newly warn about",
                Change::RemovedWarning => "no longer warn about",
                Change::PatchDiffers => "mutate differently",
            };
            let mut policies: Vec<(&String, &usize)> = c.policies.iter().collect();
            policies.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let listed: Vec<String> = policies
                .iter()
                .take(8)
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            let more = policies.len().saturating_sub(listed.len());
            parts.push(format!(
                "{verb} {} {} in {} {}{}{}",
                c.objects,
                plural(c.objects, "object", "objects"),
                c.namespaces,
                plural(c.namespaces, "namespace", "namespaces"),
                if listed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", listed.join(", "))
                },
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if parts.is_empty() {
            format!("candidate {short} judges every audited object as the live bundle does")
        } else {
            format!("candidate {short} would {}", parts.join("; "))
        }
    }

    /// Whether the candidate would newly deny anything.
    pub fn stricter(&self) -> bool {
        self.changes.contains_key(&Change::NewlyDenied)
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(change: Change, policy: &str) -> Diff {
        let mut d = Diff::default();
        d.changes.push(change);
        d.policies
            .insert(change, BTreeSet::from([policy.to_string()]));
        d
    }

    #[test]
    fn sums_objects_namespaces_and_policies() {
        let mut t = Tracker::default();
        t.reset(Some("3f2a0000aaaabbbb".into()));
        assert!(t.observe("a", Some("shop"), &diff(Change::NewlyDenied, "image_tag")));
        assert!(t.observe("b", Some("shop"), &diff(Change::NewlyDenied, "image_tag")));
        assert!(t.observe("c", Some("web"), &diff(Change::NewlyDenied, "privileged")));
        assert!(t.observe("d", None, &diff(Change::NewWarning, "labels")));
        // The same difference again is not news; a resolved one leaves.
        assert!(!t.observe("a", Some("shop"), &diff(Change::NewlyDenied, "image_tag")));
        assert!(!t.observe("e", Some("x"), &Diff::default()));
        let s = t.summary();
        assert_eq!(s.objects, 4);
        assert!(s.stricter());
        assert_eq!(
            s.text(),
            "candidate 3f2a0000aaaa would newly deny 3 objects in 2 namespaces: image_tag 2, privileged 1; newly warn about 1 object in 0 namespaces: labels 1"
        );
        t.forget("c");
        t.observe("b", Some("shop"), &Diff::default());
        let s = t.summary();
        assert_eq!(s.changes[&Change::NewlyDenied].objects, 1);
        t.reset(None);
        assert_eq!(t.summary().objects, 0);
    }
}

//! What the audit keeps per object, and nothing more: the hash of the
//! report last written for it, its namespace and kind, the scan that last
//! saw it, and one outcome per applicable policy (for the metrics). Objects
//! themselves are never held; a full scan lists them again. About a hundred
//! bytes per object.
//!
//! The store also owns the queue of report writes: the newest desired state
//! of each report, written in the order they became due; a report whose
//! desired content returns to what was written leaves the queue.

use std::collections::{HashMap, VecDeque};

use crate::audit::report::Report;
use crate::metrics::AuditMetrics;
use regent_core::outcome::{AuditOutcome, AuditResult};

/// A report write waiting to be made.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Create or update the report (its body, serialized).
    Put {
        /// `metadata.name`.
        name: String,
        /// `metadata.namespace` (`None`: a cluster report).
        namespace: Option<String>,
        /// The content hash.
        hash: u64,
        /// The report, as JSON.
        body: Vec<u8>,
        /// Whether a report is in the cluster already (update, not create).
        exists: bool,
    },
    /// Delete the report.
    Delete {
        /// `metadata.name`.
        name: String,
        /// `metadata.namespace` (`None`: a cluster report).
        namespace: Option<String>,
    },
}

impl Pending {
    /// The report's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Put { name, .. } | Self::Delete { name, .. } => name,
        }
    }
}

#[derive(Debug)]
struct Record {
    /// The content hash of the report in the cluster (`None`: none).
    written: Option<u64>,
    kind: u32,
    namespace: u32,
    seen: u32,
    /// The object's resourceVersion when it was judged (0: not a number).
    version: u64,
    /// One outcome per applicable policy.
    outcomes: Box<[(u32, AuditOutcome)]>,
}

/// Interned strings (policy names, namespaces, kinds).
#[derive(Debug, Default)]
struct Names {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.list.len() as u32;
        self.list.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    fn name(&self, id: u32) -> &str {
        self.list.get(id as usize).map(String::as_str).unwrap_or("")
    }
}

/// The per-object records, the write queue and the metrics they drive.
#[derive(Debug)]
pub struct Store {
    records: HashMap<String, Record>,
    /// Reports found in the cluster for objects not seen yet.
    existing: HashMap<String, (u64, Option<String>)>,
    pending: HashMap<String, Pending>,
    order: VecDeque<String>,
    policies: Names,
    namespaces: Names,
    kinds: Names,
    generation: u32,
    metrics: AuditMetrics,
}

/// What one evaluation of one object means for its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing to write.
    Unchanged,
    /// A report is to be created or updated.
    Put,
    /// The report is to be deleted.
    Delete,
}

fn hash_of(report: &Report) -> u64 {
    u64::from_str_radix(&report.hash, 16).unwrap_or(0)
}

impl Store {
    /// An empty store updating `metrics`.
    pub fn new(metrics: AuditMetrics) -> Self {
        Self {
            records: HashMap::new(),
            existing: HashMap::new(),
            pending: HashMap::new(),
            order: VecDeque::new(),
            policies: Names::default(),
            namespaces: Names::default(),
            kinds: Names::default(),
            generation: 0,
            metrics,
        }
    }

    /// Records a report found in the cluster at start: `uid` (its name),
    /// its content hash label, its namespace.
    pub fn found_report(&mut self, uid: &str, hash: &str, namespace: Option<String>) {
        if let Ok(h) = u64::from_str_radix(hash, 16) {
            self.existing.insert(uid.to_string(), (h, namespace));
        }
    }

    /// Starts a full scan; returns its generation.
    pub fn begin_scan(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records the results of one object and queues what its report needs.
    /// `report` is `None` when the object needs none. `version` is the
    /// object's resourceVersion as a number (0 when it is not one): batches
    /// of one kind are judged in parallel, so a quick update may be judged
    /// before the version it replaces; the older judgement is then dropped.
    /// (resourceVersions are etcd revisions on the API servers we know; they
    /// are compared only when both are numbers.)
    pub fn observe(
        &mut self,
        uid: &str,
        kind: &str,
        namespace: Option<&str>,
        version: u64,
        results: &[AuditResult],
        report: Option<&Report>,
    ) -> Change {
        if version != 0 && self.records.get(uid).is_some_and(|r| r.version > version) {
            return Change::Unchanged;
        }
        let kind_id = self.kinds.id(kind);
        let ns_id = self.namespaces.id(namespace.unwrap_or(""));
        let mut outcomes: Vec<(u32, AuditOutcome)> = Vec::new();
        for r in results {
            let p = self.policies.id(&r.policy);
            match outcomes.iter_mut().find(|(q, _)| *q == p) {
                // The worst outcome of a policy stands for the object.
                Some((_, o)) => {
                    if rank(r.result) > rank(*o) {
                        *o = r.result;
                    }
                }
                None => outcomes.push((p, r.result)),
            }
        }
        let generation = self.generation;
        let previous = self.records.remove(uid);
        let written = match &previous {
            Some(r) => r.written,
            None => self.existing.remove(uid).map(|(h, _)| h),
        };
        if let Some(old) = &previous {
            self.count(old, -1);
        } else {
            self.metrics.objects.with_label_values(&[kind]).inc();
        }
        let record = Record {
            written,
            kind: kind_id,
            namespace: ns_id,
            seen: generation,
            version,
            outcomes: outcomes.into_boxed_slice(),
        };
        self.count(&record, 1);
        self.records.insert(uid.to_string(), record);
        let desired = report.map(hash_of);
        if desired == written {
            self.unqueue(uid);
            return Change::Unchanged;
        }
        match report {
            Some(r) => {
                self.queue(
                    uid,
                    Pending::Put {
                        name: r.name.clone(),
                        namespace: r.namespace.clone(),
                        hash: hash_of(r),
                        body: serde_json::to_vec(&r.body).unwrap_or_default(),
                        exists: written.is_some(),
                    },
                );
                Change::Put
            }
            None => {
                self.queue(
                    uid,
                    Pending::Delete {
                        name: uid.to_string(),
                        namespace: namespace.map(str::to_string),
                    },
                );
                Change::Delete
            }
        }
    }

    /// An object is gone: forget it, and delete its report if it has one
    /// (the garbage collector would too, through the ownerReference).
    pub fn forget(&mut self, uid: &str) {
        if let Some(old) = self.records.remove(uid) {
            self.count(&old, -1);
            self.metrics
                .objects
                .with_label_values(&[self.kinds.name(old.kind)])
                .dec();
            if old.written.is_some() {
                let namespace = Some(self.namespaces.name(old.namespace))
                    .filter(|n| !n.is_empty())
                    .map(str::to_string);
                self.queue(
                    uid,
                    Pending::Delete {
                        name: uid.to_string(),
                        namespace,
                    },
                );
            } else {
                self.unqueue(uid);
            }
        }
    }

    /// Ends a full scan: objects it did not see (deleted meanwhile, or of a
    /// kind no longer audited) are forgotten, and reports found at start for
    /// objects never seen are deleted. Returns how many were forgotten.
    pub fn end_scan(&mut self, generation: u32) -> usize {
        let stale: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.seen != generation)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &stale {
            self.forget(uid);
        }
        let orphans: Vec<(String, Option<String>)> = self
            .existing
            .drain()
            .map(|(uid, (_, ns))| (uid, ns))
            .collect();
        for (uid, namespace) in &orphans {
            self.queue(
                uid,
                Pending::Delete {
                    name: uid.clone(),
                    namespace: namespace.clone(),
                },
            );
        }
        stale.len() + orphans.len()
    }

    /// The next write due, if any.
    pub fn next_write(&mut self) -> Option<(String, Pending)> {
        while let Some(uid) = self.order.pop_front() {
            if let Some(p) = self.pending.remove(&uid) {
                self.metrics.backlog.set(self.pending.len() as i64);
                return Some((uid, p));
            }
        }
        None
    }

    /// Writes waiting.
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }

    /// A write was made: the report in the cluster now has `hash` (`None`:
    /// deleted).
    pub fn written(&mut self, uid: &str, hash: Option<u64>) {
        if let Some(r) = self.records.get_mut(uid) {
            r.written = hash;
        }
    }

    /// A write failed: try it again later, unless a newer one is queued.
    pub fn retry(&mut self, uid: String, pending: Pending) {
        if !self.pending.contains_key(&uid) {
            self.queue(&uid, pending);
        }
    }

    /// Drops every queued write (report writing is off).
    pub fn clear_queue(&mut self) {
        self.pending.clear();
        self.order.clear();
        self.metrics.backlog.set(0);
    }

    fn queue(&mut self, uid: &str, pending: Pending) {
        if self.pending.insert(uid.to_string(), pending).is_none() {
            self.order.push_back(uid.to_string());
        }
        self.metrics.backlog.set(self.pending.len() as i64);
    }

    fn unqueue(&mut self, uid: &str) {
        if self.pending.remove(uid).is_some() {
            self.metrics.backlog.set(self.pending.len() as i64);
        }
    }

    fn count(&self, record: &Record, delta: i64) {
        let namespace = self.namespaces.name(record.namespace);
        for (p, outcome) in record.outcomes.iter() {
            let policy = self.policies.name(*p);
            self.metrics
                .results
                .with_label_values(&[policy, outcome.as_str()])
                .add(delta);
            if *outcome != AuditOutcome::Pass {
                self.metrics
                    .namespace_results
                    .with_label_values(&[policy, namespace, outcome.as_str()])
                    .add(delta);
            }
        }
    }
}

fn rank(o: AuditOutcome) -> u8 {
    match o {
        AuditOutcome::Pass => 0,
        AuditOutcome::Mutate => 1,
        AuditOutcome::Skip => 2,
        AuditOutcome::Warn => 3,
        AuditOutcome::Fail => 4,
        AuditOutcome::Error => 5,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::audit::report::{self, ReportOptions, Subject};
    use regent_core::outcome::Enforcement;

    fn results(outcome: AuditOutcome) -> Vec<AuditResult> {
        vec![AuditResult {
            policy: "privileged".into(),
            rule: "violation".into(),
            result: outcome,
            enforcement: Enforcement::Deny,
            message: if outcome == AuditOutcome::Pass {
                String::new()
            } else {
                "[privileged] x.".into()
            },
            path: None,
            severity: None,
            category: None,
            properties: Default::default(),
        }]
    }

    fn observe(store: &mut Store, outcome: AuditOutcome) -> Change {
        observe_at(store, outcome, 0)
    }

    fn observe_at(store: &mut Store, outcome: AuditOutcome, version: u64) -> Change {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}});
        let subject = Subject::of(&pod).unwrap();
        let rs = results(outcome);
        let report = report::build(&subject, &rs, ReportOptions::default(), "r", 1);
        store.observe("u1", "v1/Pod", Some("ns"), version, &rs, report.as_ref())
    }

    #[test]
    fn an_older_version_judged_late_does_not_undo_a_newer_one() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let mut store = Store::new(metrics.audit.clone());
        // Version 7 (broken) is judged before version 5 (fine) finishes.
        assert_eq!(observe_at(&mut store, AuditOutcome::Fail, 7), Change::Put);
        assert_eq!(
            observe_at(&mut store, AuditOutcome::Pass, 5),
            Change::Unchanged
        );
        let (uid, write) = store.next_write().unwrap();
        let Pending::Put { hash, .. } = write else {
            panic!("{write:?}")
        };
        store.written(&uid, Some(hash));
        // The same version again (a new bundle, a full scan) is judged.
        assert_eq!(
            observe_at(&mut store, AuditOutcome::Pass, 7),
            Change::Delete
        );
        let (uid, _) = store.next_write().unwrap();
        store.written(&uid, None);
        // A newer version is judged.
        assert_eq!(observe_at(&mut store, AuditOutcome::Fail, 9), Change::Put);
    }

    #[test]
    fn a_report_is_written_only_when_its_content_changes() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let mut store = Store::new(metrics.audit.clone());
        let g = store.begin_scan();
        assert_eq!(observe(&mut store, AuditOutcome::Fail), Change::Put);
        let (uid, write) = store.next_write().unwrap();
        let Pending::Put { hash, .. } = write else {
            panic!("{write:?}")
        };
        store.written(&uid, Some(hash));
        // The same content again: nothing to write.
        assert_eq!(observe(&mut store, AuditOutcome::Fail), Change::Unchanged);
        assert!(store.next_write().is_none());
        // Fixed: the report goes.
        assert_eq!(observe(&mut store, AuditOutcome::Pass), Change::Delete);
        // Broken again before the delete was made: the queued delete is
        // replaced, and since the content is what was written, nothing is due.
        assert_eq!(observe(&mut store, AuditOutcome::Fail), Change::Unchanged);
        assert!(store.next_write().is_none());
        assert_eq!(store.end_scan(g), 0);
        assert_eq!(store.len(), 1);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("regent_audit_results{policy=\"privileged\",result=\"fail\"} 1"),
            "{text}"
        );
        // A scan that does not see it forgets it and deletes its report.
        let g = store.begin_scan();
        assert_eq!(store.end_scan(g), 1);
        assert!(matches!(
            store.next_write(),
            Some((_, Pending::Delete { .. }))
        ));
        assert!(store.is_empty());
    }

    #[test]
    fn reports_found_at_start_are_not_rewritten() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let mut store = Store::new(metrics.audit.clone());
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}});
        let rs = results(AuditOutcome::Fail);
        let report = report::build(
            &Subject::of(&pod).unwrap(),
            &rs,
            ReportOptions::default(),
            "r",
            1,
        )
        .unwrap();
        store.found_report("u1", &report.hash, Some("ns".into()));
        store.found_report("gone", &report.hash, Some("ns".into()));
        let g = store.begin_scan();
        assert_eq!(observe(&mut store, AuditOutcome::Fail), Change::Unchanged);
        // The report of an object that no longer exists is deleted.
        assert_eq!(store.end_scan(g), 1);
        let (uid, write) = store.next_write().unwrap();
        assert_eq!(uid, "gone");
        assert!(matches!(write, Pending::Delete { .. }));
    }
}

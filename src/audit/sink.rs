//! Where audit results go. The in-cluster audit and `regent audit` judge
//! objects the same way ([`regent_core::compose::CompiledBundle::audit`]);
//! they differ only in where the results go, which is a [`ReportSink`]: the
//! Kubernetes API (PolicyReports, through the [`super::store::Store`] the
//! writer drains), or text, JSON or report YAML on a stream. A new
//! destination (a file per namespace, a webhook) is a new type implementing
//! it.

use std::collections::BTreeMap;
use std::io::Write;

use super::report::{self, ReportOptions, Subject};
use super::store::Store;
use regent_core::outcome::{AuditOutcome, AuditResult};

/// One object as audit judged it.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// Where it came from (`file#n`, or the API's kind label).
    pub source: &'a str,
    /// What it is.
    pub subject: &'a Subject,
    /// Its results, sorted.
    pub results: &'a [AuditResult],
    /// Its resourceVersion as a number (0 when it has none).
    pub version: u64,
}

/// Errors writing results.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The stream could not be written.
    #[error("writing the audit output: {0}")]
    Io(#[from] std::io::Error),
    /// A result could not be encoded.
    #[error("encoding the audit output: {0}")]
    Encode(String),
}

/// A destination of audit results.
pub trait ReportSink {
    /// One object's results.
    fn put(&mut self, judged: &Judged<'_>) -> Result<(), SinkError>;

    /// Every object has been put (a summary, a closing bracket, a flush).
    fn finish(&mut self) -> Result<(), SinkError>;
}

/// A table per object, then a summary per policy, most failures first,
/// and one per control of the policies that report controls (Pod
/// Security's `host_ports`, ...).
pub struct TextSink<W: Write> {
    out: W,
    objects: usize,
    tallies: BTreeMap<String, Tally>,
    controls: BTreeMap<String, ControlTally>,
}

/// Failing or warning results of one control.
#[derive(Default)]
struct ControlTally {
    objects: usize,
    findings: usize,
    enforcements: std::collections::BTreeSet<&'static str>,
    namespaces: std::collections::BTreeSet<String>,
}

#[derive(Default)]
struct Tally {
    checked: usize,
    failing: usize,
    warning: usize,
    skipped: usize,
    errors: usize,
    mutated: usize,
}

impl<W: Write> TextSink<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            objects: 0,
            tallies: BTreeMap::new(),
            controls: BTreeMap::new(),
        }
    }
}

impl<W: Write> ReportSink for TextSink<W> {
    fn put(&mut self, judged: &Judged<'_>) -> Result<(), SinkError> {
        let Judged {
            source,
            subject,
            results,
            ..
        } = *judged;
        self.objects += 1;
        writeln!(self.out, "{} ({source})", subject.describe())?;
        if results.is_empty() {
            writeln!(self.out, "  no policy applies")?;
        }
        let width = results
            .iter()
            .map(|r| r.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        for r in results {
            writeln!(
                self.out,
                "  {:<6} {:<width$} {:<7} {}",
                r.result.as_str(),
                r.policy,
                if r.result == AuditOutcome::Mutate {
                    "-"
                } else {
                    r.enforcement.as_str()
                },
                r.message
            )?;
        }
        let mut per_control: BTreeMap<String, usize> = BTreeMap::new();
        for r in results
            .iter()
            .filter(|r| matches!(r.result, AuditOutcome::Fail | AuditOutcome::Warn))
        {
            if let Some(control) = r.properties.get("control") {
                let key = format!("{}/{control}", r.policy);
                *per_control.entry(key.clone()).or_default() += 1;
                let t = self.controls.entry(key).or_default();
                t.enforcements.insert(r.enforcement.as_str());
                t.namespaces
                    .insert(subject.namespace.clone().unwrap_or_default());
            }
        }
        for (key, findings) in per_control {
            let t = self.controls.entry(key).or_default();
            t.objects += 1;
            t.findings += findings;
        }
        let mut seen: BTreeMap<&str, Vec<AuditOutcome>> = BTreeMap::new();
        for r in results {
            seen.entry(&r.policy).or_default().push(r.result);
        }
        for (policy, outcomes) in seen {
            let t = self.tallies.entry(policy.to_string()).or_default();
            t.checked += 1;
            let has = |o: AuditOutcome| outcomes.contains(&o);
            t.failing += usize::from(has(AuditOutcome::Fail));
            t.warning += usize::from(has(AuditOutcome::Warn));
            t.skipped += usize::from(has(AuditOutcome::Skip));
            t.errors += usize::from(has(AuditOutcome::Error));
            t.mutated += usize::from(has(AuditOutcome::Mutate));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let tallies = std::mem::take(&mut self.tallies);
        let mut rows: Vec<(String, Tally)> = tallies.into_iter().collect();
        rows.sort_by(|a, b| {
            (b.1.failing, b.1.warning, b.1.errors)
                .cmp(&(a.1.failing, a.1.warning, a.1.errors))
                .then(a.0.cmp(&b.0))
        });
        let width = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(6).max(6);
        writeln!(
            self.out,
            "\nby policy, most failures first ({} objects):",
            self.objects
        )?;
        writeln!(
            self.out,
            "  {:<width$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "POLICY", "CHECKED", "FAILING", "WARNING", "SKIPPED", "ERRORS", "MUTATE"
        )?;
        for (policy, t) in rows {
            writeln!(
                self.out,
                "  {:<width$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
                policy, t.checked, t.failing, t.warning, t.skipped, t.errors, t.mutated
            )?;
        }
        if !self.controls.is_empty() {
            let mut rows: Vec<(String, ControlTally)> =
                std::mem::take(&mut self.controls).into_iter().collect();
            rows.sort_by(|a, b| b.1.objects.cmp(&a.1.objects).then(a.0.cmp(&b.0)));
            let width = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(7).max(7);
            writeln!(self.out, "\nby control, most objects first:")?;
            writeln!(
                self.out,
                "  {:<width$} {:>7} {:>8} {:>10}  ENFORCEMENT",
                "CONTROL", "OBJECTS", "FINDINGS", "NAMESPACES"
            )?;
            for (control, t) in rows {
                writeln!(
                    self.out,
                    "  {:<width$} {:>7} {:>8} {:>10}  {}",
                    control,
                    t.objects,
                    t.findings,
                    t.namespaces.len(),
                    t.enforcements.into_iter().collect::<Vec<_>>().join(",")
                )?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

/// One JSON array: a record per object and result.
pub struct JsonSink<W: Write> {
    out: W,
    records: Vec<Record>,
}

/// One result of one object, as the JSON output lists it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    source: String,
    api_version: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[serde(flatten)]
    result: AuditResult,
}

impl<W: Write> JsonSink<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            records: Vec::new(),
        }
    }
}

impl<W: Write> ReportSink for JsonSink<W> {
    fn put(&mut self, judged: &Judged<'_>) -> Result<(), SinkError> {
        let s = judged.subject;
        for r in judged.results {
            self.records.push(Record {
                source: judged.source.to_string(),
                api_version: s.api_version.clone(),
                kind: s.kind.clone(),
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                uid: s.uid.clone(),
                result: r.clone(),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let text = serde_json::to_string_pretty(&self.records)
            .map_err(|e| SinkError::Encode(e.to_string()))?;
        writeln!(self.out, "{text}")?;
        self.out.flush()?;
        Ok(())
    }
}

/// The report objects the in-cluster audit would write, as YAML documents.
pub struct YamlSink<W: Write> {
    out: W,
    options: ReportOptions,
    revision: String,
    now: i64,
    first: bool,
}

impl<W: Write> YamlSink<W> {
    /// Writes to `out` the reports of `options`'s format, for bundle
    /// `revision`, dated `now` (seconds since the epoch).
    pub fn new(out: W, options: ReportOptions, revision: &str, now: i64) -> Self {
        Self {
            out,
            options,
            revision: revision.to_string(),
            now,
            first: true,
        }
    }
}

impl<W: Write> ReportSink for YamlSink<W> {
    fn put(&mut self, judged: &Judged<'_>) -> Result<(), SinkError> {
        let Some(r) = report::build(
            judged.subject,
            judged.results,
            self.options,
            &self.revision,
            self.now,
        ) else {
            return Ok(());
        };
        if !self.first {
            writeln!(self.out, "---")?;
        }
        self.first = false;
        let text =
            serde_yaml_ng::to_string(&r.body).map_err(|e| SinkError::Encode(e.to_string()))?;
        write!(self.out, "{text}")?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}

/// The in-cluster audit's sink: each object's report queued in the
/// [`Store`] the writer drains to the Kubernetes API (only what changed is
/// written, at the configured rate).
pub struct StoreSink<'s> {
    store: &'s mut Store,
    options: ReportOptions,
    revision: &'s str,
    now: i64,
    /// Whether reports are written at all (their resources served).
    writing: bool,
}

impl<'s> StoreSink<'s> {
    /// Queues into `store` the reports of `options` for bundle `revision`.
    pub fn new(
        store: &'s mut Store,
        options: ReportOptions,
        revision: &'s str,
        now: i64,
        writing: bool,
    ) -> Self {
        Self {
            store,
            options,
            revision,
            now,
            writing,
        }
    }
}

impl ReportSink for StoreSink<'_> {
    fn put(&mut self, judged: &Judged<'_>) -> Result<(), SinkError> {
        let s = judged.subject;
        let built = report::build(s, judged.results, self.options, self.revision, self.now);
        let uid = s.uid.as_deref().unwrap_or_default();
        self.store.observe(
            uid,
            judged.source,
            s.namespace.as_deref(),
            judged.version,
            judged.results,
            built.as_ref(),
        );
        if !self.writing {
            self.store.clear_queue();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

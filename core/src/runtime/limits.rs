//! The limits every evaluation runs under: wall-clock time (armed on an
//! engine or a VM from a deadline) and memory (a per-thread allocation
//! budget that regorus checks in its interpreter and VM loops and inside
//! builtins while they allocate), and what an evaluation stopped by either,
//! or failing otherwise, says.
//!
//! The memory budget counts the bytes the evaluating thread holds beyond
//! what it held when the evaluation began, through the allocator regorus
//! installs with its `allocator-memory-limits` feature, and the
//! `with_thread_memory_budget` hook Regent adds to it
//! (`vendor/REGENT-PATCHES.md`). Concurrent evaluations each get
//! their own budget.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::Engine;

/// How many work units the evaluator runs between two looks at the clock for
/// the time limit. Looking at every unit (interval 1) spent a tenth of the
/// server's CPU in `clock_gettime`; a few hundred units take microseconds, so
/// the limit is still honoured to well under a millisecond.
pub const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(256) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// The default time limit of one evaluation.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);
/// The default memory budget of one evaluation: well under the chart's
/// 96 MiB container limit, far above what a policy needs for a large object.
pub const DEFAULT_MEMORY_LIMIT: u64 = 32 * 1024 * 1024;

/// The limits of an evaluation, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time per evaluation; `None` only where a caller applies
    /// its own bound.
    pub time: Option<Duration>,
    /// Bytes an evaluation may hold beyond what its thread held when it
    /// began; `None` for no budget.
    pub memory: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Some(DEFAULT_TIME_LIMIT),
            memory: Some(DEFAULT_MEMORY_LIMIT),
        }
    }
}

impl Limits {
    /// No limit at all (benchmarks and the engine's own unit tests only).
    pub const NONE: Self = Self {
        time: None,
        memory: None,
    };

    /// The budget of an evaluation that starts now.
    pub fn start(&self) -> Budget {
        Budget {
            deadline: self.time.map(|t| Instant::now() + t),
            memory: self.memory,
        }
    }

    /// The same limits with another time limit.
    pub fn with_time(self, time: Option<Duration>) -> Self {
        Self { time, ..self }
    }
}

/// The limits as they apply to one evaluation, or to several that share a
/// deadline (the rounds of one mutation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// When the evaluation must have ended.
    pub deadline: Option<Instant>,
    /// The memory budget of each evaluation, in bytes.
    pub memory: Option<u64>,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        deadline: None,
        memory: None,
    };

    /// Runs `f` with this budget's memory limit armed on this thread.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        regorus::with_thread_memory_budget(self.memory, f)
    }
}

/// Sets the heap ceiling of the whole process: once the bytes allocated by
/// all threads together exceed it, every evaluation (and every parse into
/// the engine's values) fails with a memory limit instead of the container
/// being OOM-killed. `None` removes it.
pub fn set_heap_limit(bytes: Option<u64>) {
    regorus::set_global_memory_limit(bytes);
}

/// An evaluation that did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The evaluation ran out of time.
    #[error("policy evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The evaluation allocated more than its memory budget.
    #[error("policy evaluation exceeded its memory limit of {}", bytes(*.0))]
    MemoryLimit(u64),
    /// regorus reported an error (a builtin failed, a conflict, a panic, ...).
    #[error("policy evaluation failed: {0}")]
    Failed(String),
}

impl RunError {
    /// Whether a limit (time or memory) stopped the evaluation.
    pub fn is_limit(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::MemoryLimit(_))
    }
}

/// A byte count for people: `32 MiB`, `512 KiB`, `100 bytes`.
pub fn bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Sets the engine's time limit to what is left before `deadline`; the
/// limit set, or a timeout when nothing is left.
pub fn arm_timer(
    engine: &mut Engine,
    deadline: Option<Instant>,
) -> Result<Option<Duration>, RunError> {
    let Some(d) = deadline else {
        return Ok(None);
    };
    let left = d.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RunError::Timeout(Duration::ZERO));
    }
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: left,
        check_interval: TIMER_CHECK_INTERVAL,
    });
    Ok(Some(left))
}

/// A regorus error as ours: a timeout when the time limit `limit` was the
/// cause, a memory limit when the budget `memory` was.
pub fn run_error(text: String, limit: Option<Duration>, memory: Option<u64>) -> RunError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("exceeded memory limit") {
        return RunError::MemoryLimit(memory.unwrap_or(0));
    }
    match limit {
        Some(l)
            if lower.contains("exceeded time limit") || lower.contains("time limit exceeded") =>
        {
            RunError::Timeout(l)
        }
        _ => RunError::Failed(one_line(&text)),
    }
}

/// The longest cause an evaluation error carries (it ends up in a denial
/// line, a warning, a log line and a PolicyReport).
pub const MAX_CAUSE_CHARS: usize = 300;

/// A regorus report on one line: its multi-line form (`--> file:line:col`,
/// the source excerpt, `error: message`) becomes regorus's own short form
/// `file:line:col error: message` (which [`super::rego_error`] reads back),
/// other text has its lines joined; at most [`MAX_CAUSE_CHARS`]. A denial
/// names an erroring Constraint or policy in one line.
fn one_line(text: &str) -> String {
    let location = text.lines().find_map(|l| l.trim().strip_prefix("--> "));
    let message = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(" error: ").map(|(_, m)| m))
        });
    let line = match (location, message) {
        (Some(at), Some(message)) => format!("{} error: {}", at.trim(), message.trim()),
        _ => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    };
    if line.chars().count() <= MAX_CAUSE_CHARS {
        line
    } else {
        let cut: String = line.chars().take(MAX_CAUSE_CHARS - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regorus_reports_become_one_line_causes() {
        let report = "\n--> p.rego:3:8\n  |\n3 | by_name[c.name] = c { c := input.ephemeral[_] }\n  |        ^\nerror: rule conflicts with rule at p.rego:2:8";
        assert_eq!(
            run_error(report.to_string(), None, None),
            RunError::Failed("p.rego:3:8 error: rule conflicts with rule at p.rego:2:8".into())
        );
        let long = format!("object keys must be unique: {}", "k".repeat(1000));
        let cause = run_error(long, None, None).to_string();
        assert_eq!(
            cause.chars().count(),
            "policy evaluation failed: ".len() + MAX_CAUSE_CHARS,
            "{cause}"
        );
        assert!(
            cause.starts_with("policy evaluation failed: object keys must be unique: kkk")
                && cause.ends_with('…')
        );
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(32 * 1024 * 1024), "32 MiB");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(10), "10 bytes");
    }

    #[test]
    fn limit_errors_are_recognised_whatever_their_case() {
        let t = Some(Duration::from_secs(2));
        assert_eq!(
            run_error("Execution exceeded time limit (elapsed=..)".into(), t, None),
            RunError::Timeout(Duration::from_secs(2))
        );
        assert_eq!(
            run_error(
                "execution exceeded memory limit (usage=1 bytes, limit=2 bytes)".into(),
                t,
                Some(2)
            ),
            RunError::MemoryLimit(2)
        );
        assert!(matches!(
            run_error("other".into(), t, None),
            RunError::Failed(_)
        ));
    }
}

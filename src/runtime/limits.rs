//! Time limits: the deadline armed on an engine or a VM before each
//! evaluation, and what an evaluation that produced no value says.

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

/// An evaluation that did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The evaluation ran out of time.
    #[error("policy evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// regorus reported an error (a builtin failed, a conflict, a panic, ...).
    #[error("policy evaluation failed: {0}")]
    Failed(String),
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

/// A regorus error as ours: a timeout when the time limit `limit` was the cause.
pub fn run_error(text: String, limit: Option<Duration>) -> RunError {
    match limit {
        Some(l) if text.contains("exceeded time limit") || text.contains("time limit exceeded") => {
            RunError::Timeout(l)
        }
        _ => RunError::Failed(text),
    }
}

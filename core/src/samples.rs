//! The sample reviews every compiled program is warmed with, and on which
//! the bytecode VM must decide exactly as the interpreter does before it
//! serves: an ordinary Pod, and a Deployment that trips every default
//! policy and mutation. Shared by native policies and Gatekeeper templates.

/// The sample AdmissionReviews (JSON): an ordinary Pod first.
pub const WARMUP_REVIEWS: [&str; 2] = [
    include_str!("rego/warmup_review.json"),
    include_str!("rego/warmup_violations.json"),
];

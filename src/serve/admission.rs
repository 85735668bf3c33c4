//! The admission HTTP edge: `POST /validate` and `POST /mutate`. It only
//! translates: bytes in, [`regent_core::review`] to parse, [`regent_core::compose::decision`] to
//! decide, bytes out. A body that is not JSON, or too large, is a 4xx; anything
//! that parses is answered with an AdmissionReview. While a candidate bundle
//! is installed, each decided request is also handed to [`crate::rollout::shadow`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::post;
use axum::Router;

use crate::rollout::shadow::{Job, Shadow};
use crate::serve::state::Live;
use regent_core::compose::decision::{self, DecideOptions, Decision, Verdict, Webhook};
use regent_core::compose::{exception_review, Exceptions, Load};
use regent_core::exceptions;
use regent_core::native::policy::Enforcement;
use regent_core::review::{self, Response, Review};

/// Default request body limit: an object and its old version can each be up to
/// about 1.5 MiB (etcd's limit), plus the review around them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The validating webhook's path (the chart's ValidatingWebhookConfiguration uses it).
pub const VALIDATE_PATH: &str = "/validate";
/// The mutating webhook's path.
pub const MUTATE_PATH: &str = "/mutate";

/// What the admission router needs.
#[derive(Debug, Clone)]
pub struct AdmissionState {
    /// The live bundle and metrics.
    pub live: Arc<Live>,
    /// Failure mode and evaluation time limit.
    pub options: DecideOptions,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive once its header has.
    pub body_timeout: Duration,
    /// Where decided requests go for shadow evaluation under a candidate
    /// bundle (`None`: never).
    pub shadow: Option<Arc<Shadow>>,
    /// Admission requests in progress, from the start of their handler
    /// (the body still arriving) to their answer: the load each decision is
    /// told ([`Load`]).
    pub in_flight: Arc<AtomicUsize>,
    /// Where each decision's record goes (`None`: no decision log).
    pub decision_log: Option<Arc<crate::decision_log::DecisionLog>>,
    /// This replica's name, in decision records.
    pub replica: String,
}

/// Counts a request as in progress while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Marks the start of a request.
    fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter.clone())
    }

    /// The load now: whether another request is in progress.
    fn load(&self) -> Load {
        if self.0.load(Ordering::Acquire) > 1 {
            Load::Busy
        } else {
            Load::Alone
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The admission router.
pub fn router(state: AdmissionState) -> Router {
    Router::new()
        .route(
            VALIDATE_PATH,
            post(|s, u, b| handle(s, u, b, Webhook::Validate)),
        )
        .route(
            MUTATE_PATH,
            post(|s, u, b| handle(s, u, b, Webhook::Mutate)),
        )
        .fallback(|uri: Uri| async move {
            plain(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint {}; regent serves POST /validate and POST /mutate\n",
                    uri.path()
                ),
            )
        })
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn plain(code: StatusCode, text: String) -> HttpResponse {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn json(bytes: Vec<u8>) -> HttpResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

async fn handle(
    State(state): State<AdmissionState>,
    uri: Uri,
    body: Body,
    webhook: Webhook,
) -> HttpResponse {
    // In progress from here (the body still arriving) to the answer: while
    // another request is, Gatekeeper templates are not split across threads.
    let in_flight = InFlight::start(&state.in_flight);
    let metrics = state.live.metrics();
    let read = tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.max_body_bytes),
    )
    .await;
    let bytes: Bytes = match read {
        Ok(Ok(b)) => b,
        Err(_) => {
            metrics
                .invalid
                .with_label_values(&[webhook.as_str(), "body_timeout"])
                .inc();
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}\n",
                    state.body_timeout
                ),
            );
        }
        Ok(Err(_)) => {
            metrics
                .invalid
                .with_label_values(&[webhook.as_str(), "too_large"])
                .inc();
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than {} bytes or could not be read; regent accepts AdmissionReviews up to that size\n",
                    state.max_body_bytes
                ),
            );
        }
    };
    let started = Instant::now();
    let review = match review::parse(&bytes) {
        Ok(r) => r,
        Err(Ok(rejected)) => {
            metrics
                .invalid
                .with_label_values(&[webhook.as_str(), rejected.error.reason()])
                .inc();
            tracing::warn!(webhook = webhook.as_str(), uid = %rejected.uid, error = %rejected.error, "invalid AdmissionReview");
            return json(Response::for_rejected(&rejected).to_review_bytes(rejected.version));
        }
        Err(Err(e)) => {
            metrics
                .invalid
                .with_label_values(&[webhook.as_str(), e.reason()])
                .inc();
            tracing::warn!(webhook = webhook.as_str(), error = %e, "unparseable request body");
            return plain(StatusCode::BAD_REQUEST, format!("regent: {e}\n"));
        }
    };
    let mut options = state.options;
    options.load = in_flight.load();
    if let Some(limit) = query_timeout(&uri) {
        // Answer before the API server gives up on us: keep a margin for the
        // response to travel back.
        let budget = limit
            .saturating_sub(limit / 10)
            .max(Duration::from_millis(10));
        options.timeout = options.timeout.min(budget);
    }
    let decision = decide(&state, &review, webhook, &options);
    let out = decision.response.to_review_bytes(review.version);
    metrics.record(
        webhook.as_str(),
        &review.meta.kind,
        &review.meta.operation,
        &decision,
        started.elapsed().as_secs_f64(),
    );
    log(&review, webhook, &decision, started.elapsed());
    if let Some(decisions) = &state.decision_log {
        // After the response is built; a hand-over that never waits.
        let bundle = state.live.bundle();
        let revision = bundle
            .as_ref()
            .map(|b| b.revision().to_string())
            .unwrap_or_default();
        decisions.record(
            &review,
            &decision,
            &regent_core::decision_log::Context {
                webhook,
                duration: started.elapsed(),
                revision: &revision,
                replica: &state.replica,
                at: std::time::SystemTime::now(),
            },
            bytes.len(),
            bundle,
        );
    }
    if let Some(shadow) = state.shadow.as_ref().filter(|s| s.active()) {
        // Off the response path: a non-blocking hand-over; the candidate is
        // evaluated on the shadow threads while this response goes out.
        shadow.offer(Job {
            webhook,
            body: bytes,
            decision,
            options: state.options,
        });
    }
    json(out)
}

fn decide(
    state: &AdmissionState,
    review: &Review,
    webhook: Webhook,
    options: &DecideOptions,
) -> Decision {
    let Some(bundle) = state.live.bundle() else {
        return decision::no_bundle(&review.meta.uid, options);
    };
    let registry = state.live.exceptions();
    match webhook {
        Webhook::Validate if exception_review::is_exception_review(review) => {
            exception_review::decide_exception(
                review,
                &registry.governance(),
                &registry.catalogue(),
                exceptions::now(),
            )
        }
        Webhook::Validate => {
            let set = registry.current();
            let help = registry.help();
            let exceptions = Exceptions {
                set: &set,
                help: help.as_deref(),
                now: exceptions::now(),
            };
            decision::validate_in(
                &bundle,
                review,
                options,
                &state.live.inventory(),
                &exceptions,
            )
        }
        Webhook::Mutate => {
            decision::mutate_with_inventory(&bundle, review, options, &state.live.inventory())
        }
    }
}

fn log(review: &Review, webhook: Webhook, decision: &Decision, took: Duration) {
    let m = &review.meta;
    let denied_by: Vec<&str> = decision
        .fired
        .iter()
        .filter(|f| f.enforcement == Enforcement::Deny)
        .map(|f| f.policy.as_str())
        .collect();
    match decision.verdict {
        Verdict::Failed => tracing::error!(
            webhook = webhook.as_str(), uid = %m.uid, kind = %m.kind, namespace = %m.namespace, name = %m.name,
            operation = %m.operation, error = %decision.error.as_ref().map(ToString::to_string).unwrap_or_default(),
            "policy evaluation failed"
        ),
        // A plain admission is routine: debug. Anything a policy said
        // (denied, warned, dry-run, mutated) is worth an info line.
        _ if decision.fired.is_empty() && decision.mutated_by.is_empty() => tracing::debug!(
            webhook = webhook.as_str(), uid = %m.uid, kind = %m.kind, namespace = %m.namespace, name = %m.name,
            operation = %m.operation, took_us = took.as_micros() as u64, "admitted"
        ),
        _ => tracing::info!(
            webhook = webhook.as_str(), uid = %m.uid, kind = %m.kind, namespace = %m.namespace, name = %m.name,
            operation = %m.operation, decision = decision.verdict.as_str(), denied_by = ?denied_by,
            mutated_by = ?decision.mutated_by, took_us = took.as_micros() as u64, "admission decided"
        ),
    }
    for e in &decision.excepted {
        tracing::info!(
            webhook = webhook.as_str(), uid = %m.uid, kind = %m.kind, namespace = %m.namespace, name = %m.name,
            policy = %e.policy, exception = %e.exception, owner = %e.owner, until = %e.until,
            "violation covered by a policy exception"
        );
    }
    for e in &decision.policy_errors {
        tracing::warn!(
            webhook = webhook.as_str(), uid = %m.uid, kind = %m.kind, namespace = %m.namespace, name = %m.name,
            policy = %e.policy, enforcement = e.enforcement.as_str(), error = %e.error,
            "one policy failed to evaluate; the others decided"
        );
    }
    for f in decision
        .fired
        .iter()
        .filter(|f| f.enforcement == Enforcement::Dryrun)
    {
        for v in &f.violations {
            tracing::info!(
                uid = %m.uid, policy = %f.policy, path = ?v.path, message = %v.msg,
                "dry-run violation (not enforced)"
            );
        }
    }
}

/// The `timeout` query parameter the API server appends (`?timeout=10s`).
pub fn query_timeout(uri: &Uri) -> Option<Duration> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("timeout="))
        .and_then(regent_core::units::parse_go_duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timeout_the_api_server_appends() {
        let uri: Uri = "/validate?timeout=3s".parse().unwrap_or_default();
        assert_eq!(query_timeout(&uri), Some(Duration::from_secs(3)));
        let uri: Uri = "/validate".parse().unwrap_or_default();
        assert_eq!(query_timeout(&uri), None);
    }
}

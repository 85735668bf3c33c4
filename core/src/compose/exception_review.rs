//! Admission of PolicyException objects themselves: a new or changed
//! exception is admitted only if it is valid now, under the governance,
//! against the live bundle's policies; otherwise it is refused with every
//! problem, each naming its field.

use serde_json::Value as Json;

use super::decision::Decision;
use crate::exceptions::Catalogue;

/// Whether a review is of a PolicyException (any version of the group).
pub fn is_exception_review(review: &crate::review::Review) -> bool {
    review.meta.group == crate::exceptions::GROUP && review.meta.kind == crate::exceptions::KIND
}

/// Decides a PolicyException being created or changed: admitted only if it
/// is valid now, under the governance, against the live bundle's policies;
/// otherwise refused with every problem, each naming its field
/// (`spec.expires: 2028-01-01 is 400 days away; the maximum is 90d`). A
/// deletion is always admitted.
pub fn decide_exception(
    review: &crate::review::Review,
    governance: &crate::exceptions::Governance,
    catalogue: &Catalogue,
    now: i64,
) -> Decision {
    use crate::review::Response;
    let uid = &review.meta.uid;
    let mut response = Response::allow(uid);
    if review.meta.operation != "DELETE" {
        let mut object: Json =
            serde_json::to_value(&review.input["request"]["object"]).unwrap_or(Json::Null);
        // The request's namespace is the one the object is created in.
        if object["metadata"]["namespace"].is_null() && !review.meta.namespace.is_empty() {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.insert(
                    "namespace".into(),
                    Json::from(review.meta.namespace.clone()),
                );
            }
        }
        let mut e = crate::exceptions::read(&object, "admission");
        // At creation the API server has not set creationTimestamp: the
        // exception starts now.
        e.created = e.created.or(Some(now));
        let mut problems = crate::exceptions::validate(&e, governance, catalogue, now);
        // A new exception that has already ended would apply to nothing (an
        // ended one may still be changed: a label, a finalizer).
        if review.meta.operation == "CREATE" && e.expires > 0 && e.expires <= now {
            problems.push(crate::exceptions::Problem {
                field: "spec.expires".to_string(),
                message: format!("{} is in the past", e.expires_text),
            });
        }
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            response = Response::refuse(
                uid,
                422,
                "Invalid",
                format!(
                    "{} is not a valid policy exception, so it would apply to nothing:\n{}",
                    review.meta.describe(),
                    lines.join("\n")
                ),
            );
        }
    }
    Decision::answered(response)
}

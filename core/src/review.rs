//! AdmissionReview on the wire: parsing a request body (v1 or v1beta1) into
//! the policy input, and writing the response review in the same version.
//!
//! The body is parsed once, straight into the engine's value type; the few
//! fields the server needs (uid, kind, operation, namespace) are read from it.
//! Anything that parses as JSON is answered with an AdmissionReview; only a
//! body that is not JSON at all is an HTTP error (see [`crate::server`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use regorus::Value;
use serde::Serialize;

/// The AdmissionReview API versions regent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `admission.k8s.io/v1`
    V1,
    /// `admission.k8s.io/v1beta1`
    V1beta1,
}

impl ApiVersion {
    /// The apiVersion string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "admission.k8s.io/v1",
            Self::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// Why a body is not a usable AdmissionReview.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// Not JSON (includes invalid UTF-8, truncation, nesting too deep).
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("request body is JSON {0}, not an AdmissionReview object")]
    NotAnObject(&'static str),
    /// `kind` is not AdmissionReview.
    #[error("kind is {0:?}, expected \"AdmissionReview\"")]
    WrongKind(String),
    /// An apiVersion other than v1/v1beta1.
    #[error("apiVersion {0:?} is not supported; regent speaks admission.k8s.io/v1 and admission.k8s.io/v1beta1")]
    UnsupportedVersion(String),
    /// No `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// No `request.uid`.
    #[error("request.uid is missing or not a non-empty string")]
    MissingUid,
    /// A required request field is missing or has the wrong type.
    #[error("request.{field} is missing or not {expected}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
}

impl ReviewError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::NotAnObject(_) => "not_object",
            Self::WrongKind(_) => "wrong_kind",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::MissingRequest => "missing_request",
            Self::MissingUid => "missing_uid",
            Self::BadField { .. } => "bad_field",
        }
    }
}

/// The request fields the server itself reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestMeta {
    /// The request uid, echoed in the response.
    pub uid: String,
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// The object's API group ("" for core).
    pub group: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// The namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// The object's name ("" when the API server has not assigned one yet).
    pub name: String,
}

impl RequestMeta {
    /// `kind namespace/name` for messages and logs.
    pub fn describe(&self) -> String {
        let name = if self.name.is_empty() {
            "(generated name)"
        } else {
            &self.name
        };
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, name)
        }
    }
}

/// A parsed AdmissionReview.
#[derive(Debug, Clone)]
pub struct Review {
    /// The version to answer in.
    pub version: ApiVersion,
    /// The fields the server reads.
    pub meta: RequestMeta,
    /// The whole review: the policies' `input`.
    pub input: Value,
}

impl Review {
    /// The same review with `request.object` replaced (the object a
    /// mutation produced); `None` if the review has no request object.
    pub fn with_object(&self, object: &serde_json::Value) -> Option<Self> {
        let mut input = self.input.clone();
        let request = input
            .as_object_mut()
            .ok()?
            .get_mut(&Value::from("request"))?
            .as_object_mut()
            .ok()?;
        request.insert(Value::from("object"), Value::from(object.clone()));
        Some(Self {
            version: self.version,
            meta: self.meta.clone(),
            input,
        })
    }
}

/// A body that parsed as JSON but is not a usable review: answered with an
/// AdmissionReview that carries the uid when there was one.
#[derive(Debug)]
pub struct Rejected {
    /// The version to answer in (v1 when unknown).
    pub version: ApiVersion,
    /// The uid, when the body had one.
    pub uid: String,
    /// What is wrong.
    pub error: ReviewError,
}

/// Parses a request body. `Err(Ok(rejected))` is a JSON body that is not a
/// valid review; `Err(Err(e))` is a body that is not JSON at all.
pub fn parse(body: &[u8]) -> Result<Review, Result<Rejected, ReviewError>> {
    // One UTF-8 check of the whole body, then a parse that trusts it: faster
    // than checking each string as `from_slice` does, and the same bodies pass.
    let text = std::str::from_utf8(body).map_err(|e| {
        Err(ReviewError::NotJson(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )))
    })?;
    let input: Value =
        serde_json::from_str(text).map_err(|e| Err(ReviewError::NotJson(e.to_string())))?;
    let reject = |version, uid: &str, error| {
        Ok(Rejected {
            version,
            uid: uid.to_string(),
            error,
        })
    };
    let kind_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) | Value::Set(_) => "array",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    };
    if !matches!(input, Value::Object(_)) {
        return Err(reject(
            ApiVersion::V1,
            "",
            ReviewError::NotAnObject(kind_of(&input)),
        ));
    }
    let request = &input["request"];
    let uid = crate::runtime::text(&request["uid"])
        .unwrap_or_default()
        .to_string();
    let version = match crate::runtime::text(&input["apiVersion"]) {
        Some("admission.k8s.io/v1") => ApiVersion::V1,
        Some("admission.k8s.io/v1beta1") => ApiVersion::V1beta1,
        Some(other) => {
            return Err(reject(
                ApiVersion::V1,
                &uid,
                ReviewError::UnsupportedVersion(other.to_string()),
            ))
        }
        None => {
            return Err(reject(
                ApiVersion::V1,
                &uid,
                ReviewError::UnsupportedVersion(String::new()),
            ))
        }
    };
    match crate::runtime::text(&input["kind"]) {
        Some("AdmissionReview") => {}
        Some(k) => return Err(reject(version, &uid, ReviewError::WrongKind(k.to_string()))),
        None => return Err(reject(version, &uid, ReviewError::WrongKind(String::new()))),
    }
    if !matches!(request, Value::Object(_)) {
        return Err(reject(version, "", ReviewError::MissingRequest));
    }
    if uid.is_empty() {
        return Err(reject(version, "", ReviewError::MissingUid));
    }
    let text = |v: &Value, field, expected| {
        crate::runtime::text(v)
            .map(str::to_string)
            .ok_or(ReviewError::BadField { field, expected })
    };
    let optional = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
    let fields = (|| {
        let kind = text(&request["kind"]["kind"], "kind.kind", "a string")?;
        let group = optional(&request["kind"]["group"]);
        let operation = text(&request["operation"], "operation", "a string")?;
        if !matches!(
            operation.as_str(),
            "CREATE" | "UPDATE" | "DELETE" | "CONNECT"
        ) {
            return Err(ReviewError::BadField {
                field: "operation",
                expected: "CREATE, UPDATE, DELETE or CONNECT",
            });
        }
        for (field, v) in [
            ("object", &request["object"]),
            ("oldObject", &request["oldObject"]),
        ] {
            if !matches!(v, Value::Object(_) | Value::Null | Value::Undefined) {
                return Err(ReviewError::BadField {
                    field,
                    expected: "an object or null",
                });
            }
        }
        Ok((kind, group, operation))
    })();
    let (kind, group, operation) = fields.map_err(|e| reject(version, &uid, e))?;
    let meta = RequestMeta {
        uid,
        kind,
        group,
        operation,
        namespace: optional(&request["namespace"]),
        name: optional(&request["name"]),
    };
    Ok(Review {
        version,
        meta,
        input,
    })
}

/// The `status` of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Status {
    /// HTTP-style code: 403 for a denial, 400 for a bad request, 500 for a webhook failure.
    pub code: u16,
    /// `Forbidden`, `BadRequest` or `InternalError`.
    pub reason: String,
    /// The text kubectl prints.
    pub message: String,
}

/// An AdmissionResponse, as the API server reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not (or, for an admitted request, nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSON patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Recorded in the API server's audit log, prefixed with the webhook name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Printed by kubectl as `Warning:` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Response {
    /// An admitting response for `uid`.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            audit_annotations: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// A refusing response with a status.
    pub fn refuse(uid: &str, code: u16, reason: &str, message: String) -> Self {
        Self {
            allowed: false,
            status: Some(Status {
                code,
                reason: reason.to_string(),
                message,
            }),
            ..Self::allow(uid)
        }
    }

    /// Attaches a JSON patch.
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Result<Self, serde_json::Error> {
        let bytes = serde_json::to_vec(patch)?;
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.patch_type = Some("JSONPatch");
        Ok(self)
    }

    /// The response for a body that parsed but is not a valid review.
    pub fn for_rejected(rejected: &Rejected) -> Self {
        Self::refuse(
            &rejected.uid,
            400,
            "BadRequest",
            format!("regent: invalid AdmissionReview: {}", rejected.error),
        )
    }

    /// Wraps the response in an AdmissionReview of `version`, as bytes.
    pub fn to_review_bytes(&self, version: ApiVersion) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            api_version: &'static str,
            kind: &'static str,
            response: &'a Response,
        }
        // Serialising plain strings, bools and maps cannot fail; fall back to
        // a minimal valid review rather than panic if it ever did.
        serde_json::to_vec(&Out {
            api_version: version.as_str(),
            kind: "AdmissionReview",
            response: self,
        })
        .unwrap_or_else(|_| {
            format!(
                r#"{{"apiVersion":"{}","kind":"AdmissionReview","response":{{"uid":{},"allowed":false}}}}"#,
                version.as_str(),
                serde_json::Value::String(self.uid.clone())
            )
            .into_bytes()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn review(api: &str, request: &str) -> String {
        format!(r#"{{"apiVersion":"{api}","kind":"AdmissionReview","request":{request}}}"#)
    }

    const REQ: &str = r#"{"uid":"u1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","namespace":"ns","name":"web","object":{"kind":"Deployment"}}"#;

    #[test]
    fn parses_v1_and_v1beta1() {
        let r = parse(review("admission.k8s.io/v1", REQ).as_bytes()).unwrap();
        assert_eq!(r.version, ApiVersion::V1);
        assert_eq!(r.meta.uid, "u1");
        assert_eq!(r.meta.kind, "Deployment");
        assert_eq!(r.meta.group, "apps");
        assert_eq!(r.meta.describe(), "Deployment ns/web");
        let r = parse(review("admission.k8s.io/v1beta1", REQ).as_bytes()).unwrap();
        assert_eq!(r.version, ApiVersion::V1beta1);
    }

    fn rejected(body: &str) -> Rejected {
        match parse(body.as_bytes()) {
            Err(Ok(r)) => r,
            other => panic!("expected a rejected review, got {other:?}"),
        }
    }

    #[test]
    fn bad_reviews_are_rejected_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("null", "not_object"),
            ("[1,2]", "not_object"),
            (
                r#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview"}"#,
                "unsupported_version",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#,
                "wrong_kind",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "missing_request",
            ),
            (
                &review(
                    "admission.k8s.io/v1",
                    r#"{"kind":{"kind":"Pod"},"operation":"CREATE"}"#,
                ),
                "missing_uid",
            ),
            (
                &review(
                    "admission.k8s.io/v1",
                    r#"{"uid":"x","kind":{"kind":"Pod"},"operation":"CREATE","object":"pod"}"#,
                ),
                "bad_field",
            ),
            (
                &review(
                    "admission.k8s.io/v1",
                    r#"{"uid":"x","kind":{"kind":"Pod"},"operation":"PATCH"}"#,
                ),
                "bad_field",
            ),
            (
                &review(
                    "admission.k8s.io/v1",
                    r#"{"uid":"x","kind":"Pod","operation":"CREATE"}"#,
                ),
                "bad_field",
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(rejected(body).error.reason(), *reason, "{body}");
        }
        assert_eq!(
            rejected(&review(
                "admission.k8s.io/v1",
                r#"{"uid":"x","kind":"Pod"}"#
            ))
            .uid,
            "x"
        );
    }

    #[test]
    fn non_json_is_an_error() {
        for body in [&b"{\"apiVersion\": "[..], b"\xff\xfe", b"", &b"{}}"[..]] {
            assert!(matches!(parse(body), Err(Err(ReviewError::NotJson(_)))));
        }
        let latin1 = b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"caf\xe9\"}";
        let Err(Err(ReviewError::NotJson(message))) = parse(latin1) else {
            panic!("a non-UTF-8 body parsed");
        };
        assert_eq!(message, "invalid UTF-8 at byte 50");
        let deep = "[".repeat(10_000);
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(Err(ReviewError::NotJson(_)))
        ));
    }

    #[test]
    fn response_echoes_version_and_encodes_patch() {
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"add","path":"/a","value":1}]"#).unwrap();
        let r = Response::allow("u1").with_patch(&patch).unwrap();
        let out: serde_json::Value =
            serde_json::from_slice(&r.to_review_bytes(ApiVersion::V1beta1)).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, br#"[{"op":"add","path":"/a","value":1}]"#);
    }
}

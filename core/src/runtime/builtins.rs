//! Regent's own Rego builtins, written in Rust because they run on every
//! request for the built-in library's hottest helpers: the per-container and
//! per-volume views of `src/rego/workload.rego` and the image reference parts
//! of `src/rego/images.rego`.
//!
//! In Rego on the bytecode VM, `containers` was a comprehension over three
//! fields with an object and two `sprintf` strings per container, and
//! `image_tag` two function bodies of `split`s per image (about 19 k machine
//! instructions per image); here each is one call. The workload builtins
//! decide the shapes a Kubernetes API server sends (arrays of containers and
//! volumes) and fail on any other shape (an object or a set where an array
//! belongs, a path that is not a string): outside strict mode a failing
//! builtin is undefined, and the library then falls back to its Rego
//! definition, so every input decides exactly as before. The image builtins
//! are defined for every string, as the Rego they replace was (and, as it
//! was, undefined for anything else); `src/runtime/tests.rs` checks them
//! against that Rego on both evaluators.
//!
//! They reach both evaluators through regorus's host-builtin table
//! (`vendor/REGENT-PATCHES.md` §29), registered once by
//! [`register`] before the first engine exists.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use regorus::unstable::{BuiltinFcn, Expr, Ref, Span};
use regorus::Value;

/// `regent.workload.containers(pod_spec, spec_path, spec_pointer)`: every
/// container of the three lists a pod spec keeps them in, in the order
/// `containers`, `initContainers`, `ephemeralContainers`, as
/// `{"container", "field", "index", "path", "pointer"}` objects.
pub const CONTAINERS: &str = "regent.workload.containers";

/// `regent.workload.volumes(pod_spec, spec_path)`: every volume of a pod
/// spec as `{"volume", "index", "path"}` objects.
pub const VOLUMES: &str = "regent.workload.volumes";

/// `regent.images.tag(image)`: the tag of an image reference (`""` when it
/// has none), or `@` and the digest.
pub const IMAGE_TAG: &str = "regent.images.tag";

/// `regent.images.repository(image)`: the reference without its tag or
/// digest.
pub const IMAGE_REPOSITORY: &str = "regent.images.repository";

/// `regent.images.registry(image)`: the registry host, `docker.io` when the
/// first path segment is not a host.
pub const IMAGE_REGISTRY: &str = "regent.images.registry";

/// The pod spec fields that hold containers, in the library's order.
const CONTAINER_FIELDS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Registers Regent's builtins with regorus, once per process. Returns the
/// registration's outcome (an error only if regorus's builtin table was
/// built before this ran, which [`crate::runtime::new_engine`] prevents).
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let table: [(&'static str, BuiltinFcn); 5] = [
                (CONTAINERS, (containers, 3)),
                (VOLUMES, (volumes, 2)),
                (IMAGE_TAG, (image_tag, 1)),
                (IMAGE_REPOSITORY, (image_repository, 1)),
                (IMAGE_REGISTRY, (image_registry, 1)),
            ];
            regorus::unstable::register_host_builtins(&table).map_err(|e| e.to_string())
        })
        .clone()
}

fn containers(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> Result<Value> {
    let [spec, Value::String(path), Value::String(pointer)] = args else {
        bail!("{CONTAINERS} expects a pod spec and two strings");
    };
    let mut out = Vec::new();
    let Value::Object(spec) = spec else {
        // `pod_spec[field]` of anything but an object finds no container.
        return Ok(Value::from(out));
    };
    for field in CONTAINER_FIELDS {
        let items = match spec.get(&Value::from(field)) {
            Some(Value::Array(items)) => items,
            // An object or a set would be iterated by key or element: the
            // Rego definition decides those.
            Some(Value::Object(_) | Value::Set(_)) => {
                bail!("{CONTAINERS}: {field} is not an array")
            }
            // Missing, or a scalar (iterating one yields nothing).
            _ => continue,
        };
        for (i, container) in items.iter().enumerate() {
            let mut c = BTreeMap::new();
            c.insert(Value::from("container"), container.clone());
            c.insert(Value::from("field"), Value::from(field));
            c.insert(Value::from("index"), Value::from(i as u64));
            c.insert(
                Value::from("path"),
                Value::from(format!("{path}.{field}[{i}]")),
            );
            c.insert(
                Value::from("pointer"),
                Value::from(format!("{pointer}/{field}/{i}")),
            );
            out.push(Value::from(c));
        }
    }
    Ok(Value::from(out))
}

fn volumes(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> Result<Value> {
    let [spec, Value::String(path)] = args else {
        bail!("{VOLUMES} expects a pod spec and a string");
    };
    let mut out = Vec::new();
    let Value::Object(spec) = spec else {
        return Ok(Value::from(out));
    };
    let items = match spec.get(&Value::from("volumes")) {
        Some(Value::Array(items)) => items,
        Some(Value::Object(_) | Value::Set(_)) => bail!("{VOLUMES}: volumes is not an array"),
        _ => return Ok(Value::from(out)),
    };
    for (i, volume) in items.iter().enumerate() {
        let mut v = BTreeMap::new();
        v.insert(Value::from("volume"), volume.clone());
        v.insert(Value::from("index"), Value::from(i as u64));
        v.insert(
            Value::from("path"),
            Value::from(format!("{path}.volumes[{i}]")),
        );
        out.push(Value::from(v));
    }
    Ok(Value::from(out))
}

/// The image reference argument of an image builtin.
fn image<'a>(name: &str, args: &'a [Value]) -> Result<&'a str> {
    match args {
        [Value::String(image)] => Ok(image),
        _ => bail!("{name} expects an image reference string"),
    }
}

/// The last `/`-separated segment of a reference: the name and tag.
fn last_segment(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

fn image_tag(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> Result<Value> {
    let image = image(IMAGE_TAG, args)?;
    let tag = match image.split_once('@') {
        Some((_, rest)) => format!("@{}", rest.split('@').next().unwrap_or(rest)),
        None => last_segment(image)
            .split(':')
            .nth(1)
            .unwrap_or_default()
            .to_string(),
    };
    Ok(Value::from(tag))
}

fn image_repository(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> Result<Value> {
    let image = image(IMAGE_REPOSITORY, args)?;
    if let Some((repository, _)) = image.split_once('@') {
        return Ok(Value::from(repository));
    }
    let repository = match last_segment(image).split(':').nth(1) {
        Some(tag) => image
            .strip_suffix(tag)
            .and_then(|s| s.strip_suffix(':'))
            .unwrap_or(image),
        None => image,
    };
    Ok(Value::from(repository))
}

fn image_registry(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> Result<Value> {
    let image = image(IMAGE_REGISTRY, args)?;
    let registry = match image.split_once('/') {
        Some((first, _)) if is_host(first) => first,
        _ => "docker.io",
    };
    Ok(Value::from(registry))
}

/// Whether the first segment of a reference names a registry host.
fn is_host(segment: &str) -> bool {
    segment.contains('.') || segment.contains(':') || segment == "localhost"
}

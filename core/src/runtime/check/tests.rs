//! Tests of the parent module.

#![allow(clippy::unwrap_used)]
use super::*;

const LIB: &str = "package regent.lib.workload\n\nimport rego.v1\n\ncontainers contains c if { some c in input.x }\n\nfield_path(f) := f\n";

fn run(source: &str, data: Json) -> Vec<Finding> {
    check(
        &[
            ModuleText {
                path: "lib.rego",
                source: LIB,
                checked: false,
            },
            ModuleText {
                path: "p.rego",
                source,
                checked: true,
            },
        ],
        &data,
        &[],
    )
}

#[test]
fn an_unknown_function_is_found_with_its_position_and_the_closest_name() {
    let f = run(
        "package validate.p\nimport rego.v1\nviolation contains 1 if {\n  unit.parse_bytes(\"1Mi\") > 1\n}\n",
        Json::Null,
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].line, f[0].column), (4, 3));
    assert_eq!(f[0].message, "unknown function unit.parse_bytes");
    assert_eq!(f[0].hint.as_deref(), Some("units.parse_bytes"));
    assert_eq!(
        f[0].to_string(),
        "p.rego:4:3: unknown function unit.parse_bytes (did you mean units.parse_bytes?)"
    );
}

#[test]
fn an_import_of_a_rule_that_does_not_exist_is_found() {
    let f = run(
        "package validate.p\nimport rego.v1\nimport data.regent.lib.workload.container\nviolation contains c if { some c in container }\n",
        Json::Null,
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].line, 3);
    assert!(
        f[0].message
            .contains("has no rule, package or data named \"container\""),
        "{f:?}"
    );
    assert_eq!(f[0].hint.as_deref(), Some("containers"));
}

#[test]
fn valid_calls_imports_and_references_pass() {
    let f = run(
        "package validate.p\nimport rego.v1\nimport data.regent.lib.workload\nimport data.regent.lib.workload.containers\n\
         helper(x) := x\n\
         violation contains v if {\n\tsome c in containers\n\tv := helper(workload.field_path(count(c)))\n\
         \tdata.validate.p.parameters.anything\n\tx := data.validate.p.enforcement\n\tprint(x)\n}\n",
        serde_json::json!({"validate": {"p": {"enforcement": "warn", "parameters": {}}}}),
    );
    assert_eq!(f, Vec::new());
}

#[test]
fn a_misspelled_data_key_after_a_package_is_found_but_deeper_keys_are_optional() {
    let data = serde_json::json!({"validate": {"p": {"parameters": {"a": 1}}}});
    let f = run(
        "package validate.p\nimport rego.v1\nviolation contains 1 if { data.validate.p.paramters.a }\n",
        data.clone(),
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].hint.as_deref(), Some("parameters"));
    let f = run(
        "package validate.p\nimport rego.v1\nviolation contains 1 if { data.validate.p.parameters.b }\n",
        data,
    );
    assert_eq!(f, Vec::new());
}

#[test]
fn a_local_name_shadows_an_import_and_dynamic_indexes_stop_the_check() {
    let f = run(
        "package validate.p\nimport rego.v1\nimport data.regent.lib.workload\n\
         violation contains 1 if {\n\tsome workload in [{\"zzz\": 1}]\n\tworkload.zzz\n\tk := \"x\"\n\tdata.regent.lib[k].anything\n}\n",
        Json::Null,
    );
    assert_eq!(f, Vec::new());
}

#[test]
fn a_rule_called_as_a_function_and_an_unknown_package_root_are_found() {
    let f = run(
        "package validate.p\nimport rego.v1\nimport data.lib.k8s\nlimit := 3\nviolation contains 1 if { limit(1) }\n",
        Json::Null,
    );
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f[0].message
            .contains("import data.lib.k8s: no package, rule or data is named \"lib\""),
        "{f:?}"
    );
    assert_eq!(f[1].message, "limit is a rule, not a function");
}

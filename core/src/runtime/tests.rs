//! Tests of the runtime: positions, limits, the VM/interpreter check, and
//! one test per vendored regorus patch (vendor/REGENT-PATCHES.md),
//! each run on both evaluators.
#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

#[test]
fn positions_are_read_from_regorus_reports() {
    let mut engine = new_engine();
    let err = add_module(
        &mut engine,
        "p.rego",
        "package p\nimport rego.v1\nx if {\n  y := \n}\n",
        Syntax::Detect,
    )
    .unwrap_err();
    assert_eq!(err.path, "p.rego");
    assert_eq!(err.line, 4);
    assert!(err.to_string().starts_with("p.rego:4:"), "{err}");
}

#[test]
fn short_form_reports_keep_their_position() {
    let e = rego_error(
        "p.rego",
        "p.rego:6:11 error: encountered `split` while expecting identifier",
    );
    assert_eq!((e.line, e.column), (6, 11));
    assert_eq!(e.message, "encountered `split` while expecting identifier");
}

#[test]
fn older_syntax_is_detected() {
    let mut engine = new_engine();
    let package = add_module(
        &mut engine,
        "p.rego",
        "package p\ndeny[msg] {\n  msg := \"x\"\n}\n",
        Syntax::Detect,
    )
    .unwrap();
    assert_eq!(package, "data.p");
}

/// A program of the one module `source`, warmed on `sample` and compiled
/// for the VM, which it must have kept.
fn vm_program(source: &str, syntax: Syntax, entry: &str, sample: &Value) -> Program {
    let mut engine = new_engine();
    add_module(&mut engine, "p.rego", source, syntax).unwrap();
    let mut program = Program::new(engine);
    program
        .warm(entry, sample.clone(), Limits::default())
        .unwrap();
    program
        .compile_bytecode(&[entry], std::slice::from_ref(sample), Limits::default())
        .unwrap();
    assert_eq!(program.evaluator(), Evaluator::Vm, "{source}");
    program
}

#[test]
fn the_vm_is_kept_only_when_it_agrees_and_limits_are_honoured() {
    let sample = Value::from_json_str(r#"{"n": 3}"#).unwrap();
    let program = vm_program(
        "package p\nimport rego.v1\nout := count([x | some x in numbers.range(1, input.n)])\n",
        Syntax::V1,
        "data.p.out",
        &sample,
    );
    assert_eq!(
        program
            .eval("data.p.out", sample, Budget::UNLIMITED)
            .unwrap(),
        Value::from(3u64)
    );
    let past = Budget {
        deadline: Some(std::time::Instant::now() - Duration::from_millis(1)),
        memory: None,
    };
    let big = Value::from_json_str(r#"{"n": 100000000}"#).unwrap();
    assert!(matches!(
        program.eval("data.p.out", big.clone(), past),
        Err(RunError::Timeout(_))
    ));
    // A builtin asked for a range of a hundred million numbers is stopped
    // by the memory budget while it allocates, on the VM and on the
    // interpreter, long before it holds them all.
    let small = Budget {
        deadline: None,
        memory: Some(8 * 1024 * 1024),
    };
    assert_eq!(
        program.eval("data.p.out", big.clone(), small),
        Err(RunError::MemoryLimit(8 * 1024 * 1024))
    );
    assert_eq!(
        program.eval_interpreted("data.p.out", big, small),
        Err(RunError::MemoryLimit(8 * 1024 * 1024))
    );
}

/// Evaluates `entry` of an older-syntax module on the VM and on the
/// interpreter; both must agree, and the VM must have been kept.
fn both(source: &str, entry: &str, input: &str) -> Value {
    let input = Value::from_json_str(input).unwrap();
    let program = vm_program(source, Syntax::V0, entry, &input);
    let vm = program
        .eval(entry, input.clone(), Budget::UNLIMITED)
        .unwrap();
    let interpreted = program
        .eval_interpreted(entry, input, Budget::UNLIMITED)
        .unwrap();
    assert_eq!(vm, interpreted, "{source}");
    vm
}

// OPA compatibility of the vendored regorus patches (vendor/REGENT-PATCHES.md).

#[test]
fn a_parenthesis_on_a_new_line_starts_a_new_expression() {
    let source =
        "package p\nok {\n  input.a >= input.b\n  (input.max - input.min) >= input.spread\n}\n";
    let input = r#"{"a": 2, "b": 1, "max": 5, "min": 1, "spread": 3}"#;
    assert_eq!(both(source, "data.p.ok", input), Value::from(true));
    let short = r#"{"a": 2, "b": 1, "max": 5, "min": 4, "spread": 3}"#;
    assert_eq!(both(source, "data.p.ok", short), Value::Undefined);
}

#[test]
fn sprintf_prints_missing_arguments_as_go_does() {
    let source = "package p\nmsg := sprintf(\"%v of %v: %d\", [input.a])\n";
    assert_eq!(
        both(source, "data.p.msg", r#"{"a": "x"}"#),
        Value::from("x of %!v(MISSING): %!d(MISSING)")
    );
}

#[test]
fn sprintf_prints_extra_arguments_as_go_does() {
    // What `opa eval` (OPA 1.9.0) prints for the same calls.
    let source = "package p\na := sprintf(\"%v <%v>\", [\"a\", \"b\", 3])\nb := sprintf(\"%v\", [\"a\", 1.5, \"x\", true, {\"a\": 1}, [1]])\n";
    assert_eq!(
        both(source, "data.p.a", "{}"),
        Value::from("a <b>%!(EXTRA int=3)")
    );
    assert_eq!(
        both(source, "data.p.b", "{}"),
        Value::from("a%!(EXTRA float64=1.5, string=x, string=true, string={\"a\": 1}, string=[1])")
    );
}

#[test]
fn set_rules_take_further_bodies_as_alternatives() {
    let source = "package p\ns[x] {\n  x := input.a\n} {\n  x := input.b\n}\n";
    let got = both(source, "data.p.s", r#"{"a": 1, "b": 2}"#);
    let members: Vec<Value> = got.as_set().unwrap().iter().cloned().collect();
    assert_eq!(members, [Value::from(1u64), Value::from(2u64)]);
    // `else` is still refused on a set rule.
    let mut engine = new_engine();
    let err = add_module(
        &mut engine,
        "p.rego",
        "package p\ns[x] {\n  x := 1\n} else = 2 {\n  true\n}\n",
        Syntax::V0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("else"), "{err}");
}

#[test]
fn operands_of_a_negated_call_are_evaluated_outside_the_negation() {
    let source = "package p\nimport future.keywords.in\n\
        f(_) { false }\n\
        obj := {\"a\": true}\n\
        call { not f(input.missing) }\n\
        call_defined { not f(input.present) }\n\
        neq { not input.present != input.missing }\n\
        eq { not input.missing == false }\n\
        index { not obj[input.missing] }\n\
        member { not 3 in input.missing }\n\
        local { params := {\"rule\": \"x\"}; not f(params.ranges) }\n";
    let input = r#"{"present": 1}"#;
    // Undefined operand of a call, `!=`, `in`, or an index: the literal
    // fails (OPA hoists them before the `not`).
    for rule in ["call", "neq", "index", "member", "local"] {
        assert_eq!(
            both(source, &format!("data.p.{rule}"), input),
            Value::Undefined,
            "{rule}"
        );
    }
    // Defined operands, and `==` (a unification in OPA): as before.
    assert_eq!(
        both(source, "data.p.call_defined", input),
        Value::from(true)
    );
    assert_eq!(both(source, "data.p.eq", input), Value::from(true));
}

// Speed patches of the VM (vendor/REGENT-PATCHES.md, 6): results
// must not change.

#[test]
fn function_results_are_reused_only_for_the_same_arguments() {
    let source = "package p\n\
        size(\"Mi\") = 1048576 { true }\n\
        size(\"Gi\") = 1073741824 { true }\n\
        size(s) = 1 { s != \"Mi\"; s != \"Gi\" }\n\
        sizes := [size(u) | u := input.units[_]]\n\
        twice := [x | x := size(input.units[_])]\n\
        missing { not size(input.none) }\n";
    let input = r#"{"units": ["Mi", "Gi", "Mi", "k", "Gi", "k"]}"#;
    let expected =
        Value::from_json_str("[1048576, 1073741824, 1048576, 1, 1073741824, 1]").unwrap();
    assert_eq!(both(source, "data.p.sizes", input), expected);
    assert_eq!(both(source, "data.p.twice", input), expected);
    // An undefined argument is never answered from the cache.
    assert_eq!(both(source, "data.p.missing", input), Value::Undefined);
}

#[test]
fn function_results_are_reused_for_identical_and_equal_arguments_only() {
    // Patch 10: cached argument lists are searched by reference first,
    // then by value, without building a vector for the lookup.
    let source = "package p\n\
        import rego.v1\n\
        total(o) := sum([v | some v in o])\n\
        copy := json.unmarshal(json.marshal(input.a))\n\
        results := [total(input.a), total(input.a), total(copy), total(input.b), total(input.a), total(input.b)]\n\
        pairs := [(total(x) + total(y)) | some x in [input.a, input.b]; some y in [input.b, copy]]\n";
    let input = r#"{"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 5}}"#;
    expect_both(source, "data.p.results", input, "[3, 3, 3, 6, 3, 6]");
    expect_both(source, "data.p.pairs", input, "[9, 6, 12, 9]");
}

#[test]
fn objects_are_iterated_entry_by_entry_in_key_order() {
    // Patch 10: a cursor over a parsed object steps by position.
    let source = "package p\n\
        import rego.v1\n\
        pairs := [[k, v] | some k, v in input.o]\n\
        built := {k: (v + 1) | some k, v in input.o}\n\
        built_pairs := [[k, v] | some k, v in built]\n\
        cross := count([1 | some a, _ in input.o; some b, _ in input.o; a != b])\n";
    for n in [1usize, 2, 8, 9, 40] {
        let mut keys: Vec<String> = (0..n).map(|i| format!("k{}", n - i)).collect();
        let input = format!(
            "{{\"o\": {{{}}}}}",
            keys.iter()
                .enumerate()
                .map(|(i, k)| format!("\"{k}\": {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        keys.sort();
        let value_of = |k: &str| n - k[1..].parse::<usize>().unwrap();
        let expected: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| serde_json::json!([k, value_of(k)]))
            .collect();
        let expected_built: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| serde_json::json!([k, value_of(k) + 1]))
            .collect();
        let as_value = |v: Vec<serde_json::Value>| {
            Value::from_json_str(&serde_json::to_string(&v).unwrap()).unwrap()
        };
        assert_eq!(
            both(source, "data.p.pairs", &input),
            as_value(expected),
            "n = {n}"
        );
        assert_eq!(
            both(source, "data.p.built_pairs", &input),
            as_value(expected_built),
            "n = {n}"
        );
        assert_eq!(
            both(source, "data.p.cross", &input),
            Value::from(n * (n - 1)),
            "n = {n}"
        );
    }
}

#[test]
fn rule_bodies_start_from_undefined_registers() {
    // Patch 10: between bodies only the registers a body wrote are reset.
    let source = "package p\n\
        import rego.v1\n\
        kind(v) := \"big\" if { w := v * 2; w > 10 }\n\
        kind(v) := \"small\" if { w := v * 2; w <= 10; w > 0 }\n\
        kind(v) := \"none\" if { v == 0 }\n\
        kinds := [kind(v) | some v in input.xs]\n\
        found contains x if { some x in input.xs; y := x * 3; y > 30 }\n\
        found contains \"empty\" if { not input.missing; count(input.xs) == 0 }\n\
        found contains \"zero\" if { some x in input.xs; x == 0 }\n\
        first := v if { v := input.xs[0]; v > 100 } else := \"none\" if { not input.missing }\n";
    let input = r#"{"xs": [0, 3, 6, 20]}"#;
    expect_both(
        source,
        "data.p.kinds",
        input,
        r#"["none", "small", "big", "big"]"#,
    );
    assert_eq!(
        both(source, "data.p.found", input),
        Value::from_json_str(r#"[20, "zero"]"#)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into()
    );
    assert_eq!(both(source, "data.p.first", input), Value::from("none"));
    assert_eq!(
        both(source, "data.p.found", r#"{"xs": []}"#),
        Value::from_json_str(r#"["empty"]"#)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into()
    );
}

#[test]
fn assigning_an_undefined_value_fails_the_body() {
    // Patch 11: `x := <undefined>` failed nothing on the VM, so a later
    // `not f(x)` was true there and a violation appeared that OPA and
    // the interpreter do not report.
    let source = "package p\n\
        import rego.v1\n\
        small(v) if v < 10\n\
        missing contains \"x\" if { x := input.missing; not small(x) }\n\
        nested contains \"x\" if { x := input.a.b.c; not small(x) }\n\
        destructured contains \"x\" if { [a, b] := input.missing; not small(a) }\n\
        in_comprehension := [y | some v in input.xs; y := v.missing; not small(y)]\n\
        present contains x if { x := input.big; not small(x) }\n\
        false_is_defined contains \"x\" if { x := false; not x }\n";
    let input = r#"{"a": {}, "xs": [{"n": 1}, {"n": 20}], "big": 50}"#;
    let empty_set = Value::new_set();
    for entry in ["missing", "nested", "destructured"] {
        assert_eq!(
            both(source, &format!("data.p.{entry}"), input),
            empty_set,
            "{entry}"
        );
    }
    assert_eq!(
        both(source, "data.p.in_comprehension", input),
        Value::new_array()
    );
    let only = |v: Value| Value::from(std::collections::BTreeSet::from([v]));
    assert_eq!(
        both(source, "data.p.present", input),
        only(Value::from(50u64))
    );
    assert_eq!(
        both(source, "data.p.false_is_defined", input),
        only(Value::from("x"))
    );
}

/// Asserts that `entry` evaluates to the JSON `expected` on both evaluators.
fn expect_both(source: &str, entry: &str, input: &str, expected: &str) {
    assert_eq!(
        both(source, entry, input),
        Value::from_json_str(expected).unwrap(),
        "{entry} on {input}"
    );
}

/// Compiles `entry` for the VM with `agreeing` as the warm-up sample (it
/// must stay on the VM), then runs `failing` on both evaluators: the text
/// each gives, an error's message or "no error, but <value>".
fn errors_on_both(
    source: &str,
    entry: &str,
    agreeing: &str,
    failing: &str,
) -> [(&'static str, String); 2] {
    let mut engine = new_engine();
    add_module(&mut engine, "p.rego", source, Syntax::V0).unwrap();
    let mut program = Program::new(engine);
    let agreeing = Value::from_json_str(agreeing).unwrap();
    program
        .compile_bytecode(&[entry], &[agreeing], Limits::default())
        .unwrap();
    assert_eq!(program.evaluator(), Evaluator::Vm, "{entry}");
    let failing = Value::from_json_str(failing).unwrap();
    let text = |result: Result<Value, RunError>| match result {
        Ok(value) => format!("no error, but {value}"),
        Err(err) => err.to_string(),
    };
    [
        (
            "vm",
            text(program.eval(entry, failing.clone(), Budget::UNLIMITED)),
        ),
        (
            "interpreter",
            text(program.eval_interpreted(entry, failing, Budget::UNLIMITED)),
        ),
    ]
}

#[test]
fn conflicting_outputs_are_an_error_on_both_evaluators() {
    // Patch 12: the VM returned undefined where OPA and the interpreter
    // report a conflict.
    let source = "package p\n\
        import rego.v1\n\
        level(x) := \"some\" if x > 0\n\
        level(x) := \"many\" if x > 1\n\
        function_out := level(input.n)\n\
        rule_out := \"low\" if input.n < 5\n\
        rule_out := \"odd\" if input.n % 2 == 1\n\
        nested contains v if { some v in [level(input.n)] }\n";
    for entry in ["data.p.function_out", "data.p.rule_out", "data.p.nested"] {
        // n = 6: no conflict (one body of each decides); n = 3: both bodies
        // decide, differently.
        for (evaluator, text) in errors_on_both(source, entry, r#"{"n": 6}"#, r#"{"n": 3}"#) {
            assert!(
                text.contains("multiple outputs") || text.contains("conflicts with"),
                "{entry} on the {evaluator}: {text}"
            );
        }
    }
}

#[test]
fn else_runs_when_a_body_with_a_loop_finds_nothing() {
    // Patch 13: the VM stopped the chain after a body whose loop found
    // no element, so the `else` value was never reached.
    let source = "package p\n\
        wanted() = out { \"q\" == input.list[_]; out := \"listed\" } else = out { out := \"default\" }\n\
        pick(xs) = x { x := xs[_]; x > 10 } else = \"none\" { true }\n\
        kind = \"listed\" { input.list[_] == \"q\" } else = \"default\" { true }\n\
        out := [wanted, pick(input.nums), kind]\n";
    for (input, expected) in [
        (
            r#"{"list": ["z"], "nums": [1, 2]}"#,
            r#"["default", "none", "default"]"#,
        ),
        (
            r#"{"list": [], "nums": []}"#,
            r#"["default", "none", "default"]"#,
        ),
        (
            r#"{"list": ["z", "q"], "nums": [1, 20]}"#,
            r#"["listed", 20, "listed"]"#,
        ),
    ] {
        expect_both(source, "data.p.out", input, expected);
    }
}

#[test]
fn bodies_joined_without_else_keep_the_head_value() {
    // Patch 14: `f(x) = v { ... } { ... }` is two rules with the same
    // head in OPA; both evaluators gave the second body no value (the VM
    // `true`, the interpreter nothing).
    let source = "package p\n\
        account(obj) = name {\n  obj.kind == \"Pod\"\n  name := obj.spec.sa\n} {\n  obj.kind == \"Deployment\"\n  name := obj.spec.template.spec.sa\n}\n\
        level = n {\n  input.a\n  n := \"a\"\n} {\n  input.b\n  n := \"b\"\n}\n\
        out := [account(input.pod), account(input.deploy)]\n";
    let objects = r#""pod": {"kind": "Pod", "spec": {"sa": "p"}},
        "deploy": {"kind": "Deployment", "spec": {"template": {"spec": {"sa": "d"}}}}"#;
    expect_both(
        source,
        "data.p.out",
        &format!("{{{objects}}}"),
        r#"["p", "d"]"#,
    );
    assert_eq!(
        both(source, "data.p.level", r#"{"b": true}"#),
        Value::from("b")
    );
    assert_eq!(
        both(source, "data.p.level", r#"{"a": true}"#),
        Value::from("a")
    );
}

#[test]
fn sets_of_objects_are_iterated_whole_small_or_large() {
    let source = "package p\n\
        items[{\"msg\": sprintf(\"%v\", [i]), \"field\": f}] { some i; input.n[i]; f := [\"a\", \"b\"][_] }\n\
        count_items := count([x | items[x]])\n\
        names := {m | items[{\"msg\": m, \"field\": \"a\"}]}\n";
    for n in [1usize, 3, 8, 9, 40] {
        let input = format!(
            "{{\"n\": {}}}",
            serde_json::to_string(&vec![true; n]).unwrap()
        );
        assert_eq!(
            both(source, "data.p.count_items", &input),
            Value::from(2 * n),
            "n = {n}"
        );
        let names = both(source, "data.p.names", &input);
        assert_eq!(names.as_set().unwrap().len(), n, "n = {n}");
    }
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    // Patch 7: objects are built from a sorted vector, not a map.
    let parsed: Value =
        serde_json::from_str(r#"{"b": 2, "a": 1, "a": 3, "c": {}, "d": {"y": [1], "x": null}}"#)
            .unwrap();
    let expected =
        Value::from_json_str(r#"{"a": 3, "b": 2, "c": {}, "d": {"x": null, "y": [1]}}"#).unwrap();
    assert_eq!(parsed, expected);
    assert_eq!(parsed["a"], Value::from(3u64));
    let keys: Vec<String> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_string().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
}

#[test]
fn string_keys_are_found_in_small_and_large_objects_with_any_key_types() {
    // Patch 9: string lookups compare bytes (a scan up to 8 entries, a
    // binary search beyond) and must agree with `Value`'s own order,
    // which puts numbers before strings and arrays after them.
    for n in [1usize, 4, 7, 8, 9, 40] {
        // Objects built by the policy, with number, boolean and array keys
        // around the string ones, looked up on both evaluators.
        let source = format!(
            "package p\nimport rego.v1\n\
             obj := object.union({{k: i | some i in numbers.range(0, {last}); k := sprintf(\"k%02d\", [i])}}, \
             {{5: \"five\", true: \"true\", [1]: \"array\", \"\": \"empty\"}})\n\
             found := [v | some i in numbers.range(0, {last}); v := obj[sprintf(\"k%02d\", [i])]]\n\
             missing := [k | some k in [\"k\", \"k999\", \"a\"]; not obj[k]]\n\
             others := [obj[5], obj[true], obj[[1]], obj[\"\"]]\n\
             result := {{\"found\": found, \"missing\": missing, \"others\": others}}\n",
            last = n as i64 - 1,
        );
        let got = both(&source, "data.p.result", "{}");
        let want: Vec<Value> = (0..n as u64).map(Value::from).collect();
        assert_eq!(got["found"], Value::from(want), "{n} string keys");
        assert_eq!(
            got["missing"],
            Value::from_json_str(r#"["k", "k999", "a"]"#).unwrap()
        );
        assert_eq!(
            got["others"],
            Value::from_json_str(r#"["five", "true", "array", "empty"]"#).unwrap()
        );
    }
    let parsed: Value = serde_json::from_str(
        r#"{"m":1,"l":2,"k":3,"j":4,"i":5,"h":6,"g":7,"f":8,"e":9,"d":10,"c":11,"b":12,"a":13,"":14}"#,
    )
    .unwrap();
    for (key, want) in [("a", 13u64), ("m", 1), ("", 14), ("g", 7)] {
        assert_eq!(parsed[&Value::from(key)], Value::from(want));
    }
    assert_eq!(parsed[&Value::from("z")], Value::Undefined);
    assert_eq!(parsed[&Value::from("aa")], Value::Undefined);
    // A value compared with itself (shared by reference) is equal, and
    // distinct values still order as before.
    let a = Value::from_json_str(r#"{"x":[1,{"y":2}]}"#).unwrap();
    let b = Value::from_json_str(r#"{"x":[1,{"y":3}]}"#).unwrap();
    assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(b.cmp(&a), std::cmp::Ordering::Greater);
}

#[test]
fn builtin_errors_are_undefined_on_both_evaluators() {
    // As in OPA by default and in Gatekeeper: `lower(null)` is undefined,
    // so `not allowed(c)` holds (the library's older proc-mount template
    // reports a container whose `procMount` is null). The interpreter
    // raised an error while the VM was undefined until `new_engine`.
    let source = "package p\n\
        allowed(c) { lower(c.procMount) == \"default\" }\n\
        denied[name] { c := input.containers[_]; c.procMount; not allowed(c); name := c.name }\n\
        ratio := input.a / input.b\n\
        parsed := to_number(input.s)\n";
    let input = r#"{"containers": [{"name": "a", "procMount": null}, {"name": "b", "procMount": "Default"}], "a": 1, "b": 0, "s": "abc"}"#;
    let denied = both(source, "data.p.denied", input);
    let names: Vec<Value> = denied.as_set().unwrap().iter().cloned().collect();
    assert_eq!(names, [Value::from("a")]);
    assert_eq!(both(source, "data.p.ratio", input), Value::Undefined);
    assert_eq!(both(source, "data.p.parsed", input), Value::Undefined);
    // Patch 19: arithmetic on an operand of the wrong type, or a modulo
    // of a float, is undefined on the interpreter too (it raised an
    // error even with builtin errors off).
    let arithmetic = "package p\n\
        product := input.cpu * 1000\n\
        difference := input.missing_is_null - 1\n\
        remainder := input.f % 2\n\
        doubled := [(x * 2) | x := input.xs[_]]\n";
    let input = r#"{"cpu": "500m", "missing_is_null": null, "f": 2.5, "xs": [1, "2", 3]}"#;
    for entry in ["product", "difference", "remainder"] {
        assert_eq!(
            both(arithmetic, &format!("data.p.{entry}"), input),
            Value::Undefined,
            "{entry}"
        );
    }
    expect_both(arithmetic, "data.p.doubled", input, "[2, 6]");
}

#[test]
fn an_object_key_with_two_values_is_an_error_on_both_evaluators() {
    // Patch 15: in a partial object rule or an object comprehension the
    // VM let the later value overwrite the key, where OPA and the
    // interpreter report an error (the library's older seccomp template
    // on a Pod whose container and ephemeral container share a name).
    let source = "package p\n\
        by_name[c.name] = c { c := input.containers[_] }\n\
        by_name[c.name] = c { c := input.ephemeral[_] }\n\
        names := {n | by_name[n]}\n\
        images := {c.name: c.image | c := array.concat(input.containers, input.ephemeral)[_]}\n";
    // Distinct names, or one name with equal values: no conflict.
    let agreeing = r#"{"containers": [{"name": "a", "image": "x"}], "ephemeral": [{"name": "a", "image": "x"}, {"name": "b"}]}"#;
    let conflicting = r#"{"containers": [{"name": "a", "image": "x"}], "ephemeral": [{"name": "a", "image": "y"}]}"#;
    for entry in ["data.p.names", "data.p.images"] {
        for (evaluator, text) in errors_on_both(source, entry, agreeing, conflicting) {
            assert!(
                text.contains("must be unique")
                    || text.contains("conflicts with")
                    || text.contains("multiple times"),
                "{entry} on the {evaluator}: {text}"
            );
        }
    }
}

#[test]
fn a_comprehension_head_that_is_undefined_produces_no_element() {
    // Patch 16: on the VM the array and object comprehensions kept an
    // `<undefined>` element, so `count([c.x | ...])` counted elements
    // without `x`.
    let source = "package p\n\
        arr := [x.v | x := input.xs[_]]\n\
        obj := {x.k: x.v | x := input.xs[_]}\n\
        keys := {x.k: 1 | x := input.xs[_]}\n\
        set := {x.v | x := input.xs[_]}\n\
        counted := count([x.v | x := input.xs[_]])\n";
    let input = r#"{"xs": [{"k": "a", "v": 1}, {"k": "b"}, {"v": 3}]}"#;
    for (entry, expected) in [
        ("data.p.arr", "[1, 3]"),
        ("data.p.obj", r#"{"a": 1}"#),
        ("data.p.keys", r#"{"a": 1, "b": 1}"#),
        ("data.p.counted", "2"),
    ] {
        expect_both(source, entry, input, expected);
    }
    assert_eq!(both(source, "data.p.set", input).as_set().unwrap().len(), 2);
}

#[test]
fn some_in_a_scalar_iterates_nothing() {
    // Patch 17: the interpreter failed the evaluation on `some x in null`
    // (an explicit `initContainers: null`), the VM iterated nothing.
    let source = "package p\nimport future.keywords.in\n\
        names := [c.name | some c in input.list]\n\
        any_named { some c in input.list; c.name }\n";
    for list in ["null", "5", "\"text\""] {
        let input = format!(r#"{{"list": {list}}}"#);
        expect_both(source, "data.p.names", &input, "[]");
        assert_eq!(both(source, "data.p.any_named", &input), Value::Undefined);
    }
}

#[test]
fn a_partial_rule_element_with_an_undefined_key_or_value_is_skipped() {
    // Patch 20: the interpreter cleared everything a partial rule had
    // produced when one element's key or value was undefined (an empty
    // set, or "not an object" on the next element); the VM stored the
    // element under an `<undefined>` key.
    let source = "package p\nimport future.keywords.contains\nimport future.keywords.if\nimport future.keywords.in\n\
        names contains c.k if some c in input.xs\n\
        by_name[c.k] := c.v if some c in input.xs\n\
        older[c.k] = c { c := input.xs[_] }\n";
    let input = r#"{"xs": [{"k": "a", "v": 1}, {"v": 3}, {"k": "b"}]}"#;
    let names = both(source, "data.p.names", input);
    assert_eq!(names.as_set().unwrap().len(), 2);
    expect_both(source, "data.p.by_name", input, r#"{"a": 1}"#);
    expect_both(
        source,
        "data.p.older",
        input,
        r#"{"a": {"k": "a", "v": 1}, "b": {"k": "b"}}"#,
    );
    // No element at all: an empty object, as for an empty input.
    expect_both(source, "data.p.by_name", r#"{"xs": [1, 2]}"#, "{}");
}

/// Patch 22: object keys come from a per-thread cache looked up by their
/// text. Whatever the cache holds (hits, collisions, evictions, keys too long
/// to cache, escaped keys), every parsed document must equal the same
/// document read through `serde_json::Value`.
#[test]
fn object_keys_parse_alike_through_the_key_cache() {
    let mut keys: Vec<String> = (0..2_000).map(|i| format!("k{i}")).collect();
    keys.push("x".repeat(200));
    keys.push("a\\u0062c".to_string()); // "abc", escaped
    keys.push("abc".to_string());
    keys.push("ünïcödé/key.example.com".to_string());
    for round in 0..3 {
        // The same keys, in a different order each round, some objects nested.
        let mut body = String::from("{");
        for (i, k) in keys.iter().enumerate() {
            let n = (i * 7 + round) % keys.len();
            body.push_str(&format!(
                "\"{}\": {{\"{}\": {n}, \"v\": \"{}\"}},",
                keys[n], k, k
            ));
        }
        body.push_str("\"last\": [{\"a\": 1, \"a\": 2}]}");
        let ours: Value = serde_json::from_str(&body).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            theirs,
            "round {round}"
        );
        assert_eq!(ours["abc"], theirs["abc"].clone().into());
        // Inside an interning session (`from_json_str`) the session's table
        // answers instead of the cache.
        assert_eq!(Value::from_json_str(&body).unwrap(), ours, "round {round}");
        assert_eq!(
            ours["last"][0]["a"],
            Value::from(2u64),
            "the last of equal keys wins"
        );
    }
    // A YAML mapping may have keys that are not strings.
    let yaml: Value = serde_yaml_ng::from_str("1: one\ntrue: yes\nname: x\n").unwrap();
    assert_eq!(yaml[&Value::from(1u64)], Value::from("one"));
    assert_eq!(yaml[&Value::Bool(true)], Value::from("yes"));
    assert_eq!(yaml["name"], Value::from("x"));
}

// Regent patch 23: rules that depend on data alone are computed once per VM.

const KEPT_RULES: &str = r#"package p
import rego.v1
names := data.params.names
table := {upper(x) | some x in names}
mixed := count(table) + input.n
f(x) := x + input.n
via_function := f(1)
g(x) := x * 10
via_pure_function := g(count(names))
indirect := data.p.mixed + 0
now := time.now_ns()
out := {"table": table, "mixed": mixed, "via_function": via_function, "pure": via_pure_function, "indirect": indirect}
timed := {"out": out, "now": now}
"#;

fn kept_rules_engine(names: &str) -> Engine {
    let mut engine = new_engine();
    add_module(&mut engine, "p.rego", KEPT_RULES, Syntax::V1).unwrap();
    engine
        .add_data(Value::from_json_str(&format!(r#"{{"params": {{"names": {names}}}}}"#)).unwrap())
        .unwrap();
    engine
}

#[test]
fn rules_that_read_data_alone_are_kept_and_the_others_follow_the_input() {
    let mut program = Program::new(kept_rules_engine(r#"["a", "b"]"#));
    let sample = Value::from_json_str(r#"{"n": 1}"#).unwrap();
    program
        .warm("data.p.out", sample.clone(), Limits::default())
        .unwrap();
    program
        .compile_bytecode(&["data.p.out"], &[sample], Limits::default())
        .unwrap();
    assert_eq!(program.evaluator(), Evaluator::Vm);
    for n in [1, 2, 5, 2] {
        let input = Value::from_json_str(&format!(r#"{{"n": {n}}}"#)).unwrap();
        let vm = program
            .eval("data.p.out", input.clone(), Budget::UNLIMITED)
            .unwrap();
        let interpreted = program
            .eval_interpreted("data.p.out", input, Budget::UNLIMITED)
            .unwrap();
        let expected = format!(
            r#"{{"table": ["A", "B"], "mixed": {}, "via_function": {}, "pure": 20, "indirect": {}}}"#,
            2 + n,
            1 + n,
            2 + n
        );
        let expected = Value::from_json_str(&expected).unwrap();
        let table: std::collections::BTreeSet<Value> =
            ["A", "B"].into_iter().map(Value::from).collect();
        let mut expected = expected;
        expected
            .as_object_mut()
            .unwrap()
            .insert(Value::from("table"), Value::from(table));
        assert_eq!(vm, expected, "VM, n = {n}");
        assert_eq!(interpreted, expected, "interpreter, n = {n}");
    }
}

#[test]
fn a_vm_keeps_exactly_the_data_only_rules_and_forgets_them_with_new_data() {
    let engine = kept_rules_engine(r#"["a", "b"]"#);
    let rule: regorus::Rc<str> = regorus::Rc::from("data.p.timed");
    let mut compile_engine = engine.clone();
    let compiled = compile_engine.compile_with_entrypoint(&rule).unwrap();
    let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
        &compiled,
        &["data.p.timed"],
    )
    .unwrap();
    let mut vm = regorus::rvm::vm::RegoVM::new_with_policy(compiled);
    vm.load_program(program);
    vm.set_max_instructions(usize::MAX);
    vm.set_data(compile_engine.get_data()).unwrap();
    assert_eq!(vm.kept_rule_count(), 0);
    vm.set_input(Value::from_json_str(r#"{"n": 1}"#).unwrap());
    let first = vm.execute_entry_point_by_name("data.p.timed").unwrap();
    // names, table and via_pure_function; not mixed, via_function,
    // indirect (input), now (time), out or timed.
    assert_eq!(vm.kept_rule_count(), 3);
    std::thread::sleep(Duration::from_millis(1));
    vm.set_input(Value::from_json_str(r#"{"n": 7}"#).unwrap());
    let second = vm.execute_entry_point_by_name("data.p.timed").unwrap();
    assert_eq!(first["out"]["table"], second["out"]["table"]);
    assert_eq!(second["out"]["mixed"], Value::from(9));
    assert_ne!(
        first["now"], second["now"],
        "time.now_ns() is read on every execution"
    );
    assert_eq!(vm.kept_rule_count(), 3);
    // New data: the kept values are forgotten and computed again.
    vm.set_data(kept_rules_engine(r#"["c"]"#).get_data())
        .unwrap();
    assert_eq!(vm.kept_rule_count(), 0);
    let third = vm.execute_entry_point_by_name("data.p.timed").unwrap();
    let table: std::collections::BTreeSet<Value> = [Value::from("C")].into_iter().collect();
    assert_eq!(third["out"]["table"], Value::from(table));
    assert_eq!(third["out"]["pure"], Value::from(10));
    assert_eq!(third["out"]["mixed"], Value::from(8));
    assert_eq!(vm.kept_rule_count(), 3);
    // Another builtin strictness forgets them too.
    vm.set_strict_builtin_errors(true);
    assert_eq!(vm.kept_rule_count(), 0);
}

// Regent patch 24: moves, literal loads, passing guards, equality and cached
// rule calls run in the VM's loop without the general dispatch.

#[test]
fn guards_and_equality_decide_alike_for_every_kind_of_value() {
    let source = r#"package p
not_string { not input.s }
not_zero { not input.n }
not_false { not input.f }
not_true { not input.t }
not_missing { not input.missing }
not_null { not input.z }
not_empty_array { not input.a }
if_string { input.s }
if_zero { input.n }
if_false { input.f }
if_null { input.z }
eq_number { input.n == 0 }
eq_string { input.s == "x" }
ne_kind { input.n == "0" }
eq_missing { input.missing == input.missing }
cached_twice { shared; shared }
shared { input.t }
out := {
  "not_string": [x | not_string; x := 1],
  "not_zero": [x | not_zero; x := 1],
  "not_false": [x | not_false; x := 1],
  "not_true": [x | not_true; x := 1],
  "not_missing": [x | not_missing; x := 1],
  "not_null": [x | not_null; x := 1],
  "not_empty_array": [x | not_empty_array; x := 1],
  "if_string": [x | if_string; x := 1],
  "if_zero": [x | if_zero; x := 1],
  "if_false": [x | if_false; x := 1],
  "if_null": [x | if_null; x := 1],
  "eq_number": [x | eq_number; x := 1],
  "eq_string": [x | eq_string; x := 1],
  "ne_kind": [x | ne_kind; x := 1],
  "eq_missing": [x | eq_missing; x := 1],
  "cached_twice": [x | cached_twice; x := 1],
}
"#;
    expect_both(
        source,
        "data.p.out",
        r#"{"s": "x", "n": 0, "f": false, "t": true, "z": null, "a": []}"#,
        r#"{"not_string": [], "not_zero": [], "not_false": [1], "not_true": [],
            "not_missing": [1], "not_null": [], "not_empty_array": [],
            "if_string": [1], "if_zero": [1], "if_false": [], "if_null": [1],
            "eq_number": [1], "eq_string": [1], "ne_kind": [], "eq_missing": [],
            "cached_twice": [1]}"#,
    );
}

#[test]
fn function_results_are_reused_for_small_equal_values_and_shared_large_ones() {
    // Patch 25: a small array or object of scalars is matched by value (an
    // equal copy is answered from the cache), a larger one by reference
    // only; either way each call gets its own arguments' result. The large
    // objects differ only in their last key, the small ones in one value.
    let source = "package p\n\
        import rego.v1\n\
        total(o) := sum([v | some v in o])\n\
        keys(o) := concat(\",\", [k | some k, _ in o])\n\
        small_copy := json.unmarshal(json.marshal(input.small))\n\
        large_copy := json.unmarshal(json.marshal(input.large))\n\
        results := [total(input.small), total(small_copy), total(input.other_small),\n\
          total(input.large), total(large_copy), total(input.other_large), total(large_copy),\n\
          keys(input.nested), keys(json.unmarshal(json.marshal(input.nested))), keys(input.other_nested)]\n";
    let large: Vec<String> = (0..20).map(|i| format!("\"k{i:02}\": {i}")).collect();
    let mut other_large = large.clone();
    other_large[19] = "\"k19\": 100".to_string();
    let input = format!(
        r#"{{"small": {{"cpu": 1, "memory": 2}}, "other_small": {{"cpu": 1, "memory": 3}},
            "large": {{{}}}, "other_large": {{{}}},
            "nested": {{"a": {{"x": 1}}, "b": [1]}}, "other_nested": {{"a": {{"x": 1}}, "c": [1]}}}}"#,
        large.join(","),
        other_large.join(",")
    );
    expect_both(
        source,
        "data.p.results",
        &input,
        r#"[3, 3, 4, 190, 190, 271, 190, "a,b", "a,b", "a,c"]"#,
    );
}

#[test]
fn patterns_match_alike_when_compiled_once_and_shared_across_threads() {
    // Patch 25: compiled regexes and globs are shared with the cache, not
    // cloned. More patterns than the cache holds (256), each matched twice
    // from four threads at once, on both evaluators.
    let source = "package p\n\
        import rego.v1\n\
        regex_hits := [i | some i in numbers.range(0, 299); regex.match(sprintf(\"^x%d(-[a-z]+)?$\", [i]), input.names[i])]\n\
        regex_misses := [i | some i in numbers.range(0, 299); not regex.match(sprintf(\"^x%d$\", [i]), input.others[i])]\n\
        globs := [i | some i in numbers.range(0, 299); glob.match(sprintf(\"x%d.*\", [i]), [\".\"], input.dotted[i])]\n";
    let names: Vec<String> = (0..300).map(|i| format!("\"x{i}-abc\"")).collect();
    let others: Vec<String> = (0..300).map(|i| format!("\"x{}\"", i + 1)).collect();
    let dotted: Vec<String> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                format!("\"x{i}.io\"")
            } else {
                format!("\"y{i}.io\"")
            }
        })
        .collect();
    let input = format!(
        r#"{{"names": [{}], "others": [{}], "dotted": [{}]}}"#,
        names.join(","),
        others.join(","),
        dotted.join(",")
    );
    let all: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let thirds: Vec<String> = (0..300).step_by(3).map(|i| i.to_string()).collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..2 {
                    expect_both(
                        source,
                        "data.p.regex_hits",
                        &input,
                        &format!("[{}]", all.join(",")),
                    );
                    expect_both(
                        source,
                        "data.p.regex_misses",
                        &input,
                        &format!("[{}]", all.join(",")),
                    );
                    expect_both(
                        source,
                        "data.p.globs",
                        &input,
                        &format!("[{}]", thirds.join(",")),
                    );
                }
            });
        }
    });
}

#[test]
fn object_keys_are_found_by_every_byte_in_objects_scanned_or_searched() {
    // Patch 26: objects of up to 16 keys are scanned, comparing lengths and
    // then the bytes as overlapping words. Keys of 1 to 20 bytes; for each,
    // queries that differ from it in exactly one byte (at every position)
    // must not find it, in objects of 3, 13, 16 and 17 keys.
    let source = "package p\n\
        import rego.v1\n\
        found := {q: input.obj[q] | some q in input.queries}\n";
    for size in [3usize, 13, 16, 17] {
        for len in 1..=20usize {
            let key: String = (0..len)
                .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
                .collect();
            let mut keys = vec![key.clone()];
            // Fillers of the same length (differing in the last byte) and others.
            for f in 1..size {
                let filler = if f % 2 == 0 {
                    format!(
                        "{}{}",
                        &key[..len - 1],
                        char::from(b'A' + u8::try_from(f % 26).unwrap())
                    )
                } else {
                    format!("z{f}")
                };
                if !keys.contains(&filler) {
                    keys.push(filler);
                }
            }
            let mut queries = vec![key.clone()];
            for at in 0..len {
                let mut q = key.clone().into_bytes();
                q[at] = b'#';
                queries.push(String::from_utf8(q).unwrap());
            }
            let obj: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("\"{k}\": {i}"))
                .collect();
            let quoted: Vec<String> = queries.iter().map(|q| format!("\"{q}\"")).collect();
            let input = format!(
                r#"{{"obj": {{{}}}, "queries": [{}]}}"#,
                obj.join(","),
                quoted.join(",")
            );
            expect_both(
                source,
                "data.p.found",
                &input,
                &format!(r#"{{"{key}": 0}}"#),
            );
        }
    }
}

#[test]
fn a_deadline_stops_a_long_loop_on_the_vm() {
    // Patch 27: the VM tells its execution timer of its instructions 32 at
    // a time. A loop of 125 million steps that allocates nothing (no memory
    // budget can stop it) must still end at its deadline, on the VM.
    let source = "package p\n\
        import rego.v1\n\
        out := count({1 | some a in input.r; some b in input.r; some c in input.r})\n";
    let sample = Value::from_json_str(r#"{"r": [1, 2]}"#).unwrap();
    let program = vm_program(source, Syntax::V1, "data.p.out", &sample);
    let range: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let long = Value::from_json_str(&format!(r#"{{"r": [{}]}}"#, range.join(","))).unwrap();
    let started = std::time::Instant::now();
    let soon = Budget {
        deadline: Some(started + Duration::from_millis(100)),
        memory: None,
    };
    assert!(matches!(
        program.eval("data.p.out", long, soon),
        Err(RunError::Timeout(_))
    ));
    // Generous: the loop itself would take minutes in a debug build.
    assert!(started.elapsed() < Duration::from_secs(10));
}

// Regent's own builtins (`super::builtins`) against the Rego they replaced.

/// Evaluates `entry` of a modern-Rego module on the VM (which it must keep)
/// and on the interpreter, for each input; both must agree. Returns the VM's.
fn both_v1(source: &str, entry: &str, inputs: &[Value]) -> Vec<Value> {
    let program = vm_program(source, Syntax::V1, entry, &inputs[0]);
    inputs
        .iter()
        .map(|input| {
            let vm = program
                .eval(entry, input.clone(), Budget::UNLIMITED)
                .unwrap();
            let interpreted = program
                .eval_interpreted(entry, input.clone(), Budget::UNLIMITED)
                .unwrap();
            assert_eq!(vm, interpreted, "{input}");
            vm
        })
        .collect()
}

#[test]
fn image_builtins_decide_as_the_rego_they_replaced() {
    // The definitions `src/rego/images.rego` had before the builtins, kept
    // here as the reference. `[x | x := f(image)]` is `[]` where `f` is
    // undefined.
    let source = r#"package p
import rego.v1

ref_repository(image) := repo if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	repo := trim_suffix(image, concat("", [":", split(last, ":")[1]]))
}
ref_repository(image) := split(image, "@")[0] if contains(image, "@")
ref_repository(image) := image if {
	not contains(image, "@")
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}
ref_tag(image) := concat("", ["@", split(image, "@")[1]]) if contains(image, "@")
ref_tag(image) := tag if {
	not contains(image, "@")
	parts := split(image, "/")
	segments := split(parts[count(parts) - 1], ":")
	tag := array.concat(segments, [""])[1]
}
ref_registry(image) := registry if {
	parts := split(image, "/")
	count(parts) > 1
	is_host(parts[0])
	registry := parts[0]
}
ref_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) == 1
}
ref_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) > 1
	not is_host(parts[0])
}
is_host(part) if contains(part, ".")
is_host(part) if contains(part, ":")
is_host(part) if part == "localhost"

# Per function, [image, result] for each image it is defined for.
native := {
	"tag": [[image, x] | some image in input.images; x := regent.images.tag(image)],
	"repository": [[image, x] | some image in input.images; x := regent.images.repository(image)],
	"registry": [[image, x] | some image in input.images; x := regent.images.registry(image)],
}
reference := {
	"tag": [[image, x] | some image in input.images; x := ref_tag(image)],
	"repository": [[image, x] | some image in input.images; x := ref_repository(image)],
	"registry": [[image, x] | some image in input.images; x := ref_registry(image)],
}
out := [native, reference]
"#;
    let images = r#"["nginx", "nginx:1.27.3", "localhost:5000/team/app", "localhost:5000/team/app:2.0",
        "registry.example.com/app:latest", "app@sha256:0123", "", "a@b@c", "a:b:c", "a:b:b",
        "host:5000/a:b:c", "/", "a/", "x/y:", ":", "@", "@@", "docker.io/library/nginx:1",
        "localhost/app", "LOCALHOST/app", "a.b/c@sha256:x:y", "a.b/c:1@sha256:x", "ü.example/é:ß",
        "ghcr.io/o/r:v1:v2", "team/app", "team/app:1", 5, null, true, ["x"], {"a": 1}]"#;
    let input = Value::from_json_str(&format!(r#"{{"images": {images}}}"#)).unwrap();
    let out = both_v1(source, "data.p.out", &[input]).remove(0);
    let pair = out.as_array().unwrap();
    let (native, reference) = (&pair[0], &pair[1]);
    assert_eq!(native, reference);
    // Not vacuously: defined for the 26 strings only, and two answers.
    for part in ["tag", "repository", "registry"] {
        assert_eq!(native[part].as_array().unwrap().len(), 26, "{part}");
    }
    let tag = |i: usize| native["tag"][i][1].clone();
    assert_eq!(tag(3), Value::from("2.0"));
    assert_eq!(tag(5), Value::from("@sha256:0123"));
    assert_eq!(native["registry"][3][1], Value::from("localhost:5000"));
}

#[test]
fn workload_builtins_decide_as_the_rego_definition() {
    // The comprehensions of `src/rego/workload.rego` without the builtins.
    let source = r#"package p
import rego.v1

container_fields := ["containers", "initContainers", "ephemeralContainers"]
ref_containers := [c |
	some field in container_fields
	some i, ctr in input.spec[field]
	c := {
		"container": ctr,
		"field": field,
		"index": i,
		"path": sprintf("%s.%s[%d]", [input.path, field, i]),
		"pointer": sprintf("%s/%s/%d", [input.pointer, field, i]),
	}
]
ref_volumes := [v |
	some i, vol in input.spec.volumes
	v := {"volume": vol, "index": i, "path": sprintf("%s.volumes[%d]", [input.path, i])}
]
out := {
	"containers": [[x | x := regent.workload.containers(input.spec, input.path, input.pointer)], [ref_containers]],
	"volumes": [[x | x := regent.workload.volumes(input.spec, input.path)], [ref_volumes]],
}
"#;
    let spec = |spec: &str| {
        Value::from_json_str(&format!(
            r#"{{"spec": {spec}, "path": "spec.template.spec", "pointer": "/spec/template/spec"}}"#
        ))
        .unwrap()
    };
    let same = [
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "b"}], "initContainers": [{"name": "i"}],
            "ephemeralContainers": [{"name": "e"}], "volumes": [{"name": "v"}, {"name": "w"}]}"#,
        r#"{"containers": [{"name": "a"}]}"#,
        r#"{}"#,
        r#"{"containers": [], "volumes": []}"#,
        r#"{"containers": "not a list", "initContainers": null, "volumes": 3}"#,
        r#"["containers"]"#,
        r#""spec""#,
    ];
    let inputs: Vec<Value> = same.iter().map(|s| spec(s)).collect();
    for (out, text) in both_v1(source, "data.p.out", &inputs).iter().zip(same) {
        for part in ["containers", "volumes"] {
            let pair = out[part].as_array().unwrap();
            assert_eq!(pair[0], pair[1], "{part} of {text}");
        }
    }
    // Shapes the builtins leave to the Rego (iterated by key): undefined.
    let by_key = [
        r#"{"containers": {"web": {"name": "a"}}}"#,
        r#"{"volumes": {"v": {"name": "v"}}}"#,
    ];
    let inputs: Vec<Value> = by_key.iter().map(|s| spec(s)).collect();
    let outs = both_v1(source, "data.p.out", &inputs);
    let empty = Value::from_json_str("[]").unwrap();
    assert_eq!(outs[0]["containers"][0], empty);
    assert_eq!(outs[1]["volumes"][0], empty);
    // Not vacuous: the first spec's four containers and two volumes.
    let first = both_v1(source, "data.p.out", &[spec(same[0])]).remove(0);
    let containers = first["containers"][0][0].as_array().unwrap().clone();
    assert_eq!(containers.len(), 4);
    assert_eq!(
        containers[2]["pointer"],
        Value::from("/spec/template/spec/initContainers/0")
    );
    assert_eq!(first["volumes"][0][0].as_array().unwrap().len(), 2);
}

#[test]
fn plain_digit_strings_read_as_the_general_path_reads_them() {
    // Patch 30: `to_number` and the number parser behind `units.parse`
    // read plain digits that fit a u64 directly. Each case against what the
    // general path gives (a leading zero, a sign, a fraction, an exponent or
    // 20 digits take it), on both evaluators.
    let source = r#"package p
import rego.v1
numbers := [[s, x] | some s in input.strings; x := to_number(s)]
units := [[s, x] | some s in input.strings; x := units.parse(s)]
"#;
    let input = r#"{"strings": ["0", "7", "42", "007", "-3", "+3", "1.5", "1e3", "9999999999999999999",
        "18446744073709551615", "18446744073709551616", "", " 12", "12 ", "1_000", "x", "512Mi", "250m", "4"]}"#;
    let input = Value::from_json_str(input).unwrap();
    let program = vm_program(source, Syntax::V1, "data.p.numbers", &input);
    let expected_numbers = r#"[["0", 0], ["7", 7], ["42", 42], ["-3", -3], ["1.5", 1.5], ["1e3", 1000],
        ["9999999999999999999", 9999999999999999999], ["18446744073709551615", 18446744073709551615],
        ["18446744073709551616", 18446744073709551616], [" 12", 12], ["12 ", 12], ["4", 4]]"#;
    let numbers = program
        .eval("data.p.numbers", input.clone(), Budget::UNLIMITED)
        .unwrap();
    assert_eq!(numbers, Value::from_json_str(expected_numbers).unwrap());
    assert_eq!(
        program
            .eval_interpreted("data.p.numbers", input.clone(), Budget::UNLIMITED)
            .unwrap(),
        numbers
    );
    let units = both_v1(source, "data.p.units", &[input]).remove(0);
    let unit = |s: &str| {
        units
            .as_array()
            .unwrap()
            .iter()
            .find(|pair| pair[0] == Value::from(s))
            .map(|pair| pair[1].clone())
    };
    assert_eq!(unit("0"), Some(Value::from(0u64)));
    assert_eq!(unit("007"), Some(Value::from(7u64)));
    assert_eq!(
        unit("9999999999999999999"),
        Some(Value::from(9999999999999999999u64))
    );
    assert_eq!(unit("512Mi"), Some(Value::from(536870912u64)));
    assert_eq!(unit("250m"), Some(Value::from(0.25)));
    assert_eq!(unit("x"), None);
}
#[test]
fn a_failing_comprehension_body_inside_a_loop_fails_only_the_comprehension() {
    // Patch 31: a comprehension without a loop of its own, begun inside a
    // loop, whose body fails (a builtin error, a missing key) is empty;
    // the VM failed the enclosing loop's iteration instead and dropped the
    // element. The last case (a loop inside the comprehension) was right.
    let cases = [
        r#"[{"a": [x | x := lower(i)]} | some i in input.xs]"#,
        r#"[[x | x := lower(i)] | some i in input.xs]"#,
        r#"[{"a": [x | x := input.m[i]]} | some i in input.xs]"#,
        r#"[count(y) | some i in input.xs; y := {x | x := lower(i)}]"#,
        r#"[{"a": [x | some j in [1]; x := lower(i)]} | some i in input.xs]"#,
    ];
    let expected = [
        r#"[{"a": ["a"]}, {"a": []}]"#,
        r#"[["a"], []]"#,
        r#"[{"a": [1]}, {"a": []}]"#,
        r#"[1, 0]"#,
        r#"[{"a": ["a"]}, {"a": []}]"#,
    ];
    let input = Value::from_json_str(r#"{"xs": ["A", 5], "m": {"A": 1}}"#).unwrap();
    for (case, expected) in cases.iter().zip(expected) {
        let source = format!("package p\nimport rego.v1\nout := {case}\n");
        // The warm-up sample does not fail inside the comprehension, so the
        // program stays on the VM whatever the VM does with the input.
        let sample = Value::from_json_str(r#"{"xs": ["a"], "m": {"a": 1}}"#).unwrap();
        let program = vm_program(&source, Syntax::V1, "data.p.out", &sample);
        let vm = program
            .eval("data.p.out", input.clone(), Budget::UNLIMITED)
            .unwrap();
        let interpreted = program
            .eval_interpreted("data.p.out", input.clone(), Budget::UNLIMITED)
            .unwrap();
        let expected = Value::from_json_str(expected).unwrap();
        assert_eq!(vm, expected, "VM: {case}");
        assert_eq!(interpreted, expected, "interpreter: {case}");
    }
}

#[test]
fn functions_written_as_tables_pick_the_definition_of_their_literal_arguments() {
    // Patch 33: a call skips a definition whose literal parameter its
    // argument does not equal, without running the definition; the answer
    // must be the one the definitions' own comparisons give, whatever the
    // literal's kind (1.0 equals 1) or position.
    let source = r#"package p
unit("Ki") = 1024
unit("Mi") = 1048576
unit("k") = 1000
unit(1) = "one"
unit(true) = "yes"
unit(null) = "nothing"
unit(x) = "list" { is_array(x) }
pair("a", y) = concat("-", ["a", y])
pair(x, "b") = concat("+", [x, "b"])
pair(x, y) = "same" { x == y }
three(x, 2, "z") = x
three(_, 3, z) = z
table = [[k, unit(k)] | k := input.keys[_]]
pairs = [[x, y, pair(x, y)] | [x, y] := input.pairs[_]]
threes = [[a, b, c, three(a, b, c)] | [a, b, c] := input.threes[_]]
"#;
    let input = r#"{
        "keys": ["Ki", "Mi", "k", "mi", "", 1, 1.0, 2, true, false, null, [1], {"a": 1}],
        "pairs": [["a", "c"], ["c", "b"], ["c", "c"], ["b", "a"], [1, "b"]],
        "threes": [["x", 2, "z"], ["x", 2, "y"], ["x", 3, "y"], [5, 2.0, "z"], ["x", "2", "z"]]
    }"#;
    expect_both(
        source,
        "data.p.table",
        input,
        r#"[["Ki", 1024], ["Mi", 1048576], ["k", 1000], [1, "one"], [1.0, "one"],
            [true, "yes"], [null, "nothing"], [[1], "list"]]"#,
    );
    expect_both(
        source,
        "data.p.pairs",
        input,
        r#"[["a", "c", "a-c"], ["c", "b", "c+b"], ["c", "c", "same"]]"#,
    );
    expect_both(
        source,
        "data.p.threes",
        input,
        r#"[["x", 2, "z", "x"], ["x", 3, "y", "y"], [5, 2.0, "z", 5]]"#,
    );
}

#[test]
fn remembered_function_results_hold_within_one_evaluation_only() {
    // Patch 34: the function cache keeps its vectors from one evaluation to
    // the next on the same VM. Results must come from the evaluation's own
    // input (the second evaluation's `k` differs), a function called with
    // more distinct arguments than it remembers (64) still answers each,
    // and functions of different arity calling each other stay apart.
    let source = "package p\n\
        plus(x) = y { y := x + input.k }\n\
        pair(x, y) = z { z := plus(x) * 1000 + plus(y) }\n\
        many := [plus(i) | i := numbers.range(1, 100)[_]]\n\
        again := [plus(i) | i := numbers.range(1, 100)[_]]\n\
        pairs := [pair(i, j) | i := [1, 2, 1][_]; j := [2, 1][_]]\n";
    let first = Value::from_json_str(r#"{"k": 10}"#).unwrap();
    let program = vm_program(source, Syntax::V0, "data.p.many", &first);
    for k in [10, 20, 10] {
        let input = Value::from_json_str(&format!(r#"{{"k": {k}}}"#)).unwrap();
        let expected: Vec<Value> = (1..=100).map(|i| Value::from(i + k)).collect();
        for entry in ["data.p.many", "data.p.again"] {
            let vm = program
                .eval(entry, input.clone(), Budget::UNLIMITED)
                .unwrap();
            assert_eq!(vm, Value::from(expected.clone()), "{entry} with k = {k}");
        }
        let pairs = program
            .eval("data.p.pairs", input.clone(), Budget::UNLIMITED)
            .unwrap();
        let pair = |x: i64, y: i64| Value::from((x + k) * 1000 + y + k);
        let expected = [(1, 2), (1, 1), (2, 2), (2, 1), (1, 2), (1, 1)].map(|(x, y)| pair(x, y));
        assert_eq!(pairs, Value::from(expected.to_vec()), "pairs with k = {k}");
        let interpreted = program
            .eval_interpreted("data.p.pairs", input, Budget::UNLIMITED)
            .unwrap();
        assert_eq!(interpreted, pairs);
    }
}

#[test]
fn sprintf_prints_strings_and_other_values_as_before() {
    // Patch 35: the message is built in a buffer sized from the start and a
    // string argument of `%v` is copied in place; what is printed is as OPA
    // prints it.
    let source = "package p\n\
        msg := sprintf(\"%v|%s|%v|%v|%v|%%|%v|%v\", [input.q, \"é\", 1.5, [\"x\", 2], {\"k\": \"v\"}, true, input.long])\n";
    let long = "x".repeat(300);
    let input = format!(r#"{{"q": "a\"b", "long": "{long}"}}"#);
    let expected = format!(r#""a\"b|é|1.5|[\"x\", 2]|{{\"k\": \"v\"}}|%|true|{long}""#);
    expect_both(source, "data.p.msg", &input, &expected);
}

#[test]
fn definitions_of_different_sizes_each_start_from_cleared_registers() {
    // Patch 36: each definition clears only the registers it uses. Small
    // and large definitions of one function and of one partial set rule,
    // called in turn and in both orders, decide as the interpreter does.
    let source = "package p\n\
        g(x) = \"neg\" { x < 0 }\n\
        g(x) = y { x >= 10; a := [x, x + 1, x + 2]; b := {v | v := a[_]; v % 2 == 0}; y := sprintf(\"%v-%v\", [x, count(b)]) }\n\
        g(x) = \"small\" { x >= 0; x < 10 }\n\
        out := [g(i) | i := input.xs[_]]\n\
        s[x] { x := \"a\" }\n\
        s[y] { a := input.xs; b := [v | v := a[_]; v > 5]; c := [w | w := b[_]; w < 100]; y := count(c) }\n\
        s[z] { z := input.xs[_]; z < 0 }\n\
        members := [x | s[x]]\n";
    let input = r#"{"xs": [12, -1, 3, 11, 0, -7, 40]}"#;
    expect_both(
        source,
        "data.p.out",
        input,
        r#"["12-2", "neg", "small", "11-1", "small", "neg", "40-2"]"#,
    );
    expect_both(source, "data.p.members", input, r#"[-7, -1, 3, "a"]"#);
}

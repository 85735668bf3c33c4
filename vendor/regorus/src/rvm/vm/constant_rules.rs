// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Rules whose value cannot change between executions of one VM (Regent
//! patch 23).
//!
//! A complete or partial rule that reads neither the input nor the context,
//! calls no builtin whose result may change from one call to the next, and
//! calls only rules and functions of which the same holds, has the same value
//! on every execution as long as the program, the data and the builtin
//! strictness stay the same: its value depends on data alone (a parameter
//! table, a set built from a data list, a literal). Such a rule is computed
//! once and kept across executions; `load_program`, `set_data` and
//! `set_strict_builtin_errors` forget the kept values.
//!
//! The analysis is conservative: anything it cannot see through (a dynamic
//! `data` lookup, host suspension, the context, metadata, Azure-policy
//! conditions, a body that does not end where expected) makes the rule
//! depend on the execution.

use alloc::vec;
use alloc::vec::Vec;

use crate::rvm::instructions::Instruction;
use crate::rvm::program::Program;

/// Builtins whose result may differ between two calls with the same
/// arguments (time, randomness, the network, the host), or that have an
/// effect (print, trace). A rule calling one is never kept.
fn builtin_varies(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "time.now",
        "rand.",
        "uuid.",
        "http.",
        "net.",
        "opa.",
        "print",
        "trace",
        // Both verify against the current time when no time is given.
        "io.jwt.decode_verify",
        "crypto.x509.parse_and_verify",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || crate::builtins::must_cache(name).is_some()
}

/// For each rule of `program`, whether its value may be kept across
/// executions (complete and partial rules only; functions take arguments and
/// are never kept, but a function that depends on the execution makes its
/// callers depend on it).
pub(super) fn constant_rules(program: &Program) -> Vec<bool> {
    let n = program.rule_infos.len();
    let mut varies = vec![false; n];
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (index, info) in program.rule_infos.iter().enumerate() {
        let mut segments: Vec<(usize, bool)> = Vec::new();
        for definition in info.definitions.iter() {
            for &body in definition {
                segments.push((body as usize, true));
            }
        }
        for entry in info.destructuring_blocks.iter().flatten() {
            segments.push((*entry as usize, false));
        }
        for (start, is_body) in segments {
            if !scan(program, start, is_body, &mut callees[index]) {
                varies[index] = true;
            }
        }
    }
    // Dependence flows from callee to caller: repeat until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for index in 0..n {
            if varies[index] {
                continue;
            }
            if callees[index].iter().any(|&c| varies.get(c).copied().unwrap_or(true)) {
                varies[index] = true;
                changed = true;
            }
        }
    }
    program
        .rule_infos
        .iter()
        .zip(varies)
        .map(|(info, varies)| !varies && info.function_info.is_none())
        .collect()
}

/// Scans one rule body (up to its `RuleReturn`) or destructuring block (up
/// to its `DestructuringSuccess`) from `start`, collecting the rules it
/// calls. Returns false when the segment depends on the execution.
fn scan(program: &Program, start: usize, is_body: bool, callees: &mut Vec<usize>) -> bool {
    let mut pc = start;
    while let Some(instruction) = program.instructions.get(pc) {
        match instruction {
            Instruction::RuleReturn {} if is_body => return true,
            Instruction::DestructuringSuccess {} if !is_body => return true,
            Instruction::LoadInput { .. }
            | Instruction::LoadContext { .. }
            | Instruction::LoadMetadata { .. }
            | Instruction::HostAwait { .. }
            | Instruction::VirtualDataDocumentLookup { .. }
            | Instruction::PolicyCondition { .. }
            | Instruction::Halt {} => return false,
            Instruction::CallRule { rule_index, .. } => callees.push(usize::from(*rule_index)),
            Instruction::FunctionCall { params_index } => {
                match program
                    .instruction_data
                    .get_function_call_params(*params_index)
                {
                    Some(params) => callees.push(usize::from(params.func_rule_index)),
                    None => return false,
                }
            }
            Instruction::BuiltinCall { params_index } => {
                let name = program
                    .instruction_data
                    .get_builtin_call_params(*params_index)
                    .and_then(|p| program.get_builtin_info(p.builtin_index))
                    .map(|info| info.name.as_str());
                match name {
                    Some(name) if !builtin_varies(name) => {}
                    _ => return false,
                }
            }
            _ => {}
        }
        pc += 1;
    }
    // Ran off the program without the segment's end: do not trust it.
    false
}

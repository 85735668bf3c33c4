// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
use crate::builtins;
use crate::value::Value;

use super::errors::{Result, VmError};
use super::execution_model::ExecutionMode;
use super::machine::RegoVM;
use crate::rvm::instructions::FunctionCallParams;
use alloc::vec::Vec;

/// Distinct argument lists remembered per function in one evaluation.
const FUNCTION_CACHE_PER_RULE: usize = 64;

impl RegoVM {
    pub(super) fn execute_function_call(&mut self, params_index: u16) -> Result<()> {
        let params = self
            .program
            .instruction_data
            .get_function_call_params(params_index)
            .cloned()
            .ok_or_else(|| VmError::InvalidFunctionCallParamsIndex {
                index: params_index,
                pc: self.pc,
                available: self.program.instruction_data.function_call_params.len(),
            })?;
        if matches!(self.execution_mode, ExecutionMode::RunToCompletion) {
            return self.execute_function_call_cached(&params);
        }
        let call_result = match self.execution_mode {
            ExecutionMode::RunToCompletion => {
                self.execute_call_rule_common(params.dest, params.func_rule_index, Some(&params))
            }
            ExecutionMode::Suspendable => self.execute_call_rule_suspendable(
                params.dest,
                params.func_rule_index,
                Some(&params),
            ),
        };

        call_result?;

        self.memory_check()?;
        Ok(())
    }

    /// A function call answered from this evaluation's cache when the same
    /// function was called with the same (defined) arguments before.
    ///
    /// [regent patch 10] The arguments are compared where they are, in the
    /// registers: a vector is built only for a call that is not cached (see
    /// `cached_function_result` for what counts as the same arguments).
    fn execute_function_call_cached(&mut self, params: &FunctionCallParams) -> Result<()> {
        let registers = params.arg_registers();
        let mut cacheable = true;
        for &register in registers {
            if matches!(self.get_register(register)?, Value::Undefined) {
                cacheable = false;
                break;
            }
        }
        if cacheable {
            if let Some(result) = self.cached_function_result(params.func_rule_index, registers) {
                return self.set_register(params.dest, result);
            }
        }
        // [regent patch 34] The arguments are copied before the call, into
        // the cache's spare vector (a nested call finds it taken and uses
        // a new one); they move into the cache with the result.
        let remembered = cacheable
            && self
                .function_cache
                .has_room(params.func_rule_index, registers.len());
        let mut args = core::mem::take(&mut self.function_cache.pending);
        args.clear();
        if remembered {
            for &register in registers {
                args.push(self.get_register(register)?.clone());
            }
        }
        let called =
            self.execute_call_rule_common(params.dest, params.func_rule_index, Some(params));
        if remembered && called.is_ok() {
            let result = self.get_register(params.dest)?.clone();
            self.function_cache
                .remember(params.func_rule_index, &mut args, result);
        }
        args.clear();
        self.function_cache.pending = args;
        called?;
        self.memory_check()?;
        Ok(())
    }

    /// The cached result of `function` for the arguments in `registers`: an
    /// entry whose arguments are the same values by reference first (a hit
    /// is most often the very value passed before), then one whose
    /// arguments are equal where comparing them is cheap (see
    /// [`equal_argument`]).
    fn cached_function_result(&self, function: u16, registers: &[u8]) -> Option<Value> {
        let mut calls = self.function_cache.calls(function, registers.len())?;
        let argument = |i: usize| {
            registers
                .get(i)
                .and_then(|&r| self.registers.get(usize::from(r)))
        };
        let matches = |cached: &[Value], same: fn(&Value, &Value) -> bool| {
            cached
                .iter()
                .enumerate()
                .all(|(i, c)| argument(i).is_some_and(|a| same(c, a)))
        };
        calls
            .find(|(cached, _)| matches(cached, Value::is_same_value))
            .or_else(|| {
                self.function_cache
                    .calls(function, registers.len())?
                    .find(|(cached, _)| matches(cached, equal_argument))
            })
            .map(|(_, result)| result.clone())
    }

    pub(super) fn execute_builtin_call(&mut self, params_index: u16) -> Result<()> {
        let program = self.program.clone();
        let params = program
            .instruction_data
            .get_builtin_call_params(params_index)
            .ok_or_else(|| VmError::InvalidBuiltinCallParamsIndex {
                index: params_index,
                pc: self.pc,
                available: program.instruction_data.builtin_call_params.len(),
            })?
            .clone();
        let builtin_info = program
            .get_builtin_info(params.builtin_index)
            .ok_or_else(|| VmError::InvalidBuiltinInfoIndex {
                index: params.builtin_index,
                pc: self.pc,
                available: program.builtin_info_table.len(),
            })?;

        let mut args = core::mem::take(&mut self.cached_builtin_args);
        args.clear();
        for &arg_reg in params.arg_registers().iter() {
            let arg_value = self.get_register(arg_reg)?.clone();
            args.push(arg_value);
        }

        let expected_args = builtin_info.num_args;
        let actual_args = args.len();
        if u16::try_from(actual_args).unwrap_or(u16::MAX) != expected_args {
            self.cached_builtin_args = args;
            return Err(VmError::BuiltinArgumentMismatch {
                expected: expected_args,
                actual: actual_args,
                pc: self.pc,
            });
        }

        // [regent patch 27] `matches!` rather than `== &Value::Undefined`:
        // the derived equality was a call per argument.
        if args.iter().any(|a| matches!(a, Value::Undefined)) {
            self.cached_builtin_args = args;
            self.set_register(params.dest, Value::Undefined)?;
            self.memory_check()?;
            return Ok(());
        }

        // Extract everything we need from program before releasing the borrow.
        let builtin_fn = match program.get_resolved_builtin(params.builtin_index) {
            Some(fcn) => fcn.0,
            None => {
                self.cached_builtin_args = args;
                return Err(VmError::BuiltinNotResolved {
                    name: builtin_info.name.clone(),
                    pc: self.pc,
                });
            }
        };
        let cache_name = builtins::must_cache(builtin_info.name.as_str());
        drop(program);

        self.ensure_dummy_exprs(args.len())?;
        let dummy_span = self.get_dummy_span()?.clone();
        // Take the dummy_exprs vec out of self so we can pass it to the builtin
        // while still calling &mut self methods afterwards.
        let dummy_exprs = core::mem::take(&mut self.dummy_exprs);

        if let Some(name) = cache_name {
            if let Some(entries) = self.builtins_cache.get(name) {
                for entry in entries {
                    if entry.0.as_slice() == args.as_slice() {
                        let cached = entry.1.clone();
                        self.dummy_exprs = dummy_exprs;
                        self.cached_builtin_args = args;
                        self.set_register(params.dest, cached)?;
                        self.memory_check()?;
                        return Ok(());
                    }
                }
            }
        }

        let result = match builtin_fn(
            &dummy_span,
            dummy_exprs.get(..args.len()).unwrap_or(&[]),
            &args,
            self.strict_builtin_errors,
        ) {
            Ok(value) => value,
            // Resource-limit errors must always propagate, even in non-strict
            // mode, to prevent `not builtin(...)` from silently flipping to true.
            Err(e) if !self.strict_builtin_errors => {
                if e.downcast_ref::<crate::LimitError>().is_some() {
                    self.dummy_exprs = dummy_exprs;
                    self.cached_builtin_args = args;
                    return Err(e.into());
                }
                Value::Undefined
            }
            Err(err) => {
                self.dummy_exprs = dummy_exprs;
                self.cached_builtin_args = args;
                return Err(err.into());
            }
        };

        // Put dummy_exprs back for reuse.
        self.dummy_exprs = dummy_exprs;

        if let Some(name) = cache_name {
            // Move args into the cache. The now-empty (zero-capacity) Vec is
            // stored back in cached_builtin_args; the next call will re-allocate.
            // This is acceptable because cache inserts are rare (once per unique
            // argument set) while the hot path (cache hit above) reuses the Vec.
            let cache_args = core::mem::take(&mut args);
            self.cached_builtin_args = args;
            self.builtins_cache
                .entry(name)
                .or_default()
                .push((cache_args, result.clone()));
            self.set_register(params.dest, result)?;
        } else {
            self.cached_builtin_args = args;
            self.set_register(params.dest, result)?;
        }

        self.memory_check()?;

        Ok(())
    }
}

/// The results of user-defined function calls in one evaluation, by
/// function rule index: for each function, the arguments of at most
/// `FUNCTION_CACHE_PER_RULE` calls one after another (a function's calls
/// all have its arity) and their results.
///
/// [regent patch 34] This was a `BTreeMap` of vectors of (argument vector,
/// result): every remembered call allocated its argument vector, and every
/// evaluation freed the map's nodes and every vector when it was cleared.
/// The flat vectors here keep their capacity from one evaluation to the
/// next on the same VM; clearing drops the values only, and only of the
/// functions that were called.
#[derive(Debug, Default)]
pub(super) struct FunctionCache {
    functions: Vec<CachedCalls>,
    /// Indices of `functions` that hold calls (cleared by `clear`).
    used: Vec<u16>,
    /// A spare vector for a call's arguments while it runs.
    pending: Vec<Value>,
}

#[derive(Debug, Default)]
struct CachedCalls {
    /// The arity of the calls held (0 while none is).
    arity: usize,
    arguments: Vec<Value>,
    results: Vec<Value>,
}

impl FunctionCache {
    /// The remembered calls of `function` with `arity` arguments, as
    /// (arguments, result); `None` when there are none.
    fn calls(
        &self,
        function: u16,
        arity: usize,
    ) -> Option<impl Iterator<Item = (&[Value], &Value)>> {
        let calls = self.functions.get(usize::from(function))?;
        if calls.results.is_empty() || calls.arity != arity || arity == 0 {
            return None;
        }
        Some(calls.arguments.chunks_exact(arity).zip(calls.results.iter()))
    }

    /// Whether a call of `function` with `arity` arguments can be remembered.
    fn has_room(&self, function: u16, arity: usize) -> bool {
        arity > 0
            && self.functions.get(usize::from(function)).is_none_or(|calls| {
                calls.results.is_empty()
                    || (calls.arity == arity && calls.results.len() < FUNCTION_CACHE_PER_RULE)
            })
    }

    /// Remembers that `function` called with `args` (moved out) gave `result`.
    fn remember(&mut self, function: u16, args: &mut Vec<Value>, result: Value) {
        let index = usize::from(function);
        if self.functions.len() <= index {
            self.functions.resize_with(index + 1, CachedCalls::default);
        }
        let Some(calls) = self.functions.get_mut(index) else {
            return;
        };
        if calls.results.is_empty() {
            calls.arity = args.len();
            self.used.push(function);
        }
        calls.arguments.append(args);
        calls.results.push(result);
    }

    /// Forgets every remembered call, keeping the vectors' capacity.
    pub(super) fn clear(&mut self) {
        for function in self.used.drain(..) {
            if let Some(calls) = self.functions.get_mut(usize::from(function)) {
                calls.arguments.clear();
                calls.results.clear();
            }
        }
    }
}

/// Whether a remembered argument `cached` answers for `arg` when they are
/// not the same by reference: equal, where comparing them is cheap (scalars,
/// and arrays, sets and objects of at most `SMALL_COMPOUND` scalars, such as
/// a container's `resources.limits`).
///
/// [regent patch 25] A larger compound value is matched by reference only.
/// Comparing it by value walked, on every call that missed, each remembered
/// container or review until the first difference (8 % of the
/// gatekeeper-library's users template's evaluation). The large values a
/// policy passes again are shared (an element of the input, a rule's
/// value), so those hits remain; a large value built anew for each call
/// misses and the function runs again, with the same result.
#[inline]
fn equal_argument(cached: &Value, arg: &Value) -> bool {
    small(cached) && cached == arg
}

/// Elements of an array, set or object compared by value in the cache.
const SMALL_COMPOUND: usize = 8;

/// Whether comparing `v` by value is cheap: a scalar, or an array, set or
/// object of at most `SMALL_COMPOUND` scalars.
fn small(v: &Value) -> bool {
    let scalar = |v: &Value| {
        !matches!(
            v,
            Value::Array(_) | Value::Set(_) | Value::Object(_) | Value::Undefined
        )
    };
    match v {
        Value::Array(a) => a.len() <= SMALL_COMPOUND && a.iter().all(scalar),
        Value::Set(s) => s.len() <= SMALL_COMPOUND && s.iter().all(scalar),
        Value::Object(o) => {
            o.len() <= SMALL_COMPOUND && o.iter().all(|(k, v)| scalar(k) && scalar(v))
        }
        _ => true,
    }
}

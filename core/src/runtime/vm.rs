//! regorus's bytecode VM: entry rules compiled once per program, and a
//! prepared VM per worker thread and program, so a request neither creates a
//! VM nor loads a program or data into one.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::{Engine, Value};

use super::limits::{run_error, Budget, RunError, TIMER_CHECK_INTERVAL};

/// Entry rules of one engine compiled to bytecode, and the data they read.
#[derive(Clone)]
pub struct Bytecode {
    entries: Vec<(String, Entry)>,
    data: Value,
}

#[derive(Clone)]
struct Entry {
    compiled: regorus::CompiledPolicy,
    program: Arc<regorus::rvm::program::Program>,
}

impl Bytecode {
    /// Compiles each entry rule of a clone of `engine`.
    pub fn compile(engine: &Engine, entries: &[&str]) -> Result<Self, String> {
        let mut engine = engine.clone();
        let mut out = Vec::new();
        for entry in entries {
            let rule: regorus::Rc<str> = regorus::Rc::from(*entry);
            let compiled = engine
                .compile_with_entrypoint(&rule)
                .map_err(|e| e.to_string())?;
            let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
                &compiled,
                &[entry],
            )
            .map_err(|e| e.to_string())?;
            out.push(((*entry).to_string(), Entry { compiled, program }));
        }
        Ok(Self {
            entries: out,
            data: engine.get_data(),
        })
    }

    /// Whether `entry` is compiled here.
    pub fn has(&self, entry: &str) -> bool {
        self.entries.iter().any(|(e, _)| e == entry)
    }

    /// Runs one entry rule on this thread's prepared VM for it.
    pub fn run(&self, entry: &str, input: Value, budget: Budget) -> Result<Value, RunError> {
        let Some((_, program)) = self.entries.iter().find(|(e, _)| e == entry) else {
            return Err(RunError::Failed(format!(
                "{entry} is not compiled to bytecode"
            )));
        };
        let key = Arc::as_ptr(&program.program) as usize;
        VMS.with(|cell| {
            let Ok(mut vms) = cell.try_borrow_mut() else {
                // Not reachable (no evaluation re-enters this one); stay correct anyway.
                let mut vm = prepare(program, &self.data)?;
                return execute(&mut vm, entry, input, budget);
            };
            let index = match vms.iter().position(|c| c.key == key) {
                Some(i) => i,
                None => {
                    // Programs of bundles no longer served: only the cache
                    // holds them (its handle and the VM's).
                    vms.retain(|c| Arc::strong_count(&c.program) > 2);
                    if vms.len() >= VMS_PER_THREAD {
                        vms.remove(0);
                    }
                    vms.push(CachedVm {
                        key,
                        program: program.program.clone(),
                        vm: prepare(program, &self.data)?,
                    });
                    vms.len() - 1
                }
            };
            execute(&mut vms[index].vm, entry, input, budget)
        })
    }
}

thread_local! {
    /// Prepared VMs of this thread, by program: creating one, loading the
    /// program and checking data against it is skipped on every request but
    /// the first. A VM resets its evaluation state on each run. A cached VM
    /// holds its program alive, so a program address cannot be reused while
    /// it is a key here.
    static VMS: RefCell<Vec<CachedVm>> = const { RefCell::new(Vec::new()) };
}

/// A prepared VM, the program it runs, and that program's address.
struct CachedVm {
    key: usize,
    program: Arc<regorus::rvm::program::Program>,
    vm: regorus::rvm::vm::RegoVM,
}

/// Prepared VMs kept per thread: the live bundle's entry points, one per
/// Gatekeeper template, those of a candidate bundle and, during a swap, of
/// the bundle before. Programs no longer served are dropped first.
const VMS_PER_THREAD: usize = 512;

/// Drops this thread's prepared VMs (after a panic inside one).
pub fn forget_thread_vms() {
    VMS.with(|cell| {
        if let Ok(mut vms) = cell.try_borrow_mut() {
            vms.clear();
        }
    });
}

fn prepare(program: &Entry, data: &Value) -> Result<regorus::rvm::vm::RegoVM, RunError> {
    let mut vm = regorus::rvm::vm::RegoVM::new_with_policy(program.compiled.clone());
    vm.load_program(program.program.clone());
    // The VM's default instruction budget (25,000) is far below what a large
    // object needs; the execution timer is the limit that matters.
    vm.set_max_instructions(usize::MAX);
    vm.set_data(data.clone())
        .map_err(|e| RunError::Failed(e.to_string()))?;
    Ok(vm)
}

fn execute(
    vm: &mut regorus::rvm::vm::RegoVM,
    entry: &str,
    input: Value,
    budget: Budget,
) -> Result<Value, RunError> {
    vm.set_input(input);
    let limit = match budget.deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                vm.set_input(Value::Undefined);
                return Err(RunError::Timeout(Duration::ZERO));
            }
            vm.set_execution_timer_config(Some(regorus::utils::limits::ExecutionTimerConfig {
                limit: left,
                check_interval: TIMER_CHECK_INTERVAL,
            }));
            Some(left)
        }
        None => {
            vm.set_execution_timer_config(None);
            None
        }
    };
    let result = budget.run(|| {
        vm.execute_entry_point_by_name(entry)
            .map_err(|e| run_error(e.to_string(), limit, budget.memory))
    });
    // Do not keep this request's object alive in the cache.
    vm.set_input(Value::Undefined);
    result
}

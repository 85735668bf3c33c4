//! The process allocator. regorus's `allocator-memory-limits` feature makes
//! its counting mimalloc the global allocator (that is what lets every
//! evaluation have a memory budget, see [`regent_core::runtime::limits`]); this
//! module sets the one mimalloc option Regent changes.
//!
//! mimalloc commits whole arenas eagerly by default, which costs about
//! 10 MiB of resident memory that a webhook never uses (31.9 MiB idle
//! instead of 21.3 MiB; 37 MiB under load instead of 23.6 MiB, with the same
//! throughput: `benches/RESULTS.md`). mimalloc reads its options from the
//! environment once, when the process loads, before `main` runs; so the
//! binaries re-execute themselves once with `MIMALLOC_ARENA_EAGER_COMMIT=0`
//! when it is not set (same PID, same arguments). Setting the variable
//! yourself, to any value, skips the re-execution.

/// The option and the value Regent runs with.
pub const EAGER_COMMIT: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

/// Re-executes the current binary with the allocator option set, unless it
/// is already set. Returns only when it is set, or when re-executing failed
/// (then the process goes on with mimalloc's defaults).
pub fn reexec_with_lean_allocator() {
    use std::os::unix::process::CommandExt as _;
    let (name, value) = EAGER_COMMIT;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(name, value)
        .exec();
    eprintln!(
        "warning: could not re-execute with {name}={value} ({error}); using mimalloc's defaults"
    );
}

/// The heap ceiling for a container: three quarters of its cgroup memory
/// limit (the rest is code, stacks and the allocator's own overhead), or
/// `None` outside a memory-limited cgroup.
pub fn heap_limit_for_container() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let limit = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    let bytes: u64 = limit.trim().parse().ok()?;
    // cgroup v1 reports "no limit" as a huge number.
    (bytes < (1 << 50)).then_some(bytes / 4 * 3)
}

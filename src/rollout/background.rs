//! Scheduling for a background thread: how a thread whose work must never
//! delay an admission request (the shadow evaluation) tells the kernel so.
//!
//! Two settings, both for the calling thread only:
//!
//! - **nice 19**, the lowest weight: under contention it gets about 1.5 % of
//!   a core against a nice-0 thread;
//! - **the shortest EEVDF slice** (0.1 ms, Linux 6.12 and later): the
//!   scheduler lets a running thread finish its slice before a thread that
//!   wakes on its core runs ("run to parity"), whatever their weights; with
//!   the default slice (0.75 ms or more) an admission or client thread that
//!   woke behind a busy shadow thread could wait that long: admission p99
//!   at one connection was up to 2.0× the run without a candidate, and
//!   0.91–1.47× (median of ten runs 1.07×) with the short slice
//!   (`benches/RESULTS.md`, issue 13).
//!
//! Each setting failing (an older kernel, a seccomp profile, another OS) is
//! reported to the caller and is never fatal: the thread then competes at a
//! higher priority than intended, which costs latency, not correctness.

/// The nice value of a background thread.
pub const NICE: i32 = 19;

/// The slice asked for, in nanoseconds: the kernel's minimum.
pub const SLICE_NS: u64 = 100_000;

/// What could not be set; each is a warning for the caller to log.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    /// `setpriority` failed.
    #[error("could not lower the thread's priority to nice {NICE}: {0}")]
    Nice(std::io::Error),
    /// `sched_setattr` failed, or the kernel did not keep the slice
    /// (before Linux 6.12 it ignores a slice for the normal policy).
    #[error("could not shorten the thread's scheduling slice to {SLICE_NS} ns: {0}")]
    Slice(std::io::Error),
}

/// Makes the calling thread a background thread: nice 19 and the shortest
/// slice. Returns what could not be set (possibly both).
pub fn lower_this_thread() -> Vec<BackgroundError> {
    let mut failed = Vec::new();
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        failed.push(BackgroundError::Nice(e.into()));
    }
    if let Err(e) = short_slice() {
        failed.push(BackgroundError::Slice(e));
    }
    failed
}

/// The calling thread's scheduling attributes as the kernel reports them:
/// (nice, slice in nanoseconds).
pub fn this_thread() -> std::io::Result<(i32, u64)> {
    sys::get()
}

/// Asks for the slice and reads it back: kernels before 6.12 accept the
/// request but ignore `sched_runtime` for the normal policy (and report 0).
#[cfg(target_os = "linux")]
fn short_slice() -> std::io::Result<()> {
    sys::set(NICE, SLICE_NS)?;
    let (_, slice) = sys::get()?;
    if slice == SLICE_NS {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "the kernel kept a slice of {slice} ns (custom slices need Linux 6.12 or later)"
            ),
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn short_slice() -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// The one system call no safe wrapper offers (`rustix` and `nix` have no
/// `sched_setattr`; glibc has a wrapper only since 2.41).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    /// `SCHED_OTHER`, the normal policy the slice belongs to.
    const SCHED_OTHER: u32 = 0;

    /// The first version of the structure (48 bytes, no utilisation
    /// clamps), which is what the `libc` crate declares.
    const SIZE: u32 = std::mem::size_of::<libc::sched_attr>() as u32;

    /// `SCHED_OTHER` with `nice` and a slice of `slice_ns`.
    fn attr(nice: i32, slice_ns: u64) -> libc::sched_attr {
        libc::sched_attr {
            size: SIZE,
            sched_policy: SCHED_OTHER,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: slice_ns,
            sched_deadline: 0,
            sched_period: 0,
        }
    }

    /// Sets the calling thread's policy to `SCHED_OTHER` with `nice` and a
    /// slice of `slice_ns` (`sched_runtime` is the slice for this policy).
    pub fn set(nice: i32, slice_ns: u64) -> std::io::Result<()> {
        let a = attr(nice, slice_ns);
        // SAFETY: `a` is a valid, initialised `sched_attr` that outlives the
        // call, its `size` field is the structure's own size, and
        // the kernel only reads that many bytes; pid 0 is the calling thread;
        // flags 0. The call touches no other memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_setattr,
                0 as libc::pid_t,
                &a as *const libc::sched_attr,
                0 as libc::c_uint,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The calling thread's nice value and slice.
    pub fn get() -> std::io::Result<(i32, u64)> {
        let mut a = attr(0, 0);
        // SAFETY: `a` is a valid, writable `sched_attr` of `SIZE` bytes that
        // outlives the call; the kernel writes at most `size` bytes into it;
        // pid 0 is the calling thread; flags 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0 as libc::pid_t,
                &mut a as *mut libc::sched_attr,
                SIZE as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        if r == 0 {
            Ok((a.sched_nice, a.sched_runtime))
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn get() -> std::io::Result<(i32, u64)> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_background_thread_gets_nice_19_and_the_shortest_slice() {
        let seen = std::thread::spawn(|| {
            let before = this_thread();
            let failed = lower_this_thread();
            (before, failed, this_thread())
        })
        .join();
        let (before, failed, after) = seen.unwrap();
        let (_, slice_before) = before.unwrap();
        assert_ne!(slice_before, SLICE_NS, "the default slice is longer");
        // Kernels before 6.12 ignore the slice; the error says so and the
        // nice value is still set.
        let slice_refused = failed
            .iter()
            .any(|e| matches!(e, BackgroundError::Slice(_)));
        assert!(
            failed
                .iter()
                .all(|e| matches!(e, BackgroundError::Slice(_))),
            "{failed:?}"
        );
        let (nice, slice) = after.unwrap();
        assert_eq!(nice, NICE);
        if !slice_refused {
            assert_eq!(slice, SLICE_NS);
        }
    }
}

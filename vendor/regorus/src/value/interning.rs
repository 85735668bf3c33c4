// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Thread-local interning of object **keys** during JSON deserialization.
//!
//! [`Value::from_json_str`](crate::Value::from_json_str) installs a thread-local
//! [`InternTable`] for the duration of the parse (see [`InternGuard`]). Object
//! keys parsed while a table is installed are deduplicated: a homogeneous array
//! of `N` objects sharing `K` keys allocates `K` key strings instead of
//! `N * K`, and every later occurrence becomes a reference-count clone. Only
//! keys are interned -- string *values* are left untouched, since their
//! cardinality is unbounded and interning them can cost more than it saves.
//!
//! The table lives only for the parse and is torn down when the guard drops, so
//! there is no unbounded, thread-lifetime cache. This module is std-only: it
//! relies on `thread_local!`.

use core::cell::RefCell;
use alloc::vec::Vec;
use std::collections::HashSet;

/// A content-addressed interning table scoped to a single deserialization call.
///
/// Stores each distinct key's own `Rc<str>` (the allocation serde already made),
/// so interning a repeated key returns a reference-count clone of that existing
/// allocation and never copies the key bytes a second time.
struct InternTable {
    set: HashSet<crate::Rc<str>>,
}

impl InternTable {
    fn new() -> Self {
        Self {
            set: HashSet::new(),
        }
    }

    /// Return an interned handle equal to `rc`. The first time a given key is
    /// seen its own allocation is retained and returned; later occurrences reuse
    /// that allocation and the caller's `rc` is dropped.
    fn intern(&mut self, rc: crate::Rc<str>) -> crate::Rc<str> {
        if let Some(existing) = self.set.get(rc.as_ref()) {
            return crate::Rc::clone(existing);
        }
        self.set.insert(crate::Rc::clone(&rc));
        rc
    }
}

std::thread_local! {
    static TABLE: RefCell<Option<InternTable>> = const { RefCell::new(None) };
}

/// RAII guard that installs a thread-local [`InternTable`] for the duration of a
/// deserialization call. Re-entrant: if a table is already installed (e.g. a
/// nested parse), this guard reuses it and does not tear it down on drop.
pub struct InternGuard {
    installed_by_us: bool,
}

impl InternGuard {
    /// Install a fresh intern table for the current thread, unless one is
    /// already installed (in which case the existing table is reused).
    pub fn install() -> Self {
        let installed_by_us = TABLE.with(|t| {
            let mut slot = t.borrow_mut();
            if slot.is_none() {
                *slot = Some(InternTable::new());
                true
            } else {
                false
            }
        });
        Self { installed_by_us }
    }
}

impl Drop for InternGuard {
    fn drop(&mut self) {
        if self.installed_by_us {
            TABLE.with(|t| {
                *t.borrow_mut() = None;
            });
        }
    }
}

/// Intern `rc` using the current thread's active [`InternTable`], if one is
/// installed. Outside a parse (no guard active) the original `rc` is returned
/// unchanged, so callers keep their allocation with no interning overhead.
pub fn intern_key(rc: crate::Rc<str>) -> crate::Rc<str> {
    TABLE.with(|t| match t.borrow_mut().as_mut() {
        Some(table) => table.intern(rc),
        None => rc,
    })
}

/// Test-only probe: whether an intern table is currently installed on this thread.
#[cfg(test)]
pub fn is_installed() -> bool {
    TABLE.with(|t| t.borrow().is_some())
}

/// [regent patch 22] Keys cached per thread across parses: a direct-mapped
/// table of `KEY_CACHE_SLOTS` slots, each holding the last key whose hash
/// fell there. A key found in its slot is a reference-count clone, with no
/// allocation; any other key is allocated and takes the slot. A collision
/// costs a miss, never a scan, so no input can make a lookup slower than the
/// allocation it replaces. Only keys up to `KEY_CACHE_MAX_LEN` bytes are
/// cached, so the table holds at most a few kilobytes per thread.
const KEY_CACHE_SLOTS: usize = 512;
const KEY_CACHE_MAX_LEN: usize = 48;

std::thread_local! {
    static KEY_CACHE: RefCell<Vec<Option<crate::Rc<str>>>> = const { RefCell::new(Vec::new()) };
}

/// The key `s` as an `Rc<str>`: interned in the active session if there is
/// one, else from this thread's key cache.
pub fn key(s: &str) -> crate::Rc<str> {
    if let Some(rc) = TABLE.with(|t| {
        let mut slot = t.try_borrow_mut().ok()?;
        let table = slot.as_mut()?;
        if let Some(existing) = table.set.get(s) {
            return Some(crate::Rc::clone(existing));
        }
        let rc: crate::Rc<str> = crate::Rc::from(s);
        table.set.insert(crate::Rc::clone(&rc));
        Some(rc)
    }) {
        return rc;
    }
    if s.len() > KEY_CACHE_MAX_LEN {
        return crate::Rc::from(s);
    }
    // FNV-1a: a few instructions per byte; collisions only cost misses.
    let mut hash: u32 = 0x811c_9dc5;
    for &b in s.as_bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let slot = (hash as usize) % KEY_CACHE_SLOTS;
    KEY_CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return crate::Rc::from(s);
        };
        if cache.is_empty() {
            cache.resize(KEY_CACHE_SLOTS, None);
        }
        match cache.get_mut(slot) {
            Some(Some(cached)) if cached.as_ref() == s => crate::Rc::clone(cached),
            Some(entry) => {
                let rc: crate::Rc<str> = crate::Rc::from(s);
                *entry = Some(crate::Rc::clone(&rc));
                rc
            }
            None => crate::Rc::from(s),
        }
    })
}

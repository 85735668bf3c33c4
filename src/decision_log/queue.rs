//! A queue bounded in items and in bytes that never makes its producer
//! wait: when full, the oldest items go (and are counted). Lock-free
//! (`crossbeam_queue::ArrayQueue`), so an admission thread handing over a
//! record cannot be held up by a slow consumer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

/// The bounded queue. Items carry their size in bytes.
#[derive(Debug)]
pub struct Bounded<T> {
    items: ArrayQueue<(T, usize)>,
    bytes: AtomicUsize,
    max_bytes: usize,
    dropped: AtomicU64,
}

impl<T> Bounded<T> {
    /// A queue of at most `max_items` items and `max_bytes` bytes.
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Self {
            items: ArrayQueue::new(max_items.max(1)),
            bytes: AtomicUsize::new(0),
            max_bytes: max_bytes.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds an item of `size` bytes, dropping the oldest ones to make room;
    /// returns how many were dropped. Never waits.
    pub fn push(&self, item: T, size: usize) -> u64 {
        let mut dropped = 0;
        // Room in bytes first (an item larger than the whole bound still
        // goes in alone: it is the newest).
        while self.bytes.load(Ordering::Acquire) + size > self.max_bytes {
            match self.items.pop() {
                Some((_, s)) => {
                    self.bytes.fetch_sub(s, Ordering::AcqRel);
                    dropped += 1;
                }
                None => break,
            }
        }
        self.bytes.fetch_add(size, Ordering::AcqRel);
        if let Some((_, s)) = self.items.force_push((item, size)) {
            self.bytes.fetch_sub(s, Ordering::AcqRel);
            dropped += 1;
        }
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        dropped
    }

    /// The oldest item, if any.
    pub fn pop(&self) -> Option<(T, usize)> {
        let (item, size) = self.items.pop()?;
        self.bytes.fetch_sub(size, Ordering::AcqRel);
        Some((item, size))
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn full_by_count_or_bytes_drops_the_oldest() {
        let q = Bounded::new(3, 100);
        for i in 0..5 {
            q.push(i, 10);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.pop().unwrap().0, 2);
        assert_eq!(q.bytes(), 20);
        // By bytes: a 95-byte item pushes both others out (20 + 95 > 100).
        assert_eq!(q.push(9, 95), 2);
        assert_eq!(q.bytes(), 95);
        assert_eq!(q.pop().unwrap().0, 9);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn many_producers_never_exceed_the_bounds() {
        let q = std::sync::Arc::new(Bounded::new(64, 640));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        q.push(t * 100_000 + i, 10);
                        assert!(q.len() <= 64);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(q.len() <= 64);
        assert_eq!(q.bytes(), q.len() * 10);
        assert_eq!(q.dropped() + q.len() as u64, 40_000);
    }
}

//! A class's remote-free inbox: a lock-free stack that any thread pushes onto and the
//! central pool empties in one swap under its class lock.
//!
//! Invariants: `count >= number of blocks reachable from head` (a pusher counts before it
//! publishes; the drainer subtracts what it took after the swap), so stats never miss a
//! block that has left its freeing thread. Pop-all by swap means no ABA.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::header::Header;

pub(crate) struct Inbox {
    head: AtomicPtr<Header>,
    count: AtomicUsize,
}

impl Inbox {
    pub(crate) const fn new() -> Self {
        Self { head: AtomicPtr::new(std::ptr::null_mut()), count: AtomicUsize::new(0) }
    }

    /// Pushes one free block.
    ///
    /// # Safety
    /// `block` must be a free block of this inbox's class that no one else links or reads.
    pub(crate) unsafe fn push(&self, block: *mut Header) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller owns `block` until the CAS below publishes it.
            unsafe { (*block).link = head };
            match self.head.compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Takes every block; the caller walks the chain through `link` and then calls
    /// [`Inbox::taken`] with how many it found.
    pub(crate) fn take_all(&self) -> *mut Header {
        if self.head.load(Ordering::Relaxed).is_null() {
            return std::ptr::null_mut();
        }
        self.head.swap(std::ptr::null_mut(), Ordering::Acquire)
    }

    pub(crate) fn taken(&self, blocks: usize) {
        self.count.fetch_sub(blocks, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

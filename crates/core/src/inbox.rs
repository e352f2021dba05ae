//! A class's remote-free inbox: a lock-free stack that any thread pushes onto and the
//! central pool empties in one swap under its class lock. Blocks are linked through their
//! out-of-band metadata (`BlockMeta::link`), never through user memory.
//!
//! Invariants: `count >= number of blocks reachable from head` (a pusher counts before it
//! publishes; the drainer subtracts what it took after the swap), so stats never miss a
//! block that has left its freeing thread. Pop-all by swap means no ABA.

use std::sync::atomic::Ordering;

use crate::meta::BlockMeta;
use crate::sync::AtomicUsize;

pub(crate) struct Inbox {
    head: AtomicUsize,
    count: AtomicUsize,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Self { head: AtomicUsize::new(0), count: AtomicUsize::new(0) }
    }

    /// Pushes the free block at `addr` whose metadata is `meta`. The caller gives the block
    /// up: from now on only the drainer touches it.
    pub(crate) fn push(&self, addr: usize, meta: &BlockMeta) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            meta.set_link(head);
            match self.head.compare_exchange_weak(head, addr, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Takes every block: the first block's address (0 if none); the caller follows the links and
    /// then calls [`Inbox::taken`] with how many it found.
    pub(crate) fn take_all(&self) -> usize {
        if self.head.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.head.swap(0, Ordering::Acquire)
    }

    pub(crate) fn taken(&self, blocks: usize) {
        self.count.fetch_sub(blocks, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

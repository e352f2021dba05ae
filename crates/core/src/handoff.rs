//! Hand-offs: moving a live block from one thread to another without copying.
//!
//! The sending thread turns a live block into an *in-flight* record and gets a token;
//! exactly one receiver claims it with the token and becomes the block's holder. While
//! in flight the block belongs to no thread (a thread's teardown never frees it), stays
//! allocated and counted in the stats (`in_flight_*`), and can be reclaimed (freed) with
//! its token.
//!
//! Invariants (under the hand-off lock):
//! - one record per in-flight block; its metadata tag is `IN_FLIGHT` (allocated, held by
//!   no thread: no free and no thread teardown touches it) and its generation is the
//!   record's (a hand-off bumps the generation, so every handle or finalizer of the
//!   sender's hand-out is stale from then on)
//! - a received block is `LIVE` again and owned by the receiving cache: its frees are the
//!   receiver's local frees, and the receiver's teardown frees it
//! - `in_flight_bytes = Σ requested` of the records
//! - a token is `sequence << 21 | mac(sequence)`: below 2^53, so JavaScript numbers carry it
//!   exactly; a token with a valid mac and no record was received or reclaimed already

use std::collections::HashMap;
use std::ptr::NonNull;

use crate::allocator::{Allocation, Allocator};
use crate::error::FreeError;
use crate::free::Expect;
use crate::meta::{self, BlockMeta, FREE, IN_FLIGHT, LIVE, STATE_STEP};
use crate::thread_cache::ThreadCache;

const MAC_BITS: u32 = 21;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    addr: usize,
    generation: u32,
    requested: usize,
    label: u64,
}

impl InFlight {
    fn ptr(&self) -> NonNull<u8> {
        // Records are made from live blocks, whose addresses are never null.
        NonNull::new(self.addr as *mut u8).unwrap_or(NonNull::dangling())
    }
}

/// The in-flight records of one allocator.
#[derive(Default)]
pub(crate) struct Handoffs {
    records: HashMap<u64, InFlight>,
    next_sequence: u64,
    bytes: usize,
}

impl Handoffs {
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) const fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Why a hand-off call failed. Nothing changed when one of these is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffError {
    /// The block is not a live hand-out matching the given generation.
    Free(FreeError),
    /// The token was received (or reclaimed) already.
    AlreadyReceived,
    /// The token was never issued by this allocator, or the details do not match it.
    InvalidHandle,
}

impl HandoffError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Free(e) => e.code(),
            Self::AlreadyReceived => "ERR_ALREADY_RECEIVED",
            Self::InvalidHandle => "ERR_INVALID_HANDLE",
        }
    }
}

impl std::fmt::Display for HandoffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Free(e) => e.fmt(f),
            Self::AlreadyReceived => f.write_str("this hand-off was received or reclaimed already"),
            Self::InvalidHandle => f.write_str("not a hand-off issued by this allocator"),
        }
    }
}

impl std::error::Error for HandoffError {}

/// A block claimed by a receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The block and its (new) generation.
    pub allocation: Allocation,
    /// The size requested at allocation.
    pub requested: usize,
    /// What the sender attached to the hand-off (see [`Allocator::hand_off`]).
    pub label: u64,
}

impl Allocator {
    fn mac(&self, sequence: u64) -> u64 {
        let x = (sequence ^ self.inner.secret.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 40) & ((1 << MAC_BITS) - 1)
    }

    fn check_token(&self, token: u64) -> HandoffError {
        let sequence = token >> MAC_BITS;
        let issued = sequence < self.inner.handoffs.lock().next_sequence;
        if token < (1 << 53) && issued && self.mac(sequence) == token & ((1 << MAC_BITS) - 1) {
            HandoffError::AlreadyReceived
        } else {
            HandoffError::InvalidHandle
        }
    }

    /// The metadata of the block at `ptr` if it is a live hand-out with `generation`.
    fn live_meta(&self, ptr: NonNull<u8>, generation: u32) -> Result<&BlockMeta, FreeError> {
        let addr = ptr.as_ptr() as usize;
        let (_, meta) = self.inner.block_at(addr).ok_or(FreeError::ForeignPointer { addr })?;
        match meta::state_of(meta.tag()) {
            LIVE if meta.generation() == generation => Ok(meta),
            LIVE | FREE | IN_FLIGHT => Err(FreeError::DoubleFree { addr }),
            _ => Err(FreeError::ForeignPointer { addr }),
        }
    }

    /// Removes the in-flight record of `token` (claimed exactly once), or says why not.
    fn take_record(&self, token: u64) -> Result<InFlight, HandoffError> {
        let record = {
            let mut handoffs = self.inner.handoffs.lock();
            let record = handoffs.records.remove(&token);
            if let Some(r) = record {
                handoffs.bytes -= r.requested;
            }
            record
        };
        record.ok_or_else(|| self.check_token(token))
    }

    /// Starts a hand-off of the live block `ptr` (hand-out `generation`): the block stays
    /// allocated but no thread holds it until [`Allocator::receive`]; the generation is
    /// bumped, so the sender's handle is stale from now on. `label` is kept with the
    /// hand-off for the receiver to check (what the sender says it sent). Returns the
    /// token and the new generation.
    ///
    /// # Safety
    /// The caller gives up `ptr`: nothing of the sender may use it afterwards.
    ///
    /// # Errors
    /// [`HandoffError::Free`] when `ptr` is not a live hand-out with this generation.
    pub unsafe fn hand_off(&self, ptr: NonNull<u8>, generation: u32, label: u64) -> Result<(u64, u32), HandoffError> {
        let mut handoffs = self.inner.handoffs.lock();
        let meta = self.live_meta(ptr, generation).map_err(HandoffError::Free)?;
        let addr = ptr.as_ptr() as usize;
        let class = meta::class_of(meta.tag());
        let requested = if class == meta::LARGE_CLASS {
            self.inner.pages.lock().large.get(addr).map_or(0, |r| r.requested)
        } else {
            meta.requested() as usize
        };
        let next = generation.wrapping_add(1);
        meta.set_generation(next);
        meta.set_tag(meta.tag() + STATE_STEP);
        let sequence = handoffs.next_sequence;
        handoffs.next_sequence += 1;
        let token = (sequence << MAC_BITS) | self.mac(sequence);
        handoffs.records.insert(token, InFlight { addr, generation: next, requested, label });
        handoffs.bytes += requested;
        Ok((token, next))
    }

    /// Claims the in-flight block of `token`, exactly once; `cache` becomes its owner
    /// (frees from its thread are local frees; its teardown frees it).
    ///
    /// # Errors
    /// [`HandoffError::AlreadyReceived`] or [`HandoffError::InvalidHandle`].
    pub fn receive(&self, token: u64, cache: &ThreadCache) -> Result<Received, HandoffError> {
        let record = self.take_record(token)?;
        let meta = self.claim(&record)?;
        meta.set_owner(cache.id);
        Ok(Received {
            allocation: Allocation { ptr: record.ptr(), generation: record.generation },
            requested: record.requested,
            label: record.label,
        })
    }

    /// The in-flight block of `token` without claiming it, to check a handle's details.
    #[must_use]
    pub fn in_flight(&self, token: u64) -> Option<Received> {
        let handoffs = self.inner.handoffs.lock();
        handoffs.records.get(&token).map(|r| Received {
            allocation: Allocation { ptr: r.ptr(), generation: r.generation },
            requested: r.requested,
            label: r.label,
        })
    }

    /// Frees the in-flight block of `token` (a hand-off nobody will receive). Returns its
    /// requested size.
    ///
    /// # Errors
    /// As [`Allocator::receive`].
    pub fn reclaim(&self, token: u64) -> Result<usize, HandoffError> {
        let record = self.take_record(token)?;
        self.claim(&record)?;
        // SAFETY: the in-flight block is allocated and nobody holds it.
        let freed = unsafe { self.free_uncached(record.ptr(), Expect::Generation(u64::from(record.generation)), true) };
        freed.map(|()| record.requested).map_err(HandoffError::Free)
    }

    /// Makes the block of a record just taken `LIVE` again.
    fn claim(&self, record: &InFlight) -> Result<&BlockMeta, HandoffError> {
        let (_, meta) = self.inner.block_at(record.addr).ok_or(HandoffError::InvalidHandle)?;
        let tag = meta.tag();
        if meta::state_of(tag) != IN_FLIGHT || meta.generation() != record.generation {
            return Err(HandoffError::InvalidHandle);
        }
        meta.set_tag(tag - STATE_STEP);
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllocatorConfig;

    fn setup() -> (Allocator, ThreadCache, ThreadCache) {
        let allocator =
            Allocator::new(AllocatorConfig { max_bytes: Some(64 << 20), ..AllocatorConfig::default() }).unwrap();
        (allocator, ThreadCache::new(), ThreadCache::new())
    }

    #[test]
    fn a_hand_off_is_received_exactly_once_and_becomes_the_receivers() {
        let (a, mut sender, mut receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 5000).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, generation) = unsafe { a.hand_off(sent.ptr, sent.generation, 7) }.unwrap();
        assert_eq!((a.stats().in_flight_count, a.stats().in_flight_bytes), (1, 5000));
        let got = a.receive(token, &receiver).unwrap();
        assert_eq!(
            (got.allocation.ptr, got.allocation.generation, got.requested, got.label),
            (sent.ptr, generation, 5000, 7)
        );
        assert_eq!(a.receive(token, &receiver), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.stats().in_flight_count, 0);
        // The sender's handle is stale; the receiver owns the block: a local free.
        // SAFETY: probing with a stale generation frees nothing.
        let stale = unsafe { a.deallocate_tracked(&mut sender, sent.ptr, sent.generation) };
        assert!(matches!(stale, Err(FreeError::DoubleFree { .. })));
        // SAFETY: the receiver holds the block.
        unsafe { a.deallocate_tracked(&mut receiver, got.allocation.ptr, generation) }.unwrap();
        let stats = a.stats();
        assert_eq!((stats.live_allocations, stats.remote_frees_total, stats.inbox_blocks), (0, 0, 0));
        assert_eq!(receiver.stats().blocks, 1);
    }

    #[test]
    fn forged_tokens_are_invalid_and_reclaim_frees_an_unreceived_block() {
        let (a, mut sender, receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 100).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, _) = unsafe { a.hand_off(sent.ptr, sent.generation, 7) }.unwrap();
        assert_eq!(a.receive(token ^ 1, &receiver), Err(HandoffError::InvalidHandle));
        assert_eq!(a.receive(token + (1 << 30), &receiver), Err(HandoffError::InvalidHandle));
        assert_eq!(a.reclaim(token), Ok(100));
        assert_eq!(a.reclaim(token), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.stats().live_allocations, 0);
    }

    #[test]
    fn a_senders_teardown_does_not_free_what_it_handed_off() {
        let (a, mut sender, receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 64).unwrap();
        let kept = a.allocate_tracked(&mut sender, 64).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, _) = unsafe { a.hand_off(sent.ptr, sent.generation, 7) }.unwrap();
        // SAFETY: the sender is going away.
        assert_eq!(unsafe { a.free_all_owned_by(&sender) }, (1, 64));
        let got = a.receive(token, &receiver).unwrap();
        // The receiver's teardown frees it.
        // SAFETY: the receiver is going away.
        assert_eq!(unsafe { a.free_all_owned_by(&receiver) }, (1, 64));
        assert_ne!(got.allocation.ptr, kept.ptr);
        assert_eq!(a.stats().live_allocations, 0);
    }
}

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
//! - a record names the cache that sent it; once that cache is torn down
//!   ([`Allocator::free_all_owned_by`]) or dropped, the record is *orphaned* (its sender is
//!   gone) and [`Allocator::orphaned_hand_offs`] lists it with its token
//!
//! **Tokens** (token.rs). A token is the only credential of a hand-off: whoever presents it claims
//! (or reclaims) the block. It is 128 bits ([`Token`], written as 32 lowercase hex digits):
//! the high half is `tag = SipHash-2-4(k_tag, sequence)`, the low half is
//! `sequence ^ SipHash-2-4(k_mask, tag)`, where `sequence` numbers the allocator's
//! hand-offs and the two 128-bit keys come from the operating system's CSPRNG
//! (`getrandom`) at the allocator's first hand-off. A token decodes to its sequence and is
//! genuine only if its tag is that sequence's: without the key, any guess names a given
//! hand-off with probability 2⁻⁶⁴ at most (the tag is a 64-bit PRF output), and the
//! masked low half keeps the sequence (how many hand-offs there were) hidden too. A genuine
//! token whose sequence was issued but has no record was received or reclaimed already
//! ([`HandoffError::AlreadyReceived`]); anything else is [`HandoffError::InvalidHandle`].
//! Telling the two apart needs only the sequence counter, not a list of spent tokens.

use std::collections::HashMap;
use std::ptr::NonNull;

use crate::allocator::{Allocation, Allocator};
use crate::error::FreeError;
use crate::free::Expect;
use crate::meta::{self, BlockMeta, FREE, IN_FLIGHT, LIVE, STATE_STEP};
use crate::thread_cache::ThreadCache;
use crate::token::{Keys, Token};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    addr: usize,
    generation: u32,
    requested: usize,
    label: u64,
    /// Id of the cache that sent it.
    sender: u32,
    /// Its sender was torn down or dropped.
    orphaned: bool,
}

impl InFlight {
    fn ptr(&self) -> NonNull<u8> {
        // Records are made from live blocks, whose addresses are never null.
        NonNull::new(self.addr as *mut u8).unwrap_or(NonNull::dangling())
    }
}

/// The in-flight records of one allocator, by sequence.
#[derive(Default)]
pub(crate) struct Handoffs {
    records: HashMap<u64, InFlight>,
    next_sequence: u64,
    bytes: usize,
    /// Drawn at the first hand-off.
    keys: Option<Keys>,
}

impl Handoffs {
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) const fn bytes(&self) -> usize {
        self.bytes
    }

    /// The sequence of `token` if it is genuine.
    fn sequence_of(&self, token: Token) -> Option<u64> {
        self.keys.as_ref().and_then(|keys| keys.sequence_of(token))
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
    /// The operating system's random number generator failed, so no token can be made.
    RandomUnavailable,
}

impl HandoffError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Free(e) => e.code(),
            Self::AlreadyReceived => "ERR_ALREADY_RECEIVED",
            Self::InvalidHandle => "ERR_INVALID_HANDLE",
            Self::RandomUnavailable => "ERR_RANDOM_UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for HandoffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Free(e) => e.fmt(f),
            Self::AlreadyReceived => f.write_str("this hand-off was received or reclaimed already"),
            Self::InvalidHandle => f.write_str("not a hand-off issued by this allocator"),
            Self::RandomUnavailable => f.write_str("the operating system's random number generator is unavailable"),
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

/// An in-flight hand-off whose sender is gone (see [`Allocator::orphaned_hand_offs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// Its token: [`Allocator::receive`] or [`Allocator::reclaim`] it.
    pub token: Token,
    /// The block, its generation, requested size and label, as a receiver would get them.
    pub block: Received,
}

impl Allocator {
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

    /// Removes the in-flight record of `token` (claimed exactly once) if `accept` takes its
    /// block, or says why not (a refused record stays, [`HandoffError::InvalidHandle`]).
    fn take_record(&self, token: Token, accept: impl FnOnce(&Received) -> bool) -> Result<InFlight, HandoffError> {
        let mut handoffs = self.inner.handoffs.lock();
        let sequence = handoffs.sequence_of(token).ok_or(HandoffError::InvalidHandle)?;
        match handoffs.records.get(&sequence) {
            Some(record) if !accept(&record.received()) => Err(HandoffError::InvalidHandle),
            Some(_) => {
                let record = handoffs.records.remove(&sequence).ok_or(HandoffError::InvalidHandle)?;
                handoffs.bytes -= record.requested;
                Ok(record)
            }
            // A genuine, issued token without a record was claimed already.
            None if sequence < handoffs.next_sequence => Err(HandoffError::AlreadyReceived),
            None => Err(HandoffError::InvalidHandle),
        }
    }

    /// Starts a hand-off of the live block `ptr` (hand-out `generation`) from `sender`
    /// (the calling thread's cache): the block stays allocated but no thread holds it until
    /// [`Allocator::receive`]; the generation is bumped, so the sender's handle is stale
    /// from now on. `label` is kept with the hand-off for the receiver to check (what the
    /// sender says it sent). Returns the token and the new generation.
    ///
    /// # Safety
    /// The caller gives up `ptr`: nothing of the sender may use it afterwards.
    ///
    /// # Errors
    /// [`HandoffError::Free`] when `ptr` is not a live hand-out with this generation;
    /// [`HandoffError::RandomUnavailable`] when the first hand-off cannot draw its keys.
    pub unsafe fn hand_off(
        &self,
        ptr: NonNull<u8>,
        generation: u32,
        label: u64,
        sender: &ThreadCache,
    ) -> Result<(Token, u32), HandoffError> {
        let mut handoffs = self.inner.handoffs.lock();
        let meta = self.live_meta(ptr, generation).map_err(HandoffError::Free)?;
        let keys = match handoffs.keys {
            Some(keys) => keys,
            None => *handoffs.keys.insert(Keys::from_os()?),
        };
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
        let record = InFlight { addr, generation: next, requested, label, sender: sender.id, orphaned: false };
        handoffs.records.insert(sequence, record);
        handoffs.bytes += requested;
        Ok((keys.token(sequence), next))
    }

    /// Claims the in-flight block of `token`, exactly once; `cache` becomes its owner
    /// (frees from its thread are local frees; its teardown frees it).
    ///
    /// # Errors
    /// [`HandoffError::AlreadyReceived`] or [`HandoffError::InvalidHandle`].
    pub fn receive(&self, token: Token, cache: &ThreadCache) -> Result<Received, HandoffError> {
        self.receive_if(token, cache, |_| true)
    }

    /// [`Allocator::receive`] if `accept` takes the in-flight block (what the receiver was
    /// told it gets: address, size, label); otherwise [`HandoffError::InvalidHandle`] and
    /// the hand-off stays in flight. `accept` runs under the hand-off lock: it must not
    /// call hand-off methods.
    ///
    /// # Errors
    /// As [`Allocator::receive`].
    pub fn receive_if(
        &self,
        token: Token,
        cache: &ThreadCache,
        accept: impl FnOnce(&Received) -> bool,
    ) -> Result<Received, HandoffError> {
        let record = self.take_record(token, accept)?;
        let meta = self.claim(&record)?;
        meta.set_owner(cache.id);
        Ok(record.received())
    }

    /// The in-flight block of `token` without claiming it, to check a handle's details.
    #[must_use]
    pub fn in_flight(&self, token: Token) -> Option<Received> {
        let handoffs = self.inner.handoffs.lock();
        let sequence = handoffs.sequence_of(token)?;
        handoffs.records.get(&sequence).map(InFlight::received)
    }

    /// Frees the in-flight block of `token` (a hand-off nobody will receive). Returns its
    /// requested size.
    ///
    /// # Errors
    /// As [`Allocator::receive`].
    pub fn reclaim(&self, token: Token) -> Result<usize, HandoffError> {
        self.reclaim_if(token, |_| true)
    }

    /// [`Allocator::reclaim`] if `accept` takes the in-flight block (as in
    /// [`Allocator::receive_if`]).
    ///
    /// # Errors
    /// As [`Allocator::receive`].
    pub fn reclaim_if(&self, token: Token, accept: impl FnOnce(&Received) -> bool) -> Result<usize, HandoffError> {
        let record = self.take_record(token, accept)?;
        self.claim(&record)?;
        // SAFETY: the in-flight block is allocated and nobody holds it.
        let freed = unsafe { self.free_uncached(record.ptr(), Expect::Generation(u64::from(record.generation)), true) };
        freed.map(|()| record.requested).map_err(HandoffError::Free)
    }

    /// Undoes a hand-off whose token never reached anyone (the caller could not pass it
    /// on): the block is `LIVE` again with its generation from before the hand-off, held
    /// by its sender as if the hand-off had not happened.
    ///
    /// # Errors
    /// As [`Allocator::receive`] (nothing changes).
    pub fn cancel_hand_off(&self, token: Token) -> Result<(), HandoffError> {
        let record = self.take_record(token, |_| true)?;
        let meta = self.claim(&record)?;
        meta.set_generation(record.generation.wrapping_sub(1));
        Ok(())
    }

    /// The in-flight hand-offs whose sending cache is gone (torn down with
    /// [`Allocator::free_all_owned_by`], or dropped while bound to this allocator), in the
    /// order they were made, with their tokens: nobody may ever receive them, so
    /// [`Allocator::reclaim`] returns their memory. Receive and reclaim stay exactly-once:
    /// a token the sender passed on before it went away may still be presented by its
    /// receiver, and whichever call comes first wins (the other gets
    /// [`HandoffError::AlreadyReceived`]).
    #[must_use]
    pub fn orphaned_hand_offs(&self) -> Vec<Orphan> {
        let handoffs = self.inner.handoffs.lock();
        let Some(keys) = handoffs.keys else { return Vec::new() };
        let mut orphans: Vec<(u64, Received)> =
            handoffs.records.iter().filter(|(_, r)| r.orphaned).map(|(&s, r)| (s, r.received())).collect();
        orphans.sort_unstable_by_key(|&(sequence, _)| sequence);
        orphans.into_iter().map(|(sequence, block)| Orphan { token: keys.token(sequence), block }).collect()
    }

    /// Marks the in-flight hand-offs sent by the cache with id `sender` as orphaned: that
    /// cache is going away and never sends or receives again.
    pub(crate) fn orphan_hand_offs_of(&self, sender: u32) {
        let mut handoffs = self.inner.handoffs.lock();
        for record in handoffs.records.values_mut().filter(|r| r.sender == sender) {
            record.orphaned = true;
        }
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

impl InFlight {
    fn received(&self) -> Received {
        Received {
            allocation: Allocation { ptr: self.ptr(), generation: self.generation },
            requested: self.requested,
            label: self.label,
        }
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

    /// Hands off a fresh block of `size` bytes from `sender`.
    fn send(a: &Allocator, sender: &mut ThreadCache, size: usize) -> Token {
        let sent = a.allocate_tracked(sender, size).unwrap();
        // SAFETY: the sender gives the block up.
        unsafe { a.hand_off(sent.ptr, sent.generation, 7, sender) }.unwrap().0
    }

    #[test]
    fn tokens_are_neither_sequential_nor_shared_between_allocators() {
        let (a, mut sender, _) = setup();
        let (b, mut other, _) = setup();
        let tokens: Vec<u128> = (0..512).map(|_| send(&a, &mut sender, 64).bits()).collect();
        let others: Vec<u128> = (0..512).map(|_| send(&b, &mut other, 64).bits()).collect();
        // Same sequences, independent keys: no token in common.
        assert!(tokens.iter().all(|t| !others.contains(t)));
        // Consecutive tokens differ in about half of their 128 bits (expected 64, σ ≈ 5.7; the
        // bounds are 7σ away) and never by a small step.
        for pair in tokens.windows(2) {
            let distance = (pair[0] ^ pair[1]).count_ones();
            assert!((24..=104).contains(&distance), "{:032x} → {:032x}", pair[0], pair[1]);
            assert!(pair[1].abs_diff(pair[0]) > 1 << 64);
        }
        // Every one of the 128 bits is set in about half of the tokens (expected 256 of 512,
        // σ ≈ 11; the bounds are over 9σ away, so a genuine token stream fails with
        // probability below 10⁻¹⁸).
        for bit in 0..128 {
            let ones = tokens.iter().filter(|&&t| t >> bit & 1 == 1).count();
            assert!((156..=356).contains(&ones), "bit {bit} set in {ones} of 512 tokens");
        }
    }

    #[test]
    fn a_hand_off_is_received_exactly_once_and_becomes_the_receivers() {
        let (a, mut sender, mut receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 5000).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, generation) = unsafe { a.hand_off(sent.ptr, sent.generation, 7, &sender) }.unwrap();
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
    fn every_bit_flip_of_a_token_is_invalid_and_a_spent_genuine_token_is_already_received() {
        let (a, mut sender, receiver) = setup();
        let token = send(&a, &mut sender, 100);
        let spent = send(&a, &mut sender, 200);
        assert_eq!(a.reclaim(spent), Ok(200));
        for bit in 0..128 {
            let altered = Token::from_bits(token.bits() ^ (1 << bit));
            assert_eq!(a.in_flight(altered), None, "bit {bit}");
            assert_eq!(a.receive(altered, &receiver), Err(HandoffError::InvalidHandle), "bit {bit}");
            assert_eq!(a.reclaim(altered), Err(HandoffError::InvalidHandle), "bit {bit}");
            let altered_spent = Token::from_bits(spent.bits() ^ (1 << bit));
            assert_eq!(a.reclaim(altered_spent), Err(HandoffError::InvalidHandle), "spent, bit {bit}");
        }
        // Tag and masked sequence swapped, zeros, ones: invalid too.
        let swapped = Token::from_bits(token.bits().rotate_left(64));
        for forged in [swapped, Token::from_bits(0), Token::from_bits(u128::MAX)] {
            assert_eq!(a.receive(forged, &receiver), Err(HandoffError::InvalidHandle), "{forged}");
        }
        assert_eq!(a.stats().in_flight_count, 1, "nothing was claimed");
        assert_eq!(a.reclaim(spent), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.reclaim(token), Ok(100));
        assert_eq!(a.reclaim(token), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.receive(token, &receiver), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.stats().live_allocations, 0);
    }

    #[test]
    fn a_refused_receive_if_or_reclaim_if_is_invalid_and_leaves_the_hand_off_in_flight() {
        let (a, mut sender, receiver) = setup();
        let token = send(&a, &mut sender, 300);
        let expected = a.in_flight(token).unwrap();
        assert_eq!(a.receive_if(token, &receiver, |b| b.requested == 301), Err(HandoffError::InvalidHandle));
        assert_eq!(a.reclaim_if(token, |b| b.label != 7), Err(HandoffError::InvalidHandle));
        assert_eq!((a.stats().in_flight_count, a.in_flight(token)), (1, Some(expected)));
        assert_eq!(a.receive_if(token, &receiver, |b| *b == expected), Ok(expected));
        assert_eq!(a.reclaim_if(token, |_| true), Err(HandoffError::AlreadyReceived));
    }

    #[test]
    fn a_token_of_another_allocator_or_before_any_hand_off_is_invalid() {
        let (a, mut sender, receiver) = setup();
        let (b, mut other, _) = setup();
        let theirs = send(&b, &mut other, 64);
        assert_eq!(a.receive(theirs, &receiver), Err(HandoffError::InvalidHandle), "a has no keys yet");
        let mine = send(&a, &mut sender, 64);
        assert_eq!(a.receive(theirs, &receiver), Err(HandoffError::InvalidHandle));
        assert_eq!(b.reclaim(mine), Err(HandoffError::InvalidHandle));
        assert_eq!((a.reclaim(mine), b.reclaim(theirs)), (Ok(64), Ok(64)));
    }

    #[test]
    fn a_seeded_brute_force_of_100k_tokens_claims_nothing() {
        let (a, mut sender, receiver) = setup();
        let tokens: Vec<Token> = (0..64).map(|_| send(&a, &mut sender, 64)).collect();
        let mut x = 0x5EED_0012_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..100_000u64 {
            // Random bits, and random tags over every plausible masked sequence.
            let guess = if i % 2 == 0 {
                Token::from_bits((u128::from(next()) << 64) | u128::from(next()))
            } else {
                let t = tokens[(i as usize / 2) % tokens.len()].bits();
                Token::from_bits((u128::from(next()) << 64) | (t & u128::from(u64::MAX)))
            };
            assert_eq!(a.receive(guess, &receiver), Err(HandoffError::InvalidHandle));
        }
        assert_eq!(a.stats().in_flight_count, 64);
        for token in tokens {
            assert_eq!(a.reclaim(token), Ok(64));
        }
    }

    #[test]
    fn a_senders_teardown_does_not_free_what_it_handed_off() {
        let (a, mut sender, receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 64).unwrap();
        let kept = a.allocate_tracked(&mut sender, 64).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, _) = unsafe { a.hand_off(sent.ptr, sent.generation, 7, &sender) }.unwrap();
        // SAFETY: the sender is going away.
        assert_eq!(unsafe { a.free_all_owned_by(&sender) }, (1, 64));
        let got = a.receive(token, &receiver).unwrap();
        // The receiver's teardown frees it.
        // SAFETY: the receiver is going away.
        assert_eq!(unsafe { a.free_all_owned_by(&receiver) }, (1, 64));
        assert_ne!(got.allocation.ptr, kept.ptr);
        assert_eq!(a.stats().live_allocations, 0);
    }

    #[test]
    fn hand_offs_of_a_torn_down_sender_are_listed_as_orphans_with_working_tokens() {
        let (a, mut gone, mut alive) = setup();
        let receiver = ThreadCache::new();
        let orphan_tokens: Vec<Token> = [100, 5000, 20 << 20].iter().map(|&n| send(&a, &mut gone, n)).collect();
        let live_token = send(&a, &mut alive, 300);
        assert_eq!(a.orphaned_hand_offs(), Vec::new(), "both senders alive");
        // Received before the sender goes: not in flight, never listed.
        let early = send(&a, &mut gone, 64);
        let early = a.receive(early, &receiver).unwrap();
        // SAFETY: `gone`'s thread is going away; nothing uses its blocks.
        unsafe { a.free_all_owned_by(&gone) };
        let orphans = a.orphaned_hand_offs();
        assert_eq!(orphans.iter().map(|o| o.token).collect::<Vec<_>>(), orphan_tokens, "in hand-off order");
        assert_eq!(orphans.iter().map(|o| o.block.requested).collect::<Vec<_>>(), [100, 5000, 20 << 20]);
        for orphan in &orphans {
            assert_eq!(a.in_flight(orphan.token), Some(orphan.block));
        }
        // Receive first wins over a later reclaim, and reclaim first over a later receive.
        let got = a.receive(orphans[0].token, &receiver).unwrap();
        assert_eq!(got, orphans[0].block);
        assert_eq!(a.reclaim(orphans[0].token), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.reclaim(orphans[1].token), Ok(5000));
        assert_eq!(a.receive(orphans[1].token, &receiver), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.orphaned_hand_offs(), vec![orphans[2]]);
        assert_eq!(a.reclaim(orphans[2].token), Ok(20 << 20));
        assert_eq!(a.orphaned_hand_offs(), Vec::new());
        let stats = a.stats();
        assert_eq!((stats.in_flight_count, stats.in_flight_bytes), (1, 300), "the live sender's hand-off stays");
        assert_eq!(a.reclaim(live_token), Ok(300));
        // SAFETY: the receiver's blocks are unused.
        unsafe {
            a.deallocate_tracked(&mut ThreadCache::new(), got.allocation.ptr, got.allocation.generation).unwrap();
            a.deallocate_tracked(&mut ThreadCache::new(), early.allocation.ptr, early.allocation.generation).unwrap();
        }
        assert_eq!(a.stats().live_allocations, 0);
    }

    #[test]
    fn a_cancelled_hand_off_gives_the_sender_its_block_back_under_its_old_generation() {
        let (a, mut sender, receiver) = setup();
        let sent = a.allocate_tracked(&mut sender, 640).unwrap();
        // SAFETY: the sender gives the block up (and gets it back below).
        let (token, _) = unsafe { a.hand_off(sent.ptr, sent.generation, 7, &sender) }.unwrap();
        assert_eq!(a.cancel_hand_off(token), Ok(()));
        assert_eq!(a.cancel_hand_off(token), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.receive(token, &receiver), Err(HandoffError::AlreadyReceived));
        let stats = a.stats();
        assert_eq!((stats.in_flight_count, stats.in_flight_bytes, stats.live_allocations), (0, 0, 1));
        // SAFETY: the sender holds the block again, under its old generation.
        unsafe { a.deallocate_tracked(&mut sender, sent.ptr, sent.generation) }.unwrap();
        assert_eq!(a.stats().live_allocations, 0);
    }

    #[test]
    fn dropping_a_bound_sender_orphans_its_hand_offs() {
        let (a, mut sender, _) = setup();
        let token = send(&a, &mut sender, 64);
        drop(sender);
        let orphans = a.orphaned_hand_offs();
        assert_eq!(orphans.iter().map(|o| o.token).collect::<Vec<_>>(), [token]);
        assert_eq!(a.reclaim(token), Ok(64));
    }
}

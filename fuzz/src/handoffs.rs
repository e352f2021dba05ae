//! The model's hand-off operations: hand off, receive, reclaim or cancel, spent and forged
//! tokens, and reclaiming the hand-offs of caches that are gone.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Model<'_, '_> {
    pub(super) fn hand_off(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let Some(generation) = self.live[&key].generation else { return };
        let c = self.cache();
        let label = self.u.arbitrary().unwrap_or(0);
        let sender = self.caches[c].id();
        let b = self.remove_live(key);
        // SAFETY: the model gives up the block (it is in flight from here on).
        let result = unsafe { self.a.hand_off(b.ptr, generation, label, &self.caches[c]) };
        let (token, next) = result.unwrap_or_else(|e| panic!("{}: hand-off of {:p}: {e:?}", self.where_(), b.ptr));
        assert_ne!(next, generation, "{}", self.where_());
        // The sender's handle is stale now.
        let cache = &mut self.caches[c];
        // SAFETY: rejected frees touch nothing.
        let stale = unsafe { self.a.deallocate_tracked(cache, b.ptr, generation) };
        self.expect_rejected("free of a handed-off block", stale, &[|e| matches!(e, FreeError::DoubleFree { .. })]);
        self.pending.push(Pending { block: b, token, label, old_generation: generation, generation: next, sender });
    }

    pub(super) fn pick_pending(&mut self) -> Option<usize> {
        if self.pending.is_empty() { None } else { Some(self.below(self.pending.len())) }
    }

    pub(super) fn check_received(&self, p: &Pending, r: &tensor_arena_core::Received) {
        let w = self.where_();
        assert_eq!(r.allocation.ptr, p.block.ptr, "{w}: received block");
        assert_eq!(r.allocation.generation, p.generation, "{w}: received generation");
        assert_eq!(r.requested, p.block.size, "{w}: received size");
        assert_eq!(r.label, p.label, "{w}: received label");
    }

    pub(super) fn receive(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let c = self.cache();
        let refuse = self.byte() & 3 == 0;
        if refuse {
            let token = self.pending[i].token;
            let result = self.a.receive_if(token, &self.caches[c], |_| false);
            assert_eq!(result.map(|_| ()), Err(HandoffError::InvalidHandle), "{}: refused receive", self.where_());
            return;
        }
        let p = self.pending.swap_remove(i);
        let seen = self.a.in_flight(p.token).unwrap_or_else(|| panic!("{}: in_flight lost a hand-off", self.where_()));
        self.check_received(&p, &seen);
        let r =
            self.a.receive(p.token, &self.caches[c]).unwrap_or_else(|e| panic!("{}: receive: {e:?}", self.where_()));
        self.check_received(&p, &r);
        self.check_block(&p.block, "received");
        assert!(self.a.in_flight(p.token).is_none(), "{}: received yet in flight", self.where_());
        self.spent.push(p.token);
        let owner = self.caches[c].id();
        self.insert_live(Block { generation: Some(p.generation), owner, ..p.block });
    }

    pub(super) fn reclaim_or_cancel(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let p = self.pending.swap_remove(i);
        self.check_block(&p.block, "in flight");
        if self.coin() {
            let freed = self.a.reclaim(p.token).unwrap_or_else(|e| panic!("{}: reclaim: {e:?}", self.where_()));
            assert_eq!(freed, p.block.size, "{}: reclaimed size", self.where_());
            self.forget(&p.block, Some(p.generation));
        } else {
            self.a.cancel_hand_off(p.token).unwrap_or_else(|e| panic!("{}: cancel: {e:?}", self.where_()));
            self.insert_live(Block { generation: Some(p.old_generation), ..p.block });
        }
        self.spent.push(p.token);
    }

    pub(super) fn spent_token(&mut self) {
        if self.spent.is_empty() {
            return;
        }
        let i = self.below(self.spent.len());
        let token = self.spent[i];
        let c = self.cache();
        let result = match self.byte() % 3 {
            0 => self.a.receive(token, &self.caches[c]).map(|_| ()),
            1 => self.a.reclaim(token).map(|_| ()),
            _ => self.a.cancel_hand_off(token),
        };
        assert_eq!(result, Err(HandoffError::AlreadyReceived), "{}: spent token", self.where_());
        assert!(self.a.in_flight(token).is_none(), "{}", self.where_());
    }

    pub(super) fn forged_token(&mut self) {
        let known: Vec<Token> = self.pending.iter().map(|p| p.token).chain(self.spent.iter().copied()).collect();
        let token = if !known.is_empty() && self.coin() {
            let t = known[self.below(known.len())];
            Token::from_bits(t.bits() ^ (1u128 << self.below(128)))
        } else {
            Token::from_bits(self.u.arbitrary().unwrap_or(0))
        };
        if known.contains(&token) {
            return;
        }
        // A token made up without the keys is genuine with probability 2^-64.
        assert!(self.a.in_flight(token).is_none(), "{}: forged token in flight", self.where_());
        let c = self.cache();
        let result = match self.byte() % 3 {
            0 => self.a.receive(token, &self.caches[c]).map(|_| ()),
            1 => self.a.reclaim(token).map(|_| ()),
            _ => self.a.cancel_hand_off(token),
        };
        assert_eq!(result, Err(HandoffError::InvalidHandle), "{}: forged token", self.where_());
        let text = token.to_text();
        assert_eq!(Token::parse(&text[..]), Some(token), "{}: token text", self.where_());
    }

    pub(super) fn reclaim_unreachable(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let b = self.live[&key];
        let Some(g) = b.generation else { return };
        // SAFETY: a wrong generation: nothing is freed.
        assert!(!unsafe { self.a.reclaim_unreachable(b.ptr, g.wrapping_add(1)) }, "{}", self.where_());
        let b = self.remove_live(key);
        self.check_block(&b, "before reclaim_unreachable");
        // SAFETY: the model gives the block up.
        assert!(unsafe { self.a.reclaim_unreachable(b.ptr, g) }, "{}: reclaim_unreachable", self.where_());
        self.forget(&b, None);
    }

    // --- scribbling -----------------------------------------------------------------
}

//! Statistics, defined from one field list per struct: the list below generates the
//! Rust struct, its `FIELDS` metadata (name, gauge or counter, doc) and `field_values`,
//! which the Node binding turns into its JS object and the TypeScript interface mirrors.

use crate::size_class::NUM_CLASSES;

/// Whether a statistic can go down (a gauge) or only grows (a monotonic counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    /// A current level; rises and falls.
    Gauge,
    /// Monotonic since the allocator was built.
    Counter,
}

/// Description of one statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatField {
    /// snake_case field name.
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: StatKind,
    /// One-line description.
    pub doc: &'static str,
}

macro_rules! stat_struct {
    ($(#[$meta:meta])* $ty:ident { $( $name:ident : $kind:ident = $doc:literal ),* $(,)? }
     $( $(#[$emeta:meta])* pub $ename:ident : [$ety:ty; NUM_CLASSES], )?) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $ty {
            $( #[doc = $doc] pub $name: u64, )*
            $( $(#[$emeta])* pub $ename: [$ety; NUM_CLASSES], )?
        }

        impl Default for $ty {
            fn default() -> Self {
                Self {
                    $( $name: 0, )*
                    $( $ename: std::array::from_fn(|_| <$ety>::default()), )?
                }
            }
        }

        impl $ty {
            /// The field list, in declaration order.
            pub const FIELDS: &'static [StatField] = &[
                $( StatField { name: stringify!($name), kind: StatKind::$kind, doc: $doc }, )*
            ];

            /// `(name, value)` of every field in [`Self::FIELDS`] order.
            #[must_use]
            pub fn field_values(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

stat_struct! {
    /// A snapshot of the whole allocator. Best effort: subsystems are read one after the
    /// other, not atomically together.
    AllocatorStats {
        max_bytes: Gauge = "The cap on carved bytes (max_bytes rounded up to pages), or 0 when the arena grows without one.",
        reserved_bytes: Gauge = "Address space reserved for user memory (all regions); committed a chunk at a time as carving reaches it.",
        regions: Gauge = "Regions (reservations) the arena has grown to.",
        carved_bytes: Gauge = "Bytes carved from the regions so far (slabs, large allocations and free spans); never shrinks.",
        remaining_bytes: Gauge = "Bytes that can still be carved or reused without growing: free spans plus the uncarved rest of the newest region (with a cap: everything left under it).",
        metadata_bytes: Gauge = "Bytes of out-of-band metadata in use: the block-table entries of every slab and large allocation, and the slab map of the committed memory.",
        free_span_bytes: Gauge = "Bytes in free spans, available to any class or the large path.",
        retained_bytes: Gauge = "Free span bytes possibly still committed (not yet returned to the OS).",
        released_bytes_total: Counter = "Bytes returned to the OS (madvise) so far.",
        live_allocations: Gauge = "Blocks handed out and not yet freed (small and large).",
        live_bytes: Gauge = "Requested bytes of all live allocations (a zero-length hand-out from Node asks the core for one byte, so it counts 1).",
        large_live_allocations: Gauge = "Live large allocations.",
        large_live_bytes: Gauge = "Requested bytes of live large allocations.",
        in_flight_count: Gauge = "Blocks handed off to another thread and not yet received.",
        in_flight_bytes: Gauge = "Requested bytes of in_flight_count.",
        central_blocks: Gauge = "Free blocks held by the central pool, remote-free inboxes included.",
        central_bytes: Gauge = "Block bytes of central_blocks.",
        inbox_blocks: Gauge = "Blocks freed by a thread other than their owner, waiting in a class inbox.",
        thread_caches: Gauge = "Thread caches bound to this allocator.",
        thread_cache_blocks: Gauge = "Free blocks held by all bound thread caches, lent blocks (kept by a layer above for reuse) included.",
        thread_cache_bytes: Gauge = "Block bytes of thread_cache_blocks.",
        slabs: Gauge = "Slabs owned by size classes.",
        empty_slabs: Gauge = "Slabs whose blocks are all free in the central pool.",
        allocations_total: Counter = "Successful allocations.",
        frees_total: Counter = "Successful frees.",
        remote_frees_total: Counter = "Frees of a block owned by another thread cache (through the inbox).",
        rejected_frees_total: Counter = "Frees rejected with an error (double free, not allocated here, not a block start, size mismatch), by the allocator or by a layer above it that refused before calling it (record_rejected_free: in Node, stale views, detached, foreign or moved buffers); a finalizer that finds its block freed already counts none.",
    }
    /// Per size class, indexed by class index.
    pub classes: [ClassStats; NUM_CLASSES],
}

stat_struct! {
    /// One size class.
    ClassStats {
        payload: Gauge = "Largest request the class serves.",
        block: Gauge = "Bytes one block occupies in user memory (the payload rounded up to the alignment).",
        metadata_per_block: Gauge = "Bytes of out-of-band metadata per block: the block-table entries its bytes span (16 bytes per granule of the class's table).",
        slabs: Gauge = "Slabs the class owns.",
        central_blocks: Gauge = "Free blocks in the central pool (inbox included).",
        central_bytes: Gauge = "Block bytes of central_blocks.",
        cached_blocks: Gauge = "Free blocks in bound thread caches (lent blocks included).",
        cached_bytes: Gauge = "Block bytes of cached_blocks.",
        carved_bytes: Gauge = "Bytes of the class's slabs (slabs times the class's slab size): what the class holds of the carved bytes.",
        live_blocks: Gauge = "Blocks handed out and not yet freed (in-flight hand-offs included): the blocks of its slabs minus central_blocks and cached_blocks.",
        live_block_bytes: Gauge = "Block bytes of live_blocks (the requested bytes they hold are at most this).",
    }
}

stat_struct! {
    /// One thread cache.
    ThreadCacheStats {
        id: Gauge = "Process-unique cache id.",
        bound: Gauge = "1 when bound to an allocator, else 0.",
        blocks: Gauge = "Free blocks the cache holds (lent blocks included).",
        bytes: Gauge = "Block bytes of blocks.",
    }
    /// Free blocks held, per class index.
    pub class_blocks: [u64; NUM_CLASSES],
}

impl AllocatorStats {
    /// `carved_bytes - free_span_bytes`: bytes in slabs and live large spans.
    #[must_use]
    pub const fn in_use_span_bytes(&self) -> u64 {
        self.carved_bytes.saturating_sub(self.free_span_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_list_and_values_line_up() {
        let stats = AllocatorStats { max_bytes: 7, rejected_frees_total: 9, ..Default::default() };
        let values = stats.field_values();
        assert_eq!(values.len(), AllocatorStats::FIELDS.len());
        for (field, (name, _)) in AllocatorStats::FIELDS.iter().zip(&values) {
            assert_eq!(field.name, *name);
            assert!(!field.doc.is_empty());
        }
        assert_eq!(values[0], ("max_bytes", 7));
        assert_eq!(values.last(), Some(&("rejected_frees_total", 9)));
        assert!(AllocatorStats::FIELDS.iter().any(|f| f.kind == StatKind::Counter));
    }

    #[test]
    fn readme_documents_every_stat_field() {
        let readme = include_str!("../../../README.md");
        for field in AllocatorStats::FIELDS.iter().chain(ClassStats::FIELDS) {
            assert!(readme.contains(&format!("`{}`", field.name)), "README misses `{}`", field.name);
        }
    }
}

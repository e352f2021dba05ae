//! Typed errors with structured fields. Each has a stable `code()` that the Node layer
//! passes through to JavaScript.

use std::fmt;

/// Why an [`Allocator`](crate::Allocator) could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// A configuration field is out of range.
    InvalidConfig {
        /// The `AllocatorConfig` field at fault.
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
        /// The value given.
        value: usize,
    },
    /// The OS refused to reserve the arena.
    MapFailed {
        /// Bytes asked for.
        size: usize,
        /// The OS error number.
        errno: i32,
    },
}

/// Why an allocation failed. Nothing was reserved when one of these is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The request is 0 bytes, or too large to describe.
    InvalidSize {
        /// The request.
        requested: usize,
    },
    /// The arena is at its cap (`max_bytes`) and cannot hold the request.
    OutOfMemory {
        /// The request.
        requested: usize,
        /// Bytes the arena could still supply: never carved plus free spans (not
        /// necessarily contiguous).
        remaining: usize,
        /// The cap (`max_bytes` rounded up to pages); 0 when the arena has none (then it
        /// reached the most regions it can grow to).
        cap: usize,
    },
    /// The OS refused to reserve or commit more memory for the request.
    SystemOutOfMemory {
        /// The request.
        requested: usize,
        /// The OS error number.
        errno: i32,
    },
    /// Global API only: this thread's cache is gone (thread teardown) or in use
    /// (re-entrant call).
    CacheUnavailable,
    /// Global API only: the global allocator could not be built.
    InitFailed(InitError),
}

/// Why a free was rejected. The allocation is left exactly as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The pointer is not the start of a block this allocator handed out: outside its
    /// arena, off its alignment grid, or where no block starts.
    ForeignPointer {
        /// The pointer.
        addr: usize,
    },
    /// The block is not allocated: it was freed already, or (with a generation) it was
    /// freed and handed out again since.
    DoubleFree {
        /// The pointer.
        addr: usize,
    },
    /// A size-checked free gave a size other than the one requested at allocation.
    SizeMismatch {
        /// The pointer.
        addr: usize,
        /// Size given to the free.
        provided: usize,
        /// Size recorded at allocation.
        recorded: usize,
    },
    /// Global API only: see [`AllocError::CacheUnavailable`].
    CacheUnavailable,
    /// Global API only: see [`AllocError::InitFailed`].
    InitFailed(InitError),
}

impl InitError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidConfig { .. } => "ERR_INVALID_CONFIG",
            Self::MapFailed { .. } => "ERR_MAP_FAILED",
        }
    }
}

impl AllocError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidSize { .. } => "ERR_INVALID_SIZE",
            Self::OutOfMemory { .. } | Self::SystemOutOfMemory { .. } => "ERR_OUT_OF_MEMORY",
            Self::CacheUnavailable => "ERR_CACHE_UNAVAILABLE",
            Self::InitFailed(e) => e.code(),
        }
    }
}

impl FreeError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::ForeignPointer { .. } => "ERR_NOT_OWNED",
            Self::DoubleFree { .. } => "ERR_DOUBLE_FREE",
            Self::SizeMismatch { .. } => "ERR_SIZE_MISMATCH",
            Self::CacheUnavailable => "ERR_CACHE_UNAVAILABLE",
            Self::InitFailed(e) => e.code(),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { field, reason, value } => {
                write!(f, "invalid allocator configuration: {field} {reason}; got {value}")
            }
            Self::MapFailed { size, errno } => write!(
                f,
                "the operating system refused to reserve {} of address space for the arena (OS error {errno}); ask for a smaller max_bytes (or region_bytes), or raise the process's address-space limit (ulimit -v)",
                Bytes(*size)
            ),
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSize { requested } => write!(f, "invalid allocation size {requested}"),
            Self::OutOfMemory { requested, remaining, cap: 0 } => write!(
                f,
                "arena out of memory: requested {}, {} free, and the arena has grown to as many regions as it can; free allocations you no longer need{}",
                Bytes(*requested),
                Bytes(*remaining),
                contiguity(*requested, *remaining),
            ),
            Self::OutOfMemory { requested, remaining, cap } => write!(
                f,
                "arena out of memory at its cap: requested {}, but only {} of the cap of {} (max_bytes) are free{}; free allocations you no longer need, or raise max_bytes",
                Bytes(*requested),
                Bytes(*remaining),
                Bytes(*cap),
                contiguity(*requested, *remaining),
            ),
            Self::SystemOutOfMemory { requested, errno } => write!(
                f,
                "out of memory: the operating system refused more memory for a request of {} (OS error {errno}); the arena has no cap (max_bytes), so it grows until the system says no: free allocations you no longer need, or set max_bytes to bound the arena below what the machine can give",
                Bytes(*requested)
            ),
            Self::CacheUnavailable => f.write_str("this thread's cache is unavailable"),
            Self::InitFailed(e) => write!(f, "global allocator unavailable: {e}"),
        }
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignPointer { addr } => {
                write!(f, "pointer {addr:#x} was not handed out by this allocator")
            }
            Self::DoubleFree { addr } => {
                write!(f, "block {addr:#x} is not allocated (double free)")
            }
            Self::SizeMismatch { addr, provided, recorded } => {
                write!(f, "size mismatch freeing {addr:#x}: given {provided}, allocated {recorded}")
            }
            Self::CacheUnavailable => f.write_str("this thread's cache is unavailable"),
            Self::InitFailed(e) => write!(f, "global allocator unavailable: {e}"),
        }
    }
}

/// A byte count as `N bytes (x.y MiB)` (the unit that suits it: KiB, MiB, GiB or TiB).
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        let n = self.0;
        let unit = UNITS.iter().find(|&&(_, shift)| n >= 1 << shift).or(UNITS.last());
        match unit {
            Some(&(name, shift)) if n >= 1024 => {
                let scaled = n as f64 / (1u64 << shift) as f64;
                let text = format!("{scaled:.2}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                write!(f, "{n} bytes ({text} {name})")
            }
            _ => write!(f, "{n} bytes"),
        }
    }
}

/// Why free bytes may not serve a request: a large request (above the largest class)
/// needs one contiguous span.
fn contiguity(requested: usize, remaining: usize) -> String {
    if requested > crate::size_class::MAX_SMALL_SIZE {
        format!(
            " (a request above {} needs one contiguous run of pages, and free bytes split between live blocks do not form one{})",
            Bytes(crate::size_class::MAX_SMALL_SIZE),
            if remaining >= requested { ": the free bytes are enough in number but not contiguous" } else { "" }
        )
    } else if remaining >= requested {
        " (the free bytes are split between live blocks and slabs of other classes: none forms the contiguous run of pages the request's size class needs)".to_owned()
    } else {
        String::new()
    }
}

impl std::error::Error for InitError {}
impl std::error::Error for AllocError {}
impl std::error::Error for FreeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_in_bytes_and_the_unit_that_suits_them() {
        assert_eq!(Bytes(100).to_string(), "100 bytes");
        assert_eq!(Bytes(5000).to_string(), "5000 bytes (4.88 KiB)");
        assert_eq!(Bytes(64 << 20).to_string(), "67108864 bytes (64 MiB)");
        assert_eq!(Bytes(3 << 29).to_string(), "1610612736 bytes (1.5 GiB)");
        assert_eq!(Bytes(1 << 46).to_string(), "70368744177664 bytes (64 TiB)");
    }

    #[test]
    fn out_of_memory_messages_give_the_numbers_and_what_to_do() {
        let at_cap = AllocError::OutOfMemory { requested: 1 << 20, remaining: 4096, cap: 16 << 20 }.to_string();
        assert_eq!(
            at_cap,
            "arena out of memory at its cap: requested 1048576 bytes (1 MiB), but only 4096 bytes (4 KiB) of the cap of 16777216 bytes (16 MiB) (max_bytes) are free; free allocations you no longer need, or raise max_bytes"
        );
        let split = AllocError::OutOfMemory { requested: 64 << 20, remaining: 64 << 20, cap: 64 << 20 }.to_string();
        assert!(split.contains("requested 67108864 bytes (64 MiB), but only 67108864 bytes (64 MiB)"), "{split}");
        assert!(split.contains("needs one contiguous run of pages") && split.contains("not contiguous"), "{split}");
        let system = AllocError::SystemOutOfMemory { requested: 3 << 20, errno: 12 }.to_string();
        assert!(system.contains("3145728 bytes (3 MiB)") && system.contains("OS error 12"), "{system}");
        assert!(system.contains("no cap (max_bytes)") && system.contains("set max_bytes"), "{system}");
        let map = InitError::MapFailed { size: 1 << 40, errno: 12 }.to_string();
        assert!(
            map.contains("1099511627776 bytes (1 TiB) of address space") && map.contains("smaller max_bytes"),
            "{map}"
        );
    }
}

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
            Self::InvalidConfig { field, reason } => {
                write!(f, "invalid allocator configuration: {field} {reason}")
            }
            Self::MapFailed { size, errno } => {
                write!(f, "failed to reserve a {size}-byte arena (OS error {errno})")
            }
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSize { requested } => write!(f, "invalid allocation size {requested}"),
            Self::OutOfMemory { requested, remaining, cap: 0 } => write!(
                f,
                "arena out of memory: requested {requested} bytes, {remaining} bytes remaining and the arena cannot grow further"
            ),
            Self::OutOfMemory { requested, remaining, cap } => write!(
                f,
                "arena out of memory: requested {requested} bytes, but only {remaining} of the cap of {cap} bytes (max_bytes) are free; free allocations or raise max_bytes"
            ),
            Self::SystemOutOfMemory { requested, errno } => write!(
                f,
                "out of memory: the operating system refused more memory for a request of {requested} bytes (OS error {errno})"
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

impl std::error::Error for InitError {}
impl std::error::Error for AllocError {}
impl std::error::Error for FreeError {}

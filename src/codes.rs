//! Numeric result codes shared with the TypeScript layer (`src/ts/codes.ts` holds the
//! same table). Hot-path callbacks return these instead of throwing, so the TypeScript
//! layer can throw its own `AllocatorError` with the string code.

use tensor_arena_core::{AllocError, FreeError, HandoffError, InitError};

/// A failure the TypeScript layer turns into an `AllocatorError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Code {
    OutOfMemory = 1,
    NotOwned = 2,
    DoubleFree = 3,
    InvalidConfig = 4,
    ExternalBuffersUnsupported = 5,
    InvalidSize = 6,
    UnknownArena = 7,
    ThreadStateUnavailable = 8,
    AlreadyReceived = 9,
    InvalidHandle = 10,
}

impl Code {
    /// The value a hot-path callback returns for this failure (always negative).
    pub(crate) fn as_return(self) -> f64 {
        -f64::from(self as u8)
    }

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::OutOfMemory => "ERR_OUT_OF_MEMORY",
            Self::NotOwned => "ERR_NOT_OWNED",
            Self::DoubleFree => "ERR_DOUBLE_FREE",
            Self::InvalidConfig => "ERR_INVALID_CONFIG",
            Self::ExternalBuffersUnsupported => "ERR_EXTERNAL_BUFFERS_UNSUPPORTED",
            Self::InvalidSize => "ERR_INVALID_SIZE",
            Self::UnknownArena => "ERR_UNKNOWN_ARENA",
            Self::ThreadStateUnavailable => "ERR_THREAD_STATE_UNAVAILABLE",
            Self::AlreadyReceived => "ERR_ALREADY_RECEIVED",
            Self::InvalidHandle => "ERR_INVALID_HANDLE",
        }
    }
}

impl From<AllocError> for Code {
    fn from(error: AllocError) -> Self {
        match error {
            AllocError::OutOfMemory { .. } | AllocError::SystemOutOfMemory { .. } => Self::OutOfMemory,
            AllocError::InvalidSize { .. } => Self::InvalidSize,
            AllocError::CacheUnavailable => Self::ThreadStateUnavailable,
            AllocError::InitFailed(e) => e.into(),
        }
    }
}

impl From<FreeError> for Code {
    fn from(error: FreeError) -> Self {
        match error {
            FreeError::ForeignPointer { .. } | FreeError::SizeMismatch { .. } => Self::NotOwned,
            FreeError::DoubleFree { .. } => Self::DoubleFree,
            FreeError::CacheUnavailable => Self::ThreadStateUnavailable,
            FreeError::InitFailed(e) => e.into(),
        }
    }
}

impl From<InitError> for Code {
    fn from(_: InitError) -> Self {
        Self::InvalidConfig
    }
}

impl From<HandoffError> for Code {
    fn from(error: HandoffError) -> Self {
        match error {
            HandoffError::Free(e) => e.into(),
            HandoffError::AlreadyReceived => Self::AlreadyReceived,
            HandoffError::InvalidHandle => Self::InvalidHandle,
        }
    }
}

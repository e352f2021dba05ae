//! The one table of `AllocatorError` codes: numeric value, string code and default message.
//! Hot-path callbacks return `-value` instead of throwing, so the TypeScript layer throws its
//! own `AllocatorError`; `scripts/gen-codes.cjs` writes `src/ts/codes.ts` from this table
//! (through `errorCodes()`), so the two sides cannot drift.

use tensor_arena_core::{AllocError, FreeError, HandoffError, InitError};

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $value:literal => $name:literal, $message:literal;)*) => {
        /// A failure the TypeScript layer turns into an `AllocatorError`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Code {
            $($(#[$doc])* $variant = $value,)*
        }

        impl Code {
            /// Every code: `(value, name, default message)`, in value order.
            pub(crate) const ALL: &[(u8, &str, &str)] = &[$(($value, $name, $message),)*];

            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// The arena (at its cap) or the operating system has no memory for the request.
    OutOfMemory = 1 => "ERR_OUT_OF_MEMORY", "arena out of memory";
    /// Not something this arena handed out (in this thread).
    NotOwned = 2 => "ERR_NOT_OWNED", "not a buffer, array or view handed out by this arena";
    /// Freed (or handed off) already.
    DoubleFree = 3 => "ERR_DOUBLE_FREE", "already freed";
    /// Arena options out of range.
    InvalidConfig = 4 => "ERR_INVALID_CONFIG", "invalid arena options";
    /// The runtime refuses external ArrayBuffers.
    ExternalBuffersUnsupported = 5 => "ERR_EXTERNAL_BUFFERS_UNSUPPORTED",
        "this runtime does not allow external ArrayBuffers (V8 sandbox, e.g. Electron): tensor-arena cannot expose arena memory here";
    /// A size the allocator cannot serve.
    InvalidSize = 6 => "ERR_INVALID_SIZE", "invalid size";
    /// The arena id is not (or no longer) registered.
    UnknownArena = 7 => "ERR_UNKNOWN_ARENA", "this arena no longer exists";
    /// The thread's state is gone (thread shutting down).
    ThreadStateUnavailable = 8 => "ERR_THREAD_STATE_UNAVAILABLE",
        "this thread's allocator state is unavailable (thread shutting down)";
    /// A hand-off was received or reclaimed already.
    AlreadyReceived = 9 => "ERR_ALREADY_RECEIVED", "this hand-off was received (or reclaimed) already";
    /// A forged or altered hand-off handle.
    InvalidHandle = 10 => "ERR_INVALID_HANDLE", "not a hand-off handle issued by this arena, or an altered one";
    /// The runtime could not make a window onto arena memory (raised by the TypeScript layer).
    #[allow(dead_code, reason = "raised by the TypeScript layer only; listed for the generated table")]
    ViewUnsupported = 11 => "ERR_VIEW_UNSUPPORTED", "this runtime cannot create a window onto arena memory";
    /// The operating system's random number generator failed: no hand-off token can be made.
    RandomUnavailable = 12 => "ERR_RANDOM_UNAVAILABLE",
        "the operating system's random number generator is unavailable: no hand-off token can be made";
}

impl Code {
    /// The value a hot-path callback returns for this failure (always negative).
    pub(crate) fn as_return(self) -> f64 {
        -f64::from(self as u8)
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
            HandoffError::RandomUnavailable => Self::RandomUnavailable,
        }
    }
}

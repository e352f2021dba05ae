/**
 * tensor-arena: an arena allocator for Node.js tensor pipelines.
 *
 * @packageDocumentation
 */
import { Arena, LAZY_DEFAULT, type ArenaAllocation, type TransferHandle } from './arena.js'
import type { AllocOptions } from './options.js'
import type { DType, TypedArrayOf } from './dtypes.js'
import type { ArenaStats } from './stats.js'
import type { ArenaReport } from './report.js'
import type { Keep } from './scope.js'

export { Arena } from './arena.js'
export type { ArenaAllocation, TransferHandle } from './arena.js'
export type { AllocOptions, ArenaOptions } from './options.js'
export { AllocatorError } from './errors.js'
export type {
  AllocatorErrorCode,
  AllocatorErrorConstructor,
  AllocatorErrorDetails,
  ArgumentRangeError,
  ArgumentRangeErrorCode,
  ArgumentTypeError,
  ArgumentTypeErrorCode,
  OutOfMemoryError,
  PlainAllocatorError,
  PlainAllocatorErrorCode,
  TensorArenaError,
} from './errors.js'
export type { NativeLoadError, NativeLoadErrorCode } from './load-native.js'
export { DTYPES } from './dtypes.js'
export type { DType, TypedArrayOf } from './dtypes.js'
export { MAX_SMALL_SIZE, SIZE_CLASS_BYTES, SizeClass, sizeClassOf } from './size-class.js'
export { ARENA_STAT_FIELDS } from './stats.js'
export type { ArenaStats, ClassStats, ThreadCacheStats } from './stats.js'
export { ThreadCache } from './thread-cache.js'
export type { ArenaReport, ClassReport, ReportTotals } from './report.js'
export { SCOPE_WALK_DEPTH } from './scope.js'
export type { Keep } from './scope.js'

/**
 * The process-wide default arena (default options), created on first use. Its memory is
 * shared by the main thread and every worker; each thread allocates through its own cache.
 */
export const defaultArena: Arena = new Arena(LAZY_DEFAULT)

/**
 * `defaultArena.alloc`: an exclusive ArrayBuffer of `byteLength` bytes.
 * @throws see {@link Arena.alloc}
 */
export function alloc(byteLength: number, options?: AllocOptions): ArrayBuffer {
  return defaultArena.alloc(byteLength, options)
}

/**
 * `defaultArena.array`: a typed array over its own exclusive buffer.
 * @throws see {@link Arena.array}
 */
export function array<D extends DType>(dtype: D, length: number, options?: AllocOptions): TypedArrayOf<D> {
  return defaultArena.array(dtype, length, options)
}

/**
 * `defaultArena.view`: a typed array over this thread's window (the fast path).
 * @throws see {@link Arena.view}
 */
export function view<D extends DType>(dtype: D, length: number, options?: AllocOptions): TypedArrayOf<D> {
  return defaultArena.view(dtype, length, options)
}

/**
 * `defaultArena.free`.
 * @throws see {@link Arena.free}
 */
export function free(allocation: ArenaAllocation): void {
  defaultArena.free(allocation)
}

/** `defaultArena.stats()`. */
export function stats(): ArenaStats {
  return defaultArena.stats()
}

/** `defaultArena.report()`: the default arena's memory report. */
export function report(): ArenaReport {
  return defaultArena.report()
}

/**
 * `defaultArena.transfer`: hands an allocation to another thread without copying.
 * @throws see {@link Arena.transfer}
 */
export function transfer<T extends ArenaAllocation>(allocation: T): TransferHandle<T> {
  return defaultArena.transfer(allocation)
}

/**
 * `defaultArena.receive`: claims a hand-off, exactly once.
 * @throws see {@link Arena.receive}
 */
export function receive<T extends ArenaAllocation>(handle: TransferHandle<T>): T {
  return defaultArena.receive(handle)
}

/**
 * `defaultArena.reclaim`: frees a hand-off that will never be received.
 * @throws see {@link Arena.reclaim}
 */
export function reclaim(handle: TransferHandle): void {
  defaultArena.reclaim(handle)
}

/**
 * `defaultArena.orphanedTransfers`: the default arena's in-flight hand-offs whose sending
 * thread has exited, as handles to `reclaim` (or `receive`).
 * @throws see {@link Arena.orphanedTransfers}
 */
export function orphanedTransfers(): TransferHandle[] {
  return defaultArena.orphanedTransfers()
}

/**
 * `defaultArena.scope`: runs `fn(keep)`, then frees every hand-out of the default arena
 * this thread made inside it, except what `fn` returns and what it passed to `keep`; for an
 * async `fn`, when its promise settles (README "Scopes").
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `fn` is not a function; what `fn` throws
 *   (or its promise's rejection), after everything was freed.
 */
export function scope<T>(fn: (keep: Keep) => T): T {
  return defaultArena.scope(fn)
}

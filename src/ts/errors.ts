import { type AllocatorErrorCode, MESSAGES, NATIVE_CODES } from './codes.js'

export type { AllocatorErrorCode } from './codes.js'

/** The codes of {@link AllocatorError}s that carry no extra fields (all but `ERR_OUT_OF_MEMORY`). */
export type PlainAllocatorErrorCode = Exclude<AllocatorErrorCode, 'ERR_OUT_OF_MEMORY'>

/** The extra fields of an `ERR_OUT_OF_MEMORY` (the third argument of `new AllocatorError`). */
export interface AllocatorErrorDetails {
  /** Bytes requested (0 for a hand-off that could not be made). */
  readonly requested: number
  /**
   * Bytes the arena could still supply, not necessarily contiguous; 0 when the operating
   * system refused more memory (an arena without a cap).
   */
  readonly available: number
  /** The arena's cap (`maxBytes`), for an out-of-memory at the cap; absent when the operating system refused. */
  readonly maxBytes?: number
}

/**
 * An {@link AllocatorError} with code `ERR_OUT_OF_MEMORY`: the only one with `requested`
 * and `available`, always numbers (`maxBytes` only at a cap).
 */
export interface OutOfMemoryError extends Error, AllocatorErrorDetails {
  /** Always `ERR_OUT_OF_MEMORY`. */
  readonly code: 'ERR_OUT_OF_MEMORY'
}

/** An {@link AllocatorError} of any code but `ERR_OUT_OF_MEMORY`: no extra fields. */
export interface PlainAllocatorError<C extends PlainAllocatorErrorCode = PlainAllocatorErrorCode> extends Error {
  /** Which error. */
  readonly code: C
  /** Absent: only `ERR_OUT_OF_MEMORY` has it. */
  readonly requested?: undefined
  /** Absent: only `ERR_OUT_OF_MEMORY` has it. */
  readonly available?: undefined
  /** Absent: only `ERR_OUT_OF_MEMORY` has it. */
  readonly maxBytes?: undefined
}

/**
 * An error of the allocator itself (as opposed to an {@link ArgumentTypeError} or
 * {@link ArgumentRangeError} for a bad argument). `code` says which; the allocator and the
 * process keep working after any of them.
 *
 * The type is a union discriminated by `code`: after `error instanceof AllocatorError`,
 * `switch (error.code)` narrows it, and under `case 'ERR_OUT_OF_MEMORY'` `requested` and
 * `available` are `number`. `AllocatorError<'ERR_DOUBLE_FREE'>` is the error of one code.
 */
export type AllocatorError<C extends AllocatorErrorCode = AllocatorErrorCode> = C extends 'ERR_OUT_OF_MEMORY'
  ? OutOfMemoryError
  : C extends PlainAllocatorErrorCode
    ? PlainAllocatorError<C>
    : never

/** The type of the `AllocatorError` class: `instanceof AllocatorError` narrows to the {@link AllocatorError} union. */
export interface AllocatorErrorConstructor {
  /**
   * An out-of-memory error.
   * @param code - `ERR_OUT_OF_MEMORY`.
   * @param message - human-readable description.
   * @param details - `requested`, `available` and (at a cap) `maxBytes`.
   */
  new (code: 'ERR_OUT_OF_MEMORY', message: string, details: AllocatorErrorDetails): OutOfMemoryError
  /**
   * An error of any other code.
   * @param code - the error code.
   * @param message - human-readable description.
   */
  new <C extends PlainAllocatorErrorCode>(code: C, message: string): AllocatorError<C>
  /** Every `AllocatorError` inherits from it. */
  readonly prototype: AllocatorError
}

/**
 * The class of every {@link AllocatorError} (see that type for narrowing by `code`).
 * Typed through {@link AllocatorErrorConstructor}: the runtime class below sets
 * `requested`/`available` (numbers) exactly for `ERR_OUT_OF_MEMORY`, which is what the
 * union says, but no class declaration can express a union instance type.
 */
export const AllocatorError: AllocatorErrorConstructor = class AllocatorError extends Error {
  readonly code: AllocatorErrorCode
  // `declare`: no own property unless the constructor sets it (ERR_OUT_OF_MEMORY only).
  declare readonly requested?: number
  declare readonly available?: number
  declare readonly maxBytes?: number

  constructor(code: AllocatorErrorCode, message: string, details?: Partial<AllocatorErrorDetails>) {
    super(message)
    this.name = 'AllocatorError'
    this.code = code
    if (code !== 'ERR_OUT_OF_MEMORY') return
    this.requested = details?.requested ?? 0
    this.available = details?.available ?? 0
    if (details?.maxBytes !== undefined) this.maxBytes = details.maxBytes
  }
} as unknown as AllocatorErrorConstructor

/** Codes of the {@link ArgumentTypeError}s the package throws. */
export type ArgumentTypeErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE'

/**
 * The `TypeError` thrown for a bad argument, Node-style: `ERR_INVALID_ARG_TYPE` for a value
 * of the wrong type (never coerced), `ERR_INVALID_ARG_VALUE` for a value of the right type
 * that is not one of the accepted ones (an unknown dtype, a removed option).
 */
export interface ArgumentTypeError extends TypeError {
  /** Which of the two. */
  readonly code: ArgumentTypeErrorCode
}

/** Codes of the {@link ArgumentRangeError}s the package throws. */
export type ArgumentRangeErrorCode = 'ERR_OUT_OF_RANGE'

/**
 * The `RangeError` thrown for a number out of range, Node-style (a negative, fractional or
 * too large size or length; never truncated).
 */
export interface ArgumentRangeError extends RangeError {
  /** Always `ERR_OUT_OF_RANGE`. */
  readonly code: ArgumentRangeErrorCode
}

/**
 * Every error the package's functions and methods throw by design, discriminated by `code`
 * (see the README's Errors table).
 */
export type TensorArenaError = AllocatorError | ArgumentTypeError | ArgumentRangeError

/**
 * The error for a negative native result `-code`; for an out-of-memory, `available` and
 * `cap` (0: the arena has no cap, so the operating system refused) come from the native
 * scratch slots. @internal
 */
export function nativeFailure(result: number, requested?: number, available?: number, cap?: number): AllocatorError {
  const code = NATIVE_CODES[-result]
  if (code === undefined) {
    // The generated table and the addon disagree: a build mix-up, never a user error.
    const error = new Error(`tensor-arena internal error: unknown native result ${result} (dist/ is out of date?)`)
    throw Object.assign(error, { code: 'ERR_INTERNAL_ASSERTION' as const })
  }
  if (code !== 'ERR_OUT_OF_MEMORY') return new AllocatorError(code, MESSAGES[code])
  const want = requested ?? 0
  if (cap === undefined || cap === 0) {
    return new AllocatorError(
      code,
      `out of memory: the operating system refused more memory for a request of ${bytesText(want)}. ` +
        'This arena has no cap (maxBytes), so it grows until the system refuses: free the buffers and views you no ' +
        'longer need (arena.free), or give the arena a maxBytes below what the machine can provide, so that it ' +
        'reports ERR_OUT_OF_MEMORY before the system runs short',
      { requested: want, available: 0 },
    )
  }
  const free = available ?? 0
  return new AllocatorError(
    code,
    `arena out of memory at its cap: requested ${bytesText(want)}, but only ${bytesText(free)} of the cap of ` +
      `${bytesText(cap)} (maxBytes) are free${whyNotServed(want, free)}. Free the buffers and views you no longer ` +
      'need (arena.free), or create the arena with a larger maxBytes',
    { requested: want, available: free, maxBytes: cap },
  )
}

/** Largest request a size class serves (larger ones get their own run of pages). */
const LARGEST_CLASS = 16 * 1024 * 1024
const PAGE = 4096

/** Why `free` bytes did not serve a request of `requested` bytes, as a clause (or ''). */
function whyNotServed(requested: number, free: number): string {
  if (requested > LARGEST_CLASS) {
    const run = Math.ceil(requested / PAGE) * PAGE
    const split = free >= requested ? ': the free bytes add up to enough, but are split between live blocks' : ''
    return `; a request above 16 MiB (the largest size class) needs one contiguous run of ${bytesText(run)}${split}`
  }
  if (free >= requested) {
    return '; the free bytes are split between live blocks and the slabs of other size classes, and none forms the contiguous pages a new slab of this size class needs'
  }
  return ''
}

const UNITS: [string, number][] = [
  ['TiB', 2 ** 40],
  ['GiB', 2 ** 30],
  ['MiB', 2 ** 20],
  ['KiB', 2 ** 10],
]

/** `67108864 bytes (64 MiB)`: a byte count with the unit that suits it. @internal */
export function bytesText(bytes: number): string {
  const unit = UNITS.find(([, size]) => bytes >= size)
  if (unit === undefined) return `${bytes} bytes`
  const scaled = Number((bytes / unit[1]).toFixed(2))
  return `${bytes} bytes (${scaled} ${unit[0]})`
}

/** An `AllocatorError` with the default message for `code`. @internal */
export function allocatorError(code: PlainAllocatorErrorCode, detail?: string): AllocatorError {
  return new AllocatorError(code, detail === undefined ? MESSAGES[code] : `${MESSAGES[code]}: ${detail}`)
}

/** Converts an error thrown by a cold native call (plain `Error` with a string code). @internal */
export function fromNative(error: unknown): unknown {
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string') {
    const code = (error as unknown as { code: string }).code
    // The cold calls never fail with ERR_OUT_OF_MEMORY (src/cold.rs); were one to, its
    // `requested`/`available` would be unknown and read 0.
    if (code === 'ERR_OUT_OF_MEMORY') return new AllocatorError(code, error.message, { requested: 0, available: 0 })
    if (Object.hasOwn(MESSAGES, code)) return new AllocatorError(code as PlainAllocatorErrorCode, error.message)
  }
  return error
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${value.name}`
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  if (typeof value === 'bigint') return `type bigint (${value}n)`
  return `type ${typeof value} (${JSON.stringify(value) ?? String(value)})`
}

/** Node-style `TypeError` with code `ERR_INVALID_ARG_TYPE`. @internal */
export function invalidArgType(name: string, expected: string, value: unknown): ArgumentTypeError {
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`)
  return Object.assign(error, { code: 'ERR_INVALID_ARG_TYPE' as const })
}

/** Node-style `RangeError` with code `ERR_OUT_OF_RANGE`. @internal */
export function outOfRange(name: string, rule: string, value: unknown): ArgumentRangeError {
  const error = new RangeError(`The value of "${name}" is out of range. It must be ${rule}. Received ${String(value)}`)
  return Object.assign(error, { code: 'ERR_OUT_OF_RANGE' as const })
}

/**
 * Checks a byte or element count: a number (else `TypeError`), a non-negative safe
 * integer (else `RangeError`). Never coerces or truncates. @internal
 */
export function checkCount(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, 'a non-negative safe integer', value)
  return value
}

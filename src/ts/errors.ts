import { type AllocatorErrorCode, MESSAGES, NATIVE_CODES } from './codes.js'

export type { AllocatorErrorCode } from './codes.js'

/** Extra fields of an {@link AllocatorError}. */
export interface AllocatorErrorDetails {
  /** Bytes requested (out-of-memory errors). */
  readonly requested?: number
  /** Bytes the arena could still supply, not necessarily contiguous (out-of-memory errors). */
  readonly available?: number
  /** The arena's cap (`maxBytes`) for out-of-memory errors at the cap. */
  readonly maxBytes?: number
}

/**
 * An error of the allocator itself (as opposed to a `TypeError`/`RangeError` for a bad
 * argument). `code` says which; the allocator and the process keep working after any of
 * them.
 */
export class AllocatorError extends Error {
  /** Stable error code. */
  readonly code: AllocatorErrorCode
  /** Bytes requested, for `ERR_OUT_OF_MEMORY`. */
  readonly requested?: number
  /** Bytes still available, for `ERR_OUT_OF_MEMORY`. */
  readonly available?: number
  /** The arena's cap, for `ERR_OUT_OF_MEMORY` at the cap (absent when the OS refused memory). */
  readonly maxBytes?: number

  /**
   * @param code - the error code.
   * @param message - human-readable description.
   * @param details - `requested`/`available` for out-of-memory errors.
   */
  constructor(code: AllocatorErrorCode, message: string, details: AllocatorErrorDetails = {}) {
    super(message)
    this.name = 'AllocatorError'
    this.code = code
    if (details.requested !== undefined) this.requested = details.requested
    if (details.available !== undefined) this.available = details.available
    if (details.maxBytes !== undefined) this.maxBytes = details.maxBytes
  }
}

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
      { requested },
    )
  }
  const free = available ?? 0
  return new AllocatorError(
    code,
    `arena out of memory at its cap: requested ${bytesText(want)}, but only ${bytesText(free)} of the cap of ` +
      `${bytesText(cap)} (maxBytes) are free${whyNotServed(want, free)}. Free the buffers and views you no longer ` +
      'need (arena.free), or create the arena with a larger maxBytes',
    { requested, available, maxBytes: cap },
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
export function allocatorError(code: AllocatorErrorCode, detail?: string): AllocatorError {
  return new AllocatorError(code, detail === undefined ? MESSAGES[code] : `${MESSAGES[code]}: ${detail}`)
}

/** Converts an error thrown by a cold native call (plain `Error` with a string code). @internal */
export function fromNative(error: unknown): unknown {
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string') {
    const code = (error as unknown as { code: string }).code
    if (Object.hasOwn(MESSAGES, code)) return new AllocatorError(code as AllocatorErrorCode, error.message)
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
export function invalidArgType(name: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`)
  return Object.assign(error, { code: 'ERR_INVALID_ARG_TYPE' as const })
}

/** Node-style `RangeError` with code `ERR_OUT_OF_RANGE`. @internal */
export function outOfRange(name: string, rule: string, value: unknown): RangeError {
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

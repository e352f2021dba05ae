// The options users pass to `Arena` and to `alloc`/`array`/`view`, and their checks.
import { invalidArgType } from './errors.js'

/** Options of {@link Arena}. Every field is optional. */
export interface ArenaOptions {
  /**
   * A cap on the arena: at most this many bytes of memory are ever carved for buffers and
   * views, and allocating past it throws `ERR_OUT_OF_MEMORY`. A whole number of bytes from
   * 4096 (one page) to 70368744177664 (64 TiB); anything else throws `ERR_INVALID_CONFIG`
   * with the limit in the message (a cap below 4096 is refused, never rounded up). A cap
   * that is not a multiple of the page size is rounded up to whole pages (4 KiB; larger
   * where the OS pages are), and {@link Arena.maxBytes} reports the rounded cap. The cap
   * is reserved as address space up front, not committed.
   * Without it the arena grows as long as the operating system gives it memory (address
   * space is reserved in large regions and committed a 4 MiB chunk at a time).
   * @defaultValue no cap
   */
  readonly maxBytes?: number
  /**
   * Alignment of every buffer and view start: a power of two from 64 to 4096.
   * @defaultValue 64
   */
  readonly alignment?: number
  /**
   * Bytes a thread cache takes from the central pool at a time.
   * @defaultValue 32 KiB (32768)
   */
  readonly refillTargetBytes?: number
  /**
   * Bytes per size class a thread cache keeps before handing the excess back.
   * @defaultValue 64 KiB (65536)
   */
  readonly localCacheTargetBytes?: number
}

/** Options of `alloc`, `array` and `view`. */
export interface AllocOptions {
  /**
   * Zero-fill the memory (reused arena memory is otherwise not cleared).
   * @defaultValue false
   */
  readonly zero?: boolean
}

/**
 * `options.zero` as the native flag (0 or 1).
 * @throws TypeError `ERR_INVALID_ARG_TYPE` when `options` is not an object or `zero` not a boolean
 */
export function zeroOption(options: AllocOptions | undefined): number {
  if (options === undefined) return 0
  if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'of type object', options)
  const zero = options.zero
  if (zero === undefined) return 0
  if (typeof zero !== 'boolean') throw invalidArgType('options.zero', 'of type boolean', zero)
  return zero ? 1 : 0
}

function describeValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'bigint' ? `${value}n` : String(value)
}

function optionalNumber(options: ArenaOptions, key: keyof ArenaOptions): number | undefined {
  const value = options[key]
  if (value === undefined) return undefined
  if (typeof value !== 'number') throw invalidArgType(`options.${key}`, 'of type number', value)
  return value
}

/**
 * The native arguments for `options` (cap, alignment, refill, local cache targets); the
 * native side checks their ranges.
 * @throws TypeError `ERR_INVALID_ARG_TYPE` for a non-number field, `ERR_INVALID_ARG_VALUE` for the removed `arenaSize`
 */
export function arenaArgs(options: ArenaOptions & { arenaSize?: unknown }): [number?, number?, number?, number?] {
  if ('arenaSize' in options) {
    const error = new TypeError(
      `The "options.arenaSize" option was removed, use "maxBytes" instead (received arenaSize ${describeValue(options.arenaSize)}): ` +
        'arenas now grow on demand, and maxBytes caps them (a whole number of bytes from 4096 to 64 TiB)',
    )
    throw Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' as const })
  }
  return [
    optionalNumber(options, 'maxBytes'),
    optionalNumber(options, 'alignment'),
    optionalNumber(options, 'refillTargetBytes'),
    optionalNumber(options, 'localCacheTargetBytes'),
  ]
}

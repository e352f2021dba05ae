// Hand-off handles: what `transfer` returns and `receive`/`reclaim` accept. (No internal
// tag on this comment: stripInternal would drop the import below from the declarations.)
import type { ArenaAllocation } from './arena.js'
import { DTYPES, type DType } from './dtypes.js'
import { allocatorError, invalidArgType } from './errors.js'

/**
 * A hand-off in flight: a small plain object of strings and numbers (structured-cloneable
 * and JSON-serialisable), to post to another thread and pass to `receive` there (exactly
 * once). `T` is what `receive` returns. Its `token` is the credential: whoever presents it
 * claims the memory, so pass handles only to code you trust with it.
 */
export interface TransferHandle<T extends ArenaAllocation = ArenaAllocation> {
  /** Id of the (process-wide) arena. */
  readonly arena: number
  /**
   * Secret of this hand-off: 32 lowercase hex digits (128 bits, 64 of them a keyed
   * SipHash-2-4 tag under a key drawn from the OS CSPRNG), so a guess claims a hand-off
   * with probability at most 2⁻⁶⁴.
   */
  readonly token: string
  /** What the receiver gets: an ArrayBuffer (`buffer`), a typed array over its own buffer (`array`) or a view. */
  readonly kind: 'buffer' | 'array' | 'view'
  /** Element type for `array` and `view`, else `null`. */
  readonly dtype: DType | null
  /** Elements (`array`, `view`) or bytes (`buffer`). */
  readonly length: number
  /** Bytes. */
  readonly byteLength: number
  /** Arena offset of the memory (a position in the arena, not an address). */
  readonly offset: number
  /** Type-level only: never present at run time. */
  readonly __receives?: T
}

const KIND_CODES = { buffer: 0, array: 1, view: 2 } as const
const KIND_NAMES = ['buffer', 'array', 'view'] as const
const DTYPE_NAMES = Object.keys(DTYPES) as DType[]
/** Characters of a token (32 lowercase hex digits; the addon checks the digits). */
const TOKEN_LENGTH = 32

/** The kind/dtype code a hand-off carries natively: kind × 16 + dtype index (15: none). */
export function kindCode(kind: TransferHandle['kind'], dtype: DType | null): number {
  return KIND_CODES[kind] * 16 + (dtype === null ? 15 : DTYPE_NAMES.indexOf(dtype))
}

/**
 * The handle of an in-flight hand-off of arena `id` from its native description (`kind` as
 * {@link kindCode} makes it), or `undefined` for a code no `transfer` makes. @internal
 */
export function handleFrom(
  id: number,
  token: string,
  offset: number,
  byteLength: number,
  kind: number,
): TransferHandle | undefined {
  const kindName = KIND_NAMES[kind >> 4]
  const dtypeIndex = kind & 15
  if (kindName === undefined) return undefined
  if (kindName === 'buffer') {
    return dtypeIndex === 15 ? { arena: id, token, kind: kindName, dtype: null, length: byteLength, byteLength, offset } : undefined
  }
  const dtype = DTYPE_NAMES[dtypeIndex]
  if (dtype === undefined) return undefined
  const length = byteLength / DTYPES[dtype].BYTES_PER_ELEMENT
  return { arena: id, token, kind: kindName, dtype, length, byteLength, offset }
}

/**
 * `handle` as a well-formed hand-off handle of arena `id`. @internal
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when it is not an object.
 * @throws {AllocatorError} `ERR_INVALID_HANDLE` for a forged or altered handle, `ERR_NOT_OWNED` for another arena's.
 */
export function checkHandle(handle: unknown, id: number): TransferHandle {
  if (typeof handle !== 'object' || handle === null) throw invalidArgType('handle', 'a transfer handle object', handle)
  const h = handle as Record<string, unknown>
  const whole = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
  const kindOk = h.kind === 'buffer' || h.kind === 'array' || h.kind === 'view'
  // Only the shape here: a regular expression would cost more than the whole native call,
  // which refuses any other spelling (ERR_INVALID_HANDLE, nothing touched).
  const tokenOk = typeof h.token === 'string' && h.token.length === TOKEN_LENGTH
  if (!whole(h.arena) || !tokenOk || !whole(h.length) || !whole(h.byteLength) || !whole(h.offset) || !kindOk) {
    throw allocatorError('ERR_INVALID_HANDLE')
  }
  if (h.arena !== id) throw allocatorError('ERR_NOT_OWNED', 'the handle belongs to another arena')
  if (h.kind === 'buffer') {
    if (h.dtype !== null || h.length !== h.byteLength) throw allocatorError('ERR_INVALID_HANDLE')
  } else {
    const Ctor = typeof h.dtype === 'string' && Object.hasOwn(DTYPES, h.dtype) ? DTYPES[h.dtype as DType] : undefined
    if (Ctor === undefined || h.length * Ctor.BYTES_PER_ELEMENT !== h.byteLength) {
      throw allocatorError('ERR_INVALID_HANDLE')
    }
  }
  return h as unknown as TransferHandle
}

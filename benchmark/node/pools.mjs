// The two JavaScript pools the benchmark compares against, used the way their docs say:
//   typedarray-pool: pool.malloc(n, dtype) / pool.free(array) (power-of-two ArrayBuffers
//     kept in per-size free lists; process-global).
//   @thi.ng/malloc:  new MemPool({ size }), pool.mallocAs(type, n) / pool.free(array)
//     (one ArrayBuffer of `size` bytes, first-fit free list).
// Sizes are checked once, when a case is built, never per call: @thi.ng/malloc returns a
// block for malloc(NaN) / malloc(Infinity) and then hangs on the next malloc (see
// shared/reference/node-external-memory.md), so an invalid size must never reach it.

import typedarrayPool from 'typedarray-pool'
import { MemPool } from '@thi.ng/malloc'

/** Throws unless `n` is a positive safe integer (the only sizes the pools may see). */
export function checkedCount(n, what = 'count') {
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${what} must be a positive safe integer, got ${n}`)
  return n
}

export { typedarrayPool }

let sharedMemPool
/**
 * The process's @thi.ng/malloc MemPool: one pool of `size` bytes (the benchmark passes the
 * arena size, so the pool is as large as our arena), created on first use.
 */
export function memPool(size) {
  if (sharedMemPool === undefined) {
    checkedCount(size, 'pool size')
    sharedMemPool = new MemPool({ size })
  } else if (sharedMemPool.buf.byteLength !== size) {
    throw new Error(`MemPool already created with ${sharedMemPool.buf.byteLength} bytes`)
  }
  return sharedMemPool
}

const TPOOL_MALLOC = { uint8: 'mallocUint8', float32: 'mallocFloat' }
const THING_TYPE = { uint8: 'u8', float32: 'f32' }

/**
 * Checks, once per case, that both pools hand out exactly `length` elements of `dtype` and
 * take them back; returns the names the generated cases call directly:
 * `{ tpMalloc: 'mallocUint8' | 'mallocFloat', thingType: 'u8' | 'f32' }`.
 */
export function checkPools(pool, dtype, length) {
  checkedCount(length, 'length')
  const tpMalloc = TPOOL_MALLOC[dtype]
  const thingType = THING_TYPE[dtype]
  if (tpMalloc === undefined || thingType === undefined) throw new TypeError(`unsupported dtype ${dtype}`)
  const a = typedarrayPool[tpMalloc](length)
  if (a === null || a.length !== length) throw new Error(`typedarray-pool returned ${a} for ${dtype}[${length}]`)
  typedarrayPool.free(a)
  const b = pool.mallocAs(thingType, length)
  if (b === undefined || b.length !== length) throw new Error(`MemPool returned ${b} for ${thingType}[${length}]`)
  if (!pool.free(b)) throw new Error('MemPool refused to free its own block')
  return { tpMalloc, thingType }
}

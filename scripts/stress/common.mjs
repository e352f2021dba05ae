// Shared by the stress run's main thread and its workers (scripts/stress/run.mjs).
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The built package (dist/), as `require('tensor-arena')` loads it. */
export const pkg = require(path.join(root, 'dist', 'index.js'))
// Internal: the marks of exclusive hand-outs carry their arena offset (same module instance as the package's).
const { ExclusiveMark } = require(path.join(root, 'dist', 'marks.js'))

/** Bytes of a granule of the owner map: the arena's alignment (every block starts on one). */
export const GRANULE = 64
/** Ids at or above this belong to a churn worker: EPHEMERAL | slot << 24 | sequence. */
export const EPHEMERAL = 0x40000000
/** Journal entries per churn slot (a churn worker holds at most 16 blocks, plus one being marked). */
export const JOURNAL = 32
/** Churn workers take slots in turn (64: a slot's mark names the churn worker that made it in a report). */
export const CHURN_SLOTS = 64
export const DTYPES = ['uint8', 'int16', 'uint32', 'float32', 'float64', 'bigint64']

/** mulberry32: deterministic 32-bit pseudo-random numbers from `seed`. */
export function rng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  next.below = (n) => next() % n
  next.chance = (p) => next() / 0x100000000 < p
  return next
}

export class StressFailure extends Error {}

export function fail(message) {
  throw new StressFailure(message)
}

/** The arena offset of an allocation (internal marks for exclusive ones, the window tag for views). */
export function offsetOf(x) {
  const state = ExclusiveMark.stateOf(x)
  if (state !== undefined) return state.offset
  const symbol = Object.getOwnPropertySymbols(x.buffer).find((s) => s.description === 'tensor-arena.window')
  if (symbol === undefined) fail('an allocation with neither an exclusive mark nor a window tag')
  return x.buffer[symbol].base + x.byteOffset
}

function bytesOf(x) {
  return x instanceof ArrayBuffer ? new Uint8Array(x) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
}

/** Up to this many bytes are filled whole (a pattern of the id); larger blocks get cookies at both ends. */
const FILL_LIMIT = 4096

function patternByte(id, i) {
  return (Math.imul(id, 31) + i * 7) & 0xff
}

/** Writes the block's id cookie: the id at its first and last 4 bytes, and a pattern over small blocks. */
export function writeCookie(x, id) {
  const b = bytesOf(x)
  const n = b.length
  if (n <= FILL_LIMIT) for (let i = 0; i < n; i++) b[i] = patternByte(id, i)
  if (n >= 4) new DataView(b.buffer, b.byteOffset, n).setInt32(0, id, true)
  if (n >= 8) new DataView(b.buffer, b.byteOffset, n).setInt32(n - 4, id, true)
}

/** Throws unless the block still carries `id`'s cookie. */
export function checkCookie(x, id, where) {
  const b = bytesOf(x)
  const n = b.length
  const dv = new DataView(b.buffer, b.byteOffset, n)
  if (n >= 4 && dv.getInt32(0, true) !== id) fail(`${where}: block ${id} starts with ${dv.getInt32(0, true)}`)
  if (n >= 8 && dv.getInt32(n - 4, true) !== id) fail(`${where}: block ${id} ends with ${dv.getInt32(n - 4, true)}`)
  if (n <= FILL_LIMIT) {
    for (let i = 4; i < n - 4; i++) {
      if (b[i] !== patternByte(id, i)) fail(`${where}: block ${id} (${n} bytes) lost its pattern at byte ${i}`)
    }
  }
}

/**
 * The owner map: one Int32 per granule of the arena (0 = free, else the id of the block
 * that covers it), in a SharedArrayBuffer every thread marks with compare-and-exchange.
 * `dying[slot]` is set by the main thread before it terminates the churn worker of `slot`:
 * that worker's blocks go back to the arena at its teardown, so their marks may be taken over.
 */
export class OwnerMap {
  /** `slot`: a churn worker's, whose marks are also kept in its journal (for `sweep`). */
  constructor(shared, slot) {
    this.map = new Int32Array(shared.map)
    this.dying = new Int32Array(shared.dying)
    this.journal = new Int32Array(shared.journal)
    this.slot = slot
    /** mark id -> its journal entry (this thread's, for a churn worker). */
    this.entries = new Map()
    this.freeEntries = slot === undefined ? [] : Array.from({ length: JOURNAL }, (_, i) => slot * JOURNAL + i)
  }

  granules(offset, byteLength) {
    const first = Math.floor(offset / GRANULE)
    const end = Math.ceil((offset + Math.max(1, byteLength)) / GRANULE)
    if (offset % GRANULE !== 0) fail(`block at offset ${offset} is not ${GRANULE}-aligned`)
    if (end > this.map.length) fail(`block [${offset}, +${byteLength}) beyond the arena's cap`)
    return [first, end]
  }

  /** Marks [offset, offset + byteLength) as `id`'s; fails if any granule is another live block's. */
  mark(offset, byteLength, id) {
    const [first, end] = this.granules(offset, byteLength)
    if (this.slot !== undefined) {
      // Journal first: a worker terminated between the two leaves an entry that sweep skips.
      const e = this.freeEntries.pop()
      if (e === undefined) fail('churn journal full')
      Atomics.store(this.journal, e * 3, first)
      Atomics.store(this.journal, e * 3 + 1, end)
      Atomics.store(this.journal, e * 3 + 2, id)
      this.entries.set(id, e)
    }
    for (let g = first; g < end; g++) {
      for (;;) {
        const old = Atomics.compareExchange(this.map, g, 0, id)
        if (old === 0) break
        if (old >= EPHEMERAL) {
          if (Atomics.load(this.dying, (old >>> 24) & 0x3f) === 1) {
            if (Atomics.compareExchange(this.map, g, old, id) === old) break
            continue
          }
          // The main thread clears a dead worker's marks (sweep) before its slot stops dying:
          // a mark read just before the sweep is gone now. Only a mark still there is live.
          if (Atomics.load(this.map, g) !== old) continue
        }
        fail(`range handed out twice: arena offset ${g * GRANULE} is block ${old}'s and block ${id}'s ([${offset}, +${byteLength}))`)
      }
    }
  }

  /** Unmarks `id`'s range; fails if a granule is not `id`'s. */
  clear(offset, byteLength, id) {
    const [first, end] = this.granules(offset, byteLength)
    for (let g = first; g < end; g++) {
      const old = Atomics.compareExchange(this.map, g, id, 0)
      if (old !== id) fail(`owner map: arena offset ${g * GRANULE} is block ${old}'s, expected block ${id}'s`)
    }
    const e = this.entries.get(id)
    if (e !== undefined) {
      Atomics.store(this.journal, e * 3 + 2, 0)
      this.entries.delete(id)
      this.freeEntries.push(e)
    }
  }

  /** Whether the range is all `id`'s. */
  check(offset, byteLength, id, where) {
    const [first, end] = this.granules(offset, byteLength)
    for (let g = first; g < end; g++) {
      const v = Atomics.load(this.map, g)
      if (v !== id) fail(`${where}: arena offset ${g * GRANULE} is block ${v}'s, expected block ${id}'s`)
    }
  }

  /** Clears the marks churn slot `slot`'s journal lists (after its worker exited); returns how many. */
  sweep(slot) {
    let n = 0
    for (let e = slot * JOURNAL; e < (slot + 1) * JOURNAL; e++) {
      const id = Atomics.load(this.journal, e * 3 + 2)
      if (id === 0) continue
      for (let g = Atomics.load(this.journal, e * 3); g < Atomics.load(this.journal, e * 3 + 1); g++) {
        if (Atomics.compareExchange(this.map, g, id, 0) === id) n++
      }
      Atomics.store(this.journal, e * 3 + 2, 0)
    }
    return n
  }
}

/** A random request: mostly small, some medium, a few large (up to 6 MiB). */
export function randomRequest(r) {
  const kind = ['buffer', 'array', 'view'][r.below(3)]
  const dtype = kind === 'buffer' ? null : DTYPES[r.below(DTYPES.length)]
  const p = r.below(1000)
  let bytes
  if (p < 700) bytes = r.below(4097)
  else if (p < 960) bytes = r.below(128 * 1024)
  else if (p < 995) bytes = r.below(1024 * 1024)
  else bytes = r.below(6 * 1024 * 1024)
  const per = dtype === null ? 1 : pkg.DTYPES[dtype].BYTES_PER_ELEMENT
  return { kind, dtype, length: Math.floor(bytes / per) }
}

/** Makes what `request` asks for in `arena`. */
export function make(arena, request) {
  if (request.kind === 'buffer') return arena.alloc(request.length)
  if (request.kind === 'array') return arena.array(request.dtype, request.length)
  return arena.view(request.dtype, request.length)
}

/** Throws unless `fn` throws an error with `code`. */
export function expectCode(fn, code, where) {
  try {
    fn()
  } catch (e) {
    if (e?.code === code) return
    fail(`${where}: expected ${code}, got ${e?.code ?? e}`)
  }
  fail(`${where}: expected ${code}, nothing was thrown`)
}

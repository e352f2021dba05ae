// Benchmark cases. Each case body is generated with `new Function` from a small template,
// so every case has its own function (its own type feedback: a Buffer case never makes the
// page-touch loop of a view case polymorphic) and no extra call layer; the loop that
// writes one byte per 4 KiB page is inlined in the case.
//
// benny runs a case synchronously: the event loop never turns inside it. So every case of
// ours frees explicitly, and the GC-only cases are deferred (async) cases that await a
// setImmediate every 16 operations, which is when finalizers (and the view reclaimer) run.
// The baselines have no free: V8 reclaims them in its own GC, as in real use.

import { createRequire } from 'node:module'
import { setImmediate as immediate } from 'node:timers/promises'

import { checkPools, memPool, typedarrayPool } from './pools.mjs'

export const KiB = 1024
export const MiB = 1024 * KiB
export const SIZES = [64, KiB, 4 * KiB, 64 * KiB, MiB, 16 * MiB]
export const PAGE = 4096
/** Operations between two event-loop turns in the GC-only cases. */
export const GC_BATCH = 16

export const SCENARIOS = [
  { id: 'free', label: 'alloc + free' },
  { id: 'touch', label: 'alloc + write 1 byte per 4 KiB page + free' },
]

/**
 * The variants, in table order. kind: baseline (Node), pool (JS pools), ours, gc (no
 * explicit free, a setImmediate every GC_BATCH operations). `alloc` is a JS expression for
 * `N` bytes (`L` elements of `dtype`); `free` a statement on `a`.
 */
export const VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc', kind: 'baseline', dtype: 'uint8', alloc: 'Buffer.alloc(N)' },
  { id: 'buffer-unsafe', label: 'Buffer.allocUnsafe', kind: 'baseline', dtype: 'uint8', alloc: 'Buffer.allocUnsafe(N)' },
  { id: 'buffer-unsafe-slow', label: 'Buffer.allocUnsafeSlow', kind: 'baseline', dtype: 'uint8', alloc: 'Buffer.allocUnsafeSlow(N)' },
  { id: 'float32array', label: 'new Float32Array', kind: 'baseline', dtype: 'float32', alloc: 'new Float32Array(L)' },
  { id: 'typedarray-pool', label: 'typedarray-pool', kind: 'pool', dtype: 'uint8', alloc: 'TP[TP_MALLOC](L)', free: 'TP.free(a)' },
  {
    id: 'thing-mempool',
    label: '@thi.ng/malloc MemPool',
    kind: 'pool',
    dtype: 'uint8',
    alloc: 'MP.mallocAs(MP_TYPE, L)',
    check: 'if (a === undefined) throw new Error("MemPool exhausted")',
    free: 'MP.free(a)',
  },
  { id: 'array', label: 'ours: array', kind: 'ours', dtype: 'uint8', alloc: "arena.array('uint8', L)", free: 'arena.free(a)' },
  { id: 'view', label: 'ours: view', kind: 'ours', dtype: 'uint8', alloc: "arena.view('uint8', L)", free: 'arena.free(a)' },
  { id: 'view-zero', label: 'ours: view { zero: true }', kind: 'ours', dtype: 'uint8', alloc: "arena.view('uint8', L, ZERO)", free: 'arena.free(a)' },
  {
    id: 'view-dtypes',
    label: 'ours: view, 4 dtypes cycling',
    kind: 'ours',
    dtype: 'uint8',
    alloc: 'arena.view(DTYPES[k = (k + 1) & 3], N / DTYPE_BYTES[k])',
    free: 'arena.free(a)',
  },
  {
    id: 'exclusive-floor',
    label: "Node's floor: external ArrayBuffer + detach",
    kind: 'floor',
    dtype: 'uint8',
    alloc: 'new Uint8Array(FLOOR.floorBuffer(N))',
    free: 'FLOOR.floorDetach(a.buffer)',
  },
  { id: 'array-gc', label: 'ours: array, GC-only', kind: 'gc', dtype: 'uint8', alloc: "gcArena.array('uint8', L)" },
  { id: 'view-gc', label: 'ours: view, GC-only', kind: 'gc', dtype: 'uint8', alloc: "viewGcArena.view('uint8', L)" },
  { id: 'buffer-alloc-gc', label: 'Buffer.alloc, yield/16', kind: 'gc', dtype: 'uint8', alloc: 'Buffer.alloc(N)' },
]
export const VARIANT_BY_ID = new Map(VARIANTS.map((v) => [v.id, v]))

const BYTES = { uint8: 1, float32: 4 }
/** Bytes of the @thi.ng/malloc pool (it needs a fixed size; the arenas grow). */
const JS_POOL_BYTES = 1 << 30

function touchLoop(v, touch, length) {
  if (!touch) return ''
  const step = PAGE / BYTES[v.dtype]
  return `for (let p = 0; p < ${length}; p += ${step}) a[p] = 1`
}

/**
 * The environment the generated cases close over: the arena under test, the JS pools, an
 * arena of the same size for the array GC-only case and a fresh one per group for the view
 * GC-only case (so garbage they leave never lands in the arena the other cases use, and a
 * view case that ran its arena out of memory does not spoil the next group), and a sink
 * that keeps results observable.
 */
/**
 * The addon's benchmark hooks (`floorBuffer`/`floorDetach`: an external ArrayBuffer over
 * static memory and its detach, the Node-API floor of `alloc`/`array` + `free`).
 */
const FLOOR = createRequire(import.meta.url)('../../dist/binding.cjs')

export function makeEnv(Arena, arena, gcArena) {
  return {
    FLOOR,
    arena,
    gcArena,
    viewGcArena: new Arena({ maxBytes: arena.maxBytes }),
    MP: memPool(JS_POOL_BYTES),
    TP: typedarrayPool,
    ZERO: Object.freeze({ zero: true }),
    immediate,
    sink: undefined,
    oom: new Map(),
  }
}

/**
 * The benny case for variant `v` at `size` bytes: `{ id, fn, opsPerCall }`. A GC-only case
 * is an async function doing GC_BATCH operations, then one setImmediate turn. A GC-only case
 * that runs its arena out of memory (GC did not come in time: views give V8 no memory
 * pressure at all) stops allocating and records the failure in env.oom instead of failing
 * the suite (a rejected deferred case would hang benny).
 */
export function sizeCase(env, v, size, touch) {
  const L = size / BYTES[v.dtype]
  const pools = v.kind === 'pool' ? checkPools(env.MP, v.dtype, L) : { tpMalloc: '', thingType: '' }
  const prologue = `
    const { arena, gcArena, viewGcArena, MP, TP, ZERO, FLOOR, immediate } = env
    const TP_MALLOC = ${JSON.stringify(pools.tpMalloc)}, MP_TYPE = ${JSON.stringify(pools.thingType)}
    const N = ${size}, L = ${L}
    const DTYPES = ['uint8', 'float32', 'int32', 'float64'], DTYPE_BYTES = [1, 4, 4, 8]
    let k = 0`
  const body = `const a = ${v.alloc}; ${v.check ?? ''}; ${touchLoop(v, touch, L)}; env.sink = a; ${v.free ?? ''}`
  let src
  if (v.kind !== 'gc') {
    src = `${prologue}\n return function ${v.id.replace(/-/g, '_')}() { ${body} }`
  } else {
    src = `${prologue}
    let failedAt = -1, done = 0
    return async function ${v.id.replace(/-/g, '_')}() {
      if (failedAt < 0) {
        try {
          for (let i = 0; i < ${GC_BATCH}; i++) { ${body}; done++ }
        } catch (error) {
          if (error.code !== 'ERR_OUT_OF_MEMORY') throw error
          failedAt = done
          env.oom.set(${JSON.stringify(v.id)}, done)
        }
      }
      await immediate()
    }`
  }
  const fn = new Function('env', src)(env)
  return { id: v.id, fn, opsPerCall: v.kind === 'gc' ? GC_BATCH : 1 }
}

// ---- embedding_batch: 8 × 6,144-byte float32 arrays (1,536 elements): alloc, fill, free --
export const EMBED = { count: 8, bytes: 6144, length: 1536 }

export const EMBED_VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc', alloc: '(b = Buffer.alloc(BYTES), new Float32Array(b.buffer, b.byteOffset, LEN))' },
  { id: 'buffer-unsafe', label: 'Buffer.allocUnsafe', alloc: '(b = Buffer.allocUnsafe(BYTES), new Float32Array(b.buffer, b.byteOffset, LEN))' },
  { id: 'float32array', label: 'new Float32Array', alloc: 'new Float32Array(LEN)' },
  { id: 'typedarray-pool', label: 'typedarray-pool', alloc: 'TP.mallocFloat(LEN)', free: 'TP.free(a)' },
  { id: 'thing-mempool', label: '@thi.ng/malloc MemPool', alloc: "MP.mallocAs('f32', LEN)", check: 'if (a === undefined) throw new Error("MemPool exhausted")', free: 'MP.free(a)' },
  { id: 'array', label: 'ours: array', alloc: "arena.array('float32', LEN)", free: 'arena.free(a)' },
  { id: 'view', label: 'ours: view', alloc: "arena.view('float32', LEN)", free: 'arena.free(a)' },
  { id: 'view-zero', label: 'ours: view { zero: true }', alloc: "arena.view('float32', LEN, ZERO)", free: 'arena.free(a)' },
]

/** The embedding_batch case for `v`: one call = one batch (8 allocs, 8 fills, 8 frees). */
export function embedCase(env, v) {
  checkPools(env.MP, 'float32', EMBED.length)
  const src = `
    const { arena, MP, TP, ZERO } = env
    const BYTES = ${EMBED.bytes}, LEN = ${EMBED.length}
    const slots = new Array(${EMBED.count}).fill(null)
    return function embed_${v.id.replace(/-/g, '_')}() {
      let b
      for (let i = 0; i < ${EMBED.count}; i++) { const a = ${v.alloc}; ${v.check ?? ''}; a.fill(1.5); slots[i] = a }
      for (let i = 0; i < ${EMBED.count}; i++) { const a = slots[i]; ${v.free ?? ''}; slots[i] = null }
      env.sink = b
    }`
  return { id: v.id, fn: new Function('env', src)(env), opsPerCall: 1 }
}

// ---- burst: 256 live 64-byte buffers, then 256 frees ---------------------------------------
export const BURST = { count: 256, bytes: 64 }

export const BURST_VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc', alloc: 'Buffer.alloc(BYTES)' },
  { id: 'typedarray-pool', label: 'typedarray-pool', alloc: 'TP.mallocUint8(BYTES)', free: 'TP.free(a)' },
  { id: 'thing-mempool', label: '@thi.ng/malloc MemPool', alloc: "MP.mallocAs('u8', BYTES)", check: 'if (a === undefined) throw new Error("MemPool exhausted")', free: 'MP.free(a)' },
  { id: 'array', label: 'ours: array', alloc: "arena.array('uint8', BYTES)", free: 'arena.free(a)' },
  { id: 'view', label: 'ours: view', alloc: "arena.view('uint8', BYTES)", free: 'arena.free(a)' },
]

/** The burst case for `v`: one call = 256 hand-outs kept live, then 256 frees. */
export function burstCase(env, v) {
  const src = `
    const { arena, MP, TP } = env
    const BYTES = ${BURST.bytes}
    const live = new Array(${BURST.count}).fill(null)
    return function burst_${v.id.replace(/-/g, '_')}() {
      for (let i = 0; i < ${BURST.count}; i++) { const a = ${v.alloc}; ${v.check ?? ''}; live[i] = a }
      for (let i = 0; i < ${BURST.count}; i++) { const a = live[i]; ${v.free ?? ''}; live[i] = null }
    }`
  return { id: v.id, fn: new Function('env', src)(env), opsPerCall: 1 }
}

// ---- scope_step: one step of a tensor program, 10 float32 tensors of 1 KiB live together --
export const STEP = { count: 10, length: 256 }

/**
 * How the step's tensors are released: by V8 (the Node baselines), an explicit free of each,
 * `arena.scope` (sync, and an async function awaited per step), or GC only. `kind: 'gc'`
 * and `'async'` cases are async: one call = GC_BATCH steps, then (gc) one setImmediate turn.
 */
export const STEP_VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc', kind: 'sync', alloc: '(b = Buffer.alloc(BYTES), new Float32Array(b.buffer, b.byteOffset, LEN))' },
  { id: 'float32array', label: 'new Float32Array', kind: 'sync', alloc: 'new Float32Array(LEN)' },
  { id: 'view-free', label: 'ours: view + explicit free', kind: 'sync', alloc: "arena.view('float32', LEN)", free: 'for (let i = 0; i < COUNT; i++) arena.free(t[i])' },
  { id: 'view-scope', label: 'ours: view in arena.scope', kind: 'sync', alloc: "arena.view('float32', LEN)", scope: true },
  { id: 'view-scope-async', label: 'ours: view in an async arena.scope, awaited', kind: 'async', alloc: "arena.view('float32', LEN)", scope: true },
  { id: 'view-gc', label: 'ours: view, GC-only, yield/16', kind: 'gc', alloc: "viewGcArena.view('float32', LEN)" },
]

/** The scope_step case for `v`: one call = one step (GC_BATCH steps for gc and async cases). */
export function stepCase(env, v) {
  const fill = `for (let i = 0; i < COUNT; i++) { const a = ${v.alloc}; a.fill(i); t[i] = a }`
  let body = `${fill}; env.sink = t[COUNT - 1]; ${v.free ?? ''}`
  if (v.scope && v.kind === 'sync') body = `arena.scope(() => { ${fill} }); env.sink = t[COUNT - 1]`
  let fn = `function step_${v.id.replace(/-/g, '_')}() { let b; ${body} }`
  if (v.kind === 'async') {
    fn = `async function step_${v.id.replace(/-/g, '_')}() {
      for (let s = 0; s < ${GC_BATCH}; s++) await arena.scope(async () => { let b; ${fill} })
      env.sink = t[COUNT - 1]
    }`
  } else if (v.kind === 'gc') {
    fn = `async function step_${v.id.replace(/-/g, '_')}() {
      for (let s = 0; s < ${GC_BATCH}; s++) { let b; ${fill}; env.sink = t[COUNT - 1] }
      await immediate()
    }`
  }
  const src = `
    const { arena, viewGcArena, immediate } = env
    const COUNT = ${STEP.count}, LEN = ${STEP.length}, BYTES = ${STEP.length * 4}
    const t = new Array(COUNT).fill(null)
    return ${fn}`
  return { id: v.id, fn: new Function('env', src)(env), opsPerCall: v.kind === 'sync' ? 1 : GC_BATCH }
}

// Statistics, thread-cache handles and trim.
import test from 'ava'
import {
  ARENA_STAT_FIELDS,
  Arena,
  SIZE_CLASS_BYTES,
  ThreadCache,
  defaultArena,
  sizeClassOf,
  stats,
  type ArenaStats,
  type ClassStats,
  type ThreadCacheStats,
} from 'tensor-arena'
import { MiB, collect, native } from './helpers'

// ---- compile-time checks (tsc -p tsconfig.test.json) -------------------------------------
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const statKeysMatch: Equal<Exclude<keyof ArenaStats, 'classes'>, (typeof ARENA_STAT_FIELDS)[number]> = true
const statValuesAreNumbers: Equal<ArenaStats[(typeof ARENA_STAT_FIELDS)[number]], number> = true
const classesTyped: Equal<ArenaStats['classes'], readonly ClassStats[]> = true
const boundIsBoolean: Equal<ThreadCacheStats['bound'], boolean> = true
void [statKeysMatch, statValuesAreNumbers, classesTyped, boundIsBoolean]

const nativeFields = native.statFields()
const topLevel = nativeFields.map((f) => f[0]).filter((name) => !name.includes('.'))
const classFields = nativeFields.map((f) => f[0]).filter((name) => name.startsWith('classes.')).map((n) => n.slice('classes.'.length))
const cacheFields = nativeFields.map((f) => f[0]).filter((name) => name.startsWith('threadCache.')).map((n) => n.slice('threadCache.'.length))

test('ARENA_STAT_FIELDS equals the native stat field names (without prefix), in order, frozen', (t) => {
  t.deepEqual([...ARENA_STAT_FIELDS], topLevel)
  t.true(Object.isFrozen(ARENA_STAT_FIELDS))
  for (const field of nativeFields) {
    t.is(field.length, 3)
    t.true(field[1] === 'gauge' || field[1] === 'counter', field.join(' '))
  }
})

test('stats() has every field as a non-negative safe integer, and one entry per size class', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const s = arena.stats()
  t.deepEqual(Object.keys(s).sort(), [...ARENA_STAT_FIELDS, 'classes'].sort())
  for (const name of ARENA_STAT_FIELDS) t.true(Number.isSafeInteger(s[name]) && s[name] >= 0, `${name} = ${s[name]}`)
  t.is(s.maxBytes, 16 * MiB)
  t.is(s.classes.length, SIZE_CLASS_BYTES.length)
  s.classes.forEach((c, i) => {
    t.deepEqual(Object.keys(c).sort(), [...classFields].sort())
    t.is(c.payload, SIZE_CLASS_BYTES[i])
    // No in-band header: a block is its payload rounded up to the alignment (64 here).
    t.is(c.block, Math.ceil(c.payload / 64) * 64, `class ${i}`)
    t.is(c.metadataPerBlock, metadataPerBlock(c.block), `class ${i}`)
  })
})

/**
 * Bytes of out-of-band block table per block: 16 bytes per granule of the class's table,
 * the largest power of two not above the block (64 B ..= 4 KiB).
 */
function metadataPerBlock(block: number): number {
  const granule = 2 ** Math.floor(Math.log2(Math.min(block, 4096)))
  return Math.ceil((block * 16) / granule)
}

test('a class block is its payload rounded up to the alignment, with 16 to 31 bytes of metadata out of band below 4 KiB and 16 per 4 KiB above', (t) => {
  for (const alignment of [64, 256, 4096]) {
    const arena = new Arena({ maxBytes: 16 * MiB, alignment })
    arena.stats().classes.forEach((c, i) => {
      t.is(c.block, Math.ceil(c.payload / alignment) * alignment, `alignment ${alignment}, class ${i}`)
      t.is(c.metadataPerBlock, metadataPerBlock(c.block), `alignment ${alignment}, class ${i}`)
      if (c.block < 4096) t.true(c.metadataPerBlock >= 16 && c.metadataPerBlock < 32)
      else t.is(c.metadataPerBlock, c.block / 256)
    })
  }
})

test('capped arena: maxBytes, reservedBytes, regions, carvedBytes and remainingBytes add up', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const empty = arena.stats()
  t.like(empty, { maxBytes: 64 * MiB, regions: 1, carvedBytes: 0, remainingBytes: 64 * MiB, freeSpanBytes: 0, liveBytes: 0 })
  t.true(empty.reservedBytes >= 64 * MiB, String(empty.reservedBytes))
  const items = [arena.alloc(100), arena.view('uint8', 3 * MiB), arena.alloc(20 * MiB), arena.array('float32', 1000)]
  const during = arena.stats()
  t.true(during.carvedBytes >= 3 * MiB + 20 * MiB + 4100, String(during.carvedBytes))
  t.true(during.carvedBytes <= during.maxBytes)
  t.is(during.carvedBytes % 4096, 0, 'carved in whole pages')
  t.is(during.remainingBytes, during.maxBytes - during.carvedBytes + during.freeSpanBytes)
  t.true(during.metadataBytes > 0, 'metadata covers the committed memory')
  t.is(during.regions, 1)
  for (const item of items) arena.free(item)
  arena.threadCache().flush()
  const after = arena.stats()
  t.is(after.carvedBytes, during.carvedBytes, 'carvedBytes never shrinks')
  t.true(after.freeSpanBytes >= 20 * MiB, 'the large block went back to the free spans')
  t.is(after.remainingBytes, after.maxBytes - after.carvedBytes + after.freeSpanBytes)
  t.is(after.liveBytes, 0)
})

test('uncapped arena: maxBytes 0, and remainingBytes is the uncarved rest of the newest region plus free spans', (t) => {
  const arena = new Arena()
  const empty = arena.stats()
  t.is(empty.maxBytes, 0)
  t.is(arena.maxBytes, undefined)
  t.true(empty.regions >= 1)
  t.true(empty.reservedBytes >= 1024 * MiB, `first region of at least 1 GiB: ${empty.reservedBytes}`)
  t.is(empty.carvedBytes, 0)
  const items = [arena.alloc(20 * MiB), arena.view('uint8', 100)]
  const during = arena.stats()
  t.is(during.regions, 1)
  t.is(during.remainingBytes, during.reservedBytes - during.carvedBytes + during.freeSpanBytes)
  for (const item of items) arena.free(item)
  arena.threadCache().flush()
  const after = arena.stats()
  t.is(after.remainingBytes, after.reservedBytes - after.carvedBytes + after.freeSpanBytes)
  t.is(after.liveBytes, 0)
})

test('the module-level stats() is the default arena and shows the default configuration (no cap)', (t) => {
  const s = stats()
  t.deepEqual(Object.keys(s).sort(), Object.keys(defaultArena.stats()).sort())
  t.is(s.maxBytes, 0)
  t.true(s.regions >= 1)
  t.true(s.reservedBytes > 0)
})

test.serial('liveBytes and liveAllocations follow allocations and drop to 0 once everything is freed and the cache flushed', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const items = [arena.alloc(100), arena.array('float32', 25), arena.view('uint8', 300), arena.view('float64', 10)]
  let s = arena.stats()
  t.is(s.liveAllocations, 4)
  t.is(s.liveBytes, 100 + 100 + 300 + 80)
  t.is(s.allocationsTotal, 4)
  for (const item of items) arena.free(item)
  s = arena.stats()
  t.is(s.liveAllocations, 0)
  t.is(s.liveBytes, 0)
  t.is(s.freesTotal, 4)
  t.true(s.threadCacheBlocks > 0, 'freed blocks wait in this thread’s cache')
  arena.threadCache().flush()
  s = arena.stats()
  t.is(s.liveBytes, 0)
  t.is(s.threadCacheBlocks, 0)
  t.is(s.threadCacheBytes, 0)
  t.true(s.centralBlocks > 0)
})

test('threadCache().stats() reports this thread’s cached blocks per size class', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const cache = arena.threadCache()
  t.true(cache instanceof ThreadCache)
  const empty = cache.stats()
  t.deepEqual(Object.keys(empty).sort(), [...cacheFields, 'classBlocks'].sort())
  t.is(typeof empty.bound, 'boolean')
  t.is(empty.classBlocks.length, SIZE_CLASS_BYTES.length)
  const cls = sizeClassOf(3000)!
  const buffers = Array.from({ length: 5 }, () => arena.alloc(3000))
  const beforeFree = cache.stats().classBlocks[cls]
  for (const buffer of buffers) arena.free(buffer)
  const s = cache.stats()
  t.true(s.bound)
  t.is(s.classBlocks[cls], beforeFree + 5)
  t.is(s.blocks, s.classBlocks.reduce((a, b) => a + b, 0))
  t.is(s.bytes, arena.stats().threadCacheBytes)
  t.is(s.blocks, arena.stats().threadCacheBlocks)
  t.is(arena.stats().classes[cls].cachedBlocks, s.classBlocks[cls])
})

test('flush() hands every cached block back to the central pool', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const cache = arena.threadCache()
  for (const buffer of Array.from({ length: 20 }, (_, i) => arena.alloc(100 * (i + 1)))) arena.free(buffer)
  const before = arena.stats()
  t.true(cache.stats().blocks > 0)
  cache.flush()
  const after = arena.stats()
  t.is(cache.stats().blocks, 0)
  t.is(cache.stats().bytes, 0)
  t.true(cache.stats().classBlocks.every((n) => n === 0))
  t.is(after.threadCacheBlocks, 0)
  t.true(after.centralBlocks > before.centralBlocks, 'the flushed blocks are in the central pool')
  // Allocation keeps working from the central pool.
  const again = arena.alloc(500)
  arena.free(again)
})

test('[Symbol.dispose]() flushes; `using` flushes at scope exit', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  arena.free(arena.alloc(1000))
  const handle = arena.threadCache()
  t.true(handle.stats().blocks > 0)
  handle[Symbol.dispose]()
  t.is(handle.stats().blocks, 0)
  arena.free(arena.alloc(1000))
  {
    using scoped = arena.threadCache()
    t.true(scoped.stats().blocks > 0)
  }
  t.is(arena.threadCache().stats().blocks, 0)
})

test('each arena has its own cache in this thread', (t) => {
  const a = new Arena({ maxBytes: 16 * MiB })
  const b = new Arena({ maxBytes: 16 * MiB })
  a.free(a.alloc(100))
  t.not(a.threadCache().stats().id, b.threadCache().stats().id)
  t.is(a.threadCache().stats().id, a.threadCache().stats().id)
  t.true(a.threadCache().stats().blocks > 0)
  t.is(b.threadCache().stats().blocks, 0)
})

test('trim returns a number and releasedBytesTotal grows after freeing big buffers and trimming', (t) => {
  const arena = new Arena({ maxBytes: 128 * MiB })
  const big = [arena.alloc(20 * MiB), arena.alloc(20 * MiB), arena.view('uint8', 3 * MiB)]
  for (const item of big) (ArrayBuffer.isView(item) ? item : new Uint8Array(item)).fill(1)
  const before = arena.stats().releasedBytesTotal
  for (const item of big) arena.free(item)
  arena.threadCache().flush()
  const released = arena.trim()
  t.is(typeof released, 'number')
  t.true(Number.isSafeInteger(released) && released >= 0)
  const after = arena.stats()
  t.true(after.releasedBytesTotal > before, `${before} -> ${after.releasedBytesTotal}`)
  t.true(after.releasedBytesTotal >= 40 * MiB, String(after.releasedBytesTotal))
  t.is(after.retainedBytes, 0)
  t.is(after.liveBytes, 0)
  // The arena keeps working after trim; released pages come back zero-filled or reused.
  const again = arena.alloc(20 * MiB)
  new Uint8Array(again).fill(2)
  t.is(new Uint8Array(again)[20 * MiB - 1], 2)
  arena.free(again)
  t.is(typeof arena.trim(), 'number')
})

test('counters only grow; gauges return to their start', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const s0 = arena.stats()
  for (let round = 0; round < 3; round++) {
    const held = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? arena.alloc(200) : arena.view('uint8', 200)))
    for (const item of held) arena.free(item)
  }
  const s1 = arena.stats()
  t.is(s1.allocationsTotal, s0.allocationsTotal + 150)
  t.is(s1.freesTotal, s0.freesTotal + 150)
  t.is(s1.liveAllocations, s0.liveAllocations)
  t.is(s1.liveBytes, s0.liveBytes)
  t.true(s1.carvedBytes >= s0.carvedBytes)
  t.true(s1.reservedBytes >= s0.reservedBytes)
  t.true(s1.regions >= s0.regions)
})

// ---- every field, exactly, through a scripted sequence -----------------------------------
// Each step lists the fields that change from the step before; the test compares the whole
// snapshot with the accumulated table, so every field is asserted at every step, and the
// key sets must match the table: a stat field added later without an entry here fails.
type Numbers = Record<string, number>
/** Per class index: [slabs, centralBlocks, centralBytes, cachedBlocks, cachedBytes, carvedBytes, liveBlocks, liveBlockBytes]; any class not listed is all 0. */
type ClassRow = [number, number, number, number, number, number, number, number]
interface Step {
  name: string
  run: () => void
  arena: Numbers
  classes?: Record<number, ClassRow>
  cache: { bound?: boolean; blocks?: number; bytes?: number }
  classBlocks?: Record<number, number>
}

const CAP = 64 * MiB
/** Every ArenaStats number field (and its kind) at the start: the table's key set. */
const FRESH: Numbers = {
  maxBytes: CAP, // gauge
  reservedBytes: CAP, // gauge
  regions: 1, // gauge
  carvedBytes: 0, // gauge
  remainingBytes: CAP, // gauge
  metadataBytes: 0, // gauge
  freeSpanBytes: 0, // gauge
  retainedBytes: 0, // gauge
  releasedBytesTotal: 0, // counter
  liveAllocations: 0, // gauge
  liveBytes: 0, // gauge
  largeLiveAllocations: 0, // gauge
  largeLiveBytes: 0, // gauge
  inFlightCount: 0, // gauge
  inFlightBytes: 0, // gauge
  centralBlocks: 0, // gauge
  centralBytes: 0, // gauge
  inboxBlocks: 0, // gauge
  threadCaches: 0, // gauge
  threadCacheBlocks: 0, // gauge
  threadCacheBytes: 0, // gauge
  slabs: 0, // gauge
  emptySlabs: 0, // gauge
  allocationsTotal: 0, // counter
  freesTotal: 0, // counter
  remoteFreesTotal: 0, // counter
  rejectedFreesTotal: 0, // counter
}
const CLASS_KEYS = [
  'payload',
  'block',
  'metadataPerBlock',
  'slabs',
  'centralBlocks',
  'centralBytes',
  'cachedBlocks',
  'cachedBytes',
  'carvedBytes',
  'liveBlocks',
  'liveBlockBytes',
]
const CACHE_KEYS = ['id', 'bound', 'blocks', 'bytes', 'classBlocks']

// Classes of the sequence (alignment 64, checked against sizeClassOf in the test): 100 B →
// class 1 (128 B blocks, 64 KiB slabs of 512, refills of 256 = 32 KiB); 4000 B → class 19
// (4096 B blocks, slabs of 16, refills of 8); 8000 B → class 23 (8192 B blocks, slabs of 8,
// refills of 4); 20 MiB → the large path (its own page span).
const LARGE = 20 * MiB
const box: { buffer?: ArrayBuffer; array?: Float32Array; view?: Float64Array; big?: Uint8Array; handle?: unknown; received?: Uint8Array } = {}
let seqArena: Arena
let otherArena: Arena

function rejects(code: string, fn: () => void): void {
  try {
    fn()
  } catch (error) {
    if ((error as { code?: string }).code === code) return
    throw error
  }
  throw new Error(`expected ${code}`)
}

const STEPS: Step[] = [
  { name: 'fresh', run: () => {}, arena: {}, cache: { bound: false, blocks: 0, bytes: 0 } },
  {
    name: 'alloc(100), array(float32, 1000), view(float64, 1000), view(uint8, 20 MiB)',
    run: () => {
      box.buffer = seqArena.alloc(100)
      box.array = seqArena.array('float32', 1000)
      box.view = seqArena.view('float64', 1000)
      box.big = seqArena.view('uint8', LARGE)
    },
    arena: {
      carvedBytes: 3 * 64 * 1024 + LARGE, // three 64 KiB slabs and the 20 MiB span
      remainingBytes: CAP - 3 * 64 * 1024 - LARGE,
      metadataBytes: 33296,
      liveAllocations: 4,
      liveBytes: 100 + 4000 + 8000 + LARGE,
      largeLiveAllocations: 1,
      largeLiveBytes: LARGE,
      // each slab's second half stays central: 256 + 8 + 4 blocks, 32 KiB of each class
      centralBlocks: 268,
      centralBytes: 3 * 32768,
      threadCaches: 1,
      // each refill's first block is live: 255 + 7 + 3 blocks
      threadCacheBlocks: 265,
      threadCacheBytes: 255 * 128 + 7 * 4096 + 3 * 8192,
      slabs: 3,
      allocationsTotal: 4,
    },
    // one live block in each class's 64 KiB slab
    classes: {
      1: [1, 256, 32768, 255, 32640, 65536, 1, 128],
      19: [1, 8, 32768, 7, 28672, 65536, 1, 4096],
      23: [1, 4, 32768, 3, 24576, 65536, 1, 8192],
    },
    cache: { bound: true, blocks: 265, bytes: 85888 },
    classBlocks: { 1: 255, 19: 7, 23: 3 },
  },
  {
    name: 'free the buffer, the view and the array',
    run: () => {
      seqArena.free(box.buffer as ArrayBuffer)
      seqArena.free(box.view as Float64Array)
      seqArena.free(box.array as Float32Array)
    },
    arena: { liveAllocations: 1, liveBytes: LARGE, threadCacheBlocks: 268, threadCacheBytes: 98304, freesTotal: 3 },
    classes: {
      1: [1, 256, 32768, 256, 32768, 65536, 0, 0],
      19: [1, 8, 32768, 8, 32768, 65536, 0, 0],
      23: [1, 4, 32768, 4, 32768, 65536, 0, 0],
    },
    cache: { blocks: 268, bytes: 98304 },
    classBlocks: { 1: 256, 19: 8, 23: 4 },
  },
  {
    // Refused in JavaScript (the buffer is detached, the view's mark moved on) before the
    // allocator sees them: still rejected frees, counted.
    name: 'double frees of the buffer and the view throw ERR_DOUBLE_FREE and count as rejected',
    run: () => {
      rejects('ERR_DOUBLE_FREE', () => seqArena.free(box.buffer as ArrayBuffer))
      rejects('ERR_DOUBLE_FREE', () => seqArena.free(box.view as Float64Array))
    },
    arena: { rejectedFreesTotal: 2 },
    cache: {},
  },
  {
    name: 'frees of a plain ArrayBuffer and of another arena’s buffer throw ERR_NOT_OWNED and count as rejected',
    run: () => {
      rejects('ERR_NOT_OWNED', () => seqArena.free(new ArrayBuffer(8)))
      rejects('ERR_NOT_OWNED', () => seqArena.free(otherArena.alloc(10)))
    },
    arena: { rejectedFreesTotal: 4 },
    cache: {},
  },
  {
    name: 'transfer the 20 MiB view: in flight',
    run: () => {
      box.handle = seqArena.transfer(box.big as Uint8Array)
    },
    arena: { inFlightCount: 1, inFlightBytes: LARGE },
    cache: {},
  },
  {
    name: 'receive it in the same thread',
    run: () => {
      box.received = seqArena.receive(box.handle as never) as Uint8Array
    },
    arena: { inFlightCount: 0, inFlightBytes: 0 },
    cache: {},
  },
  {
    name: 'free the received view: its span goes back to the span heap',
    run: () => seqArena.free(box.received as Uint8Array),
    arena: {
      remainingBytes: CAP - 3 * 64 * 1024,
      metadataBytes: 33280, // the large span's 16-byte table entry is gone
      freeSpanBytes: LARGE,
      retainedBytes: LARGE,
      liveAllocations: 0,
      liveBytes: 0,
      largeLiveAllocations: 0,
      largeLiveBytes: 0,
      freesTotal: 4,
    },
    cache: {},
  },
  {
    name: 'trim: the free span is released',
    run: () => {
      if (seqArena.trim() !== LARGE) throw new Error('trim released another amount')
    },
    arena: { retainedBytes: 0, releasedBytesTotal: LARGE },
    cache: {},
  },
  {
    name: 'flush the thread cache (lent view blocks included): every slab is empty in the central pool',
    run: () => seqArena.threadCache().flush(),
    arena: { centralBlocks: 536, centralBytes: 196608, threadCacheBlocks: 0, threadCacheBytes: 0, emptySlabs: 3 },
    classes: { 1: [1, 512, 65536, 0, 0, 65536, 0, 0], 19: [1, 16, 65536, 0, 0, 65536, 0, 0], 23: [1, 8, 65536, 0, 0, 65536, 0, 0] },
    cache: { blocks: 0, bytes: 0 },
    classBlocks: {},
  },
]

test.serial('every stat field has its exact value after each step of a scripted sequence', async (t) => {
  seqArena = new Arena({ maxBytes: CAP })
  otherArena = new Arena({ maxBytes: 16 * MiB })
  t.deepEqual([sizeClassOf(100), sizeClassOf(4000), sizeClassOf(8000), sizeClassOf(LARGE)], [1, 19, 23, undefined])
  t.deepEqual(Object.keys(FRESH), [...ARENA_STAT_FIELDS], 'the table covers every ArenaStats field, in order')
  const expected: Numbers = { ...FRESH }
  let classes: Record<number, ClassRow> = {}
  const cache: { bound: boolean; blocks: number; bytes: number } = { bound: false, blocks: 0, bytes: 0 }
  let classBlocks: Record<number, number> = {}
  const cacheId = seqArena.threadCache().stats().id
  const check = (step: string): void => {
    const s = seqArena.stats()
    const { classes: actualClasses, ...top } = s
    t.deepEqual(Object.keys(s).sort(), [...Object.keys(expected), 'classes'].sort(), `${step}: ArenaStats keys`)
    t.deepEqual(top, expected, `${step}: ArenaStats`)
    t.is(actualClasses.length, SIZE_CLASS_BYTES.length)
    actualClasses.forEach((c, i) => {
      t.deepEqual(Object.keys(c), CLASS_KEYS, `${step}: class ${i} keys`)
      const block = Math.ceil(SIZE_CLASS_BYTES[i] / 64) * 64
      const [slabs, centralBlocks, centralBytes, cachedBlocks, cachedBytes, carvedBytes, liveBlocks, liveBlockBytes] = classes[i] ?? [0, 0, 0, 0, 0, 0, 0, 0]
      const want = {
        payload: SIZE_CLASS_BYTES[i],
        block,
        metadataPerBlock: metadataPerBlock(block),
        ...{ slabs, centralBlocks, centralBytes, cachedBlocks, cachedBytes, carvedBytes, liveBlocks, liveBlockBytes },
      }
      t.deepEqual(c, want, `${step}: class ${i}`)
    })
    const c = seqArena.threadCache().stats()
    t.deepEqual(Object.keys(c).sort(), [...CACHE_KEYS].sort(), `${step}: ThreadCacheStats keys`)
    const perClass = SIZE_CLASS_BYTES.map((_, i) => classBlocks[i] ?? 0)
    t.deepEqual(c, { id: cacheId, ...cache, classBlocks: perClass }, `${step}: ThreadCacheStats`)
  }
  for (const step of STEPS) {
    step.run()
    Object.assign(expected, step.arena)
    if (step.classes !== undefined) classes = step.classes
    Object.assign(cache, step.cache)
    if (step.classBlocks !== undefined) classBlocks = step.classBlocks
    check(step.name)
  }
  // The GC finalizers of the explicitly freed buffer and array run: they free nothing and
  // count no rejected free (the block was freed by `free`, not rejected).
  box.buffer = undefined
  box.array = undefined
  box.view = undefined
  box.big = undefined
  box.received = undefined
  await collect(6)
  check('after the finalizers of the freed buffer and array ran')
  t.true(cacheId > 0)
})

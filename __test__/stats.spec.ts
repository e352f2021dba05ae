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
import { MiB, native } from './helpers'

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

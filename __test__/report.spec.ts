// The memory report (`arena.report()`, `report()`) and the `util.inspect(arena)` one-liner.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { inspect } from 'node:util'
import test from 'ava'
import {
  Arena,
  SizeClass,
  defaultArena,
  report,
  sizeClassOf,
  stats,
  type ArenaReport,
  type ArenaStats,
  type ClassReport,
} from 'tensor-arena'
import { MiB, arenaIdOf, repoRoot } from './helpers'

const KiB = 1024
const LARGE = 20 * MiB
/** 100 B → class B128 (128 B blocks, one 64 KiB slab of 512, refills of 256). */
const B128 = SizeClass.B128
/** 4000 B (float32 × 1000) → class B4096 (4 KiB blocks, one 64 KiB slab of 16, refills of 8). */
const B4096 = SizeClass.B4096

/** The rows and totals a report must have for `s`, from the stats fields alone. */
function expectedFrom(s: ArenaStats): { classes: ClassReport[]; totals: ArenaReport['totals'] } {
  const classes: ClassReport[] = []
  s.classes.forEach((c, index) => {
    if (c.slabs === 0) return
    classes.push({
      index,
      name: Object.keys(SizeClass)[index],
      blockBytes: c.block,
      slabs: c.slabs,
      liveBlocks: c.liveBlocks,
      cachedBlocks: c.cachedBlocks,
      freeBlocks: c.centralBlocks,
      liveBytes: c.liveBlockBytes,
      cachedBytes: c.cachedBytes,
      freeBytes: c.centralBytes,
      carvedBytes: c.carvedBytes,
      wasteBytes: c.carvedBytes - c.liveBlockBytes,
    })
  })
  const sum = (f: (c: ClassReport) => number): number => classes.reduce((n, c) => n + f(c), 0)
  const held = s.carvedBytes - s.freeSpanBytes + s.retainedBytes
  return {
    classes,
    totals: {
      liveAllocations: s.liveAllocations,
      liveBytes: s.liveBytes,
      liveBlockBytes: sum((c) => c.liveBytes),
      roundingWasteBytes: sum((c) => c.liveBytes) - (s.liveBytes - s.largeLiveBytes),
      cachedBlocks: s.threadCacheBlocks,
      cachedBytes: s.threadCacheBytes,
      threadCaches: s.threadCaches,
      freeBlocks: s.centralBlocks,
      freeBytes: s.centralBytes,
      slabs: s.slabs,
      emptySlabs: s.emptySlabs,
      slabBytes: sum((c) => c.carvedBytes),
      slabWasteBytes: sum((c) => c.wasteBytes),
      largeAllocations: s.largeLiveAllocations,
      largeBytes: s.largeLiveBytes,
      largeSpanBytes: s.carvedBytes - sum((c) => c.carvedBytes) - s.freeSpanBytes,
      freeSpanBytes: s.freeSpanBytes,
      retainedBytes: s.retainedBytes,
      releasedBytesTotal: s.releasedBytesTotal,
      carvedBytes: s.carvedBytes,
      heldBytes: held,
      overheadBytes: held - s.liveBytes,
      inFlightCount: s.inFlightCount,
      inFlightBytes: s.inFlightBytes,
      metadataBytes: s.metadataBytes,
      reservedBytes: s.reservedBytes,
      maxBytes: s.maxBytes === 0 ? undefined : s.maxBytes,
    },
  }
}

/** A pipeline's worth of live, freed and large memory in a fresh capped arena. */
function busyArena(): { arena: Arena; keep: ArrayBufferView[] } {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const keep: ArrayBufferView[] = []
  for (let i = 0; i < 12; i++) {
    keep.push(arena.view('float32', 1000), arena.array('float32', 100), arena.array('uint8', 30_000))
  }
  keep.push(arena.view('uint8', LARGE))
  for (const x of keep.splice(0, 9)) arena.free(x)
  return { arena, keep }
}

// ---- default arena (serial: ava runs these first, before anything else uses it) -----------

test.serial('util.inspect(defaultArena) before its first use says so and does not create it', (t) => {
  t.is(inspect(defaultArena), 'Arena { default arena, not created yet }')
  t.is(arenaIdOf(defaultArena), -1, 'inspecting did not create it')
  t.is(inspect(defaultArena), 'Arena { default arena, not created yet }')
})

test.serial('report() is the default arena’s report; inspect shows it once it exists', (t) => {
  const typed: ArenaReport = report()
  t.is(typed.totals.liveAllocations, 0)
  t.is(typed.classes.length, 0)
  t.true(arenaIdOf(defaultArena) >= 0, 'report() created it')
  const buffer = defaultArena.alloc(100)
  const r = report()
  const s = stats()
  t.deepEqual(r.stats, s)
  t.deepEqual(r.classes.map((c) => [c.name, c.liveBlocks, c.liveBytes]), [['B128', 1, 128]])
  t.is(r.totals.maxBytes, undefined, 'the default arena has no cap')
  t.regex(inspect(defaultArena), /^Arena \{ live: 1 allocation \/ 100 B, cached: 255 blocks \/ 31\.9 KiB, carved: 64\.0 KiB, classes in use: 1 \}$/)
  defaultArena.free(buffer)
  t.is(report().totals.liveAllocations, 0)
})

// ---- numbers -------------------------------------------------------------------------------

test('the report’s rows and totals are those of the stats() snapshot it carries, which equals stats() at the same moment', (t) => {
  const { arena } = busyArena()
  const r = arena.report()
  const s = arena.stats()
  t.deepEqual(r.stats, s, 'nothing happened between the two snapshots')
  const expected = expectedFrom(s)
  t.deepEqual([...r.classes], expected.classes)
  t.deepEqual({ ...r.totals }, expected.totals)
  t.true(r.classes.length >= 3)
  t.true(Object.isFrozen(r) && Object.isFrozen(r.classes) && Object.isFrozen(r.totals))
})

test('only the classes that own a slab are listed, in class-index order', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  t.deepEqual(arena.report().classes, [])
  const kept = [arena.alloc(8000), arena.alloc(100), arena.alloc(3000)]
  const r = arena.report()
  const expected = [100, 3000, 8000].map((n) => sizeClassOf(n))
  t.deepEqual(
    r.classes.map((c) => c.index),
    expected,
  )
  t.deepEqual(
    r.classes.map((c) => c.index),
    arena
      .stats()
      .classes.map((c, i) => (c.slabs > 0 ? i : -1))
      .filter((i) => i >= 0),
  )
  for (const b of kept) arena.free(b)
})

test('known allocations show up in their class with their block bytes, and the large one as a span', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const buffer = arena.alloc(100)
  const array = arena.array('float32', 1000)
  const big = arena.view('uint8', LARGE)
  const r = arena.report()
  const row = (index: number): ClassReport | undefined => r.classes.find((c) => c.index === index)
  t.like(row(B128), { name: 'B128', blockBytes: 128, slabs: 1, liveBlocks: 1, cachedBlocks: 255, freeBlocks: 256, liveBytes: 128, carvedBytes: 64 * KiB })
  t.like(row(B4096), { name: 'B4096', blockBytes: 4096, slabs: 1, liveBlocks: 1, cachedBlocks: 7, freeBlocks: 8, liveBytes: 4096, carvedBytes: 64 * KiB })
  t.is(row(B128)?.wasteBytes, 64 * KiB - 128)
  t.like(r.totals, {
    liveAllocations: 3,
    liveBytes: 100 + 4000 + LARGE,
    liveBlockBytes: 128 + 4096,
    roundingWasteBytes: 28 + 96,
    largeAllocations: 1,
    largeBytes: LARGE,
    largeSpanBytes: LARGE,
    slabs: 2,
    slabBytes: 128 * KiB,
    carvedBytes: 128 * KiB + LARGE,
    heldBytes: 128 * KiB + LARGE,
    maxBytes: 64 * MiB,
    inFlightCount: 0,
  })
  arena.free(buffer)
  arena.free(array)
  arena.free(big)
})

test('after frees, a cache flush and a trim the numbers move as expected', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(100)
  const before = arena.report()
  t.like(before.classes[0], { index: B128, liveBlocks: 1, cachedBlocks: 255, freeBlocks: 256 })

  arena.free(buffer)
  const freed = arena.report()
  t.like(freed.classes[0], { liveBlocks: 0, liveBytes: 0, cachedBlocks: 256, freeBlocks: 256, wasteBytes: 64 * KiB })
  t.like(freed.totals, { liveAllocations: 0, liveBytes: 0, cachedBlocks: 256, emptySlabs: 0, roundingWasteBytes: 0 })

  arena.threadCache().flush()
  const flushed = arena.report()
  t.like(flushed.classes[0], { liveBlocks: 0, cachedBlocks: 0, freeBlocks: 512, freeBytes: 64 * KiB })
  t.like(flushed.totals, { cachedBlocks: 0, cachedBytes: 0, freeBlocks: 512, emptySlabs: 1 })

  t.is(arena.trim(), 64 * KiB)
  const trimmed = arena.report()
  t.deepEqual(trimmed.classes, [], 'the empty slab went back to the span heap: no class holds memory')
  t.like(trimmed.totals, { slabs: 0, slabBytes: 0, freeSpanBytes: 64 * KiB, retainedBytes: 0, releasedBytesTotal: 64 * KiB })
  t.is(trimmed.totals.carvedBytes, 64 * KiB, 'carving never shrinks')
  t.is(trimmed.totals.heldBytes, 0, 'the released span is no longer held')
})

test('a hand-off in flight counts as live in its class and in the in-flight totals until received', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const handle = arena.transfer(arena.array('float32', 1000))
  const r = arena.report()
  t.like(r.totals, { inFlightCount: 1, inFlightBytes: 4000, liveAllocations: 1 })
  t.is(r.classes.find((c) => c.index === B4096)?.liveBlocks, 1)
  t.regex(inspect(arena), /, in flight: 1 hand-off \}$/)
  const received = arena.receive(handle)
  t.like(arena.report().totals, { inFlightCount: 0, liveAllocations: 1 })
  t.notRegex(inspect(arena), /in flight/)
  arena.free(received)
})

// ---- rendering -----------------------------------------------------------------------------

test('the text rendering has the header, one aligned row per class in use, the all row and the totals', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(100)
  const text = String(arena.report())
  const lines = text.split('\n')
  t.is(lines[0], 'tensor-arena memory report')
  t.regex(lines[1], /^class\s+block\s+slabs\s+live\s+cached\s+free\s+live bytes\s+carved\s+waste\s+used$/)
  t.regex(lines[2], /^B128\s+128\s+1\s+1\s+255\s+256\s+128 B\s+64\.0 KiB\s+63\.9 KiB\s+0\.2%$/)
  t.regex(lines[3], /^all\s+1\s+1\s+255\s+256\s+128 B\s+64\.0 KiB\s+63\.9 KiB\s+0\.2%$/)
  t.is(lines[1].length, lines[2].length, 'columns are aligned')
  t.is(lines[2].length, lines[3].length, 'columns are aligned')
  t.is(lines[4], '')
  const totals = lines.slice(5).join('\n')
  t.regex(totals, /^live {9}1 allocation, 100 B requested$/m)
  t.regex(totals, /^ {2}small {6}1 block, 128 B; 28 B of it rounding to blocks$/m)
  t.regex(totals, /^ {2}large {6}0 allocations, 0 B in 0 B of page spans$/m)
  t.regex(totals, /^cached {7}255 blocks, 31\.9 KiB, in 1 thread cache$/m)
  t.regex(totals, /^free {9}256 blocks, 32\.0 KiB, in the central pool; 0 empty slabs$/m)
  t.regex(totals, /^carved {7}64\.0 KiB of 16\.0 MiB reserved \(cap 16\.0 MiB\)$/m)
  t.regex(totals, /^held {9}64\.0 KiB \(carved minus released free spans\); 63\.9 KiB more than the live bytes$/m)
  t.is(inspect(arena.report()), String(arena.report()), 'console.log(report) prints the table')
  t.deepEqual(Object.keys(JSON.parse(JSON.stringify(arena.report()))), ['classes', 'totals', 'stats'], 'JSON has the data only')
  arena.free(buffer)
})

test('an arena with no class in use renders a placeholder row and the totals', (t) => {
  const text = String(new Arena({ maxBytes: 16 * MiB }).report())
  t.regex(text, /^\(no size class holds memory\)$/m)
  t.regex(text, /^live {9}0 allocations, 0 B requested$/m)
})

test('util.inspect(arena) is a one-line summary with live, cached, carved and the classes in use', (t) => {
  const fresh = new Arena({ maxBytes: 16 * MiB })
  t.is(inspect(fresh), 'Arena { live: 0 allocations / 0 B, cached: 0 blocks / 0 B, carved: 0 B, classes in use: 0 }')
  const { arena, keep } = busyArena()
  const line = inspect(arena)
  const s = arena.stats()
  t.regex(line, /^Arena \{ live: \d+ allocations? \/ [\d.]+ (B|KiB|MiB|GiB), cached: \d+ blocks? \/ [\d.]+ (B|KiB|MiB|GiB), carved: [\d.]+ (B|KiB|MiB|GiB), classes in use: \d+ \}$/)
  t.true(line.includes(`live: ${s.liveAllocations} allocations / 20.`), line)
  t.true(line.includes(`classes in use: ${arena.report().classes.length} }`), line)
  t.true(inspect({ arena }).includes('arena: Arena { live:'), 'nested inside other objects too')
  for (const x of keep) arena.free(x)
})

// ---- the example -----------------------------------------------------------------------------

test('npm run example:report runs its pipeline, and its first report is the one the README quotes', (t) => {
  const script = path.join(repoRoot, 'examples', 'report.mjs')
  const run = spawnSync(process.execPath, [script], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 })
  t.is(run.status, 0, run.stderr)
  const out = run.stdout
  t.is(out.match(/^tensor-arena memory report$/gm)?.length, 3, 'three full reports')
  t.is(out.match(/^Arena \{ live: /gm)?.length, 9, 'a one-liner after each phase')
  t.regex(out, /in flight: 8 hand-offs \}$/m, 'the transferred outputs show as in flight')
  t.regex(out, /^cached {7}\d+ blocks, [\d.]+ KiB, in 2 thread caches$/m, 'the worker’s cache shows while it lives')
  t.regex(out, /^held {9}0 B /m, 'after the trim nothing is held')
  const first = out.slice(out.indexOf('tensor-arena memory report')).split('\n\n=== ')[0].trimEnd()
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8')
  const quoted = /### Reading the memory report[\s\S]*?After its eight batch steps:\n\n```\n([\s\S]*?)\n```/.exec(readme)?.[1]
  t.is(quoted, first)
})

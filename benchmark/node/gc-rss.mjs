// Peak RSS of the GC-only path: allocations that are never freed explicitly, with one
// byte written per 4 KiB page (memory in use: untouched calloc'd or fresh pages never
// count in RSS), at 64 KiB, 1 MiB and 16 MiB, in a loop that never yields ("sync") and in
// one that yields (await setImmediate) every 16 operations, so finalizers could run.
// One child process per variant, size, loop and run, so no run inherits another's heap:
//   buffer-alloc   Buffer.alloc(n)             (V8 frees it in GC)
//   array          arena.array('uint8', n)     (exclusive external buffer)
//   view           arena.view('uint8', n)      (view over a window)
// Each loop hands out RSS_BYTES in all (at least 128 operations); RSS is sampled after
// every operation; the child prints one JSON line.
//
//   node benchmark/node/gc-rss.mjs                 every row, 3 runs each
//   node benchmark/node/gc-rss.mjs --child array 1048576 sync

import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setImmediate as immediate } from 'node:timers/promises'

import { median } from './suites.mjs'

export const RSS_VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc' },
  { id: 'array', label: 'ours: array, GC-only' },
  { id: 'view', label: 'ours: view, GC-only' },
]
export const RSS_SIZES = [64 * 1024, 1 << 20, 16 << 20]
export const RSS_LOOPS = ['sync', 'yield']
const RSS_BYTES = 1 << 30
const BATCH = 16

const opsFor = (size) => Math.max(128, RSS_BYTES / size)

async function child(variant, size, loop) {
  const { Arena } = await import('tensor-arena') // every variant loads the addon: same base RSS
  const arena = new Arena()
  const rss = process.memoryUsage.rss
  const baseRss = rss()
  const ops = opsFor(size)
  let peakRss = baseRss
  let peakLive = 0
  let oomAt = null
  let sink
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ops; i++) {
    try {
      if (variant === 'buffer-alloc') sink = Buffer.alloc(size)
      else if (variant === 'array') sink = arena.array('uint8', size)
      else sink = arena.view('uint8', size)
    } catch (error) {
      if (error.code !== 'ERR_OUT_OF_MEMORY') throw error
      oomAt = i
      break
    }
    for (let p = 0; p < size; p += 4096) sink[p] = 1
    const r = rss()
    if (r > peakRss) peakRss = r
    if (i % BATCH === BATCH - 1) {
      if (variant !== 'buffer-alloc') peakLive = Math.max(peakLive, arena.stats().liveBytes)
      if (loop === 'yield') await immediate()
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  process.stdout.write(`${JSON.stringify({ variant, size, loop, ops, baseRss, peakRss, peakLive, oomAt, ms })}\n`)
}

function spawnChild(variant, size, loop) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', variant, String(size), loop], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  return JSON.parse(out.trim().split('\n').pop())
}

/**
 * Runs every variant `runs` times for each size and loop. Returns `{ batch, bytes, rows }`,
 * rows `{ size, loop, variant, peakRss, baseRss, peakLive, oomAt, ms, ops, runs }` (medians;
 * runs = every child's result).
 */
export function measureRss({ runs = 3, log = console.log } = {}) {
  const rows = []
  const mib = (x) => `${(x / 2 ** 20).toFixed(0)} MiB`
  for (const size of RSS_SIZES) {
    for (const loop of RSS_LOOPS) {
      for (const v of RSS_VARIANTS) {
        const results = []
        for (let r = 0; r < runs; r++) results.push(spawnChild(v.id, size, loop))
        const oom = results.map((x) => x.oomAt).filter((x) => x !== null)
        const row = {
          size,
          loop,
          variant: v.id,
          ops: opsFor(size),
          peakRss: median(results.map((x) => x.peakRss)),
          baseRss: median(results.map((x) => x.baseRss)),
          peakLive: median(results.map((x) => x.peakLive)),
          oomAt: oom.length > 0 ? median(oom) : null,
          ms: median(results.map((x) => x.ms)),
          runs: results,
        }
        rows.push(row)
        log(
          `rss ${size >> 10} KiB ${loop} ${v.label}: peak ${mib(row.peakRss)} (start ${mib(row.baseRss)})` +
            (row.oomAt !== null ? `, arena out of memory after ${row.oomAt} operations` : ''),
        )
      }
    }
  }
  return { batch: BATCH, bytes: RSS_BYTES, rows }
}

/** The row of `variant` at `size` and `loop`. */
export function rssRow(rss, size, loop, variant) {
  return rss.rows.find((r) => r.size === size && r.loop === loop && r.variant === variant)
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]), process.argv[5])
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  measureRss()
}

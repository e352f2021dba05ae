// Peak RSS of the GC-only path: 1 MiB allocations that are never freed explicitly, with an
// event-loop turn (await setImmediate) every 16 operations, so GC finalizers can return
// blocks. One child process per variant and run, so no run inherits another's heap:
//   buffer-alloc   Buffer.alloc(1 MiB)             (V8 frees it in GC)
//   array          arena.array('uint8', 1 MiB)     (exclusive external buffer; its finalizer frees it)
//   view           arena.view('uint8', 1 MiB)      (FinalizationRegistry reclaims it)
// Two scenarios: the allocation alone, and the allocation plus one byte written per 4 KiB
// page (memory actually used: untouched calloc'd/fresh pages never count in RSS).
// RSS is sampled after every operation; the child prints one JSON line.
//
//   node benchmark/node/gc-rss.mjs                 all variants, both scenarios, 3 runs each
//   node benchmark/node/gc-rss.mjs --child array touch 2000

import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setImmediate as immediate } from 'node:timers/promises'

import { median } from './suites.mjs'

export const RSS_VARIANTS = [
  { id: 'buffer-alloc', label: 'Buffer.alloc' },
  { id: 'array', label: 'ours: array, GC-only' },
  { id: 'view', label: 'ours: view, GC-only' },
]
const SIZE = 1 << 20
const BATCH = 16

async function child(variant, touch, ops) {
  const { Arena } = await import('tensor-arena') // every variant loads the addon: same base RSS
  const arena = new Arena()
  const rss = process.memoryUsage.rss
  const baseRss = rss()
  let peakRss = baseRss
  let peakLive = 0
  let oomAt = null
  let sink
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ops; i++) {
    try {
      if (variant === 'buffer-alloc') sink = Buffer.alloc(SIZE)
      else if (variant === 'array') sink = arena.array('uint8', SIZE)
      else sink = arena.view('uint8', SIZE)
    } catch (error) {
      if (error.code !== 'ERR_OUT_OF_MEMORY') throw error
      oomAt = i
      break
    }
    if (touch) for (let p = 0; p < SIZE; p += 4096) sink[p] = 1
    const r = rss()
    if (r > peakRss) peakRss = r
    if (i % BATCH === BATCH - 1) {
      await immediate()
      if (variant !== 'buffer-alloc') peakLive = Math.max(peakLive, arena.stats().liveBytes)
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  process.stdout.write(`${JSON.stringify({ variant, touch, ops, baseRss, peakRss, peakLive, oomAt, ms })}\n`)
}

function spawnChild(variant, touch, ops) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', variant, touch ? 'touch' : 'alloc', String(ops)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  return JSON.parse(out.trim().split('\n').pop())
}

/**
 * Runs every variant `runs` times in each scenario. Returns
 * `{ [scenario]: { [variant]: { peakRss, baseRss, peakLive, oomAt, ms, runs } } }` (medians;
 * runs = every child's result) plus `ops` and `batch`.
 */
export function measureRss({ runs = 3, ops = 2000, log = console.log } = {}) {
  const out = { ops, batch: BATCH, size: SIZE }
  for (const scenario of ['alloc', 'touch']) {
    for (const v of RSS_VARIANTS) {
      const results = []
      for (let r = 0; r < runs; r++) results.push(spawnChild(v.id, scenario === 'touch', ops))
      const oom = results.map((x) => x.oomAt).filter((x) => x !== null)
      const row = {
        peakRss: median(results.map((x) => x.peakRss)),
        baseRss: median(results.map((x) => x.baseRss)),
        peakLive: median(results.map((x) => x.peakLive)),
        oomAt: oom.length > 0 ? median(oom) : null,
        ms: median(results.map((x) => x.ms)),
        runs: results,
      }
      ;(out[scenario] ??= {})[v.id] = row
      const mib = (x) => (x / SIZE).toFixed(0)
      log(
        `rss ${scenario} ${v.label}: peak ${mib(row.peakRss)} MiB (start ${mib(row.baseRss)} MiB)` +
          (row.oomAt !== null ? `, arena out of memory after ${row.oomAt} operations` : ''),
      )
    }
  }
  return out
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4] === 'touch', Number(process.argv[5]))
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  measureRss()
}

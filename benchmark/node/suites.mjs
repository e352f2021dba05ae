// Runs the benny suites: one suite per (scenario, size) group and one for embedding_batch,
// repeated; every repeat rotates the case order so no variant always runs right after the
// same neighbour (GC debt left by one case is paid by the next). Between groups: a full GC
// (the runner has --expose-gc) and two event-loop turns, so finalizers of the previous group
// have run.

import { setImmediate as immediate } from 'node:timers/promises'

import b from 'benny'

import {
  BURST_VARIANTS,
  burstCase,
  embedCase,
  EMBED_VARIANTS,
  makeEnv,
  SCENARIOS,
  SIZES,
  sizeCase,
  STEP_VARIANTS,
  stepCase,
  VARIANTS,
} from './cases.mjs'

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((x, y) => x - y)
  if (v.length === 0) return NaN
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

export function sizeLabel(bytes) {
  if (bytes >= 1 << 20) return `${bytes / (1 << 20)} MiB`
  if (bytes >= 1024) return `${bytes / 1024} KiB`
  return `${bytes} B`
}

async function settle() {
  globalThis.gc?.()
  await immediate()
  await immediate()
}

function rotate(list, by) {
  const k = ((by % list.length) + list.length) % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

/** Runs one benny suite; returns { [caseId]: operations per second }. */
async function runSuite(name, cases, options) {
  const summary = await b.suite(
    name,
    ...cases.map((c) => b.add(c.id, c.fn)),
    b.configure({ cases: { maxTime: options.maxTime, minSamples: options.minSamples } }),
  )
  const ops = {}
  for (const r of summary.results) {
    const c = cases.find((x) => x.id === r.name)
    // details.median: median seconds per call over benny's samples (each sample is a
    // cycle of many calls, so GC work is inside the samples, not thrown away).
    ops[r.name] = c.opsPerCall / r.details.median
  }
  return ops
}

/**
 * All repeats. Returns
 * `{ sizes: { [scenario]: { [size]: { [variant]: number[] } } }, embed: { [variant]: number[] }, oom }`
 * with one ops/s value per repeat (NaN where a GC-only case ran its arena out of memory;
 * `oom[scenario][size][variant]` lists after how many operations).
 */
/** The variants of the views-only run (`--views-only`): the rows the view goals read. */
export const VIEW_ROW_IDS = ['buffer-alloc', 'buffer-unsafe', 'typedarray-pool', 'thing-mempool', 'view', 'view-zero', 'view-dtypes']

export async function runSuites({ Arena, arena, repeats, maxTime, minSamples, sizes = SIZES, viewsOnly = false, log = console.log }) {
  const variants = viewsOnly ? VARIANTS.filter((v) => VIEW_ROW_IDS.includes(v.id)) : VARIANTS
  const scenarios = viewsOnly ? SCENARIOS.filter((sc) => sc.id === 'free') : SCENARIOS
  const gcArena = new Arena({ maxBytes: arena.maxBytes })
  const sizesOut = {}
  const embed = {}
  const step = {}
  const burst = {}
  const oom = {}
  for (let r = 0; r < repeats; r++) {
    log(`\n=== repeat ${r + 1} of ${repeats} ===`)
    for (const scenario of scenarios) {
      for (const size of sizes) {
        await settle()
        const env = makeEnv(Arena, arena, gcArena)
        const touch = scenario.id === 'touch'
        const cases = rotate(variants, r * 5).map((v) => sizeCase(env, v, size, touch))
        const ops = await runSuite(`${scenario.id} ${sizeLabel(size)}`, cases, { maxTime, minSamples })
        const slot = ((sizesOut[scenario.id] ??= {})[size] ??= {})
        for (const v of variants) {
          const failedAt = env.oom.get(v.id)
          if (failedAt !== undefined) {
            ;(((oom[scenario.id] ??= {})[size] ??= {})[v.id] ??= []).push(failedAt)
            ;(slot[v.id] ??= []).push(NaN)
          } else {
            ;(slot[v.id] ??= []).push(ops[v.id])
          }
        }
        // Everything the GC-only cases left behind must be collected before the next group.
        env.viewGcArena = undefined
      }
    }
    if (!viewsOnly) {
      await settle()
      const env = makeEnv(Arena, arena, gcArena)
      const cases = rotate(EMBED_VARIANTS, r * 3).map((v) => embedCase(env, v))
      const ops = await runSuite('embedding_batch', cases, { maxTime, minSamples })
      for (const v of EMBED_VARIANTS) (embed[v.id] ??= []).push(ops[v.id])
      await settle()
      const stepEnv = makeEnv(Arena, arena, gcArena)
      const stepOps = await runSuite('scope_step', rotate(STEP_VARIANTS, r * 2).map((v) => stepCase(stepEnv, v)), { maxTime, minSamples })
      for (const v of STEP_VARIANTS) (step[v.id] ??= []).push(stepOps[v.id])
    }
    await settle()
    const burstEnv = makeEnv(Arena, arena, gcArena)
    const burstOps = await runSuite('burst', rotate(BURST_VARIANTS, r * 2).map((v) => burstCase(burstEnv, v)), { maxTime, minSamples })
    for (const v of BURST_VARIANTS) (burst[v.id] ??= []).push(burstOps[v.id])
  }
  return { sizes: sizesOut, embed, step, burst, oom }
}

/**
 * Medians over repeats: ops/s, and the ratio to Buffer.alloc taken per repeat (same
 * process, same group) and then the median of those ratios.
 */
export function summarize(raw) {
  const sizes = {}
  for (const [scenario, bySize] of Object.entries(raw.sizes)) {
    for (const [size, byVariant] of Object.entries(bySize)) {
      const base = byVariant['buffer-alloc']
      const out = ((sizes[scenario] ??= {})[size] = {})
      for (const [id, values] of Object.entries(byVariant)) {
        const oomAt = raw.oom?.[scenario]?.[size]?.[id] ?? []
        out[id] = {
          ops: median(values),
          ratio: median(values.map((x, i) => x / base[i])),
          runs: values,
          // Runs in which a GC-only case ran its arena out of memory (they count as no value),
          // and after how many operations.
          oomRuns: oomAt.length,
          oomAt,
        }
      }
    }
  }
  const perBase = (group) => {
    const out = {}
    const base = group?.['buffer-alloc']
    for (const [id, values] of Object.entries(group ?? {})) {
      out[id] = { ops: median(values), ratio: median(values.map((x, i) => x / base[i])), runs: values }
    }
    return out
  }
  const nonEmpty = (group) => (group && Object.keys(group).length > 0 ? perBase(group) : {})
  return { sizes, embed: nonEmpty(raw.embed), step: nonEmpty(raw.step), burst: perBase(raw.burst) }
}

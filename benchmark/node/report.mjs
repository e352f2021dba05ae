// Tables for the console and the Node section of BENCHMARK.md, the goal checks, and the
// machine description.

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

import { BURST, BURST_VARIANTS, EMBED, EMBED_VARIANTS, GC_BATCH, SCENARIOS, SIZES, STEP, STEP_VARIANTS, VARIANTS } from './cases.mjs'
import { PIPELINE_SIZES, PIPELINE_VARIANTS } from './pipeline.mjs'
import { RSS_LOOPS, RSS_SIZES, RSS_VARIANTS, rssRow } from './gc-rss.mjs'
import { sizeLabel } from './suites.mjs'

export function machine() {
  let osName = `${os.type()} ${os.release()}`
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))
    if (pretty) osName = `${pretty[1]}, ${os.type()} ${os.release()} (${os.arch()})`
  } catch {}
  // The code measured: HEAD, and whether src/ or crates/ differ from it (read-only git).
  let commit = 'unknown'
  try {
    const git = (...args) => execFileSync('git', args, { cwd: new URL('../../', import.meta.url), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    commit = git('rev-parse', '--short', 'HEAD')
    if (git('status', '--porcelain', '--', 'src', 'crates') !== '') commit += ' + uncommitted changes in src/ or crates/'
  } catch {}
  const cpus = os.cpus()
  return {
    commit,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: osName,
    node: process.version,
    v8: process.versions.v8,
    load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  }
}

export function fmtOps(x) {
  if (!Number.isFinite(x)) return 'n/a'
  if (x >= 1e6) return `${(x / 1e6).toFixed(x >= 1e8 ? 0 : 2)} M`
  if (x >= 1e3) return `${(x / 1e3).toFixed(x >= 1e5 ? 0 : 1)} k`
  return x.toFixed(x >= 100 ? 0 : 1)
}

export function fmtRatio(r) {
  if (!Number.isFinite(r)) return 'n/a'
  if (r >= 100) return `${Math.round(r).toLocaleString('en-US')}×`
  if (r >= 10) return `${r.toFixed(1)}×`
  if (r >= 0.1) return `${r.toFixed(2)}×`
  return `${r.toPrecision(2)}×`
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`

/** Nanoseconds per operation from ops/s. */
const ns = (ops) => 1e9 / ops

/**
 * Every goal of issue 11 (views at the JavaScript floor), with the measured value and
 * whether it is met, then the GC-only RSS goals. Times are medians of ops/s; a "× Buffer.alloc(64)"
 * figure compares with Buffer.alloc(64)'s time in the same run's 64 B group.
 */
export function checkGoals(summary, rss) {
  const goals = []
  const row = (size) => summary.sizes.free?.[size] ?? {}
  const base64 = row(64)['buffer-alloc']?.ops
  const vsBase = (ops) => ns(ops) / ns(base64)
  const x = (r) => `${r.toFixed(2)}×`
  const views = SIZES.map((size) => vsBase(row(size).view?.ops))
  goals.push({
    goal: 'view + free ≤ 1.5 × Buffer.alloc(64) at every size, 64 B to 16 MiB',
    value: SIZES.map((size, i) => `${sizeLabel(size)} ${x(views[i])}`).join(' · '),
    met: views.every((r) => r <= 1.5),
  })
  for (const size of SIZES) {
    const r = row(size)
    goals.push({
      goal: `view faster than typedarray-pool and at least level with @thi.ng/malloc at ${sizeLabel(size)}`,
      value: `view ${fmtOps(r.view?.ops)} · typedarray-pool ${fmtOps(r['typedarray-pool']?.ops)} · MemPool ${fmtOps(r['thing-mempool']?.ops)} ops/s`,
      met: r.view?.ops > r['typedarray-pool']?.ops && r.view?.ops >= r['thing-mempool']?.ops,
    })
  }
  const dtypes = vsBase(row(64)['view-dtypes']?.ops)
  goals.push({ goal: 'view + free, 4 dtypes cycling (64 B) ≤ 2 × Buffer.alloc(64)', value: x(dtypes), met: dtypes <= 2 })
  const burst = summary.burst?.view?.ops
  const burstBase = summary.burst?.['buffer-alloc']?.ops
  if (burst !== undefined && burstBase !== undefined) {
    // Against Buffer.alloc(64) in the same burst (256 live, then dropped): same shape, same harness.
    const perPair = ns(burst) / ns(burstBase)
    const pair = (ops) => `${(ns(ops) / BURST.count).toFixed(1)} ns`
    goals.push({
      goal: `a burst of ${BURST.count} live views then ${BURST.count} frees ≤ 1.5 × Buffer.alloc(64) per pair (same burst)`,
      value: `${x(perPair)} (view ${pair(burst)}, Buffer.alloc ${pair(burstBase)} per pair)`,
      met: perPair <= 1.5,
    })
  }
  for (const size of SIZES) {
    const r = row(size)
    // The fill alone: what Buffer.alloc pays over Buffer.allocUnsafe for the same bytes (≥ 0).
    const fill = Math.max(0, ns(r['buffer-alloc']?.ops) - ns(r['buffer-unsafe']?.ops))
    const extra = ns(r['view-zero']?.ops) - ns(r.view?.ops)
    goals.push({
      goal: `view { zero: true } costs only the fill at ${sizeLabel(size)} (extra ≤ 1.2 × Buffer.alloc − allocUnsafe + 5 ns)`,
      value: `extra ${extra.toFixed(0)} ns, fill ${fill.toFixed(0)} ns`,
      met: extra <= 1.2 * fill + 5,
    })
  }
  for (const id of ['array']) {
    const ratios = SIZES.map((size) => ns(row(size)[id]?.ops) / ns(row(size)['exclusive-floor']?.ops))
    goals.push({
      goal: `${id} + free ≤ 1.2 × Node's floor (external ArrayBuffer over static memory + detach) at every size`,
      value: SIZES.map((size, i) => `${sizeLabel(size)} ${x(ratios[i])}`).join(' · '),
      met: ratios.every((r) => r <= 1.2),
    })
  }
  if (rss?.rows) {
    for (const id of ['array', 'view']) {
      for (const loop of RSS_LOOPS) {
        const cells = RSS_SIZES.map((size) => {
          const row = rssRow(rss, size, loop, id)
          const base = rssRow(rss, size, loop, 'buffer-alloc')
          return { size, row, ratio: row && base ? row.peakRss / base.peakRss : Number.NaN }
        })
        goals.push({
          goal: `GC-only ${id}, ${loop === 'sync' ? 'loop that never yields' : `yield every ${rss.batch}`}, a byte written per page: peak RSS ≤ 1.5 × Buffer.alloc's, no out-of-memory`,
          value: cells
            .map((c) => `${sizeLabel(c.size)} ${c.ratio.toFixed(2)}×${c.row?.oomAt != null ? ` (OOM at op ${c.row.oomAt})` : ''}`)
            .join(' · '),
          met: cells.every((c) => c.ratio <= 1.5 && c.row?.oomAt == null),
        })
      }
    }
  }
  return goals
}

function table(header, rows, align) {
  const md = [`| ${header.join(' | ')} |`, `| ${align.map((a) => (a === 'r' ? '---:' : '---')).join(' | ')} |`]
  for (const r of rows) md.push(`| ${r.join(' | ')} |`)
  return md.join('\n')
}

/** One case: "ops/s (ratio)", or how it ran out of arena memory (GC-only cases). */
function cell(c) {
  const oomRuns = c.oomRuns ?? 0
  if (oomRuns > 0 && oomRuns >= c.runs.length) return `arena OOM after ${Math.min(...c.oomAt).toLocaleString('en-US')} ops`
  const text = `${fmtOps(c.ops)} (${fmtRatio(c.ratio)})`
  return oomRuns > 0 ? `${text}, OOM in ${oomRuns}/${c.runs.length} runs` : text
}

function sizeTable(summary, scenario) {
  const rows = VARIANTS.map((v) => [
    v.label,
    ...SIZES.map((size) => {
      const c = summary.sizes[scenario]?.[size]?.[v.id]
      return c ? cell(c) : '—'
    }),
  ])
  return table(['variant', ...SIZES.map(sizeLabel)], rows, ['l', ...SIZES.map(() => 'r')])
}

/** Plain-text tables for the terminal. */
export function consoleReport(summary, rss, pipeline) {
  const lines = []
  for (const sc of SCENARIOS) {
    if (!summary.sizes[sc.id]) continue
    lines.push(`\n${sc.label}: ops/s (ratio to Buffer.alloc, same run; higher is better)`)
    const sizes = SIZES.filter((s) => summary.sizes[sc.id][s])
    const w = 22
    lines.push(['variant'.padEnd(28), ...sizes.map((s) => sizeLabel(s).padStart(w))].join(''))
    for (const v of VARIANTS) {
      const cells = sizes.map((s) => {
        const c = summary.sizes[sc.id][s][v.id]
        return (c ? cell(c).replace(/arena OOM after (\S+) ops/, 'OOM@$1').replace(/, OOM in (\d+)\/\d+ runs/, ' OOM×$1') : '—').padStart(w)
      })
      lines.push([v.label.padEnd(28), ...cells].join(''))
    }
  }
  if (summary.embed && Object.keys(summary.embed).length > 0) {
    lines.push(`\nembedding_batch (${EMBED.count} × ${EMBED.bytes} B float32: alloc, fill, free): batches/s (ratio)`)
    for (const v of EMBED_VARIANTS) {
      const c = summary.embed[v.id]
      lines.push(`${v.label.padEnd(28)}${`${fmtOps(c.ops)} (${fmtRatio(c.ratio)})`.padStart(22)}`)
    }
  }
  if (summary.step && Object.keys(summary.step).length > 0) {
    lines.push(`\nscope_step (${STEP.count} × ${STEP.length * 4} B float32 live together: alloc, fill, release): steps/s (ratio)`)
    for (const v of STEP_VARIANTS) {
      const c = summary.step[v.id]
      lines.push(`${v.label.padEnd(44)}${`${fmtOps(c?.ops)} (${fmtRatio(c?.ratio)})`.padStart(22)}`)
    }
  }
  if (rss?.rows) {
    lines.push(`\nGC-only path (no free, a byte written per page): peak RSS, ÷ Buffer.alloc's`)
    for (const size of RSS_SIZES) {
      for (const loop of RSS_LOOPS) {
        const base = rssRow(rss, size, loop, 'buffer-alloc')?.peakRss
        const cells = RSS_VARIANTS.map((v) => {
          const row = rssRow(rss, size, loop, v.id)
          if (!row) return ''
          const oom = row.oomAt != null ? ` OOM@${row.oomAt}` : ''
          return `${v.id} ${mib(row.peakRss)} (${(row.peakRss / base).toFixed(2)}×)${oom}`
        })
        lines.push(`${sizeLabel(size).padEnd(7)} ${loop.padEnd(6)} ${cells.join('   ')}`)
      }
    }
  }
  if (pipeline) {
    lines.push('\nworker pipeline (producer fills, consumer sums + frees): tensors/s')
    for (const v of PIPELINE_VARIANTS) {
      lines.push(`${v.label.padEnd(42)}${PIPELINE_SIZES.map((s) => `${sizeLabel(s)}: ${fmtOps(pipeline[s]?.[v.id]?.rate)}`.padStart(20)).join('')}`)
    }
  }
  return lines.join('\n')
}

/** The Markdown between the node markers of BENCHMARK.md. */
export function markdownSection({ summary, rss, pipeline, info, command, seconds, options, date }) {
  const goals = checkGoals(summary, rss)
  const met = goals.filter((g) => g.met).length
  const s = []
  s.push('## Node: tensor-arena vs Buffer.alloc and the JS pools')
  s.push('')
  s.push(
    `Generated ${date} by \`${command}\` in ${Math.round(seconds)} s. Do not edit by hand: the benchmark rewrites everything between the \`node\` markers.`,
  )
  s.push('')
  s.push(
    table(
      ['machine', ''],
      [
        ['CPU', info.cpu],
        ['cores', String(info.cores)],
        ['memory', info.memory],
        ['OS', info.os],
        ['Node', `${info.node} (V8 ${info.v8})`],
        ['code measured', info.commit ?? 'unknown'],
        ['load average at start', info.load],
      ],
      ['l', 'l'],
    ),
  )
  s.push('')
  s.push(
    `**Method.** [benny](https://github.com/caderek/benny) 3.7.1 (Benchmark.js), one suite per scenario and size, every case in the same process; \`maxTime\` ${options.maxTime} s and \`minSamples\` ${options.minSamples} per case; the whole suite ran ${options.repeats} time(s), the case order rotating each time; a full GC and two event-loop turns between suites. A value is the median over the runs of the case's ops/s (1 ÷ the median benny sample). **Ratio** = Buffer.alloc's time ÷ the case's time, taken in each run against Buffer.alloc of the same suite, then the median: higher is better, 1 = as fast as Buffer.alloc. Our cases use one default arena (no cap: it grows on demand) and free explicitly (benny never turns the event loop inside a case, so nothing can rely on finalizers there); the baselines are never freed (V8 collects them). "GC-only" cases never free: they are deferred (async) cases that allocate ${GC_BATCH} times, then await a \`setImmediate\` (one call = ${GC_BATCH} operations), in their own arena. The @thi.ng/malloc MemPool is a fixed 1 GiB (it cannot grow). Sizes are bytes; the typed arrays are Uint8Array except \`new Float32Array\` (same bytes).`,
  )
  s.push('')
  s.push('![Node ratios](benchmark/node-ratios.svg)')
  s.push('')
  s.push(`### Goals (${met} of ${goals.length} met)`)
  s.push('')
  s.push(table(['goal', 'measured', 'met'], goals.map((g) => [g.goal, g.value, g.met ? 'yes' : '**no**']), ['l', 'l', 'l']))
  for (const sc of SCENARIOS) {
    s.push('')
    s.push(`### ${sc.label}: ops/s (ratio to Buffer.alloc)`)
    s.push('')
    s.push(sizeTable(summary, sc.id))
  }
  s.push('')
  s.push(`### embedding_batch: ${EMBED.count} × ${EMBED.bytes}-byte float32 arrays (alloc, fill, free)`)
  s.push('')
  s.push(
    table(
      ['variant', 'batches/s', 'ratio to Buffer.alloc'],
      EMBED_VARIANTS.map((v) => [v.label, fmtOps(summary.embed[v.id]?.ops), fmtRatio(summary.embed[v.id]?.ratio)]),
      ['l', 'r', 'r'],
    ),
  )
  if (summary.step && Object.keys(summary.step).length > 0) {
    s.push('')
    s.push(stepSection(summary.step))
  }
  if (summary.burst && Object.keys(summary.burst).length > 0) {
    s.push('')
    s.push(`### burst: ${BURST.count} live ${BURST.bytes}-byte buffers, then ${BURST.count} frees`)
    s.push('')
    s.push(
      table(
        ['variant', 'bursts/s', 'ns per alloc+free pair', 'ratio to Buffer.alloc'],
        BURST_VARIANTS.map((v) => {
          const c = summary.burst[v.id]
          return [v.label, fmtOps(c?.ops), c ? (1e9 / c.ops / BURST.count).toFixed(1) : '—', fmtRatio(c?.ratio)]
        }),
        ['l', 'r', 'r', 'r'],
      ),
    )
  }
  if (rss?.rows) {
    s.push('')
    s.push('### GC-only path: peak RSS (no explicit free, one byte written per 4 KiB page)')
    s.push('')
    s.push(
      `\`node benchmark/node/gc-rss.mjs\`: one child process per variant, size, loop and run (${rss.runs ?? 3} runs, median); each loop hands out ${mib(rss.bytes)} in all (at least 128 operations) and never frees; \`process.memoryUsage.rss()\` sampled after every operation. "sync": a loop that never yields (no finalizer or FinalizationRegistry callback can run); "yield": \`await setImmediate\` every ${rss.batch} operations.`,
    )
    s.push('')
    const rows = []
    for (const size of RSS_SIZES) {
      for (const loop of RSS_LOOPS) {
        const base = rssRow(rss, size, loop, 'buffer-alloc')
        const cell = (id) => {
          const row = rssRow(rss, size, loop, id)
          if (!row) return '—'
          const oom = row.oomAt != null ? `, out of memory at op ${row.oomAt}` : ''
          return id === 'buffer-alloc' ? mib(row.peakRss) : `${mib(row.peakRss)} (${(row.peakRss / base.peakRss).toFixed(2)}×${oom})`
        }
        rows.push([sizeLabel(size), loop, mib(base.baseRss), cell('buffer-alloc'), cell('array'), cell('view')])
      }
    }
    s.push(table(['size', 'loop', 'RSS at start', 'Buffer.alloc', 'array (÷ Buffer.alloc)', 'view (÷ Buffer.alloc)'], rows, ['l', 'l', 'r', 'r', 'r', 'r']))
  }
  if (pipeline) {
    s.push('')
    s.push('### Worker pipeline: tensors/s')
    s.push('')
    s.push(
      'Two `worker_threads`: the producer allocates a float32 tensor and fills it, hands it over, the consumer sums it and frees it (at most 16 in flight, credit returned every 4). Baselines: `new Float32Array` / `Buffer.alloc` posted with a transfer list (zero copy). Ours: `Arena.shared(\'bench\')` in both workers, `transfer` / `receive` (zero copy), freed by the consumer (a cross-thread free). Own timing loop (benny cannot drive workers): per variant and size a warm-up, then 5 timed runs of about 0.5 s; median tensors/s.',
    )
    s.push('')
    const rows = PIPELINE_VARIANTS.map((v) => [
      v.label,
      ...PIPELINE_SIZES.flatMap((size) => {
        const c = pipeline[size]?.[v.id]
        const base = pipeline[size]?.float32array?.rate
        return [fmtOps(c?.rate), c ? `${(c.rate / base).toFixed(2)}×` : '—']
      }),
    ])
    s.push(
      table(
        ['variant', ...PIPELINE_SIZES.flatMap((size) => [`${sizeLabel(size)} tensors/s`, 'vs Float32Array'])],
        rows,
        ['l', ...PIPELINE_SIZES.flatMap(() => ['r', 'r'])],
      ),
    )
  }
  s.push('')
  s.push(options.notes.trim())
  return s.join('\n')
}

/** The scope_step table: a 10-tensor step released by V8, an explicit free, a scope or GC only. */
function stepSection(step) {
  const rows = STEP_VARIANTS.map((v) => {
    const c = step[v.id]
    return [v.label, fmtOps(c?.ops), c ? (1e9 / c.ops).toFixed(0) : '—', fmtRatio(c?.ratio)]
  })
  return [
    `### scope_step: ${STEP.count} float32 tensors of ${STEP.length * 4} B live together (alloc, fill, release)`,
    '',
    `One step of a tensor program: ${STEP.count} tensors made and filled, then released: by V8 (the Node baselines), an explicit \`free\` of each, \`arena.scope(() => step)\`, an awaited \`arena.scope(async () => step)\` (${GC_BATCH} per call), or dropped (GC-only, a \`setImmediate\` every ${GC_BATCH} steps).`,
    '',
    table(['variant', 'steps/s', 'ns per step', 'ratio to Buffer.alloc'], rows, ['l', 'r', 'r', 'r']),
  ].join('\n')
}

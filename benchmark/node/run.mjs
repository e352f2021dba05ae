// Node benchmark: tensor-arena against Buffer.alloc / allocUnsafe / allocUnsafeSlow /
// new Float32Array and the JS pools (typedarray-pool, @thi.ng/malloc), with benny.
//
//   npm start                  quick run (short cases, one pass): prints the tables
//   npm run bench:node         full run (3 passes, medians): also writes the Node section
//                              of BENCHMARK.md, benchmark/node-ratios.svg and
//                              benchmark/node-results.json
//   node benchmark/node/run.mjs [--full] [--repeats N] [--max-time S] [--min-samples N]
//                              [--no-rss] [--no-pipeline] [--write] [--views-only]
//                              [--json PATH]
//   --views-only               only the rows the view goals read (alloc + free, the burst):
//                              what `npm run bench:node:versions` runs on each Node version
//   --json PATH                also save { info, options, summary, rss } to PATH
//   --no-write                 do not write BENCHMARK.md and the chart (even with --full)
//   node benchmark/node/run.mjs --render [results.json]   re-render the outputs from saved
//                              results (default benchmark/node-results.json), no measuring
//
// Both npm scripts build the addon and dist/ first (`npm run build`). The runner needs
// --expose-gc (a full GC between suites); it re-executes itself with it when missing.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  })
  process.exit(r.status ?? 1)
}

const { Arena } = await import('tensor-arena')
const { runSuites, summarize } = await import('./suites.mjs')
const { measureRss } = await import('./gc-rss.mjs')
const { runPipeline } = await import('./pipeline.mjs')
const { consoleReport, checkGoals, machine, markdownSection } = await import('./report.mjs')
const { ratioChart } = await import('./svg.mjs')

function parseArgs(argv) {
  const full = argv.includes('--full')
  const value = (name, fallback) => {
    const i = argv.indexOf(name)
    if (i < 0) return fallback
    const x = Number(argv[i + 1])
    if (!Number.isFinite(x) || x <= 0) throw new RangeError(`${name} needs a positive number`)
    return x
  }
  return {
    full,
    repeats: value('--repeats', full ? 3 : 1),
    maxTime: value('--max-time', full ? 0.8 : 0.1),
    minSamples: value('--min-samples', full ? 5 : 2),
    rssRuns: full ? 3 : 1,
    pipelineRuns: full ? 5 : 3,
    pipelineSeconds: full ? 0.5 : 0.2,
    viewsOnly: argv.includes('--views-only'),
    rss: !argv.includes('--no-rss') && !argv.includes('--views-only'),
    pipeline: !argv.includes('--no-pipeline') && !argv.includes('--views-only'),
    write: (full || argv.includes('--write')) && !argv.includes('--views-only') && !argv.includes('--no-write'),
    json: argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined,
  }
}

const root = new URL('../../', import.meta.url)

/** Writes the Node section of BENCHMARK.md, the chart and the raw results. */
function writeOutputs({ summary, rss, pipeline, info, options, seconds, command, date }) {
  const notes = readFileSync(new URL('./notes.md', import.meta.url), 'utf8')
  const section = markdownSection({ summary, rss, pipeline, info, command, seconds, options: { ...options, notes }, date })
  const mdPath = new URL('BENCHMARK.md', root)
  let md
  try {
    md = readFileSync(mdPath, 'utf8')
  } catch {
    md = '# Benchmarks\n'
  }
  const begin = '<!-- node:begin -->'
  const end = '<!-- node:end -->'
  const i = md.indexOf(begin)
  const j = md.indexOf(end)
  const block = `${begin}\n${section}\n${end}`
  // Only the node block changes; everything else (the core section) is kept byte for byte.
  if (i >= 0 && j > i) md = md.slice(0, i) + block + md.slice(j + end.length)
  else md = `${md.replace(/\s*$/, '')}\n\n${block}\n`
  writeFileSync(mdPath, md)
  const subtitle = `${info.cpu}, ${info.cores} cores, ${info.os.split(',')[0]} · Node ${info.node} · median of ${options.repeats} run(s) · ${date}`
  writeFileSync(new URL('benchmark/node-ratios.svg', root), ratioChart(summary, subtitle))
  writeFileSync(
    new URL('benchmark/node-results.json', root),
    `${JSON.stringify({ date, command, seconds, info, options, summary, rss, pipeline }, null, 1)}\n`,
  )
  console.log('wrote BENCHMARK.md (node section), benchmark/node-ratios.svg, benchmark/node-results.json')
}

const argv = process.argv.slice(2)
const renderAt = argv.indexOf('--render')
if (renderAt >= 0) {
  // Re-render the outputs from saved results (e.g. after editing notes.md): no measuring.
  const saved = JSON.parse(readFileSync(argv[renderAt + 1] ?? new URL('benchmark/node-results.json', root), 'utf8'))
  console.log(consoleReport(saved.summary, saved.rss, saved.pipeline))
  writeOutputs(saved)
  process.exit(0)
}

const options = parseArgs(argv)
const info = machine()
const started = Date.now()
console.log(`tensor-arena Node benchmark (${options.full ? 'full' : 'quick'}): ${info.cpu}, ${info.cores} cores, ${info.os}, Node ${info.node}; load ${info.load}`)

const arena = new Arena() // the default options: no cap, the arena grows
const raw = await runSuites({
  Arena,
  arena,
  repeats: options.repeats,
  maxTime: options.maxTime,
  minSamples: options.minSamples,
  viewsOnly: options.viewsOnly,
})
const summary = summarize(raw)
const rss = options.rss ? { ...measureRss({ runs: options.rssRuns }), runs: options.rssRuns } : undefined
const pipeline = options.pipeline ? await runPipeline({ runs: options.pipelineRuns, seconds: options.pipelineSeconds }) : undefined
const seconds = (Date.now() - started) / 1000

console.log(consoleReport(summary, rss, pipeline))
const goals = checkGoals(summary, rss)
console.log(`\ngoals met: ${goals.filter((g) => g.met).length} of ${goals.length}`)
for (const g of goals) console.log(`${g.met ? ' met ' : ' MISS'}  ${g.goal}: ${g.value}`)
console.log(`\n${Math.round(seconds)} s`)

if (options.json !== undefined) {
  writeFileSync(options.json, `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), seconds, info, options, summary, rss }, null, 1)}\n`)
  console.log(`wrote ${options.json}`)
}

if (options.write) {
  const command = options.full ? 'npm run bench:node' : `node benchmark/node/run.mjs ${argv.join(' ')}`.trim()
  writeOutputs({ summary, rss, pipeline, info, options, seconds, command, date: new Date().toISOString().slice(0, 10) })
}

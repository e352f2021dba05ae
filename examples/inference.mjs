// Inference with onnxruntime-node over arena memory (npm run example:inference).
//
// The model is examples/models/mlp.onnx (x[batch, 64] -> y[batch, 10], float32). Each step
// writes a new batch of inputs (a 4 MiB tensor at the default batch of 16384), runs the
// model and reads the outputs. Three ways to hold the tensors, each run in a process of its
// own so that its peak RSS is its own:
//
//   plain, new per step  new Float32Array for every batch; ORT allocates the outputs
//                        (what most code does);
//   plain, reused        one Float32Array input and one pre-allocated Float32Array output
//                        (session.run(feeds, fetches)), reused by every step;
//   arena                a fresh arena view for every batch (view -> free: the same block
//                        comes back each step, no native call) and a pre-allocated arena
//                        output, so the code keeps the allocate-per-step shape of the first
//                        and the memory behaviour of the second.
//
// ORT reads the input in place and writes the output into the fetch tensor's memory in all
// three (onnxruntime-node 1.30 also returns a copy of each output in `results`, whichever way
// it was allocated). Prints the median time per step, the peak RSS and its growth over the
// RSS after the session was created, and checks that the three give bit-identical outputs.
//
// Usage: node examples/inference.mjs [--batch 16384] [--steps 150] [--threads 1] [--rounds 2]
// Needs the built package (npm run build) and the dev dependency onnxruntime-node.

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as path from 'node:path'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const MODEL = path.join(HERE, 'models', 'mlp.onnx')
const IN = 64
const OUT = 10
const WARMUP = 10
const VARIANTS = [
  { id: 'plain-new', label: 'plain, new per step' },
  { id: 'plain-reused', label: 'plain, reused' },
  { id: 'arena', label: 'arena (view per step + arena output)' },
]

const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '16384' },
    steps: { type: 'string', default: '150' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    child: { type: 'string' },
  },
})
const batch = Number(opts.batch)
const steps = Number(opts.steps)
const threads = Number(opts.threads)
const rounds = Number(opts.rounds)
for (const [name, v] of [['batch', batch], ['steps', steps], ['threads', threads], ['rounds', rounds]]) {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`)
}

const MiB = 1024 * 1024
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Writes the inputs of step `step` (different every step, the same in every variant). */
function fillBatch(x, step) {
  const shift = step * 7
  for (let i = 0; i < x.length; i++) x[i] = ((i + shift) % 251) / 125.5 - 1
}

/** A bit-exact digest of an output: the first and last rows' bits XOR-folded with the step. */
function digest(y, acc) {
  const bits = new Uint32Array(y.buffer, y.byteOffset, y.length)
  let h = acc
  for (let i = 0; i < bits.length; i += 97) h = (Math.imul(h ^ bits[i], 0x9e3779b1) >>> 0) ^ (h >>> 15)
  return h >>> 0
}

async function runChild(variant) {
  const ort = await import('onnxruntime-node')
  const { Arena } = await import('tensor-arena')
  const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: threads, interOpNumThreads: 1 })
  const rssBefore = process.memoryUsage().rss
  const n = batch * IN
  const arena = variant === 'arena' ? new Arena() : undefined
  let step = 0
  let hash = 0
  let oneStep
  let cleanup = () => {}
  if (variant === 'plain-new') {
    oneStep = async () => {
      const x = new Float32Array(n)
      fillBatch(x, step)
      const out = await session.run({ x: new ort.Tensor('float32', x, [batch, IN]) })
      hash = digest(out.y.data, hash)
    }
  } else if (variant === 'plain-reused') {
    const x = new Float32Array(n)
    const y = new Float32Array(batch * OUT)
    const feeds = { x: new ort.Tensor('float32', x, [batch, IN]) }
    const fetches = { y: new ort.Tensor('float32', y, [batch, OUT]) }
    oneStep = async () => {
      fillBatch(x, step)
      await session.run(feeds, fetches)
      hash = digest(y, hash)
    }
  } else {
    const y = arena.array('float32', batch * OUT)
    const fetches = { y: new ort.Tensor('float32', y, [batch, OUT]) }
    oneStep = async () => {
      const x = arena.view('float32', n)
      fillBatch(x, step)
      await session.run({ x: new ort.Tensor('float32', x, [batch, IN]) }, fetches)
      hash = digest(y, hash)
      arena.free(x)
    }
    cleanup = () => arena.free(y)
  }
  for (let i = 0; i < WARMUP; i++) await oneStep()
  step = 0
  hash = 0
  const times = []
  for (; step < steps; step++) {
    const t0 = process.hrtime.bigint()
    await oneStep()
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  cleanup()
  const result = {
    variant,
    times,
    peakRss: process.resourceUsage().maxRSS * 1024,
    rssBefore,
    hash,
    arenaLive: arena ? arena.stats().liveAllocations : 0,
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

function runParent() {
  const inBytes = batch * IN * 4
  console.log(
    `mlp.onnx, batch ${batch} (input ${(inBytes / MiB).toFixed(2)} MiB, output ${((batch * OUT * 4) / MiB).toFixed(2)} MiB), ` +
      `${steps} steps after ${WARMUP} warm-up, ORT intra-op threads: ${threads}; each variant in its own process\n`,
  )
  // Rounds alternate the variants (A B C A B C ...) so that a noisy neighbour on a shared
  // machine hits each of them alike.
  const runs = new Map(VARIANTS.map((v) => [v.id, []]))
  for (let round = 0; round < rounds; round++) {
    for (const v of VARIANTS) {
      const args = [fileURLToPath(import.meta.url), '--child', v.id, '--batch', `${batch}`, '--steps', `${steps}`, '--threads', `${threads}`]
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      if (r.status !== 0) throw new Error(`variant ${v.id} exited with ${r.status ?? r.signal}`)
      runs.get(v.id).push(JSON.parse(r.stdout.trim().split('\n').at(-1)))
    }
  }
  const rows = VARIANTS.map((v) => {
    const rs = runs.get(v.id)
    return {
      ...v,
      medianMs: median(rs.flatMap((r) => r.times)),
      peakRss: median(rs.map((r) => r.peakRss)),
      growth: median(rs.map((r) => r.peakRss - r.rssBefore)),
      hashes: rs.map((r) => r.hash),
      arenaLive: Math.max(...rs.map((r) => r.arenaLive)),
    }
  })
  const pad = (s, w) => String(s).padStart(w)
  const header = `${'variant'.padEnd(38)}${pad('ms/step', 10)}${pad('peak RSS', 12)}${pad('growth', 10)}`
  console.log(header)
  console.log('-'.repeat(header.length))
  for (const r of rows) {
    const mib = (b) => `${(b / MiB).toFixed(0)} MiB`
    console.log(`${r.label.padEnd(38)}${pad(r.medianMs.toFixed(2), 10)}${pad(mib(r.peakRss), 12)}${pad(mib(r.growth), 10)}`)
  }
  console.log(
    `\nms/step: median over every step of ${rounds} round(s); peak RSS: the process's high-water mark (median over the\n` +
      'rounds); growth: that peak minus the RSS right after the session was created (before any step).',
  )
  const first = rows[0].hashes[0]
  const same = rows.every((r) => r.hashes.every((h) => h === first))
  console.log(`outputs bit-identical across the variants and rounds: ${same ? 'yes' : 'NO'} (digest ${first.toString(16)})`)
  const leaked = rows.find((r) => r.arenaLive !== 0)
  if (leaked) console.log(`arena allocations still live after the loop freed everything: ${leaked.arenaLive}`)
  if (!same || leaked) process.exitCode = 1
}

if (opts.child) await runChild(opts.child)
else runParent()

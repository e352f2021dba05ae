// Tensor math with scopes: a small MLP classifier head (layernorm → matmul → GELU → matmul →
// residual → matmul → softmax) over a batch, every intermediate a view from the arena, each
// step inside `scope`, so nothing is freed by hand and nothing leaks.
//
//   npm run build                 (once: builds dist/, which this imports as 'tensor-arena')
//   npm run example:tensor-math   [steps]
import { setImmediate as turn } from 'node:timers/promises'

import { Arena } from 'tensor-arena'

const arena = new Arena({ maxBytes: 64 * 1024 * 1024 })
const BATCH = 32
const D = 64
const HIDDEN = 128
const CLASSES = 10
const STEPS = Number(process.argv[2] ?? 200)

/** Deterministic pseudo-random numbers in [-scale, scale). */
function fillRandom(a, seed, scale) {
  let s = seed >>> 0
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = (s / 2 ** 32 - 0.5) * 2 * scale
  }
  return a
}

/** out[m×n] = a[m×k] · b[k×n], a fresh view. */
function matmul(a, b, m, k, n) {
  const out = arena.view('float32', m * n, { zero: true })
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]
      for (let j = 0; j < n; j++) out[i * n + j] += aip * b[p * n + j]
    }
  }
  return out
}

/** Row-wise layer normalisation of x[m×n] (no affine part), a fresh view. */
function layerNorm(x, m, n) {
  const out = arena.view('float32', m * n)
  for (let i = 0; i < m; i++) {
    let mean = 0
    for (let j = 0; j < n; j++) mean += x[i * n + j]
    mean /= n
    let variance = 0
    for (let j = 0; j < n; j++) variance += (x[i * n + j] - mean) ** 2
    const inv = 1 / Math.sqrt(variance / n + 1e-5)
    for (let j = 0; j < n; j++) out[i * n + j] = (x[i * n + j] - mean) * inv
  }
  return out
}

/** GELU (tanh approximation), a fresh view. */
function gelu(x) {
  const out = arena.view('float32', x.length)
  for (let i = 0; i < x.length; i++) {
    const v = x[i]
    out[i] = 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v)))
  }
  return out
}

/** Row-wise softmax of x[m×n], a fresh view. */
function softmax(x, m, n) {
  const out = arena.view('float32', m * n)
  for (let i = 0; i < m; i++) {
    let max = -Infinity
    for (let j = 0; j < n; j++) max = Math.max(max, x[i * n + j])
    let sum = 0
    for (let j = 0; j < n; j++) sum += out[i * n + j] = Math.exp(x[i * n + j] - max)
    for (let j = 0; j < n; j++) out[i * n + j] /= sum
  }
  return out
}

/** x + y, a fresh view. */
function add(x, y) {
  const out = arena.view('float32', x.length)
  for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i]
  return out
}

// Weights: long-lived exclusive arrays, made outside any scope.
const w1 = fillRandom(arena.array('float32', D * HIDDEN), 1, 0.15)
const w2 = fillRandom(arena.array('float32', HIDDEN * D), 2, 0.1)
const wOut = fillRandom(arena.array('float32', D * CLASSES), 3, 0.2)

/** One MLP block: its six intermediates live only in the inner scope; its output moves out. */
function block(x) {
  return arena.scope(() => {
    const h = gelu(matmul(layerNorm(x, BATCH, D), w1, BATCH, D, HIDDEN))
    return add(x, matmul(h, w2, BATCH, HIDDEN, D))
  })
}

/** One step: returns the predicted class of each row (plain numbers); adds to the mean probabilities. */
function step(seed, meanProbs) {
  const x = fillRandom(arena.view('float32', BATCH * D), seed, 1)
  const probs = softmax(matmul(block(block(x)), wOut, BATCH, D, CLASSES), BATCH, CLASSES)
  for (let i = 0; i < probs.length; i++) meanProbs[i % CLASSES] += probs[i] / (BATCH * STEPS)
  const predicted = []
  for (let i = 0; i < BATCH; i++) {
    let best = 0
    for (let j = 1; j < CLASSES; j++) if (probs[i * CLASSES + j] > probs[i * CLASSES + best]) best = j
    predicted.push(best)
  }
  return predicted
}

const before = arena.stats()
// Kept across every step: `keep` exempts it from the scope it was made in.
const meanProbs = arena.scope((keep) => keep(arena.view('float64', CLASSES, { zero: true })))
const histogram = new Array(CLASSES).fill(0)
const started = process.hrtime.bigint()
let peakLive = 0
for (let s = 0; s < STEPS; s++) {
  const predicted = arena.scope(() => {
    const p = step(100 + s, meanProbs)
    peakLive = Math.max(peakLive, arena.stats().liveAllocations)
    return p
  })
  for (const c of predicted) histogram[c]++
}
const ms = Number(process.hrtime.bigint() - started) / 1e6

// An async scope: views made before and after an await are freed when its promise settles.
const checksum = await arena.scope(async () => {
  const x = fillRandom(arena.view('float32', BATCH * D), 7, 1)
  await turn()
  const y = block(x)
  let sum = 0
  for (const v of y) sum += v
  return sum
})

const after = arena.stats()
console.log(`${STEPS} steps of a ${BATCH}×${D} batch through 2 MLP blocks + softmax: ${(ms / STEPS).toFixed(3)} ms per step`)
console.log(`predicted classes: ${histogram.map((n, c) => `${c}:${n}`).join(' ')}`)
console.log(`mean probabilities: ${[...meanProbs].map((p) => p.toFixed(3)).join(' ')}`)
console.log(`async scope checksum: ${checksum.toFixed(4)}`)
console.log(
  `arena: ${after.allocationsTotal - before.allocationsTotal} hand-outs, ${after.freesTotal - before.freesTotal} frees (none by hand in the loop); ` +
    `live allocations ${before.liveAllocations} before, at most ${peakLive} during a step, ${after.liveAllocations} after ` +
    `(the 3 weights and the kept mean)`,
)
arena.free(meanProbs)
for (const w of [w1, w2, wOut]) arena.free(w)
const end = arena.stats()
if (end.liveAllocations !== 0) {
  console.error(`LEAK: ${end.liveAllocations} allocations (${end.liveBytes} bytes) still live`)
  process.exit(1)
}
console.log(`after freeing the weights and the kept mean: ${end.liveAllocations} live allocations, ${end.liveBytes} bytes: nothing leaked`)

// Prints the arena's memory report while a small tensor pipeline runs (`npm run example:report`,
// after `npm run build`: it imports the built package from dist/).
//
// Phases: a batch loop allocates inputs, activations and outputs of a few sizes and frees the
// intermediates; the outputs go to a worker with transfer/receive, which frees them (a free
// from another thread); then the thread cache is flushed and idle memory trimmed. After each
// phase: util.inspect(arena) (one line) and, at the interesting ones, arena.report().

import { inspect } from 'node:util'
import { Worker, isMainThread, parentPort } from 'node:worker_threads'

import { Arena } from 'tensor-arena'

const ARENA = 'example-report'
const BATCH = 32
const FEATURES = 256
const HIDDEN = 1024
const CLASSES = 10

if (isMainThread) await main()
else worker()

/** The consumer: receives each output, reads it, frees it (the block goes back to its owner's pool). */
function worker() {
  const arena = Arena.shared(ARENA)
  parentPort.on('message', (message) => {
    if (message === 'done') {
      parentPort.postMessage({ done: true })
      return
    }
    const logits = arena.receive(message)
    let best = 0
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i
    arena.free(logits)
    parentPort.postMessage({ best })
  })
}

function show(arena, title, full) {
  console.log(`\n=== ${title}`)
  console.log(inspect(arena))
  if (full) console.log(`\n${arena.report()}`)
}

/** One forward step on arena tensors: input → hidden (ReLU) → logits; the hidden layer is freed. */
function step(arena, weights, seed) {
  const input = arena.view('float32', BATCH * FEATURES)
  for (let i = 0; i < input.length; i++) input[i] = ((i * 7 + seed) % 13) / 13
  const hidden = arena.view('float32', BATCH * HIDDEN)
  for (let b = 0; b < BATCH; b++) {
    for (let h = 0; h < HIDDEN; h++) {
      let sum = 0
      for (let f = 0; f < FEATURES; f += 16) sum += input[b * FEATURES + f] * weights[(h * FEATURES + f) % weights.length]
      hidden[b * HIDDEN + h] = Math.max(sum, 0)
    }
  }
  const logits = arena.array('float32', BATCH * CLASSES)
  for (let i = 0; i < logits.length; i++) logits[i] = hidden[(i * 31) % hidden.length]
  arena.free(input)
  arena.free(hidden)
  return logits
}

async function main() {
  const arena = Arena.shared(ARENA, { maxBytes: 256 * 1024 * 1024 })
  show(arena, 'fresh arena', false)

  // Long-lived tensors: a weight matrix (large path: above 16 MiB) and a few small buffers.
  const weights = arena.array('float32', 5 * 1024 * 1024)
  for (let i = 0; i < weights.length; i += 4096) weights[i] = ((i >> 12) % 7) - 3
  const scratch = [arena.alloc(100), arena.alloc(3000), arena.array('float64', 600)]
  show(arena, 'weights (20 MiB, large path) and three small buffers allocated', false)

  // Phase 1: eight batches; inputs and activations are freed each step, outputs kept.
  const outputs = []
  for (let s = 0; s < 8; s++) outputs.push(step(arena, weights, s))
  show(arena, 'after 8 batch steps: 8 outputs live, inputs and activations freed', true)

  // Phase 2: hand the outputs to a worker; each is in flight until the worker receives it.
  const consumer = new Worker(new URL(import.meta.url))
  const handles = outputs.map((logits) => arena.transfer(logits))
  show(arena, 'outputs transferred, not yet posted to the worker: in flight', false)
  const answers = new Promise((resolve) => {
    const bests = []
    consumer.on('message', (m) => (m.done ? resolve(bests) : bests.push(m.best)))
  })
  for (const handle of handles) consumer.postMessage(handle)
  consumer.postMessage('done')
  const bests = await answers
  console.log(`\nthe worker received and freed ${bests.length} outputs (argmax of each: ${bests.join(' ')})`)
  show(arena, "the worker freed them: their blocks sit in the worker's thread cache (2 thread caches)", true)
  await consumer.terminate()
  show(arena, "the worker exited: its cache's blocks went back to the central pool", false)

  // Phase 3: free the rest, flush this thread's cache, return idle memory to the OS.
  for (const buffer of scratch) arena.free(buffer)
  arena.free(weights)
  show(arena, 'everything freed: blocks sit in this thread cache ("cached")', false)
  arena.threadCache().flush()
  show(arena, 'thread cache flushed: every slab is empty in the central pool', false)
  const released = arena.trim()
  console.log(`\ntrim() released ${released} bytes`)
  show(arena, 'after trim: idle slabs and spans returned to the OS', true)
}

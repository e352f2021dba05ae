// A worker pipeline over one shared arena, zero copy (npm run example:pipeline).
//
// The main thread produces float32 tensors in Arena.shared('example-pipeline') and hands
// each to one of the workers with `transfer` (the handle is a small structured-cloneable
// object; the tensor is detached or spent here). The worker `receive`s the same memory,
// transforms it in place (x -> 0.5 x + 1) and transfers it back; the main thread receives
// it, checks the values and frees it. At most `--window` tensors per worker are in flight,
// so the arena recycles a handful of blocks however many tensors go through. Prints the
// throughput and the arena's statistics at the end: no live block, nothing in flight, no
// orphaned hand-off.
//
// Usage: node examples/pipeline.mjs [--count 4000] [--kib 1024] [--workers 2] [--window 4] [--kind view|array]
// Needs the built package (npm run build).

import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { isMainThread, parentPort, Worker } from 'node:worker_threads'

import { Arena } from 'tensor-arena'

const ARENA_NAME = 'example-pipeline'

/** The producer's value at index i of tensor seq: small integers, exact in float32. */
const produced = (seq, i) => (seq % 1000) + (i & 255)
/** What the worker's transform turns v into (exact in float32 for these values). */
const transformed = (v) => 0.5 * v + 1

if (!isMainThread) {
  // A pipeline stage: receive, transform in place, hand back.
  const arena = Arena.shared(ARENA_NAME) // no options: the main thread's arena, whatever its options
  parentPort.on('message', (handle) => {
    const t = arena.receive(handle)
    for (let i = 0; i < t.length; i++) t[i] = 0.5 * t[i] + 1
    parentPort.postMessage(arena.transfer(t))
  })
  parentPort.postMessage('ready')
} else {
  await main()
}

async function main() {
  const { values: opts } = parseArgs({
    options: {
      count: { type: 'string', default: '4000' },
      kib: { type: 'string', default: '1024' },
      workers: { type: 'string', default: '2' },
      window: { type: 'string', default: '4' },
      kind: { type: 'string', default: 'view' },
    },
  })
  const count = Number(opts.count)
  const length = (Number(opts.kib) * 1024) / 4
  const workers = Number(opts.workers)
  const window = Number(opts.window)
  for (const [name, v] of [['count', count], ['kib', length], ['workers', workers], ['window', window]]) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`--${name} must be a positive integer, got ${opts[name]}`)
  }
  if (opts.kind !== 'view' && opts.kind !== 'array') throw new RangeError(`--kind must be view or array, got ${opts.kind}`)
  const kind = opts.kind

  const arena = Arena.shared(ARENA_NAME, { maxBytes: 256 * 1024 * 1024 })
  const pool = []
  for (let w = 0; w < workers; w++) {
    const worker = new Worker(new URL(import.meta.url))
    worker.on('error', (e) => {
      console.error('pipeline worker failed:', e)
      process.exit(1)
    })
    await once(worker, 'message') // 'ready'
    pool.push(worker)
  }

  let sent = 0
  let done = 0
  let bad = 0
  // A worker answers in the order it was sent to: each keeps a FIFO of the sequence numbers
  // it has in flight, so the main thread knows what every returned tensor must hold.
  const inFlight = new Map(pool.map((w) => [w, []]))
  const sendOne = (worker) => {
    const seq = sent++
    const t = arena[kind]('float32', length)
    for (let i = 0; i < length; i++) t[i] = produced(seq, i)
    inFlight.get(worker).push(seq)
    worker.postMessage(arena.transfer(t))
  }
  const check = (worker, t) => {
    const seq = inFlight.get(worker).shift()
    if (t.length !== length) bad++
    for (let i = 0; i < length; i += 4093) if (t[i] !== transformed(produced(seq, i))) bad++
    if (t[length - 1] !== transformed(produced(seq, length - 1))) bad++
  }

  const t0 = process.hrtime.bigint()
  const finished = new Promise((resolve) => {
    for (const worker of pool) {
      worker.on('message', (handle) => {
        const t = arena.receive(handle)
        check(worker, t)
        arena.free(t)
        done++
        if (sent < count) sendOne(worker)
        else if (done === count) resolve()
      })
      for (let i = 0; i < window && sent < count; i++) sendOne(worker)
    }
  })
  await finished
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  await Promise.all(pool.map((w) => w.terminate()))

  const s = arena.stats()
  const MiB = 1024 * 1024
  const bytes = count * length * 4
  console.log(
    `${count} ${kind}s of ${opts.kib} KiB, main -> ${workers} worker(s) -> main, ${window} in flight per worker: ` +
      `${seconds.toFixed(2)} s, ${Math.round(count / seconds)} tensors/s, ${((2 * bytes) / MiB / seconds).toFixed(0)} MiB/s handed over (each tensor twice)`,
  )
  console.log(`values checked after the round trip: ${bad === 0 ? 'all correct' : `${bad} WRONG`}`)
  console.log('arena at the end (workers terminated):')
  const rows = [
    ['live allocations', s.liveAllocations],
    ['live bytes', s.liveBytes],
    ['in flight (hand-offs not received)', s.inFlightCount],
    ['orphaned hand-offs', arena.orphanedTransfers().length],
    ['allocations / frees (total)', `${s.allocationsTotal} / ${s.freesTotal}`],
    ['carved (arena memory ever used)', `${(s.carvedBytes / MiB).toFixed(1)} MiB for ${((bytes / MiB) | 0)} MiB of tensors`],
  ]
  for (const [k, v] of rows) console.log(`  ${k.padEnd(36)} ${v}`)
  const leaked = s.liveAllocations !== 0 || s.inFlightCount !== 0
  if (leaked || bad !== 0) {
    console.log(leaked ? 'LEAK: blocks still live or in flight' : 'WRONG VALUES')
    process.exitCode = 1
  } else {
    console.log('nothing leaked: every block handed out came back')
  }
}

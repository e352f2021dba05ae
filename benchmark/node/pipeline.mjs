// The two-worker pipeline: a producer worker allocates and fills float32 tensors (64 KiB
// and 1 MiB) and hands them to a consumer worker, which sums and frees them. Both run
// their own loops; the main thread only starts runs and times them (benny cannot drive
// workers), so this is our own timing loop: per variant and size, a warm-up run sizes the
// count for ~`seconds` per run, then `runs` timed runs; the result is the median tensors/s.
//
// Baselines: new Float32Array(n) and Buffer.alloc(4n), posted with a transfer list
// (zero-copy for V8-owned buffers). Ours: Arena.shared('bench') in both workers, `view` or
// `array`, handed over with transfer/receive (zero-copy), freed by the consumer (a
// cross-thread free back to the producer's size class).

import { MessageChannel, Worker } from 'node:worker_threads'
import { once } from 'node:events'

import { median } from './suites.mjs'

export const PIPELINE_SIZES = [64 * 1024, 1024 * 1024]
export const PIPELINE_VARIANTS = [
  { id: 'float32array', label: 'new Float32Array + postMessage transfer' },
  { id: 'buffer-alloc', label: 'Buffer.alloc + postMessage transfer' },
  { id: 'view', label: 'ours: view + transfer/receive' },
  { id: 'array', label: 'ours: array + transfer/receive' },
]
const WINDOW = 16
const CREDIT = 4
const ARENA = { arenaName: 'bench', arenaOptions: { maxBytes: 512 * 1024 * 1024 } }

async function startPair(variant, bytes) {
  const { port1, port2 } = new MessageChannel()
  const url = new URL('./pipeline-worker.mjs', import.meta.url)
  const common = { variant, length: bytes / 4, window: WINDOW, credit: CREDIT, ...ARENA }
  const producer = new Worker(url, { workerData: { ...common, role: 'producer', port: port1 }, transferList: [port1] })
  const consumer = new Worker(url, { workerData: { ...common, role: 'consumer', port: port2 }, transferList: [port2] })
  for (const w of [producer, consumer]) {
    w.on('error', (e) => {
      console.error(`pipeline worker (${variant}) failed:`, e)
      process.exitCode = 1
    })
  }
  await Promise.all([once(producer, 'message'), once(consumer, 'message')])
  return { producer, consumer }
}

/** One timed run of `count` tensors: seconds from the start message to the consumer's done. */
async function timedRun(pair, count) {
  const done = once(pair.consumer, 'message')
  const t0 = process.hrtime.bigint()
  pair.consumer.postMessage({ cmd: 'run', count })
  pair.producer.postMessage({ cmd: 'run', count })
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`pipeline run of ${count} tensors did not finish in 60 s`)), 60_000)
  })
  const [msg] = await Promise.race([done, timeout]).finally(() => clearTimeout(timer))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (!Number.isFinite(msg.checksum)) throw new Error('pipeline checksum is not finite')
  return seconds
}

/**
 * Runs every variant at every size. Returns
 * `{ [size]: { [variant]: { rate, runs: number[], count } } }` (rate = median tensors/s).
 */
export async function runPipeline({ runs = 5, seconds = 0.5, log = console.log, variants = PIPELINE_VARIANTS, sizes = PIPELINE_SIZES } = {}) {
  const out = {}
  for (const bytes of sizes) {
    for (const v of variants) {
      const pair = await startPair(v.id, bytes)
      try {
        await timedRun(pair, 64) // JIT warm-up
        const warm = await timedRun(pair, 64)
        let count = Math.max(CREDIT * 16, Math.round((64 / warm) * seconds))
        count -= count % CREDIT
        const rates = []
        for (let r = 0; r < runs; r++) rates.push(count / (await timedRun(pair, count)))
        ;(out[bytes] ??= {})[v.id] = { rate: median(rates), runs: rates, count }
        log(`pipeline ${bytes / 1024} KiB ${v.label}: ${Math.round(median(rates))} tensors/s (${count} per run)`)
      } finally {
        await Promise.all([pair.producer.terminate(), pair.consumer.terminate()])
      }
    }
  }
  return out
}

// Producer / consumer: 10,000 hand-offs between two workers on one shared arena.
import { MessageChannel, Worker } from 'node:worker_threads'
import test from 'ava'
import { Arena } from 'tensor-arena'
import { MiB } from './helpers'
import { REQUIRE } from './handoff-helpers'

// ---- producer / consumer: 10,000 hand-offs between two workers ---------------------------
const TOTAL = 10_000
const LENGTH = 1024 // float32 elements: 4 KiB per tensor
const WINDOW = 64 // hand-offs the producer lets run ahead of the consumer's acks

const PRODUCER = `
const { parentPort, workerData } = require('node:worker_threads')
const ta = ${REQUIRE}
const arena = ta.Arena.shared(workerData.name, { maxBytes: workerData.maxBytes })
const { total, length, window } = workerData
let port, sent = 0, acked = 0
function pump() {
  while (sent < total && sent - acked < window) {
    const t = sent % 2 === 0 ? arena.array('float32', length) : arena.view('float32', length)
    t[0] = sent
    for (let j = 1; j < length; j++) t[j] = (sent * 31 + j) % 65536
    port.postMessage(arena.transfer(t))
    sent++
  }
  if (acked === total) parentPort.postMessage({ sent })
}
parentPort.on('message', (m) => {
  if (m === 'go') return pump()
  port = m.port
  port.on('message', (n) => { acked = n; pump() })
  parentPort.postMessage('ready')
})
`

const CONSUMER = `
const { parentPort, workerData } = require('node:worker_threads')
const ta = ${REQUIRE}
const arena = ta.Arena.shared(workerData.name)
const { total, length } = workerData
let seen = 0, bad = 0, views = 0, arrays = 0
parentPort.once('message', ({ port }) => {
  port.on('message', (h) => {
    try {
      const t = arena.receive(h)
      let ok = t instanceof Float32Array && t.length === length && t[0] === seen
      for (let j = 1; ok && j < length; j++) ok = t[j] === (seen * 31 + j) % 65536
      if (!ok) bad++
      if (t.buffer.byteLength === length * 4) arrays++; else views++
      arena.free(t)
    } catch (e) { bad++; if (bad < 5) console.error(e) }
    seen++
    if (seen % 16 === 0 || seen === total) port.postMessage(seen)
    if (seen === total) parentPort.postMessage({ seen, bad, views, arrays })
  })
  parentPort.postMessage('ready')
})
`

test('producer → consumer between two workers: 10,000 float32 hand-offs, memory recycled through the consumer’s local frees', async (t) => {
  const name = 'handoff-loop'
  const maxBytes = 128 * MiB
  const arena = Arena.shared(name, { maxBytes })
  const base = arena.stats()
  const workerData = { name, maxBytes, total: TOTAL, length: LENGTH, window: WINDOW }
  const producer = new Worker(PRODUCER, { eval: true, execArgv: [], workerData })
  const consumer = new Worker(CONSUMER, { eval: true, execArgv: [], workerData })
  t.teardown(() => Promise.all([producer.terminate(), consumer.terminate()]))
  const message = (w: Worker): Promise<unknown> =>
    new Promise((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
      w.once('exit', (code) => reject(new Error(`worker exited (${code}) early`)))
    })
  const { port1, port2 } = new MessageChannel()
  const ready = Promise.all([message(producer), message(consumer)])
  producer.postMessage({ port: port1 }, [port1])
  consumer.postMessage({ port: port2 }, [port2])
  await ready
  const done = Promise.all([message(producer), message(consumer)])
  const start = performance.now()
  producer.postMessage('go')
  const [sent, result] = (await done) as [{ sent: number }, { seen: number; bad: number; views: number; arrays: number }]
  const ms = performance.now() - start
  t.log(`${TOTAL} hand-offs in ${ms.toFixed(0)} ms: ${Math.round(TOTAL / (ms / 1000))} /s (4 KiB float32, window ${WINDOW})`)
  t.is(sent.sent, TOTAL)
  t.deepEqual(result, { seen: TOTAL, bad: 0, views: TOTAL / 2, arrays: TOTAL / 2 }, 'every tensor arrived intact, in order')
  const end = arena.stats()
  const carved = end.carvedBytes - base.carvedBytes
  t.log(`carved ${carved} bytes (${(carved / (TOTAL * LENGTH * 4) * 100).toFixed(2)} % of ${TOTAL} × ${LENGTH * 4})`)
  t.true(carved < (TOTAL * LENGTH * 4) / 20, `carvedBytes grew by ${carved} bytes`)
  // Received hand-offs belong to the consumer: its frees are local (its cache drains the
  // excess to the central pool, where the producer's refills find it).
  t.is(end.remoteFreesTotal - base.remoteFreesTotal, 0, `remoteFreesTotal +${end.remoteFreesTotal - base.remoteFreesTotal}`)
  t.is(end.liveBytes, 0)
  t.is(end.inFlightCount, 0)
  t.is(end.allocationsTotal - base.allocationsTotal, TOTAL)
  await Promise.all([producer.terminate(), consumer.terminate()])
  t.like(arena.stats(), { liveBytes: 0, liveAllocations: 0, inFlightCount: 0, inFlightBytes: 0 })
})

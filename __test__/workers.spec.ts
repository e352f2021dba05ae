// worker_threads: the default arena is process-wide, every thread has its own cache, and a
// worker that exits, dies or is terminated with live memory returns it to the central pool.
// Serial: every test reads the default arena's process-wide counters.
import { Worker } from 'node:worker_threads'
import test from 'ava'
import { defaultArena, stats, type ArenaStats, type ThreadCacheStats } from 'tensor-arena'
import { repoRoot } from './helpers'

// Runs in the worker (plain CommonJS; requires the package by absolute path).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const ta = require(workerData.root)
const held = []
for (let i = 0; i < workerData.count; i++) {
  const buffer = ta.alloc(1000)
  new Uint8Array(buffer).fill(1)
  held.push(buffer, ta.view('float32', 250).fill(2), ta.array('uint8', 5000).fill(3))
}
// some freed blocks sit in this thread's cache
for (let i = 0; i < 20; i++) ta.free(ta.alloc(3000))
const report = (kind) => parentPort.postMessage({ kind, cache: ta.defaultArena.threadCache().stats(), liveBytes: ta.stats().liveBytes })
report('ready')
if (workerData.mode === 'busy') {
  for (;;) {
    const b = ta.alloc(4096)
    new Uint8Array(b).fill(4)
    ta.free(b)
    ta.free(ta.view('uint8', 100))
    held.push(ta.array('float64', 8))
    if (held.length > 2000) ta.free(held.pop())
  }
} else if (workerData.mode === 'end') {
  globalThis.held = held
} else if (workerData.mode === 'exit') {
  process.exit(0)
} else if (workerData.mode === 'throw') {
  throw new Error('worker failure with live buffers')
} else {
  parentPort.on('message', (command) => {
    if (command === 'free') { for (const item of held.splice(0)) ta.free(item); report('freed') }
    else if (command === 'flush') { ta.defaultArena.threadCache().flush(); report('flushed') }
  })
}
`

interface Report {
  kind: string
  cache: ThreadCacheStats
  liveBytes: number
}

const COUNT = 100
const WORKLOAD_BYTES = COUNT * (1000 + 1000 + 5000)

class Spawned {
  readonly worker: Worker
  private readonly reports: Report[] = []
  private waiters: ((report: Report) => void)[] = []
  readonly exited: Promise<number>
  readonly errors: Error[] = []

  constructor(mode: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { root: repoRoot, mode, count: COUNT } })
    this.worker.on('message', (report: Report) => {
      const waiter = this.waiters.shift()
      if (waiter) waiter(report)
      else this.reports.push(report)
    })
    this.worker.on('error', (error) => this.errors.push(error))
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve))
  }

  next(): Promise<Report> {
    const ready = this.reports.shift()
    if (ready) return Promise.resolve(ready)
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve)
      void this.exited.then(() => reject(new Error(`worker exited before reporting: ${this.errors.map((e) => e.message).join('; ')}`)))
    })
  }

  async command(name: string): Promise<Report> {
    this.worker.postMessage(name)
    return this.next()
  }
}

function snapshot(): ArenaStats {
  return stats()
}

test.serial('a worker allocating from the default arena shows up in the main thread’s stats()', async (t) => {
  const before = snapshot()
  const spawned = new Spawned('hold')
  const ready = await spawned.next()
  const during = snapshot()
  t.is(during.liveAllocations, before.liveAllocations + 3 * COUNT)
  t.is(during.liveBytes, before.liveBytes + WORKLOAD_BYTES)
  t.is(ready.liveBytes, during.liveBytes, 'the worker sees the same arena')
  t.is(during.threadCaches, before.threadCaches + 1)
  t.is(during.maxBytes, 0, 'the default arena has no cap')
  t.is(defaultArena.maxBytes, undefined)
  await spawned.command('free')
  t.is(snapshot().liveBytes, before.liveBytes)
  await spawned.worker.terminate()
  t.is(snapshot().threadCaches, before.threadCaches)
})

test.serial('each thread has its own cache; a worker’s flush shows in the main thread’s stats', async (t) => {
  defaultArena.free(defaultArena.alloc(100))
  const mainCache = defaultArena.threadCache().stats()
  const first = new Spawned('hold')
  const second = new Spawned('hold')
  const [a, b] = await Promise.all([first.next(), second.next()])
  t.true(a.cache.bound && b.cache.bound)
  t.is(new Set([mainCache.id, a.cache.id, b.cache.id]).size, 3, 'three distinct caches')
  t.true(a.cache.blocks > 0)
  const beforeFlush = snapshot()
  const flushed = await first.command('flush')
  t.is(flushed.cache.blocks, 0)
  const afterFlush = snapshot()
  t.is(afterFlush.threadCacheBlocks, beforeFlush.threadCacheBlocks - a.cache.blocks)
  t.is(defaultArena.threadCache().stats().blocks, mainCache.blocks, 'the main thread cache is untouched')
  await Promise.all([first.worker.terminate(), second.worker.terminate()])
})

test.serial('a terminated worker with live buffers, arrays and views returns them to the central pool', async (t) => {
  const before = snapshot()
  const spawned = new Spawned('hold')
  const ready = await spawned.next()
  t.true(ready.cache.blocks > 0)
  const during = snapshot()
  t.is(during.liveBytes, before.liveBytes + WORKLOAD_BYTES)
  t.is(await spawned.worker.terminate(), 1)
  const after = snapshot()
  t.is(after.liveAllocations, before.liveAllocations, 'live allocations back')
  t.is(after.liveBytes, before.liveBytes, 'live bytes back')
  t.is(after.threadCaches, before.threadCaches, 'the worker’s cache is gone')
  t.is(after.threadCacheBlocks, before.threadCacheBlocks, 'no blocks left in the worker’s cache')
  t.is(after.inboxBlocks, 0)
  // Back in the central pool: as free blocks, or as free spans once a whole slab is free.
  const shared = (s: ArenaStats): number => s.centralBytes + s.freeSpanBytes
  t.true(
    shared(after) - shared(during) >= WORKLOAD_BYTES + ready.cache.bytes,
    `central + span bytes grew by ${shared(after) - shared(during)}, worker held ${WORKLOAD_BYTES} live + ${ready.cache.bytes} cached`,
  )
  t.is(spawned.errors.length, 0)

  // Nothing stranded: the same workload in this thread is served without carving more.
  const held: (ArrayBuffer | ArrayBufferView)[] = []
  for (let i = 0; i < COUNT; i++) {
    held.push(defaultArena.alloc(1000), defaultArena.view('float32', 250), defaultArena.array('uint8', 5000))
  }
  t.is(snapshot().carvedBytes, after.carvedBytes)
  for (const item of held) defaultArena.free(item)
})

for (const [mode, how] of [
  ['end', 'ends on its own'],
  ['exit', 'calls process.exit'],
  ['throw', 'dies of an uncaught exception'],
] as const) {
  test.serial(`a worker that ${how} with live memory returns it`, async (t) => {
    const before = snapshot()
    const spawned = new Spawned(mode)
    const ready = await spawned.next()
    t.is(ready.liveBytes - before.liveBytes, WORKLOAD_BYTES)
    const code = await spawned.exited
    t.is(code, mode === 'throw' ? 1 : 0)
    if (mode === 'throw') t.is(spawned.errors[0]?.message, 'worker failure with live buffers')
    const after = snapshot()
    t.is(after.liveAllocations, before.liveAllocations)
    t.is(after.liveBytes, before.liveBytes)
    t.is(after.threadCaches, before.threadCaches)
    t.is(after.threadCacheBlocks, before.threadCacheBlocks)
  })
}

test.serial('a worker terminated in the middle of a tight alloc/free loop neither crashes nor strands memory', async (t) => {
  const before = snapshot()
  for (let round = 0; round < 3; round++) {
    const spawned = new Spawned('busy')
    await spawned.next()
    await new Promise((resolve) => setTimeout(resolve, 30 + 20 * round))
    t.true(snapshot().allocationsTotal > before.allocationsTotal)
    await spawned.worker.terminate()
    const after = snapshot()
    t.is(after.liveAllocations, before.liveAllocations, `round ${round}`)
    t.is(after.liveBytes, before.liveBytes, `round ${round}`)
    t.is(after.threadCaches, before.threadCaches, `round ${round}`)
    t.is(after.threadCacheBlocks, before.threadCacheBlocks, `round ${round}`)
  }
  // The main thread still allocates and frees normally.
  const buffer = defaultArena.alloc(4096)
  new Uint8Array(buffer).fill(1)
  defaultArena.free(buffer)
})

test.serial('several workers at once: the main thread sees them all, and all memory returns', async (t) => {
  const before = snapshot()
  const workers = Array.from({ length: 4 }, () => new Spawned('hold'))
  await Promise.all(workers.map((w) => w.next()))
  const during = snapshot()
  t.is(during.liveBytes, before.liveBytes + 4 * WORKLOAD_BYTES)
  t.is(during.threadCaches, before.threadCaches + 4)
  await Promise.all(workers.map((w) => w.worker.terminate()))
  const after = snapshot()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.liveBytes, before.liveBytes)
  t.is(after.threadCaches, before.threadCaches)
  t.is(after.threadCacheBlocks, before.threadCacheBlocks)
})

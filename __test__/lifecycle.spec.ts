// Arena lifecycle: an arena whose last `Arena` object (in any thread) is collected leaves
// the registry, every thread drops its state for it (the releasing thread at once, the
// others at their next call into the addon), and its address space is unmapped once no
// buffer, view or window reaches it; a shared arena resolves in every thread while any
// thread's object for it lives; buffers and views still reachable keep working.
// Serial: the tests read the process's VmSize and the addon's registry counts.
import { readFileSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import test, { type ExecutionContext } from 'ava'
import { Arena, defaultArena } from 'tensor-arena'
import { GiB, MiB, arenaIdOf, collect, collectUntil, fillPattern, hasPattern, native, repoRoot } from './helpers'

/** The process's virtual size (VmSize in /proc/self/status), in bytes: reserved address space. */
function vmSize(): number {
  const match = /^VmSize:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))
  if (match === null) throw new Error('no VmSize in /proc/self/status')
  return Number(match[1]) * 1024
}

const gib = (bytes: number): string => `${(bytes / GiB).toFixed(2)} GiB`

/**
 * `test.serial` on Linux; elsewhere (macOS and Windows, the release workflow's hosts) the test
 * is skipped, with the reason in its title: it reads VmSize from /proc, which only Linux has.
 */
function linuxOnly(title: string, body: (t: ExecutionContext) => Promise<void>): void {
  if (process.platform === 'linux') test.serial(title, body)
  else test.serial.skip(`${title} (skipped on ${process.platform}: reads VmSize from /proc/self/status, Linux only)`, body)
}

/** `[arenas registered, arenas this thread has state for, holds this thread has]`. */
function census(): number[] {
  return native.arenaCensus()
}

// The same workload in the main thread and in the workers (plain JavaScript, so the
// worker can eval it): a few allocations of each kind, some freed, some left unfreed and
// dropped with the arena.
const WORKLOAD = `
function use(arena, seed, big) {
  const buffer = arena.alloc(3000 + (seed % 7))
  new Uint8Array(buffer).fill(seed & 0xff)
  arena.free(buffer)
  arena.array('float64', 512).fill(seed)
  const view = arena.view('float32', 1000).fill(1)
  arena.free(view)
  arena.view('uint8', 700).fill(3)
  if (big) {
    arena.view('uint8', 6 * 1024 * 1024).fill(2)
    arena.alloc(20 * 1024 * 1024)
  }
  return arena.stats().liveAllocations
}
function churn(Arena, count, seed) {
  for (let i = 0; i < count; i++) use(new Arena({ maxBytes: 1024 * 1024 * 1024 }), seed + i, true)
}
`
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const { use, churn } = new Function(`${WORKLOAD}; return { use, churn }`)() as {
  use: (arena: Arena, seed: number, big: boolean) => number
  churn: (ctor: typeof Arena, count: number, seed: number) => void
}

// A worker answering commands ({ op, ... }) with { ok } or { error: { name, code, message } }.
const SERVER = `
const { parentPort, workerData } = require('node:worker_threads')
const path = require('node:path')
const ta = require(workerData.root)
const native = require(path.join(workerData.root, 'dist', 'binding.cjs'))
${WORKLOAD}
const held = new Map()
const turn = () => new Promise((resolve) => setImmediate(resolve))
async function settle() { for (let i = 0; i < 4; i++) { gc(); await turn(); await turn() } }
const ops = {
  census: () => native.arenaCensus(),
  churn: async (m) => { churn(ta.Arena, m.count, m.seed); await settle(); return native.arenaCensus() },
  hold: (m) => { const arena = ta.Arena.shared(m.name, m.options); held.set(m.name, arena); return arena.id },
  use: (m) => use(held.get(m.name), m.seed, false),
  resolve: (m) => ta.Arena.shared(m.name).id,
  drop: async (m) => { held.delete(m.name); await settle(); return native.arenaCensus() },
  // any call into the addon that resolves an arena: the default arena's stats
  touch: () => { ta.defaultArena.stats(); return native.arenaCensus() },
}
parentPort.on('message', async (m) => {
  let reply
  try { reply = { ok: await ops[m.op](m) } } catch (e) { reply = { error: { name: e.name, code: e.code, message: e.message } } }
  parentPort.postMessage(reply)
})
`

interface Reply {
  ok?: unknown
  error?: { name: string; code?: string; message: string }
}

class Server {
  private readonly worker: Worker
  private readonly queue: ((reply: Reply) => void)[] = []
  private readonly exited: Promise<number>

  constructor(t: ExecutionContext) {
    this.worker = new Worker(SERVER, { eval: true, execArgv: [], workerData: { root: repoRoot } })
    t.teardown(() => this.worker.terminate())
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve))
    this.worker.on('message', (reply: Reply) => this.queue.shift()?.(reply))
    this.worker.on('error', (error) => this.queue.shift()?.({ error: { name: 'Error', message: String(error) } }))
  }

  /** Runs `op`; throws what the worker threw (with its code). */
  async ok<T>(op: string, args: object = {}): Promise<T> {
    const reply = new Promise<Reply>((resolve) => {
      this.queue.push(resolve)
      void this.exited.then(() => resolve({ error: { name: 'Exit', message: 'worker exited' } }))
    })
    this.worker.postMessage({ op, ...args })
    const { ok, error } = await reply
    if (error !== undefined) throw Object.assign(new Error(`worker ${op}: ${error.code ?? error.name}: ${error.message}`), { code: error.code })
    return ok as T
  }
}

linuxOnly('200 arenas of 1 GiB made, used and dropped across the main thread and two workers leave VmSize within 2 GiB of the start', async (t) => {
  defaultArena.stats() // the default arena exists before the counts are taken
  const workers = [new Server(t), new Server(t)]
  const workerBase = await Promise.all(workers.map((w) => w.ok<number[]>('touch')))
  await collect()
  const base = census()
  const start = vmSize()
  let peak = start
  let made = 0
  for (let round = 0; made < 200; round++) {
    const counts = [6, 7, 7]
    const replies = Promise.all(workers.map((w, i) => w.ok<number[]>('churn', { count: counts[i + 1], seed: round * 100 + i * 10 })))
    churn(Arena, counts[0], round * 100 + 50)
    peak = Math.max(peak, vmSize())
    await replies
    peak = Math.max(peak, vmSize())
    made += counts[0] + counts[1] + counts[2]
    await collect()
  }
  t.true(await collectUntil(() => census()[0] === base[0]), `registry: ${census()[0]} arenas, ${base[0]} at the start`)
  const end = vmSize()
  t.log(`${made} arenas: VmSize ${gib(start)} at the start, ${gib(peak)} at the peak, ${gib(end)} at the end`)
  t.is(made, 200)
  t.true(peak - start > 4 * GiB, `the arenas did reserve address space (peak ${gib(peak)})`)
  t.true(end - start < 2 * GiB, `VmSize grew by ${gib(end - start)}`)
  t.deepEqual(census(), base, 'the main thread has no state or hold left for the dropped arenas')
  t.deepEqual(await Promise.all(workers.map((w) => w.ok<number[]>('touch'))), workerBase, 'nor has either worker')
})

const collected = new Set<string>()
const probe = new FinalizationRegistry<string>((label) => collected.add(label))

interface Held {
  buffer: ArrayBuffer
  array: Float64Array
  view: Uint8Array
  big: Uint8Array
}

/** Allocations of an arena whose `Arena` object is dropped on return (probed as `label`). */
function allocationsOfDroppedArena(label: string): Held {
  const arena = new Arena({ maxBytes: GiB })
  probe.register(arena, label)
  const held = {
    buffer: arena.alloc(5000),
    array: arena.array('float64', 1000),
    view: arena.view('uint8', 3000),
    big: arena.view('uint8', 6 * MiB),
  }
  rewrite(held, 1)
  return held
}

/** What the next test holds, outside its async frame (which may keep dead values alive). */
const box: { held?: Held } = {}

function heldIntact(held: Held, seed: number): boolean {
  return (
    hasPattern(new Uint8Array(held.buffer), seed) &&
    hasPattern(new Uint8Array(held.array.buffer), seed + 1) &&
    hasPattern(held.view, seed + 2) &&
    hasPattern(held.big, seed + 3)
  )
}

function rewrite(held: Held, seed: number): void {
  fillPattern(new Uint8Array(held.buffer), seed)
  fillPattern(new Uint8Array(held.array.buffer), seed + 1)
  fillPattern(held.view, seed + 2)
  fillPattern(held.big, seed + 3)
}

linuxOnly('buffers, arrays and views still reachable keep their memory and work after their Arena is collected', async (t) => {
  await collect()
  const base = census()
  const start = vmSize()
  box.held = allocationsOfDroppedArena('reachable')
  t.is(census()[0], base[0] + 1)
  t.true(await collectUntil(() => collected.has('reachable')), 'the Arena object was collected')
  // The releasing thread dropped its state at once; the registry forgot the arena.
  t.deepEqual(census(), base)
  t.true(heldIntact(box.held, 1), 'the data survived')
  t.true(vmSize() - start >= GiB, `the arena is still mapped (VmSize +${gib(vmSize() - start)})`)
  // Still writable and readable through the same buffers and windows.
  rewrite(box.held, 11)
  t.true(heldIntact(box.held, 11))
  box.held = undefined
  await collect(6)
  t.true(vmSize() - start < GiB, `the arena is unmapped once nothing reaches it (VmSize +${gib(vmSize() - start)})`)
  t.deepEqual(census(), base)
})

const SHARED = { maxBytes: 64 * MiB }
let mainShared: Arena | undefined

function holdShared(name: string, label: string): number {
  mainShared = Arena.shared(name, SHARED)
  probe.register(mainShared, label)
  return arenaIdOf(mainShared)
}

test.serial('a shared arena resolves in every thread while any thread holds an Arena object for it; then it is dropped everywhere', async (t) => {
  const name = 'lifecycle-shared'
  defaultArena.stats() // the default arena exists before the counts are taken (worker one's `touch` uses it)
  const [one, two] = [new Server(t), new Server(t)]
  const base = census()
  const id = holdShared(name, 'shared-1')
  t.is(await one.ok('hold', { name, options: SHARED }), id)
  t.is(await two.ok('hold', { name }), id)
  t.is(use(mainShared as Arena, 1, false), 2)

  // The main thread drops its object: the workers keep using theirs.
  mainShared = undefined
  t.true(await collectUntil(() => collected.has('shared-1')), "the main thread's object was collected")
  t.is(census()[0], base[0] + 1, 'the arena is still registered')
  for (const [i, w] of [one, two].entries()) await t.notThrowsAsync(w.ok('use', { name, seed: i }), `worker ${i + 1}`)

  // Any thread still resolves it to the same arena, with the same memory.
  t.is(holdShared(name, 'shared-2'), id)
  mainShared = undefined
  t.true(await collectUntil(() => collected.has('shared-2')))

  // Worker one drops its object; worker two keeps working.
  await one.ok('drop', { name })
  await t.notThrowsAsync(two.ok('use', { name, seed: 3 }))
  t.is(census()[0], base[0] + 1)
  t.is(await one.ok('resolve', { name }), id, 'worker one resolves it again while worker two holds it')
  await one.ok('drop', { name })

  // The last holder drops it: the arena leaves the registry; a thread that has state for
  // it (worker one) drops that state at its next call into the addon.
  await one.ok('touch') // worker one resolves the default arena, so only the drop changes its state count
  const before = await one.ok<number[]>('census')
  await two.ok('drop', { name })
  t.is(census()[0], base[0], 'the arena left the registry')
  t.is((await one.ok<number[]>('census'))[1], before[1], 'worker one keeps its state until it calls in')
  t.is((await one.ok<number[]>('touch'))[1], before[1] - 1, 'worker one dropped its state for it at its next call')

  // The name is free again: a new arena, with new options.
  const fresh = Arena.shared(name, { maxBytes: 32 * MiB })
  t.not(arenaIdOf(fresh), id)
  t.is(fresh.maxBytes, 32 * MiB)
})

test.serial('Arena.shared returns the same object while it lives, and one hold per object', async (t) => {
  await collect()
  const base = census()
  const a = Arena.shared('lifecycle-same', SHARED)
  t.is(Arena.shared('lifecycle-same'), a)
  t.is(Arena.shared('lifecycle-same', SHARED), a)
  t.is(census()[2], base[2] + 1, 'one hold for one object, however often it is resolved')
  const threadCache = a.threadCache()
  t.is(threadCache.stats().blocks, 0)
})

test.serial('a thread cache handle keeps its arena alive', async (t) => {
  await collect()
  const base = census()
  const cache = ((): ReturnType<Arena['threadCache']> => {
    const arena = new Arena({ maxBytes: 16 * MiB })
    arena.free(arena.alloc(100))
    return arena.threadCache()
  })()
  await collect()
  t.is(census()[0], base[0] + 1)
  t.is(cache.stats().blocks > 0, true)
  cache.flush()
  t.is(cache.stats().blocks, 0)
})

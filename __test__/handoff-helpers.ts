// Helpers of the hand-off suites (handoff*.spec.ts; not a test file: ava only runs
// `*.spec.*`): a worker that runs hand-off commands on a shared arena, the arena options
// the suites share, and small readers of results and arena memory.
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'
import type { ExecutionContext } from 'ava'
import { Arena } from 'tensor-arena'
import type { ArenaAllocation } from 'tensor-arena'
import { CHUNK, arenaIdOf, MiB, native, repoRoot } from './helpers'

export const REQUIRE = `require(${JSON.stringify(repoRoot)})`

// A worker that runs commands ({ op, ... }) on a shared arena (or the default arena) and
// answers each with { ok } or { error: { name, code, message } }.
const SERVER = `
const { parentPort, workerData } = require('node:worker_threads')
const ta = ${REQUIRE}
const arena = workerData.name ? ta.Arena.shared(workerData.name, workerData.options) : ta.defaultArena
const held = new Map()
const handles = []
const bytesOf = (t) => t instanceof ArrayBuffer ? new Uint8Array(t) : new Uint8Array(t.buffer, t.byteOffset, t.byteLength)
const fill = (u8, seed) => { for (let i = 0; i < u8.length; i++) u8[i] = (i * 31 + seed) & 0xff }
const describe = (t) => ({
  ctor: t.constructor.name, length: t instanceof ArrayBuffer ? t.byteLength : t.length, byteLength: t.byteLength,
  byteOffset: t instanceof ArrayBuffer ? 0 : t.byteOffset, bufferBytes: t instanceof ArrayBuffer ? t.byteLength : t.buffer.byteLength,
  bytes: bytesOf(t).slice(),
})
const ops = {
  hello: () => ({ maxBytes: arena.maxBytes, liveBytes: arena.stats().liveBytes }),
  receive: (m) => { const t = m.top ? ta.receive(m.handle) : arena.receive(m.handle); held.set(m.key, t); return describe(t) },
  reclaim: (m) => arena.reclaim(m.handle),
  race: (m) => m.handles.map((h, i) => { try { held.set('race' + i, arena.receive(h)); return 'ok' } catch (e) { return e.code } }),
  freeAll: () => { for (const t of held.values()) arena.free(t); held.clear(); return null },
  read: (m) => describe(held.get(m.key)),
  fill: (m) => { fill(bytesOf(held.get(m.key)), m.seed); return null },
  free: (m) => { if (m.top) ta.free(held.get(m.key)); else arena.free(held.get(m.key)); held.delete(m.key); return null },
  flush: () => { arena.threadCache().flush(); return null },
  make: (m) => { const t = m.kind === 'buffer' ? arena.alloc(m.length) : arena[m.kind](m.dtype, m.length); fill(bytesOf(t), m.seed); return arena.transfer(t) },
  // A hand-off whose handle stays here (never posted): only its details go back.
  hold: (m) => { const h = ops.make(m); handles.push(h); const { token, ...rest } = h; return rest },
  orphans: (m) => (m.top ? ta.orphanedTransfers() : arena.orphanedTransfers()),
  shared: (m) => ta.Arena.shared(m.name, m.options).maxBytes,
  exit: () => process.exit(0),
}
parentPort.on('message', (m) => {
  let reply
  try { reply = { ok: ops[m.op](m) } } catch (e) { reply = { error: { name: e.name, code: e.code, message: e.message } } }
  parentPort.postMessage(reply)
})
parentPort.postMessage({ ok: 'ready' })
`

export type Described = { ctor: string; length: number; byteLength: number; byteOffset: number; bufferBytes: number; bytes: Uint8Array }
interface Reply {
  ok?: unknown
  error?: { name: string; code?: string; message: string }
}

export class Server {
  readonly worker: Worker
  readonly exited: Promise<number>
  private readonly queue: ((reply: Reply) => void)[] = []
  readonly ready: Promise<Reply>

  constructor(t: ExecutionContext, name?: string, options?: object) {
    this.worker = new Worker(SERVER, { eval: true, execArgv: [], workerData: { name, options } })
    t.teardown(() => this.worker.terminate()) // also when the test throws
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve))
    this.worker.on('message', (reply: Reply) => this.queue.shift()?.(reply))
    this.worker.on('error', (error) => this.queue.shift()?.({ error: { name: 'Error', message: String(error) } }))
    this.ready = this.next()
  }

  private next(): Promise<Reply> {
    return new Promise((resolve) => {
      this.queue.push(resolve)
      void this.exited.then(() => resolve({ error: { name: 'Exit', message: 'worker exited' } }))
    })
  }

  async call(op: string, args: object = {}): Promise<Reply> {
    await this.ready
    const reply = this.next()
    this.worker.postMessage({ op, ...args })
    return reply
  }

  async ok<T>(op: string, args: object = {}): Promise<T> {
    const reply = await this.call(op, args)
    if (reply.error) throw new Error(`worker ${op} failed: ${reply.error.code ?? reply.error.name}: ${reply.error.message}`)
    return reply.ok as T
  }
}

export const ARENA_OPTIONS = { maxBytes: 64 * MiB }
export const sharedArena = (name: string): Arena => Arena.shared(name, ARENA_OPTIONS)

export const codeOf = (error: unknown): string | undefined => (error as { code?: string } | undefined)?.code

// The TypeScript layer's mapping of native result codes (internal module).
const { nativeFailure } = require(path.join(repoRoot, 'dist', 'errors.js')) as {
  nativeFailure(result: number): { code: string }
}
/** The code of a native hand-off call's result: a negative number's, or 'ok'. */
export const nativeFailureCode = (result: unknown): string => (typeof result === 'number' && result < 0 ? nativeFailure(result).code : 'ok')

export function bytesOf(t: ArenaAllocation): Uint8Array {
  return t instanceof ArrayBuffer ? new Uint8Array(t) : new Uint8Array(t.buffer, t.byteOffset, t.byteLength)
}

/** Runs `fn` and returns what it threw; a returned value is freed and reported. */
export function failure(t: ExecutionContext, arena: Arena, fn: () => unknown): { name: string; code?: string } {
  try {
    const value = fn()
    if (typeof value === 'object' && value !== null) arena.free(value as ArenaAllocation)
    t.log(`no error: the call returned ${value === undefined ? 'undefined' : (value as object).constructor.name}`)
    return { name: 'none' }
  } catch (error) {
    return { name: (error as Error).constructor.name, code: (error as { code?: string }).code }
  }
}

/**
 * Reads arena memory at arena `offset` through a fresh window of this thread (read-only
 * peek): the window over its chunk, or over its block when it crosses a chunk boundary.
 */
export function peek(arena: Arena, offset: number, byteLength: number): Uint8Array {
  const id = arenaIdOf(arena)
  const chunk = Math.floor(offset / CHUNK)
  if (offset + byteLength <= (chunk + 1) * CHUNK) {
    return new Uint8Array(native.viewWindow(id, chunk), offset - chunk * CHUNK, byteLength).slice()
  }
  return new Uint8Array(native.blockWindow(id, offset), 0, byteLength).slice()
}

export type Kind = 'buffer' | 'array' | 'view'
export const KINDS: [Kind, string | null, number][] = [
  ['buffer', null, 3000], ['array', 'float32', 1000], ['array', 'int16', 77], ['view', 'float64', 300], ['view', 'uint8', 513],
]
export function make(arena: Arena, kind: Kind, dtype: string | null, length: number): ArenaAllocation {
  if (kind === 'buffer') return arena.alloc(length)
  return kind === 'array' ? arena.array(dtype as 'float32', length) : arena.view(dtype as 'float32', length)
}

// Zero-copy hand-off between threads: Arena.shared, transfer, receive, reclaim.
// Each test uses its own shared arena (by name), so tests run concurrently without
// reading each other's counters; only the defaultArena test touches the default arena.
import * as path from 'node:path'
import { MessageChannel, Worker } from 'node:worker_threads'
import test, { type ExecutionContext } from 'ava'
import { AllocatorError, Arena, array, defaultArena, free, orphanedTransfers, receive, reclaim, stats, transfer } from 'tensor-arena'
import type { ArenaAllocation, TransferHandle } from 'tensor-arena'
import { CHUNK, arenaIdOf, arenaOffsetOf, collect, collectUntil, fillPattern, hasPattern, MiB, native, repoRoot, turn } from './helpers'

const REQUIRE = `require(${JSON.stringify(repoRoot)})`

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

type Described = { ctor: string; length: number; byteLength: number; byteOffset: number; bufferBytes: number; bytes: Uint8Array }
interface Reply {
  ok?: unknown
  error?: { name: string; code?: string; message: string }
}

class Server {
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

const ARENA_OPTIONS = { maxBytes: 64 * MiB }
const sharedArena = (name: string): Arena => Arena.shared(name, ARENA_OPTIONS)

const codeOf = (error: unknown): string | undefined => (error as { code?: string } | undefined)?.code

// The TypeScript layer's mapping of native result codes (internal module).
const { nativeFailure } = require(path.join(repoRoot, 'dist', 'errors.js')) as {
  nativeFailure(result: number): { code: string }
}
/** The code of a native hand-off call's result: a negative number's, or 'ok'. */
const nativeFailureCode = (result: unknown): string => (typeof result === 'number' && result < 0 ? nativeFailure(result).code : 'ok')

function bytesOf(t: ArenaAllocation): Uint8Array {
  return t instanceof ArrayBuffer ? new Uint8Array(t) : new Uint8Array(t.buffer, t.byteOffset, t.byteLength)
}

/** Runs `fn` and returns what it threw; a returned value is freed and reported. */
function failure(t: ExecutionContext, arena: Arena, fn: () => unknown): { name: string; code?: string } {
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
function peek(arena: Arena, offset: number, byteLength: number): Uint8Array {
  const id = arenaIdOf(arena)
  const chunk = Math.floor(offset / CHUNK)
  if (offset + byteLength <= (chunk + 1) * CHUNK) {
    return new Uint8Array(native.viewWindow(id, chunk), offset - chunk * CHUNK, byteLength).slice()
  }
  return new Uint8Array(native.blockWindow(id, offset), 0, byteLength).slice()
}

type Kind = 'buffer' | 'array' | 'view'
const KINDS: [Kind, string | null, number][] = [
  ['buffer', null, 3000], ['array', 'float32', 1000], ['array', 'int16', 77], ['view', 'float64', 300], ['view', 'uint8', 513],
]
function make(arena: Arena, kind: Kind, dtype: string | null, length: number): ArenaAllocation {
  if (kind === 'buffer') return arena.alloc(length)
  return kind === 'array' ? arena.array(dtype as 'float32', length) : arena.view(dtype as 'float32', length)
}

test('Arena.shared: one arena per name in every thread; differing options throw ERR_INVALID_CONFIG', async (t) => {
  const options = { maxBytes: 48 * MiB + 4096, refillTargetBytes: 16384 }
  const arena = Arena.shared('handoff-config', options)
  t.is(Arena.shared('handoff-config', options), arena, 'same options: same object')
  t.is(Arena.shared('handoff-config'), arena, 'no options: same object')
  t.is(Arena.shared('handoff-config', { maxBytes: 48 * MiB + 4096 }), arena, 'a subset of the options')
  for (const bad of [{ maxBytes: 64 * MiB }, { alignment: 128 }, { refillTargetBytes: 32768 }, { localCacheTargetBytes: 1024 }]) {
    const error = t.throws(() => Arena.shared('handoff-config', bad), { instanceOf: AllocatorError }, JSON.stringify(bad))
    t.is(error?.code, 'ERR_INVALID_CONFIG', JSON.stringify(bad))
  }
  t.is(t.throws(() => Arena.shared('handoff-config-bad', { maxBytes: 0 }), { instanceOf: AllocatorError })?.code, 'ERR_INVALID_CONFIG')
  t.is(codeOf(t.throws(() => Arena.shared('handoff-config-bad', { arenaSize: 64 * MiB } as never), { instanceOf: TypeError })), 'ERR_INVALID_ARG_VALUE')
  t.is(Arena.shared('handoff-config-bad', ARENA_OPTIONS).maxBytes, 64 * MiB, 'a failed creation registers nothing')
  t.is(codeOf(t.throws(() => Arena.shared(42 as unknown as string), { instanceOf: TypeError })), 'ERR_INVALID_ARG_TYPE')
  t.is(codeOf(t.throws(() => Arena.shared(''), { instanceOf: TypeError })), 'ERR_INVALID_ARG_TYPE')

  const server = new Server(t, 'handoff-config')
  const hello = await server.ok<{ maxBytes: number | undefined; liveBytes: number }>('hello')
  t.is(hello.maxBytes, arena.maxBytes, 'the worker gets the same arena')
  const kept = arena.array('uint8', 1234)
  t.is((await server.ok<{ liveBytes: number }>('hello')).liveBytes, arena.stats().liveBytes, 'the worker sees this thread’s allocation')
  t.is((await server.call('shared', { name: 'handoff-config', options: { maxBytes: 32 * MiB } })).error?.code, 'ERR_INVALID_CONFIG')
  t.is(await server.ok('shared', { name: 'handoff-config', options }), arena.maxBytes)
  arena.free(kept)
  await server.worker.terminate()
})

test('transfer: an exclusive buffer is detached in the sender, a typed array and a view become unusable', (t) => {
  const arena = sharedArena('handoff-sender')
  const base = arena.stats()
  const buffer = arena.alloc(1000)
  const typed = arena.array('float32', 250)
  const view = arena.view('int32', 250)
  const handles = [arena.transfer(buffer), arena.transfer(typed), arena.transfer(view)]
  t.is(buffer.byteLength, 0, 'buffer detached')
  t.is(typed.length, 0, 'typed array over a detached buffer')
  t.is(typed.buffer.byteLength, 0)
  for (const x of [buffer, typed, view]) {
    t.false(arena.owns(x))
    t.is(t.throws(() => arena.free(x), { instanceOf: AllocatorError })?.code, 'ERR_DOUBLE_FREE')
    t.is(t.throws(() => arena.transfer(x), { instanceOf: AllocatorError })?.code, 'ERR_DOUBLE_FREE')
  }
  t.deepEqual(
    handles.map((h) => [h.arena, h.kind, h.dtype, h.length, h.byteLength]),
    [[handles[0].arena, 'buffer', null, 1000, 1000], [handles[0].arena, 'array', 'float32', 250, 1000], [handles[0].arena, 'view', 'int32', 250, 1000]],
  )
  // A handle's offset is an arena offset, not the view's byteOffset inside its window.
  t.is<number | undefined, number | undefined>(handles[2].offset, arenaOffsetOf(view))
  const during = arena.stats()
  t.is(during.inFlightCount, base.inFlightCount + 3)
  t.is(during.inFlightBytes, base.inFlightBytes + 3000)
  t.is(during.liveBytes, base.liveBytes + 3000, 'in-flight blocks stay allocated')
  // Another arena does not own them: nothing is detached.
  const other = sharedArena('handoff-sender-other')
  const mine = arena.array('uint8', 64)
  t.is(t.throws(() => other.transfer(mine), { instanceOf: AllocatorError })?.code, 'ERR_NOT_OWNED')
  t.is(mine.length, 64)
  arena.free(mine)
  for (const h of handles) arena.reclaim(h)
  t.like(arena.stats(), { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes })
})

test('a handle is a plain, structured-cloneable object; receive gives the same memory, kind, dtype and length', (t) => {
  const arena = sharedArena('handoff-clone')
  for (const [kind, dtype, length] of KINDS) {
    const x = make(arena, kind, dtype, length)
    fillPattern(bytesOf(x), length)
    const h = arena.transfer(x)
    t.is(Object.getPrototypeOf(h), Object.prototype)
    const clone = structuredClone(h)
    t.deepEqual(clone, h)
    t.deepEqual(JSON.parse(JSON.stringify(h)), h)
    const got = arena.receive(clone)
    t.true(hasPattern(bytesOf(got), length), `${kind} ${dtype}`)
    if (kind === 'buffer') t.true(got instanceof ArrayBuffer)
    else {
      const typed = got as ArrayBufferView & { length: number }
      t.is(typed.constructor, (x as ArrayBufferView).constructor)
      t.is(typed.length, length)
      if (kind === 'view') t.is(arenaOffsetOf(typed), h.offset, 'the view is over the same arena memory')
      else t.is(typed.byteOffset, 0)
      if (kind === 'array') t.is(typed.buffer.byteLength, h.byteLength, 'its own exclusive buffer')
    }
    t.true(arena.owns(got))
    arena.free(got)
  }
  t.like(arena.stats(), { liveBytes: 0, inFlightCount: 0 })
})

test('all kinds received in a worker hold the sender’s bytes, in the same memory, and its frees are local frees', async (t) => {
  const arena = sharedArena('handoff-kinds')
  const base = arena.stats()
  const server = new Server(t, 'handoff-kinds')
  for (const [i, [kind, dtype, length]] of KINDS.entries()) {
    const x = make(arena, kind, dtype, length)
    fillPattern(bytesOf(x), i)
    const h = arena.transfer(x)
    const got = await server.ok<Described>('receive', { handle: h, key: i })
    const what = `${kind} ${dtype}`
    t.is(got.ctor, kind === 'buffer' ? 'ArrayBuffer' : (x as ArrayBufferView).constructor.name, what)
    t.is(got.length, length, what)
    t.is(got.byteLength, h.byteLength, what)
    // A view's byteOffset is inside its window: the worker's window over the same chunk.
    t.is(got.byteOffset, kind === 'view' ? h.offset % CHUNK : 0, what)
    t.is(got.bufferBytes, kind === 'view' ? CHUNK : h.byteLength, `${what}: ${kind === 'view' ? 'chunk window' : 'own buffer'}`)
    t.true(hasPattern(got.bytes, i), `${what}: same bytes`)
    // No copy: what the worker writes is what this thread sees at the handle's offset.
    await server.ok('fill', { key: i, seed: 100 + i })
    t.true(hasPattern(peek(arena, h.offset, h.byteLength), 100 + i), `${what}: same memory`)
  }
  t.is(arena.stats().inFlightCount, base.inFlightCount)
  for (const i of KINDS.keys()) await server.ok('free', { key: i })
  const after = arena.stats()
  t.is(after.liveBytes, base.liveBytes)
  t.is(after.remoteFreesTotal - base.remoteFreesTotal, 0, 'a received hand-off belongs to the receiver: its frees are local')
  // Once the worker's cache hands its blocks back, the sender reuses what the worker freed.
  await server.ok('flush')
  const again = KINDS.map(([kind, dtype, length]) => make(arena, kind, dtype, length))
  t.is(arena.stats().carvedBytes, after.carvedBytes, 'no new carving')
  for (const x of again) arena.free(x)
  await server.worker.terminate()
})

test('a sender that exits before its hand-offs are received frees neither those nor the ones already received', async (t) => {
  const arena = sharedArena('handoff-sender-exit')
  const base = arena.stats()
  const server = new Server(t, 'handoff-sender-exit')
  const handles: TransferHandle[] = []
  for (const [i, [kind, dtype, length]] of KINDS.entries()) {
    handles.push(await server.ok<TransferHandle>('make', { kind, dtype, length, seed: 50 + i }))
  }
  const early = arena.receive(handles[0])
  await server.call('exit')
  t.is(await server.exited, 0)
  const gone = arena.stats()
  t.is(gone.inFlightCount, base.inFlightCount + KINDS.length - 1)
  t.is(gone.liveBytes - base.liveBytes, handles.reduce((sum, h) => sum + h.byteLength, 0))
  const received = [early, ...handles.slice(1).map((h) => arena.receive(h))]
  for (const [i, got] of received.entries()) t.true(hasPattern(bytesOf(got), 50 + i), `${KINDS[i][0]} ${KINDS[i][1]} intact`)
  // Nothing is handed out twice: fresh allocations do not overlap what this thread holds.
  const fresh = KINDS.map(([kind, dtype, length]) => make(arena, kind, dtype, length))
  for (const x of fresh) bytesOf(x).fill(0xee)
  for (const [i, got] of received.entries()) t.true(hasPattern(bytesOf(got), 50 + i), `${i} still intact`)
  for (const x of [...fresh, ...received]) arena.free(x)
  t.like(arena.stats(), { liveBytes: base.liveBytes, liveAllocations: base.liveAllocations, inFlightCount: base.inFlightCount })
})

test('a handle is received exactly once: receive in a worker, then again there and in the main thread', async (t) => {
  const arena = sharedArena('handoff-twice')
  const base = arena.stats()
  const server = new Server(t, 'handoff-twice')
  const x = arena.array('float64', 500)
  fillPattern(bytesOf(x), 9)
  const h = arena.transfer(x)
  t.true(hasPattern((await server.ok<Described>('receive', { handle: h, key: 'a' })).bytes, 9))
  t.is((await server.call('receive', { handle: h, key: 'b' })).error?.code, 'ERR_ALREADY_RECEIVED', 'second receive in the worker')
  t.is(t.throws(() => arena.receive(h), { instanceOf: AllocatorError })?.code, 'ERR_ALREADY_RECEIVED', 'then in the main thread')
  t.is(t.throws(() => arena.reclaim(h), { instanceOf: AllocatorError })?.code, 'ERR_ALREADY_RECEIVED', 'reclaim after receive')
  t.true(hasPattern((await server.ok<Described>('read', { key: 'a' })).bytes, 9), 'the worker’s tensor is untouched')
  t.is(arena.stats().liveBytes, base.liveBytes + 4000)
  await server.ok('free', { key: 'a' })
  t.like(arena.stats(), { liveBytes: base.liveBytes, inFlightCount: base.inFlightCount })
  await server.worker.terminate()
})

test('receives racing in four workers: each handle is claimed by exactly one of them', async (t) => {
  const arena = sharedArena('handoff-race')
  const base = arena.stats()
  const servers = Array.from({ length: 4 }, () => new Server(t, 'handoff-race'))
  await Promise.all(servers.map((s) => s.ready))
  const handles = Array.from({ length: 200 }, (_, i) => arena.transfer(i % 2 ? arena.view('float32', 64) : arena.array('float32', 64)))
  const results = await Promise.all(servers.map((s) => s.ok<string[]>('race', { handles })))
  const winners = handles.map((_, i) => results.filter((r) => r[i] === 'ok').length)
  t.deepEqual(winners, handles.map(() => 1), 'exactly one receiver per handle')
  t.deepEqual([...new Set(results.flat())].sort(), ['ERR_ALREADY_RECEIVED', 'ok'])
  t.is(arena.stats().inFlightCount, base.inFlightCount)
  await Promise.all(servers.map((s) => s.ok('freeAll')))
  t.like(arena.stats(), { liveBytes: base.liveBytes, liveAllocations: base.liveAllocations })
  await Promise.all(servers.map((s) => s.worker.terminate()))
})

test('an unreceived hand-off stays accounted in flight until reclaim (here or in a worker) frees it once', async (t) => {
  const arena = sharedArena('handoff-reclaim')
  const base = arena.stats()
  const h1 = arena.transfer(arena.alloc(5000))
  const h2 = arena.transfer(arena.view('float32', 100))
  const during = arena.stats()
  t.is(during.inFlightBytes - base.inFlightBytes, 5400)
  t.is(during.inFlightCount - base.inFlightCount, 2)
  t.is(during.liveBytes - base.liveBytes, 5400)
  arena.reclaim(h1)
  const server = new Server(t, 'handoff-reclaim')
  t.is((await server.call('reclaim', { handle: h2 })).error, undefined, 'a worker can reclaim too')
  const after = arena.stats()
  t.like(after, { inFlightBytes: base.inFlightBytes, inFlightCount: base.inFlightCount, liveBytes: base.liveBytes })
  t.is(after.freesTotal - base.freesTotal, 2)
  for (const h of [h1, h2] as TransferHandle[]) {
    t.is(t.throws(() => arena.reclaim(h), { instanceOf: AllocatorError })?.code, 'ERR_ALREADY_RECEIVED')
    t.is(t.throws(() => arena.receive(h), { instanceOf: AllocatorError })?.code, 'ERR_ALREADY_RECEIVED')
  }
  t.is(arena.stats().freesTotal, after.freesTotal, 'nothing freed twice')
  await server.worker.terminate()
})

// Forged or altered handles: each case on a fresh hand-off; afterwards nothing changed and the
// genuine handle is still received intact.
type Forge = (h: TransferHandle) => unknown
const INVALID = 'ERR_INVALID_HANDLE'
const FORGED: [string, Kind, string | null, Forge, string, number?][] = [
  ['token’s last digit changed', 'array', 'float32', (h) => ({ ...h, token: h.token.slice(0, -1) + (h.token.endsWith('0') ? '1' : '0') }), INVALID],
  ['token upper case', 'array', 'float32', (h) => ({ ...h, token: h.token.toUpperCase().replace(/^[0-9]*$/, 'A'.repeat(32)) }), INVALID],
  ['token one digit short', 'array', 'float32', (h) => ({ ...h, token: h.token.slice(1) }), INVALID],
  ['token one digit long', 'array', 'float32', (h) => ({ ...h, token: h.token + '0' }), INVALID],
  ['token with a 0x prefix', 'array', 'float32', (h) => ({ ...h, token: '0x' + h.token.slice(2) }), INVALID],
  ['token with spaces', 'array', 'float32', (h) => ({ ...h, token: ` ${h.token.slice(1, -1)} ` }), INVALID],
  ['token of 32 zeros', 'buffer', null, (h) => ({ ...h, token: '0'.repeat(32) }), INVALID],
  ['token empty', 'buffer', null, (h) => ({ ...h, token: '' }), INVALID],
  ['token as a number', 'array', 'float32', (h) => ({ ...h, token: Number.parseInt(h.token.slice(0, 13), 16) }), INVALID],
  ['token as a bigint', 'array', 'float32', (h) => ({ ...h, token: BigInt('0x' + h.token) }), INVALID],
  ['token as a String object', 'array', 'float32', (h) => ({ ...h, token: new String(h.token) }), INVALID],
  ['token with a wide character whose low byte is a digit', 'array', 'float32', (h) => ({ ...h, token: '\u0130' + h.token.slice(1) }), INVALID],
  ['offset + 64', 'array', 'float32', (h) => ({ ...h, offset: h.offset + 64 }), INVALID],
  ['offset − 4096 (view)', 'view', 'float32', (h) => ({ ...h, offset: h.offset - 4096 }), INVALID],
  ['offset past the arena', 'buffer', null, (h) => ({ ...h, offset: 2 ** 40 }), INVALID],
  ['offset negative', 'buffer', null, (h) => ({ ...h, offset: -64 }), INVALID],
  ['byteLength only', 'array', 'float32', (h) => ({ ...h, byteLength: h.byteLength + 4 }), INVALID],
  ['byteLength and length (buffer)', 'buffer', null, (h) => ({ ...h, byteLength: h.byteLength + 64, length: h.length + 64 }), INVALID],
  ['byteLength and length (array)', 'array', 'float32', (h) => ({ ...h, byteLength: h.byteLength - 4, length: h.length - 1 }), INVALID],
  ['byteLength 0 → 1 (alloc(0))', 'buffer', null, (h) => ({ ...h, byteLength: 1, length: 1 }), INVALID, 0],
  ['byteLength 1 → 0 (alloc(1))', 'buffer', null, (h) => ({ ...h, byteLength: 0, length: 0 }), INVALID, 1],
  ['kind array → view', 'array', 'float32', (h) => ({ ...h, kind: 'view' }), INVALID],
  ['kind array → buffer', 'array', 'float32', (h) => ({ ...h, kind: 'buffer', dtype: null, length: h.byteLength }), INVALID],
  ['kind buffer → array (uint8)', 'buffer', null, (h) => ({ ...h, kind: 'array', dtype: 'uint8' }), INVALID],
  ['kind view → array', 'view', 'float32', (h) => ({ ...h, kind: 'array' }), INVALID],
  ['kind unknown', 'array', 'float32', (h) => ({ ...h, kind: 'tensor' }), INVALID],
  ['dtype float32 → int32', 'array', 'float32', (h) => ({ ...h, dtype: 'int32' }), INVALID],
  ['dtype float32 → float64, length halved (view)', 'view', 'float32', (h) => ({ ...h, dtype: 'float64', length: h.length / 2 }), INVALID],
  ['dtype float32 → float64', 'array', 'float32', (h) => ({ ...h, dtype: 'float64' }), INVALID],
  ['dtype unknown', 'array', 'float32', (h) => ({ ...h, dtype: 'float16x' }), INVALID],
  ['dtype on a buffer', 'buffer', null, (h) => ({ ...h, dtype: 'uint8' }), INVALID],
  ...(['arena', 'token', 'kind', 'dtype', 'length', 'byteLength', 'offset'] as const).map(
    (field): [string, Kind, string | null, Forge, string] => [`missing ${field}`, 'array', 'float32', (h) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== field)), INVALID],
  ),
  ['empty object', 'array', 'float32', () => ({}), INVALID],
  ['an array of the values', 'array', 'float32', (h) => Object.values(h), INVALID],
  ['null', 'array', 'float32', () => null, 'TypeError'],
  ['undefined', 'array', 'float32', () => undefined, 'TypeError'],
  ['the token string', 'array', 'float32', (h) => h.token, 'TypeError'],
  ['the handle as JSON', 'array', 'float32', (h) => JSON.stringify(h), 'TypeError'],
]
for (const [what, kind, dtype, forge, expected, length = 256] of FORGED) {
  test(`forged handle (${what}) → ${expected}, nothing touched`, (t) => {
    const arena = sharedArena('handoff-forged')
    const x = make(arena, kind, dtype, length)
    fillPattern(bytesOf(x), 7)
    const h = arena.transfer(x)
    const before = arena.stats()
    for (const op of ['receive', 'reclaim'] as const) {
      const error = failure(t, arena, () => arena[op](forge(h) as TransferHandle))
      const want = expected === 'TypeError' ? { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' } : { name: 'AllocatorError', code: expected }
      t.deepEqual(error, want, op)
    }
    const after = arena.stats()
    t.deepEqual([after.inFlightCount, after.liveBytes, after.freesTotal], [before.inFlightCount, before.liveBytes, before.freesTotal], 'nothing touched')
    let got: ArenaAllocation | undefined
    try {
      got = arena.receive(h)
    } catch (error) {
      t.fail(`the genuine handle is no longer receivable: ${(error as AllocatorError).code}`)
    }
    if (got !== undefined) {
      t.true(hasPattern(bytesOf(got), 7), 'genuine handle intact')
      arena.free(got)
    }
  })
}

test('a token is 32 lowercase hex digits, different in most digits from one hand-off to the next', (t) => {
  const arena = sharedArena('handoff-token-format')
  const handles = Array.from({ length: 64 }, () => arena.transfer(arena.array('uint8', 64)))
  for (const h of handles) t.regex(h.token, /^[0-9a-f]{32}$/)
  t.is(new Set(handles.map((h) => h.token)).size, handles.length, 'no token repeats')
  for (let i = 1; i < handles.length; i++) {
    const [a, b] = [handles[i - 1].token, handles[i].token]
    const same = [...a].filter((c, j) => c === b[j]).length
    // Expected 2 of 32 digits in common for unrelated tokens; 12 is over 7σ away.
    t.true(same <= 12, `${a} → ${b}: ${same} digits in common`)
  }
  for (const h of handles) arena.reclaim(h)
  t.is(arena.stats().inFlightCount, 0)
})

test('every altered token digit (each position, every other hex digit: all 128 bit flips and more) is ERR_INVALID_HANDLE and touches nothing, in TypeScript and natively', (t) => {
  const arena = sharedArena('handoff-token-digits')
  const id = arenaIdOf(arena)
  const x = arena.array('float32', 256)
  fillPattern(bytesOf(x), 5)
  const h = arena.transfer(x)
  const other = arena.transfer(arena.view('float32', 256))
  const before = arena.stats()
  const kind = 16 + 7 // kindCode('array', 'float32'): kind 1, float32 is DTYPES' entry 7
  const codes = new Map<string, number>()
  const count = (code: string | undefined): void => void codes.set(String(code), (codes.get(String(code)) ?? 0) + 1)
  let altered = 0
  for (let i = 0; i < 32; i++) {
    for (const digit of '0123456789abcdef') {
      if (digit === h.token[i]) continue
      const token = h.token.slice(0, i) + digit + h.token.slice(i + 1)
      altered++
      count(codeOf(t.throws(() => arena.receive({ ...h, token }))))
      count(codeOf(t.throws(() => arena.reclaim({ ...h, token }))))
      // The native checks on their own, without the TypeScript layer's.
      count(nativeFailureCode(native.receiveExclusive(id, token, h.offset, h.byteLength, kind)))
      count(nativeFailureCode(native.reclaim(id, token, h.offset, h.byteLength, kind)))
    }
  }
  t.is(altered, 32 * 15)
  t.deepEqual([...codes], [['ERR_INVALID_HANDLE', 4 * altered]])
  // Natively, a wide character whose low byte is the right digit is not that digit.
  const wide = String.fromCharCode(0x100 + h.token.charCodeAt(0)) + h.token.slice(1)
  t.is(nativeFailureCode(native.reclaim(id, wide, h.offset, h.byteLength, kind)), 'ERR_INVALID_HANDLE')
  // Another in-flight hand-off's genuine token with this handle's details: refused too.
  t.is(codeOf(t.throws(() => arena.receive({ ...h, token: other.token }))), 'ERR_INVALID_HANDLE')
  const after = arena.stats()
  t.deepEqual([after.inFlightCount, after.liveBytes, after.freesTotal], [before.inFlightCount, before.liveBytes, before.freesTotal], 'nothing touched')
  const got = arena.receive(h)
  t.true(hasPattern(bytesOf(got), 5), 'the genuine handle still works')
  arena.free(got)
  arena.reclaim(other)
})

test('a seeded brute force of 100,000 random tokens against 64 in-flight hand-offs claims nothing', (t) => {
  const arena = sharedArena('handoff-brute-force')
  const handles = Array.from({ length: 64 }, (_, i) => arena.transfer(i % 2 ? arena.view('uint8', 64) : arena.array('uint8', 64)))
  const before = arena.stats()
  let seed = 0x5eed_0012
  const next = (): number => {
    // xorshift32
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return seed >>> 0
  }
  const hex = (): string => next().toString(16).padStart(8, '0')
  const outcomes = new Map<string, number>()
  for (let i = 0; i < 100_000; i++) {
    const target = handles[i % handles.length]
    // Random tokens, and (every other guess) the target's low half with a random tag.
    const token = i % 2 === 0 ? hex() + hex() + hex() + hex() : hex() + hex() + target.token.slice(16)
    let outcome: string
    try {
      arena.reclaim({ ...target, token })
      outcome = 'claimed'
    } catch (error) {
      outcome = String(codeOf(error))
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
  }
  t.deepEqual([...outcomes], [['ERR_INVALID_HANDLE', 100_000]])
  const after = arena.stats()
  t.deepEqual([after.inFlightCount, after.freesTotal], [before.inFlightCount, before.freesTotal])
  for (const h of handles) arena.reclaim(h)
  t.is(arena.stats().inFlightCount, 0)
})

test('a handle for another arena throws ERR_NOT_OWNED and stays receivable by its own arena', (t) => {
  const arena = sharedArena('handoff-owner-a')
  const other = sharedArena('handoff-owner-b')
  const priv = new Arena({ maxBytes: 8 * MiB })
  const x = arena.array('uint16', 100)
  fillPattern(bytesOf(x), 3)
  const h = arena.transfer(x)
  for (const [name, wrong] of [['another shared arena', other], ['a private arena', priv], ['the default arena', defaultArena]] as const) {
    t.is(t.throws(() => wrong.receive(h), { instanceOf: AllocatorError })?.code, 'ERR_NOT_OWNED', `receive: ${name}`)
    t.is(t.throws(() => wrong.reclaim(h), { instanceOf: AllocatorError })?.code, 'ERR_NOT_OWNED', `reclaim: ${name}`)
  }
  t.is(t.throws(() => receive(h), { instanceOf: AllocatorError })?.code, 'ERR_NOT_OWNED', 'top-level receive')
  const otherHandle = other.transfer(other.alloc(8))
  for (const id of [otherHandle.arena, h.arena + 1000]) {
    t.is(t.throws(() => arena.receive({ ...h, arena: id }), { instanceOf: AllocatorError })?.code, 'ERR_NOT_OWNED', `arena id ${id}`)
  }
  other.reclaim(otherHandle)
  t.is(arena.stats().inFlightCount, 1)
  const got = arena.receive(h)
  t.true(hasPattern(bytesOf(got), 3))
  arena.free(got)
})

test('the sender’s GC does not free a block in flight; a received tensor never freed is returned by GC', async (t) => {
  const arena = sharedArena('handoff-gc')
  const base = arena.stats()
  let x: Float64Array | undefined = arena.array('float64', 100)
  let v: Uint8Array | undefined = arena.view('uint8', 300)
  fillPattern(bytesOf(x), 1)
  fillPattern(v, 2)
  await turn() // the view is now registered for GC reclaim
  const handles: TransferHandle[] = [arena.transfer(x), arena.transfer(v)]
  x = v = undefined
  await collect(6)
  const during = arena.stats()
  t.is(during.inFlightCount, base.inFlightCount + 2)
  t.is(during.liveBytes, base.liveBytes + 1100)
  let received: ArenaAllocation[] | undefined = handles.map((h) => arena.receive(h))
  t.true(hasPattern(bytesOf(received[0]), 1) && hasPattern(bytesOf(received[1]), 2))
  received = undefined
  t.true(await collectUntil(() => arena.stats().liveBytes === base.liveBytes), 'received tensors are reclaimed like any other')
})

test('a terminated receiver returns the tensors it received; unreceived ones stay in flight', async (t) => {
  const arena = sharedArena('handoff-terminate')
  const base = arena.stats()
  const server = new Server(t, 'handoff-terminate')
  for (const [i, [kind, dtype, length]] of KINDS.entries()) {
    const h = arena.transfer(make(arena, kind, dtype, length))
    await server.ok('receive', { handle: h, key: i })
  }
  const pending = arena.transfer(arena.array('float32', 64))
  const during = arena.stats()
  t.true(during.liveBytes > base.liveBytes)
  t.is(await server.worker.terminate(), 1)
  const after = arena.stats()
  t.is(after.liveBytes, base.liveBytes + 256, 'only the unreceived hand-off is left')
  t.is(after.liveAllocations, base.liveAllocations + 1)
  t.is(after.inFlightCount, base.inFlightCount + 1)
  arena.reclaim(pending)
  t.like(arena.stats(), { liveBytes: base.liveBytes, liveAllocations: base.liveAllocations, inFlightCount: base.inFlightCount })
})

// ---- orphaned hand-offs: the sender exited before its handle reached anyone ------------
type Held = Omit<TransferHandle, 'token'>
const detailsOf = (h: TransferHandle): Held => {
  const { token: _token, ...rest } = h
  return rest
}

test('a worker terminated between transfer and postMessage leaves orphans: orphanedTransfers lists them, reclaim returns their memory', async (t) => {
  const arena = sharedArena('handoff-orphan-terminated')
  const base = arena.stats()
  const server = new Server(t, 'handoff-orphan-terminated')
  const held: Held[] = []
  for (const [i, [kind, dtype, length]] of KINDS.entries()) {
    held.push(await server.ok<Held>('hold', { kind, dtype, length, seed: 70 + i }))
  }
  const bytes = held.reduce((sum, h) => sum + h.byteLength, 0)
  t.deepEqual(arena.orphanedTransfers(), [], 'the sender is alive')
  t.deepEqual(await server.ok('orphans'), [], 'in the sender too')
  t.is(await server.worker.terminate(), 1)
  const during = arena.stats()
  t.is(during.inFlightCount - base.inFlightCount, KINDS.length)
  t.is(during.inFlightBytes - base.inFlightBytes, bytes)
  t.is(during.liveBytes - base.liveBytes, bytes, 'the terminated sender freed nothing it had handed off')
  const orphans = arena.orphanedTransfers()
  t.deepEqual(orphans.map(detailsOf), held, 'every hand-off the worker held, oldest first, with the details transfer gave')
  for (const o of orphans) {
    t.is(Object.getPrototypeOf(o), Object.prototype)
    t.regex(o.token, /^[0-9a-f]{32}$/)
    t.deepEqual(structuredClone(o), o)
  }
  t.not(arena.orphanedTransfers(), orphans, 'a new array each call')
  t.deepEqual(arena.orphanedTransfers(), orphans, 'listing claims nothing')
  for (const o of orphans) arena.reclaim(o)
  t.deepEqual(arena.orphanedTransfers(), [])
  const after = arena.stats()
  t.like(after, { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes, liveAllocations: base.liveAllocations })
  t.is(after.freesTotal - base.freesTotal - (during.freesTotal - base.freesTotal), KINDS.length, 'each orphan freed once')
})

test('hand-offs of live senders are never listed: a live worker’s, and the main thread’s while other workers exit', async (t) => {
  const arena = sharedArena('handoff-orphan-live')
  const base = arena.stats()
  const mine = arena.transfer(arena.array('float32', 100))
  const alive = new Server(t, 'handoff-orphan-live')
  const exiting = new Server(t, 'handoff-orphan-live')
  const aliveHeld = await alive.ok<Held>('hold', { kind: 'view', dtype: 'uint8', length: 200, seed: 1 })
  const gone = await exiting.ok<TransferHandle>('make', { kind: 'buffer', length: 300, seed: 2 })
  t.deepEqual(arena.orphanedTransfers(), [])
  t.deepEqual(await alive.ok('orphans'), [], 'no sender has exited yet')
  await exiting.call('exit')
  t.is(await exiting.exited, 0)
  t.deepEqual(arena.orphanedTransfers(), [gone], 'only the exited worker’s hand-off, as it posted it')
  t.deepEqual(await alive.ok('orphans'), [gone], 'the same from another worker')
  t.is(arena.stats().inFlightCount - base.inFlightCount, 3)
  arena.reclaim(gone)
  // The live worker's hand-off becomes an orphan once it is terminated; the main thread's never.
  await alive.worker.terminate()
  const orphans = arena.orphanedTransfers()
  t.deepEqual(orphans.map(detailsOf), [aliveHeld])
  t.false(orphans.some((o) => o.token === mine.token), 'the main thread’s hand-off is not listed')
  for (const o of orphans) arena.reclaim(o)
  arena.reclaim(mine)
  t.like(arena.stats(), { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes })
})

test('an orphan is claimed exactly once: received first it cannot be reclaimed, reclaimed first it cannot be received (ERR_ALREADY_RECEIVED)', async (t) => {
  const arena = sharedArena('handoff-orphan-race')
  const base = arena.stats()
  const server = new Server(t, 'handoff-orphan-race')
  // The worker posted these handles just before it exited: they may still reach a receiver.
  const posted = [
    await server.ok<TransferHandle>('make', { kind: 'array', dtype: 'float64', length: 64, seed: 31 }),
    await server.ok<TransferHandle>('make', { kind: 'view', dtype: 'int16', length: 640, seed: 32 }),
  ]
  await server.call('exit')
  t.is(await server.exited, 0)
  const orphans = arena.orphanedTransfers()
  t.deepEqual(orphans, posted, 'the listed handles are the posted ones, token included')
  // Received first (through the orphan list): the posted handle can no longer be reclaimed.
  const got = arena.receive(orphans[0])
  t.true(hasPattern(bytesOf(got), 31), 'the sender’s bytes')
  t.is(codeOf(t.throws(() => arena.reclaim(posted[0]), { instanceOf: AllocatorError })), 'ERR_ALREADY_RECEIVED')
  t.is(codeOf(t.throws(() => arena.receive(posted[0]), { instanceOf: AllocatorError })), 'ERR_ALREADY_RECEIVED')
  // Reclaimed first: the posted handle can no longer be received, nor reclaimed again.
  const freesBefore = arena.stats().freesTotal
  arena.reclaim(orphans[1])
  t.is(codeOf(t.throws(() => arena.receive(posted[1]), { instanceOf: AllocatorError })), 'ERR_ALREADY_RECEIVED')
  t.is(codeOf(t.throws(() => arena.reclaim(posted[1]), { instanceOf: AllocatorError })), 'ERR_ALREADY_RECEIVED')
  t.is(codeOf(t.throws(() => arena.reclaim(orphans[1]), { instanceOf: AllocatorError })), 'ERR_ALREADY_RECEIVED')
  t.is(arena.stats().freesTotal - freesBefore, 1, 'freed once')
  t.deepEqual(arena.orphanedTransfers(), [], 'claimed orphans are no longer listed')
  arena.free(got)
  t.like(arena.stats(), { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes })
})

test.serial('orphanedTransfers on the default arena: the top-level helper lists a gone worker’s hand-off, never the main thread’s', async (t) => {
  const base = stats()
  const mine = transfer(array('uint8', 48))
  const server = new Server(t)
  const held = await server.ok<Held>('hold', { kind: 'array', dtype: 'uint32', length: 12, seed: 3 })
  t.deepEqual(await server.ok('orphans', { top: true }), [])
  t.is(await server.worker.terminate(), 1)
  const orphans = orphanedTransfers()
  t.deepEqual(orphans.map(detailsOf), [held])
  t.deepEqual(defaultArena.orphanedTransfers(), orphans)
  reclaim(orphans[0])
  t.deepEqual(orphanedTransfers(), [])
  reclaim(mine)
  t.like(stats(), { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes })
})

test.serial('defaultArena is shared the same way: top-level transfer / receive / reclaim', async (t) => {
  const base = stats()
  const server = new Server(t)
  const x = array('float32', 300)
  fillPattern(bytesOf(x), 21)
  const h = transfer(x)
  const fromWorker = await server.ok<TransferHandle>('make', { kind: 'buffer', length: 8, seed: 0 })
  t.is(fromWorker.arena, h.arena, 'same arena id in the worker')
  t.true(hasPattern((await server.ok<Described>('receive', { handle: h, key: 'x', top: true })).bytes, 21))
  const remoteBefore = stats().remoteFreesTotal
  await server.ok('free', { key: 'x', top: true })
  t.is(stats().remoteFreesTotal, remoteBefore, 'the worker’s free of what it received is a local free')
  t.is(t.throws(() => free(x), { instanceOf: AllocatorError })?.code, 'ERR_DOUBLE_FREE')
  const unreceived = transfer(array('uint8', 10))
  const during = stats()
  t.is(during.inFlightCount, base.inFlightCount + 2)
  t.is(during.inFlightBytes, base.inFlightBytes + 18)
  reclaim(unreceived)
  reclaim(fromWorker)
  await server.worker.terminate()
  const after = stats()
  t.like(after, { inFlightCount: base.inFlightCount, inFlightBytes: base.inFlightBytes, liveBytes: base.liveBytes })
})

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

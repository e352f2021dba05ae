// Zero-copy hand-off between threads: Arena.shared, transfer, receive, reclaim. Forged
// handles are in handoff-tokens.spec.ts, orphaned hand-offs and the default arena in
// handoff-orphans.spec.ts, a 10,000-tensor producer/consumer in handoff-pipeline.spec.ts.
// Each test uses its own shared arena (by name), so tests run concurrently without
// reading each other's counters.
import test from 'ava'
import { AllocatorError, Arena, defaultArena, receive } from 'tensor-arena'
import type { ArenaAllocation, TransferHandle } from 'tensor-arena'
import { CHUNK, arenaOffsetOf, collect, collectUntil, fillPattern, hasPattern, MiB, turn } from './helpers'
import { Server, ARENA_OPTIONS, sharedArena, codeOf, bytesOf, peek, KINDS, make, type Described } from './handoff-helpers'

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


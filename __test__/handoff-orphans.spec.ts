// Orphaned hand-offs (the sender exited before its handle reached anyone) and the default
// arena's hand-offs; the two default-arena tests are serial and the only ones of the
// hand-off suites that touch the default arena.
import test from 'ava'
import { AllocatorError, array, defaultArena, free, orphanedTransfers, reclaim, stats, transfer } from 'tensor-arena'
import type { TransferHandle } from 'tensor-arena'
import { fillPattern, hasPattern } from './helpers'
import { Server, sharedArena, codeOf, bytesOf, KINDS, type Described } from './handoff-helpers'

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


// Issue 11: views carry their marks in #private fields and their blocks are recycled through
// a lent tier the core counts. Frozen views, Proxies, objects inheriting from views and
// detached windows are handled; reading stats changes nothing.
import test from 'ava'
import { Arena, AllocatorError } from 'tensor-arena'
import { MiB, arrayBufferTransfer, collectUntil, usage } from './helpers'

const notOwned = { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' } as const
const doubleFree = { instanceOf: AllocatorError, code: 'ERR_DOUBLE_FREE' } as const

test.serial('issue 11: a frozen, sealed or non-extensible live view survives the next turns, is freed once and reclaimed by GC', async (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const frozen = Object.freeze(arena.view('uint8', 0))
  const sealed = Object.seal(arena.view('float32', 0))
  const closed = Object.preventExtensions(arena.view('int16', 0))
  let dropped: unknown = Object.freeze(arena.view('float64', 0))
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  for (const v of [frozen, sealed, closed]) {
    t.true(arena.owns(v))
    arena.free(v)
    t.false(arena.owns(v))
    t.throws(() => arena.free(v), doubleFree)
  }
  // GC reclaim keeps working for the thread after frozen views were registered.
  t.truthy(dropped)
  dropped = undefined
  const reclaimed = await collectUntil(() => arena.stats().liveAllocations === 0)
  t.true(reclaimed, 'the dropped frozen view was reclaimed')
  const later = arena.view('uint8', 8)
  let dropAgain: unknown = arena.view('uint8', 8)
  t.truthy(dropAgain)
  dropAgain = undefined
  arena.free(later)
  t.true(await collectUntil(() => arena.stats().liveAllocations === 0), 'reclaim still runs afterwards')
})

test('issue 11: a Proxy of a view or of an exclusive buffer is not owned: owns false, free/transfer ERR_NOT_OWNED, the target stays live', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const targets = [arena.view('float32', 4), arena.array('uint8', 4), arena.alloc(16)]
  for (const target of targets) {
    const proxy = new Proxy(target, {})
    t.false(arena.owns(proxy))
    t.throws(() => arena.free(proxy), notOwned)
    t.throws(() => arena.transfer(proxy), notOwned)
    t.true(arena.owns(target))
    arena.free(target)
  }
  t.deepEqual(usage(arena.stats()), { liveAllocations: 0, liveBytes: 0 })
})

test('issue 11: an object inheriting from a view or an exclusive buffer is not owned: owns false, free/transfer ERR_NOT_OWNED', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const targets = [arena.view('uint8', 4), arena.array('int32', 4), arena.alloc(8)]
  for (const target of targets) {
    const heir = Object.create(target) as ArrayBufferView
    t.false(arena.owns(heir))
    t.throws(() => arena.free(heir), notOwned)
    t.throws(() => arena.transfer(heir), notOwned)
    arena.free(target)
  }
})

test('issue 11: marks are not properties: nothing to read, copy or forge on a view', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const v = arena.view('uint8', 4)
  t.deepEqual(Object.getOwnPropertySymbols(v), [])
  t.deepEqual(Object.getOwnPropertyNames(v), ['0', '1', '2', '3'])
  t.is(v.constructor, Uint8Array)
  // A look-alike with the same window, offset and length is still not ours.
  const lookAlike = new Uint8Array(v.buffer, v.byteOffset, v.length)
  t.false(arena.owns(lookAlike))
  t.throws(() => arena.free(lookAlike), notOwned)
  arena.free(v)
})

// Only `ArrayBuffer.prototype.transfer` (Node ≥ 22) detaches a window: on Node 20 a
// structuredClone transfer list copies an external buffer instead, and on 22+ refuses it.
// .ci/run runs this suite on 22, 24 and 26.
const onNode22Up = arrayBufferTransfer === undefined ? test.skip : test
onNode22Up('issue 11: after view.buffer.transfer() detached the window, later views work and no block leaks', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.view('uint8', 64)
  const moved = (arrayBufferTransfer as (this: ArrayBuffer) => ArrayBuffer).call(first.buffer as ArrayBuffer)
  t.is(first.byteLength, 0, 'views over the old window are detached')
  const before = usage(arena.stats())
  const next = arena.view('uint8', 64)
  t.is(next.byteLength, 64)
  t.not(next.buffer, moved)
  next.fill(7)
  t.deepEqual(usage(arena.stats()), { liveAllocations: before.liveAllocations + 1, liveBytes: before.liveBytes + 64 })
  arena.free(next)
  // The detached view is still a live hand-out: freeing it returns its block.
  arena.free(first)
  t.deepEqual(usage(arena.stats()), { liveAllocations: 0, liveBytes: 0 })
})

test('issue 11: reading stats changes nothing: two snapshots in a row are equal, with recycled view blocks held', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const views = Array.from({ length: 40 }, (_, i) => arena.view('uint8', 64 + (i % 4) * 1000))
  for (const v of views.slice(0, 30)) arena.free(v)
  const cacheBefore = arena.threadCache().stats()
  const a = arena.stats()
  const b = arena.stats()
  t.deepEqual(a, b)
  t.deepEqual(arena.threadCache().stats(), cacheBefore)
  t.is(a.liveAllocations, 10)
  t.true(a.threadCacheBlocks >= 30, 'freed views kept for reuse count as cached blocks')
  for (const v of views.slice(30)) arena.free(v)
})

test('issue 11: view operations served from recycled blocks are counted exactly, with no flush', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const start = arena.stats()
  for (let i = 0; i < 1000; i++) arena.free(arena.view('float32', 16))
  const s = arena.stats()
  t.is(s.allocationsTotal - start.allocationsTotal, 1000)
  t.is(s.freesTotal - start.freesTotal, 1000)
  t.deepEqual(usage(s), { liveAllocations: 0, liveBytes: 0 })
  const held = arena.view('float32', 16)
  t.deepEqual(usage(arena.stats()), { liveAllocations: 1, liveBytes: 64 })
  arena.free(held)
  // A flush hands the kept blocks back: the totals do not move.
  arena.threadCache().flush()
  const flushed = arena.stats()
  t.is(flushed.allocationsTotal - start.allocationsTotal, 1001)
  t.is(flushed.freesTotal - start.freesTotal, 1001)
  t.is(arena.threadCache().stats().blocks, 0)
})

test('issue 11: a view freed twice after its recycled block went to a view of another dtype is ERR_DOUBLE_FREE; the new view stays intact', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const a = arena.view('float32', 16)
  arena.free(a)
  const b = arena.view('uint8', 64)
  b.fill(9)
  t.throws(() => arena.free(a), doubleFree)
  t.false(arena.owns(a))
  t.true(arena.owns(b))
  t.true(b.every((x) => x === 9))
  arena.free(b)
})

test('issue 11: { zero: true } zeroes a recycled block, for number and BigInt views', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const a = arena.view('uint8', 256)
  a.fill(0xff)
  arena.free(a)
  const b = arena.view('uint8', 256, { zero: true })
  t.true(b.every((x) => x === 0))
  arena.free(b)
  const c = arena.view('bigint64', 32)
  c.fill(-1n)
  arena.free(c)
  const d = arena.view('biguint64', 32, { zero: true })
  t.true(d.every((x) => x === 0n))
  arena.free(d)
})

test('issue 11: a recycled block is only reused for the same byte length, and bad options still throw on the fast path', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const a = arena.view('float32', 16)
  arena.free(a)
  const b = arena.view('uint8', 60) // same class, other length: another block
  t.is(b.byteLength, 60)
  t.false(b.buffer === a.buffer && b.byteOffset === a.byteOffset, 'the kept block is not reused for another length')
  const c = arena.view('float32', 16) // the same length: the kept block
  t.true(c.buffer === a.buffer && c.byteOffset === a.byteOffset)
  arena.free(c)
  t.throws(() => arena.view('float32', 16, 'zero' as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => arena.view('float32', 16, { zero: 1 as never }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => arena.view('float32', 1.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => arena.view('nope' as never, 16), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.deepEqual(usage(arena.stats()), { liveAllocations: 1, liveBytes: 60 })
  arena.free(b)
})

test.serial('issue 11: views still live when the pending-reclaim list fills mid-turn are reclaimed after they are dropped', async (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  // 4,000 views freed at once, then 500 kept across the list's early flush (at 4,096).
  for (let i = 0; i < 4000; i++) arena.free(arena.view('uint8', 32))
  let kept: (Uint8Array | undefined)[] = Array.from({ length: 500 }, () => arena.view('uint8', 32))
  t.is(arena.stats().liveAllocations, 500)
  kept.forEach((v) => v!.fill(1))
  kept = []
  t.true(await collectUntil(() => arena.stats().liveAllocations === 0), 'every dropped view was reclaimed')
})

// Ownership and double free: free of anything the arena did not hand out throws
// ERR_NOT_OWNED and detaches nothing; a second free throws ERR_DOUBLE_FREE and never frees
// another owner's block.
import { Console } from 'node:console'
import { Writable } from 'node:stream'
import test, { type ExecutionContext } from 'ava'
import { AllocatorError, Arena, alloc, defaultArena, free, view } from 'tensor-arena'
import { MiB, arrayBufferTransfer, fillPattern, hasPattern } from './helpers'

function notOwned(t: ExecutionContext, arena: Arena, value: unknown, label: string): void {
  t.throws(() => arena.free(value as ArrayBuffer), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' }, label)
}

function doubleFree(t: ExecutionContext, arena: Arena, value: ArrayBuffer | ArrayBufferView, label: string): void {
  t.throws(() => arena.free(value), { instanceOf: AllocatorError, code: 'ERR_DOUBLE_FREE' }, label)
}

test('free of a Buffer, a plain ArrayBuffer or a plain typed array is ERR_NOT_OWNED and detaches nothing', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const before = arena.stats()
  const nodeBuffer = Buffer.alloc(64, 7)
  const plain = new ArrayBuffer(64)
  new Uint8Array(plain).fill(9)
  const typed = new Float32Array([1, 2, 3])
  const candidates: [string, object][] = [
    ['Buffer', nodeBuffer],
    ["Buffer's ArrayBuffer", nodeBuffer.buffer],
    ['plain ArrayBuffer', plain],
    ['plain Float32Array', typed],
    ['DataView over a plain ArrayBuffer', new DataView(plain)],
    ['SharedArrayBuffer', new SharedArrayBuffer(16)],
  ]
  for (const [label, value] of candidates) {
    notOwned(t, arena, value, label)
    notOwned(t, defaultArena, value, `default arena: ${label}`)
    t.false(arena.owns(value), label)
  }
  t.is(nodeBuffer.length, 64)
  t.is(nodeBuffer[63], 7)
  t.is(plain.byteLength, 64)
  t.is(new Uint8Array(plain)[0], 9)
  t.deepEqual(Array.from(typed), [1, 2, 3])
  t.is(arena.stats().freesTotal, before.freesTotal)
  t.is(arena.stats().rejectedFreesTotal, before.rejectedFreesTotal + candidates.length)
})

test("free of the Buffer pool is ERR_NOT_OWNED, and Buffer.allocUnsafe and console still work", (t) => {
  const pool = Buffer.allocUnsafe(10).buffer
  const poolSize = pool.byteLength
  t.true(poolSize >= Buffer.poolSize)
  notOwned(t, defaultArena, pool, 'Buffer pool (default arena)')
  notOwned(t, new Arena({ maxBytes: 16 * MiB }), pool, 'Buffer pool (own arena)')
  t.is(pool.byteLength, poolSize, 'the pool is not detached')
  const slice = Buffer.allocUnsafe(10)
  t.is(slice.length, 10)
  slice.fill(3)
  t.is(slice[9], 3)
  t.is(Buffer.from('hello').toString(), 'hello')
  const chunks: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString())
      callback()
    },
  })
  new Console(sink).log('still %s', 'logging')
  t.is(chunks.join(''), 'still logging\n')
})

test('free of a subarray, a DataView or a new view over an arena buffer is ERR_NOT_OWNED and detaches nothing', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(256)
  const typed = arena.array('uint16', 128)
  fillPattern(new Uint8Array(buffer), 1)
  typed.fill(0xbeef)
  const candidates: [string, object][] = [
    ['Uint8Array over an exclusive buffer', new Uint8Array(buffer)],
    ['DataView over an exclusive buffer', new DataView(buffer)],
    ['subarray of an array', typed.subarray(0, 10)],
    ['whole subarray of an array', typed.subarray()],
    ['DataView over an array buffer', new DataView(typed.buffer, 8, 16)],
    ['Buffer over an exclusive buffer', Buffer.from(buffer)],
    ['structuredClone copy of an exclusive buffer', structuredClone(buffer)],
    ['slice copy of an exclusive buffer', buffer.slice(0)],
  ]
  for (const [label, value] of candidates) notOwned(t, arena, value, label)
  t.is(buffer.byteLength, 256)
  t.true(hasPattern(new Uint8Array(buffer), 1))
  t.is(typed.length, 128)
  t.is(typed[127], 0xbeef)
  t.true(arena.owns(buffer))
  t.true(arena.owns(typed))
  t.is(arena.stats().liveAllocations, 2)
  arena.free(buffer)
  arena.free(typed)
})

for (const [what, length] of [
  ['a view in a chunk window', 64],
  ['a view over its own block window (above 4 MiB)', (5 * MiB) / 4],
] as const) {
  test(`free of a subarray, a copy over the window or the window itself of ${what} is ERR_NOT_OWNED`, (t) => {
    const arena = new Arena({ maxBytes: 32 * MiB })
    const v = arena.view('float32', length)
    v.fill(2.5)
    const window = v.buffer
    const windowLength = window.byteLength
    const candidates: [string, object][] = [
      ['subarray of a view', v.subarray(1, 5)],
      ['whole subarray of a view', v.subarray()],
      ['same range, new typed array', new Float32Array(window, v.byteOffset, v.length)],
      ['the whole window as a typed array', new Uint8Array(window)],
      ['DataView over the view', new DataView(window, v.byteOffset, v.byteLength)],
      ['Buffer over the view', Buffer.from(window, v.byteOffset, v.byteLength)],
      ['the window ArrayBuffer', window],
      ['structuredClone copy of the view', structuredClone(v)],
      ['slice copy of the view', v.slice()],
      ['Float32Array.from copy', Float32Array.from(v.subarray(0, 8))],
    ]
    for (const [label, value] of candidates) notOwned(t, arena, value, label)
    for (const [label, value] of candidates) t.false(arena.owns(value), label)
    t.is(window.byteLength, windowLength, 'window not detached')
    t.is(v.length, length)
    t.is(v[length - 1], 2.5)
    t.true(arena.owns(v))
    t.is(arena.stats().rejectedFreesTotal, candidates.length, 'every refusal counts as a rejected free')
    arena.free(v)
  })
}

test('a view of one arena in a window of the same chunk offset of another arena is ERR_NOT_OWNED there', (t) => {
  const a = new Arena({ maxBytes: 16 * MiB })
  const b = new Arena({ maxBytes: 16 * MiB })
  // Both fresh: the first view of each lands at the same arena offset of chunk 0.
  const va = a.view('uint8', 100)
  const vb = b.view('uint8', 100)
  t.is(va.byteOffset, vb.byteOffset)
  t.not(va.buffer, vb.buffer)
  va.fill(1)
  vb.fill(2)
  t.throws(() => a.free(vb), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' })
  t.throws(() => b.free(va), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' })
  t.false(a.owns(vb))
  t.false(b.owns(va))
  t.true(va.every((x) => x === 1) && vb.every((x) => x === 2))
  a.free(va)
  b.free(vb)
})

test("free of another arena's buffer, array or view is ERR_NOT_OWNED and it stays live there", (t) => {
  const a = new Arena({ maxBytes: 16 * MiB })
  const b = new Arena({ maxBytes: 16 * MiB })
  const fromB = [b.alloc(100), b.array('int32', 10), b.view('uint8', 100)] as const
  const fromDefault = [alloc(100), view('uint8', 100)] as const
  fromB[1].fill(-5)
  fromB[2].fill(6)
  for (const value of [...fromB, ...fromDefault]) notOwned(t, a, value, 'foreign arena')
  for (const value of fromB) notOwned(t, defaultArena, value, 'own arena buffer freed by the default arena')
  for (const value of fromB) t.true(b.owns(value))
  t.false(a.owns(fromB[0]))
  t.is(fromB[0].byteLength, 100)
  t.is(fromB[1][9], -5)
  t.is(fromB[2][99], 6)
  t.is(a.stats().liveAllocations, 0)
  t.is(b.stats().liveAllocations, 3)
  for (const value of fromB) b.free(value)
  for (const value of fromDefault) free(value)
  t.is(b.stats().liveAllocations, 0)
})

test('double free of an exclusive buffer, an array and a view is ERR_DOUBLE_FREE and frees once', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const items = [arena.alloc(1000), arena.array('float64', 10), arena.view('int16', 300), arena.alloc(0), arena.view('uint8', 0)]
  for (const item of items) arena.free(item)
  const after = arena.stats()
  t.is(after.liveAllocations, 0)
  for (const item of items) doubleFree(t, arena, item, item.constructor.name)
  t.is(arena.stats().freesTotal, after.freesTotal)
  t.is(arena.stats().liveAllocations, 0)
})

test('an array and its buffer are one hand-out: after freeing one, freeing the other is ERR_DOUBLE_FREE', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.array('uint32', 16)
  arena.free(first.buffer)
  t.is(first.length, 0)
  doubleFree(t, arena, first, 'array after its buffer')
  const second = arena.array('uint32', 16)
  arena.free(second)
  t.is(second.buffer.byteLength, 0)
  doubleFree(t, arena, second.buffer, 'buffer after its array')
  t.is(arena.stats().liveAllocations, 0)
})

test('a second free of an exclusive buffer whose block was reissued leaves the new owner intact', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.alloc(4000)
  fillPattern(new Uint8Array(first), 1)
  arena.free(first)
  const second = arena.alloc(4000)
  t.true(hasPattern(new Uint8Array(second), 1), 'the block was reused')
  fillPattern(new Uint8Array(second), 2)
  doubleFree(t, arena, first, 'stale exclusive buffer')
  t.true(arena.owns(second))
  t.is(second.byteLength, 4000)
  t.true(hasPattern(new Uint8Array(second), 2))
  // the block is still the second owner's: a new hand-out does not get it
  const third = arena.alloc(4000)
  fillPattern(new Uint8Array(third), 3)
  t.true(hasPattern(new Uint8Array(second), 2))
  t.is(arena.stats().liveAllocations, 2)
  arena.free(second)
  arena.free(third)
})

test('a view freed twice after its block was reissued to another view is ERR_DOUBLE_FREE; the other view stays live and intact', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.view('uint8', 512)
  arena.free(first)
  const second = arena.view('uint8', 512)
  t.is(second.byteOffset, first.byteOffset, 'the block was reissued')
  fillPattern(second, 4)
  doubleFree(t, arena, first, 'stale view')
  t.true(arena.owns(second))
  t.false(arena.owns(first))
  t.is(arena.stats().liveAllocations, 1)
  const third = arena.view('uint8', 512)
  t.not(third.byteOffset, second.byteOffset, 'the reissued block was not freed again')
  fillPattern(third, 5)
  t.true(hasPattern(second, 4))
  arena.free(second)
  arena.free(third)
  doubleFree(t, arena, second, 'second view')
  t.is(arena.stats().liveAllocations, 0)
})

test('freeing a detached buffer throws ERR_DOUBLE_FREE or ERR_NOT_OWNED', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const freed = arena.alloc(64)
  arena.free(freed)
  t.is(freed.byteLength, 0)
  doubleFree(t, arena, freed, 'detached by free')

  const plain = new ArrayBuffer(64)
  structuredClone(plain, { transfer: [plain] })
  t.is(plain.byteLength, 0)
  notOwned(t, arena, plain, 'plain ArrayBuffer detached by transfer')
  t.is(arena.stats().liveAllocations, 0)
})

test('an exclusive buffer detached by ArrayBuffer.prototype.transfer cannot be freed while the new buffer still reaches its memory', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(2048)
  fillPattern(new Uint8Array(buffer), 7)
  if (arrayBufferTransfer === undefined) {
    // Node 20 has no transfer(); structuredClone with a transfer list copies there.
    t.log('ArrayBuffer.prototype.transfer is not available on this Node version')
    arena.free(buffer)
    t.is(buffer.byteLength, 0)
    return
  }
  const moved = arrayBufferTransfer.call(buffer)
  t.is(buffer.byteLength, 0, 'the original is detached')
  t.is(moved.byteLength, 2048)
  const error = t.throws(() => arena.free(buffer), { instanceOf: AllocatorError }) as AllocatorError | undefined
  t.true(
    error?.code === 'ERR_DOUBLE_FREE' || error?.code === 'ERR_NOT_OWNED',
    `free of the detached original must throw ERR_DOUBLE_FREE or ERR_NOT_OWNED, got ${error?.code ?? 'no error'}`,
  )
  // Memory safety: the block must not be handed out again while `moved` can reach it.
  const next = arena.alloc(2048)
  fillPattern(new Uint8Array(next), 8)
  t.true(hasPattern(new Uint8Array(moved), 7), 'the transferred buffer must not alias a reissued block')
  arena.free(next)
})

test('rejected frees change neither live counts nor successful-free counts', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const live = [arena.alloc(10), arena.view('uint8', 10)]
  const freed = arena.alloc(10)
  arena.free(freed)
  const before = arena.stats()
  for (const value of [new ArrayBuffer(10), Buffer.alloc(10), new Uint8Array(live[0] as ArrayBuffer), freed]) {
    t.throws(() => arena.free(value as ArrayBuffer), { instanceOf: AllocatorError })
  }
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.liveBytes, before.liveBytes)
  t.is(after.freesTotal, before.freesTotal)
  for (const value of live) arena.free(value)
})

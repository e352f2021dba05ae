// The view fast path: one window ArrayBuffer per thread and arena, created once; views
// over it are disjoint, aligned, reused at once after free, and alias real arena memory.
import test from 'ava'
import { Arena, DTYPES, defaultArena, free, view, type DType } from 'tensor-arena'
import { MiB, fillPattern, hasPattern } from './helpers'

test('all views of one arena in one thread share one window over the whole arena, created once', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const first = arena.view('uint8', 10)
  const window = first.buffer
  t.is(window.byteLength, arena.arenaSize)
  for (let i = 0; i < 1000; i++) {
    const v = arena.view('float32', 1 + (i % 50))
    t.is(v.buffer, window)
    arena.free(v)
  }
  arena.free(first)
  const later = arena.view('float64', 3)
  t.is(later.buffer, window, 'the window is kept after every view is freed')
  arena.free(later)
})

test('each arena has its own window; the default arena too', (t) => {
  const a = new Arena({ arenaSize: 16 * MiB })
  const b = new Arena({ arenaSize: 32 * MiB })
  const va = a.view('uint8', 8)
  const vb = b.view('uint8', 8)
  const vd = view('uint8', 8)
  t.not(va.buffer, vb.buffer)
  t.not(va.buffer, vd.buffer)
  t.is(vb.buffer.byteLength, 32 * MiB)
  t.is(vd.buffer.byteLength, defaultArena.arenaSize)
  t.is(view('int32', 2).buffer, vd.buffer)
  a.free(va)
  b.free(vb)
  free(vd)
})

test('view gives a typed array of every dtype, aligned, inside the window', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB, alignment: 256 })
  for (const dtype of Object.keys(DTYPES) as DType[]) {
    const Ctor = DTYPES[dtype]
    const v = arena.view(dtype, 17)
    t.true(v instanceof Ctor, dtype)
    t.is(v.length, 17)
    t.is(v.byteLength, 17 * Ctor.BYTES_PER_ELEMENT)
    t.is(v.byteOffset % 256, 0)
    t.true(v.byteOffset + v.byteLength <= arena.arenaSize)
    t.true(arena.owns(v))
    arena.free(v)
    t.false(arena.owns(v))
  }
})

test('live views never overlap', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const views = Array.from({ length: 300 }, (_, i) => arena.view('uint8', 1 + ((i * 131) % 9000)))
  const ranges = views.map((v) => [v.byteOffset, v.byteOffset + v.byteLength] as const).sort((x, y) => x[0] - y[0])
  for (let i = 1; i < ranges.length; i++) t.true(ranges[i - 1][1] <= ranges[i][0], `ranges ${i - 1} and ${i}`)
  views.forEach((v, i) => fillPattern(v, i))
  views.forEach((v, i) => t.true(hasPattern(v, i), `view ${i}`))
  for (const v of views) arena.free(v)
  t.is(arena.stats().liveAllocations, 0)
})

test('bytes written through a view are read back through a second path over the same memory', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const floats = arena.view('float32', 64)
  for (let i = 0; i < floats.length; i++) floats[i] = i * 0.5
  const bytes = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength)
  t.is(bytes.length, 256)
  for (let i = 0; i < floats.length; i++) t.is(bytes.readFloatLE(i * 4), i * 0.5)
  // and the other way round
  bytes.writeFloatLE(-7.25, 8)
  t.is(floats[2], -7.25)
  const dv = new DataView(floats.buffer, floats.byteOffset, floats.byteLength)
  dv.setFloat32(12, 3.5, true)
  t.is(floats[3], 3.5)
  arena.free(floats)
})

test('a view and an exclusive buffer over the same block see the same bytes (one arena, one memory)', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const first = arena.view('uint8', 700)
  const offset = first.byteOffset
  arena.free(first)
  // A freed view's block is kept for the next view of its size in this thread; flushing
  // hands it back to the allocator, where the next allocation of its class reuses it.
  arena.threadCache().flush()
  const buffer = arena.alloc(700)
  fillPattern(new Uint8Array(buffer), 9)
  // the freed view aliases memory handed out again (documented, like Buffer.allocUnsafe slices)
  t.true(hasPattern(new Uint8Array(first.buffer, offset, 700), 9))
  arena.free(buffer)
})

test('a freed view block is reused at once by the next view of that size', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  for (const length of [1, 100, 5000, 300_000, 3 * MiB]) {
    const first = arena.view('uint8', length)
    const carved = arena.stats().arenaCarved
    arena.free(first)
    const second = arena.view('uint8', length)
    t.is(second.byteOffset, first.byteOffset, `length ${length}`)
    t.is(arena.stats().arenaCarved, carved)
    arena.free(second)
  }
})

test('{ zero: true } zero-fills a reused view', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const first = arena.view('uint32', 500)
  first.fill(0xffffffff)
  arena.free(first)
  const second = arena.view('uint32', 500, { zero: true })
  t.is(second.byteOffset, first.byteOffset)
  t.true(second.every((x) => x === 0))
  arena.free(second)
})

test('a view above 16 MiB uses the large path and frees cleanly', (t) => {
  const arena = new Arena({ arenaSize: 64 * MiB })
  const big = arena.view('float64', (20 * MiB) / 8)
  t.is(big.byteLength, 20 * MiB)
  t.is(arena.stats().largeLiveAllocations, 1)
  t.is(arena.stats().largeLiveBytes, 20 * MiB)
  big[0] = 1
  big[big.length - 1] = 2
  t.is(Buffer.from(big.buffer, big.byteOffset + big.byteLength - 8, 8).readDoubleLE(0), 2)
  arena.free(big)
  t.is(arena.stats().largeLiveAllocations, 0)
  t.is(arena.stats().liveBytes, 0)
})

test('views count in live stats like any allocation', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const views = [arena.view('uint8', 100), arena.view('float64', 100), arena.view('int16', 0)]
  const stats = arena.stats()
  t.is(stats.liveAllocations, 3)
  t.true(stats.liveBytes >= 900)
  for (const v of views) arena.free(v)
  t.is(arena.stats().liveAllocations, 0)
  t.is(arena.stats().liveBytes, 0)
})

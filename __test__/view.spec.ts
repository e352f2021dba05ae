// The view fast path: views are typed arrays over *windows*, external ArrayBuffers over the
// 4 MiB chunk holding the view (or, for a block that crosses a chunk boundary, over the
// block itself), created once per thread and reused; views are disjoint, aligned, reused
// at once after free, and alias real arena memory.
import test from 'ava'
import { Arena, DTYPES, defaultArena, free, view, type DType } from 'tensor-arena'
import { CHUNK, MiB, arenaOffsetOf, collect, fillPattern, hasPattern, windowBaseOf, windowBound } from './helpers'

test('views of one chunk share one 4 MiB window, created once and kept after every view is freed', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.view('uint8', 10)
  const window = first.buffer
  t.is(window.byteLength, CHUNK, 'a chunk window, not a window over the whole arena')
  t.is(windowBaseOf(window), 0, 'a fresh arena carves from its start: chunk 0')
  // A fresh arena carves small slabs from its start, so all of these land in chunk 0.
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

test('views in different chunks have different windows; each window starts on a chunk boundary', (t) => {
  const arena = new Arena({ maxBytes: 32 * MiB })
  // 1 MiB slabs never cross a chunk boundary: four fill a chunk, sixteen fill four.
  const views = Array.from({ length: 16 }, () => arena.view('uint8', MiB))
  const buffers = new Set(views.map((v) => v.buffer))
  t.is(buffers.size, 4, 'one window per chunk')
  const bases = views.map((v) => windowBaseOf(v.buffer))
  for (const [i, v] of views.entries()) {
    t.is(v.buffer.byteLength, CHUNK)
    t.is(typeof bases[i], 'number')
    t.is(bases[i]! % CHUNK, 0, `window ${i} starts at a chunk boundary`)
    t.true(v.byteOffset + v.byteLength <= CHUNK)
  }
  t.is(new Set(bases).size, 4)
  // Small views of one slab share the window of the chunk that holds it.
  const small = arena.view('uint8', 64)
  const next = arena.view('float32', 16)
  t.is(small.buffer.byteLength, CHUNK)
  t.is(windowBaseOf(small.buffer)! % CHUNK, 0)
  t.is(next.buffer, small.buffer, 'a small view shares the window of its chunk')
  for (const v of [...views, small, next]) arena.free(v)
  t.is(arena.stats().liveAllocations, 0)
})

test('a view whose block crosses a chunk boundary gets a window over its own block, at byteOffset 0', (t) => {
  const arena = new Arena({ maxBytes: 128 * MiB })
  for (const bytes of [4 * MiB + 1, 5 * MiB, 9 * MiB + 3, 16 * MiB, 17 * MiB, 40 * MiB]) {
    const v = arena.view('uint8', bytes)
    t.is(v.byteLength, bytes)
    t.is(v.byteOffset, 0, `${bytes}: the window starts at the block`)
    t.true(v.buffer.byteLength >= bytes, `${bytes}: window ${v.buffer.byteLength}`)
    t.true(v.buffer.byteLength <= windowBound(bytes), `${bytes}: window ${v.buffer.byteLength}`)
    v[0] = 1
    v[bytes - 1] = 2
    t.is(v[bytes - 1], 2)
    arena.free(v)
  }
  t.is(arena.stats().liveBytes, 0)
})

test("a view's buffer is never more than max(4 MiB, 2 × its byteLength)", (t) => {
  const arena = new Arena({ maxBytes: 256 * MiB })
  const sizes = [0, 1, 64, 1000, 65_536, MiB, 3 * MiB, 4 * MiB, 4 * MiB + 64, 6 * MiB, 12 * MiB, 16 * MiB, 16 * MiB + 1, 33 * MiB]
  for (const bytes of sizes) {
    const v = arena.view('uint8', bytes)
    t.true(v.buffer.byteLength <= windowBound(bytes), `${bytes} bytes: buffer ${v.buffer.byteLength}`)
    t.true(v.byteOffset + v.byteLength <= v.buffer.byteLength)
    arena.free(v)
  }
})

test('each arena has its own windows; the default arena too', (t) => {
  const a = new Arena({ maxBytes: 16 * MiB })
  const b = new Arena({ maxBytes: 32 * MiB })
  const va = a.view('uint8', 8)
  const vb = b.view('uint8', 8)
  const vd = view('uint8', 8)
  t.not(va.buffer, vb.buffer)
  t.not(va.buffer, vd.buffer)
  t.not(vb.buffer, vd.buffer)
  t.is(vb.buffer.byteLength, CHUNK)
  t.is(vd.buffer.byteLength, CHUNK)
  const vd2 = view('int32', 2)
  t.is(vd2.buffer, vd.buffer, 'same chunk of the default arena, same window')
  t.is(defaultArena.maxBytes, undefined)
  a.free(va)
  b.free(vb)
  free(vd)
  free(vd2)
})

test('view gives a typed array of every dtype, aligned, inside its window', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB, alignment: 256 })
  for (const dtype of Object.keys(DTYPES) as DType[]) {
    const Ctor = DTYPES[dtype]
    const v = arena.view(dtype, 17)
    t.true(v instanceof Ctor, dtype)
    t.is(v.length, 17)
    t.is(v.byteLength, 17 * Ctor.BYTES_PER_ELEMENT)
    // Windows start on chunk boundaries, so the offset inside one keeps the alignment.
    t.is(v.byteOffset % 256, 0)
    t.is(arenaOffsetOf(v)! % 256, 0)
    t.is(v.buffer.byteLength, CHUNK)
    t.true(v.byteOffset + v.byteLength <= CHUNK)
    t.true(arena.owns(v))
    arena.free(v)
    t.false(arena.owns(v))
  }
})

test('live views never overlap (arena ranges and contents)', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const views = Array.from({ length: 300 }, (_, i) => arena.view('uint8', 1 + ((i * 131) % 9000)))
  const ranges = views
    .map((v) => [arenaOffsetOf(v)!, arenaOffsetOf(v)! + v.byteLength] as const)
    .sort((x, y) => x[0] - y[0])
  for (let i = 1; i < ranges.length; i++) t.true(ranges[i - 1][1] <= ranges[i][0], `ranges ${i - 1} and ${i}`)
  views.forEach((v, i) => fillPattern(v, i))
  views.forEach((v, i) => t.true(hasPattern(v, i), `view ${i}`))
  for (const v of views) arena.free(v)
  t.is(arena.stats().liveAllocations, 0)
})

test('bytes written through a view are read back through a second path over the same memory', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
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
  const arena = new Arena({ maxBytes: 16 * MiB })
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

test('a freed view block is reused at once by the next view of that size, through the same window', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  for (const length of [1, 100, 5000, 300_000, 3 * MiB, 5 * MiB]) {
    const first = arena.view('uint8', length)
    const carved = arena.stats().carvedBytes
    arena.free(first)
    const second = arena.view('uint8', length)
    t.is(arenaOffsetOf(second), arenaOffsetOf(first), `length ${length}`)
    t.is(second.byteOffset, first.byteOffset, `length ${length}`)
    t.is(second.buffer, first.buffer, `length ${length}: the window is reused`)
    t.is(arena.stats().carvedBytes, carved)
    arena.free(second)
  }
})

test('{ zero: true } zero-fills a reused view', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.view('uint32', 500)
  first.fill(0xffffffff)
  arena.free(first)
  const second = arena.view('uint32', 500, { zero: true })
  t.is(second.byteOffset, first.byteOffset)
  t.true(second.every((x) => x === 0))
  arena.free(second)
})

test('a view above 16 MiB uses the large path, gets a window over its block, and frees cleanly', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const big = arena.view('float64', (20 * MiB) / 8)
  t.is(big.byteLength, 20 * MiB)
  t.is(big.byteOffset, 0)
  t.true(big.buffer.byteLength >= 20 * MiB && big.buffer.byteLength <= windowBound(20 * MiB), String(big.buffer.byteLength))
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
  const arena = new Arena({ maxBytes: 16 * MiB })
  const views = [arena.view('uint8', 100), arena.view('float64', 100), arena.view('int16', 0)]
  const stats = arena.stats()
  t.is(stats.liveAllocations, 3)
  t.true(stats.liveBytes >= 900)
  for (const v of views) arena.free(v)
  t.is(arena.stats().liveAllocations, 0)
  t.is(arena.stats().liveBytes, 0)
})

test.serial('windows are never detached by the arena: not by free, flush, trim, reuse or GC', async (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const small = arena.view('uint8', 1000)
  const large = arena.view('uint8', 6 * MiB)
  const huge = arena.view('uint8', 20 * MiB)
  const windows = [small.buffer, large.buffer, huge.buffer]
  const lengths = windows.map((w) => w.byteLength)
  for (const v of [small, large, huge]) arena.free(v)
  arena.threadCache().flush()
  arena.trim()
  // Other allocations over the same memory (exclusive buffers and other classes).
  const reuse = [arena.alloc(20 * MiB), arena.view('uint8', 5 * MiB), arena.alloc(3 * MiB)]
  await collect(4)
  t.deepEqual(windows.map((w) => w.byteLength), lengths, 'every window keeps its length')
  for (const w of windows) {
    const bytes = new Uint8Array(w)
    // biome-ignore lint/correctness/noSelfAssign: reads and writes the byte on purpose
    bytes[0] = bytes[0] // reading and writing still work
    t.is(bytes.length, w.byteLength)
  }
  for (const x of reuse) arena.free(x)
  t.is(arena.stats().liveAllocations, 0)
})

// Exclusive buffers (alloc) and arrays (array): exact sizes, detach on free, immediate
// reuse of the block, zero-fill, every dtype.
import test from 'ava'
import { Arena, DTYPES, SIZE_CLASS_BYTES, alloc, array, defaultArena, free, type DType } from 'tensor-arena'
import { MiB, fillPattern, hasPattern } from './helpers'

test('alloc returns an ArrayBuffer of exactly the requested length, owned by the arena', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const sizes = [1, 7, 63, 64, 65, 1000, 4096, 4097, 65_536, 1 * MiB + 1, 16 * MiB, 16 * MiB + 1, 20 * MiB]
  const buffers = sizes.map((size) => arena.alloc(size))
  for (const [i, buffer] of buffers.entries()) {
    t.true(buffer instanceof ArrayBuffer)
    t.is(buffer.byteLength, sizes[i])
    t.true(arena.owns(buffer))
    const bytes = new Uint8Array(buffer)
    bytes[0] = 0x11
    bytes[bytes.length - 1] = 0x22
  }
  const stats = arena.stats()
  t.is(stats.liveAllocations, sizes.length)
  t.is(stats.liveBytes, sizes.reduce((a, b) => a + b, 0))
  t.is(stats.largeLiveAllocations, 2, 'the two requests above 16 MiB use the large path')
  for (const [i, buffer] of buffers.entries()) {
    const bytes = new Uint8Array(buffer)
    if (bytes.length > 1) t.is(bytes[0], 0x11, `size ${sizes[i]}`)
    t.is(bytes[bytes.length - 1], 0x22, `size ${sizes[i]}`)
  }
  for (const buffer of buffers) arena.free(buffer)
  t.is(arena.stats().liveBytes, 0)
})

test('buffers handed out at the same time never overlap', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffers = Array.from({ length: 200 }, (_, i) => arena.alloc(64 + ((i * 97) % 3000)))
  buffers.forEach((buffer, i) => fillPattern(new Uint8Array(buffer), i))
  buffers.forEach((buffer, i) => t.true(hasPattern(new Uint8Array(buffer), i), `buffer ${i}`))
  for (const buffer of buffers) arena.free(buffer)
})

test('free detaches the buffer: byteLength 0, every view over it empty, nothing readable', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(1024)
  const bytes = new Uint8Array(buffer)
  const floats = new Float64Array(buffer, 64, 8)
  bytes.fill(0xab)
  arena.free(buffer)
  t.is(buffer.byteLength, 0)
  t.is(bytes.length, 0)
  t.is(floats.length, 0)
  t.is(bytes[0] as number | undefined, undefined)
  bytes[0] = 1 // ignored on a detached buffer
  t.is(bytes[0] as number | undefined, undefined)
  t.throws(() => new Uint8Array(buffer, 0, 1), { instanceOf: TypeError })
  t.false(arena.owns(buffer))
})

test('free detaches an array: length 0, its buffer empty', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const floats = arena.array('float32', 256)
  floats.fill(1.25)
  const alias = new Float32Array(floats.buffer)
  arena.free(floats)
  t.is(floats.length, 0)
  t.is(floats.byteLength, 0)
  t.is(floats.buffer.byteLength, 0)
  t.is(alias.length, 0)
  t.false(arena.owns(floats))
})

test('the freed block is reusable at once: the next request of that size gets it back', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  for (const size of [100, 3000, 70_000, 2 * MiB]) {
    const first = arena.alloc(size)
    fillPattern(new Uint8Array(first), size)
    const carved = arena.stats().carvedBytes
    arena.free(first)
    const second = arena.alloc(size)
    t.true(hasPattern(new Uint8Array(second), size), `size ${size}: same block, contents not cleared`)
    t.is(arena.stats().carvedBytes, carved, `size ${size}: nothing new carved`)
    arena.free(second)
  }
})

test('{ zero: true } zero-fills reused memory; without it, reused memory is not cleared', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const first = arena.alloc(5000)
  new Uint8Array(first).fill(0xff)
  arena.free(first)
  const zeroed = arena.alloc(5000, { zero: true })
  t.true(new Uint8Array(zeroed).every((b) => b === 0))
  new Uint8Array(zeroed).fill(0xee)
  arena.free(zeroed)
  const dirty = arena.alloc(5000, { zero: false })
  t.is(new Uint8Array(dirty)[4999], 0xee)
  arena.free(dirty)
  const zeroedArray = arena.array('float64', 625, { zero: true })
  t.true(zeroedArray.every((x) => x === 0))
  arena.free(zeroedArray)
})

test('array gives a typed array of every dtype over its own buffer at byteOffset 0', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  for (const dtype of Object.keys(DTYPES) as DType[]) {
    const Ctor = DTYPES[dtype]
    const typed = arena.array(dtype, 33)
    t.true(typed instanceof Ctor, dtype)
    t.is(typed.length, 33)
    t.is(typed.byteOffset, 0)
    t.is(typed.byteLength, 33 * Ctor.BYTES_PER_ELEMENT)
    t.is(typed.buffer.byteLength, 33 * Ctor.BYTES_PER_ELEMENT)
    t.true(arena.owns(typed))
    t.true(arena.owns(typed.buffer))
    if (typed instanceof BigInt64Array || typed instanceof BigUint64Array) {
      typed[32] = 123n
      t.is(typed[32], 123n)
    } else {
      ;(typed as Uint8Array)[32] = 100
      t.is((typed as Uint8Array)[32], 100)
    }
    arena.free(typed)
  }
  t.is(arena.stats().liveAllocations, 0)
})

test('the default-arena functions are the default arena', (t) => {
  const before = defaultArena.stats()
  const buffer = alloc(300)
  const typed = array('int8', 40)
  t.true(defaultArena.owns(buffer))
  t.true(defaultArena.owns(typed))
  const during = defaultArena.stats()
  t.is(during.liveAllocations, before.liveAllocations + 2)
  t.is(during.liveBytes, before.liveBytes + 340)
  free(buffer)
  free(typed)
  t.is(buffer.byteLength, 0)
  t.is(defaultArena.stats().liveBytes, before.liveBytes)
  t.is(defaultArena.maxBytes, undefined, 'the default arena has no cap')
  t.is(defaultArena.alignment, 64)
})

test('owns is true only for live hand-outs of this arena', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const other = new Arena({ maxBytes: 16 * MiB })
  const buffer = arena.alloc(10)
  const typed = arena.array('uint8', 10)
  for (const value of [undefined, null, 0, 'x', {}, new ArrayBuffer(10), Buffer.alloc(10), other.alloc(10)]) {
    t.false(arena.owns(value))
  }
  t.true(arena.owns(buffer))
  t.true(arena.owns(typed))
  t.false(other.owns(buffer))
  arena.free(buffer)
  arena.free(typed)
  t.false(arena.owns(buffer))
  t.false(arena.owns(typed))
})

test('every size-class boundary allocates and frees cleanly', (t) => {
  // Room for one slab of every class: each class keeps freed blocks in this thread's cache.
  const arena = new Arena({ maxBytes: 256 * MiB })
  for (const payload of SIZE_CLASS_BYTES) {
    for (const size of [payload - 1, payload, payload + 1]) {
      const buffer = arena.alloc(size)
      t.is(buffer.byteLength, size)
      const bytes = new Uint8Array(buffer)
      bytes[size - 1] = 1
      arena.free(buffer)
    }
  }
  const stats = arena.stats()
  t.is(stats.liveAllocations, 0)
  t.is(stats.liveBytes, 0)
  t.is(stats.allocationsTotal, stats.freesTotal)
})

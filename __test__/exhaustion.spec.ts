// Exhaustion at the cap (`maxBytes`): ERR_OUT_OF_MEMORY with numeric `requested`,
// `available` and `maxBytes`; a failed request changes nothing, and after frees allocation
// works again.
import test, { type ExecutionContext } from 'ava'
import { AllocatorError, Arena } from 'tensor-arena'
import { MiB } from './helpers'

function expectOutOfMemory(t: ExecutionContext, arena: Arena, make: () => unknown, requested: number): AllocatorError | undefined {
  const error = t.throws(make, { instanceOf: AllocatorError, code: 'ERR_OUT_OF_MEMORY' }) as AllocatorError | undefined
  if (error === undefined) return undefined
  t.is(error.name, 'AllocatorError')
  t.is(error.requested, requested)
  t.is(typeof error.available, 'number')
  t.true(Number.isSafeInteger(error.available) && error.available! >= 0 && error.available! <= arena.maxBytes!, String(error.available))
  t.is(error.maxBytes, arena.maxBytes)
  t.true(error.message.includes(String(requested)), error.message)
  t.true(error.message.includes(String(error.available)), error.message)
  t.true(error.message.includes('maxBytes'), error.message)
  return error
}

function fill(make: () => ArrayBuffer | ArrayBufferView): (ArrayBuffer | ArrayBufferView)[] {
  const held: (ArrayBuffer | ArrayBufferView)[] = []
  for (;;) {
    try {
      held.push(make())
    } catch (error) {
      if (error instanceof AllocatorError && error.code === 'ERR_OUT_OF_MEMORY') return held
      throw error
    }
    if (held.length > 10_000) throw new Error('the arena never ran out')
  }
}

test('exclusive buffers exhaust a 16 MiB cap with ERR_OUT_OF_MEMORY, requested, available and maxBytes', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const held = fill(() => arena.alloc(MiB))
  // No in-band headers: sixteen 1 MiB blocks fill a 16 MiB cap exactly.
  t.is(held.length, 16, `held ${held.length} × 1 MiB`)
  const error = expectOutOfMemory(t, arena, () => arena.alloc(MiB), MiB)
  t.true(error!.available! < MiB, 'less than one more block is available')
  const stats = arena.stats()
  t.is(stats.liveAllocations, held.length)
  t.is(stats.liveBytes, held.length * MiB)
  for (const buffer of held) arena.free(buffer)
  t.is(arena.stats().liveBytes, 0)
})

test('views and arrays report exhaustion the same way, with requested in bytes', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const held = fill(() => arena.view('float32', MiB / 4))
  expectOutOfMemory(t, arena, () => arena.view('float32', MiB / 4), MiB)
  expectOutOfMemory(t, arena, () => arena.array('float64', MiB / 8), MiB)
  expectOutOfMemory(t, arena, () => arena.view('uint8', 3 * MiB), 3 * MiB)
  for (const v of held) arena.free(v)
})

test('a request as large as the whole cap is served (no in-band headers), not a RangeError; the next one is ERR_OUT_OF_MEMORY', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const whole = arena.alloc(16 * MiB)
  t.is(whole.byteLength, 16 * MiB)
  new Uint8Array(whole)[16 * MiB - 1] = 1
  expectOutOfMemory(t, arena, () => arena.view('uint8', 16 * MiB), 16 * MiB)
  expectOutOfMemory(t, arena, () => arena.alloc(100), 100)
  t.is(arena.stats().liveAllocations, 1)
  arena.free(whole)
  const view = arena.view('uint8', 16 * MiB)
  t.is(view.byteLength, 16 * MiB)
  expectOutOfMemory(t, arena, () => arena.alloc(16 * MiB), 16 * MiB)
  arena.free(view)
  t.is(arena.stats().liveAllocations, 0)
  const small = arena.alloc(100)
  t.is(small.byteLength, 100)
  arena.free(small)
})

test('a failed request allocates nothing and changes no live counter', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const held = fill(() => arena.alloc(2 * MiB))
  const before = arena.stats()
  for (let i = 0; i < 20; i++) t.throws(() => arena.alloc(4 * MiB), { instanceOf: AllocatorError, code: 'ERR_OUT_OF_MEMORY' })
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.liveBytes, before.liveBytes)
  t.is(after.allocationsTotal, before.allocationsTotal)
  t.is(after.carvedBytes, before.carvedBytes)
  for (const buffer of held) arena.free(buffer)
})

test('after freeing one buffer of an exhausted arena, that size can be allocated again', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const held = fill(() => arena.alloc(MiB))
  arena.free(held.pop()!)
  const again = arena.alloc(MiB)
  t.is(again.byteLength, MiB)
  t.throws(() => arena.alloc(MiB), { instanceOf: AllocatorError, code: 'ERR_OUT_OF_MEMORY' })
  held.push(again)
  for (const buffer of held) arena.free(buffer)
})

test('after freeing everything, the same workload fits again, round after round', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const counts: number[] = []
  for (let round = 0; round < 4; round++) {
    const held = fill(() => arena.alloc(512 * 1024))
    counts.push(held.length)
    for (const buffer of held) arena.free(buffer)
    t.is(arena.stats().liveBytes, 0)
  }
  t.true(counts.every((c) => c === counts[0]), counts.join(','))
})

test('memory freed in one size class is reused by another class and by the large path, up to the cap', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const small = fill(() => arena.alloc(64 * 1024))
  t.true(small.length > 500, `held ${small.length}`)
  for (const buffer of small) arena.free(buffer)
  arena.threadCache().flush()
  arena.trim()
  const medium = fill(() => arena.view('uint8', 3 * MiB))
  t.true(medium.length >= 15, `3 MiB views after 64 KiB buffers: ${medium.length}`)
  for (const v of medium) arena.free(v)
  arena.threadCache().flush()
  arena.trim()
  const large = fill(() => arena.alloc(20 * MiB))
  t.is(large.length, 3, '3 × 20 MiB large allocations fit under a 64 MiB cap once everything is back')
  for (const buffer of large) arena.free(buffer)
  t.is(arena.stats().liveBytes, 0)
})

test('large allocations exhaust the cap and come back after free', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const held = fill(() => arena.alloc(20 * MiB))
  t.is(held.length, 3)
  expectOutOfMemory(t, arena, () => arena.alloc(20 * MiB), 20 * MiB)
  t.is(arena.stats().largeLiveAllocations, 3)
  arena.free(held[1])
  const again = arena.alloc(20 * MiB)
  new Uint8Array(again).fill(1)
  t.is(arena.stats().largeLiveAllocations, 3)
  arena.free(again)
  arena.free(held[0])
  arena.free(held[2])
  t.is(arena.stats().largeLiveBytes, 0)
})

test('an exhausted arena does not affect another arena (capped or not)', (t) => {
  const full = new Arena({ maxBytes: 16 * MiB })
  const other = new Arena({ maxBytes: 16 * MiB })
  const uncapped = new Arena()
  const held = fill(() => full.alloc(MiB))
  const fine = other.alloc(8 * MiB)
  t.is(fine.byteLength, 8 * MiB)
  other.free(fine)
  const big = uncapped.alloc(32 * MiB)
  t.is(big.byteLength, 32 * MiB)
  uncapped.free(big)
  for (const buffer of held) full.free(buffer)
})

test('without maxBytes an arena grows past any former fixed size; with maxBytes it stops exactly there', (t) => {
  const uncapped = new Arena()
  t.is(uncapped.maxBytes, undefined)
  t.is(uncapped.stats().maxBytes, 0)
  const held = Array.from({ length: 40 }, () => uncapped.alloc(MiB))
  t.is(uncapped.stats().liveBytes, 40 * MiB)
  for (const buffer of held) uncapped.free(buffer)
  const capped = new Arena({ maxBytes: 40 * MiB })
  t.is(capped.maxBytes, 40 * MiB)
  t.is(capped.stats().maxBytes, 40 * MiB)
  const fits = fill(() => capped.alloc(MiB))
  t.is(fits.length, 40)
  expectOutOfMemory(t, capped, () => capped.alloc(MiB), MiB)
  for (const buffer of fits) capped.free(buffer)
})

test('out of memory at the cap says the cap, the request and what is free in bytes and MiB, and what to do', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const held = fill(() => arena.alloc(MiB))
  const error = expectOutOfMemory(t, arena, () => arena.alloc(MiB), MiB)
  const message = error?.message ?? ''
  t.true(message.startsWith('arena out of memory at its cap: requested 1048576 bytes (1 MiB), but only '), message)
  t.true(message.includes(`only ${error?.available} bytes`), message)
  t.true(message.includes('of the cap of 16777216 bytes (16 MiB) (maxBytes) are free'), message)
  t.true(message.includes('Free the buffers and views you no longer need (arena.free), or create the arena with a larger maxBytes'), message)
  for (const buffer of held) arena.free(buffer)
})

test('a request above 16 MiB at the cap says it needs one contiguous run of pages when the free bytes are split', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const blocks = [arena.alloc(20 * MiB), arena.alloc(20 * MiB), arena.alloc(20 * MiB)]
  arena.free(blocks[1]) // 20 MiB free in the middle, 4 MiB at the end: 24 MiB, not contiguous
  const error = expectOutOfMemory(t, arena, () => arena.alloc(22 * MiB), 22 * MiB)
  const message = error?.message ?? ''
  t.is(error?.available, 24 * MiB)
  t.true(message.includes('requested 23068672 bytes (22 MiB), but only 25165824 bytes (24 MiB) of the cap of 67108864 bytes (64 MiB)'), message)
  t.true(message.includes('a request above 16 MiB (the largest size class) needs one contiguous run of 23068672 bytes (22 MiB): the free bytes add up to enough, but are split between live blocks'), message)
  t.true(message.includes('or create the arena with a larger maxBytes'), message)
  arena.free(blocks[0])
  arena.free(blocks[2])
  arena.free(arena.alloc(22 * MiB)) // contiguous again once the neighbours are free
})

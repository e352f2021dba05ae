// The raw native boundary (dist/binding.cjs): garbage in never panics or crashes; every
// failure is a JS error with a string code or a negative result code; stale or forged
// offsets and generations never free a live block.
import test from 'ava'
import { Arena } from 'tensor-arena'
import { MiB, native } from './helpers'

const GARBAGE: unknown[] = [undefined, null, 'x', {}, [], -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e300, 8n, Symbol('s')]

/** Calls `fn`; it must either return, or throw an Error carrying a string code. */
function callSafely(t: import('ava').ExecutionContext, label: string, fn: () => unknown): unknown {
  try {
    return fn()
  } catch (error) {
    t.true(error instanceof Error, `${label}: threw a non-Error`)
    t.is(typeof (error as { code?: unknown }).code, 'string', `${label}: error without a code: ${String(error)}`)
    return error
  }
}

test('every native function survives garbage arguments with a coded error or a negative code', (t) => {
  const calls: [string, (x: unknown) => unknown][] = [
    ['arenaCreate', (x) => native.arenaCreate(x as number, 64)],
    ['arenaStats', (x) => native.arenaStats(x as number)],
    ['arenaTrim', (x) => native.arenaTrim(x as number)],
    ['arenaInfo', (x) => native.arenaInfo(x as number)],
    ['threadCacheStats', (x) => native.threadCacheStats(x as number)],
    ['threadCacheFlush', (x) => native.threadCacheFlush(x as number)],
    ['viewWindow', (x) => native.viewWindow(x as number)],
    ['nativeSizeClassOf', (x) => native.nativeSizeClassOf(x as number)],
    ['viewAlloc size', (x) => native.viewAlloc(0, x as number, 0)],
    ['viewAlloc id', (x) => native.viewAlloc(x as number, 16, 0)],
    ['viewFree', (x) => native.viewFree(0, x as number, x as number)],
    ['allocExclusive', (x) => native.allocExclusive(0, x as number, 0)],
    ['freeExclusive', (x) => native.freeExclusive(0, x as number, 0, x, x as number)],
  ]
  for (const [name, call] of calls) {
    for (const value of GARBAGE) {
      const result = callSafely(t, `${name}(${String(value)})`, () => call(value))
      if (typeof result === 'number' && name !== 'nativeSizeClassOf' && name !== 'arenaCreate' && name !== 'arenaTrim') {
        t.true(result <= 0, `${name}(${String(value)}) = ${result}`)
      }
    }
  }
})

test('an unknown arena id is ERR_UNKNOWN_ARENA (code -8 on the hot path)', (t) => {
  const unknown = 1_000_000
  for (const call of [
    () => native.arenaStats(unknown),
    () => native.arenaTrim(unknown),
    () => native.arenaInfo(unknown),
    () => native.threadCacheStats(unknown),
    () => native.threadCacheFlush(unknown),
    () => native.viewWindow(unknown),
  ]) {
    t.throws(call, { code: 'ERR_UNKNOWN_ARENA' })
  }
  t.is(native.viewAlloc(unknown, 16, 0), -8)
  t.is(native.viewFree(unknown, 0, 0), -8)
  t.is(native.allocExclusive(unknown, 16, 0), -8)
})

test('forged offsets and generations never free a live view', (t) => {
  const arena = new Arena({ arenaSize: 16 * MiB })
  const live = arena.view('uint8', 100)
  live.fill(7)
  // The arena id the TypeScript layer passes to the addon (a private field).
  const arenaId = (arena as unknown as { id: number }).id
  t.is(native.arenaInfo(arenaId)[0], 16 * MiB)
  const before = arena.stats()
  for (const [offset, generation] of [
    [live.byteOffset, 0],
    [live.byteOffset, 12345],
    [live.byteOffset, 2 ** 40],
    [live.byteOffset + 8, 0],
    [live.byteOffset - 64, 0],
    [0, 0],
    [16 * MiB + 4096, 0],
    [2 ** 40, 0],
  ]) {
    t.true(native.viewFree(arenaId, offset, generation) < 0, `viewFree(${offset}, ${generation})`)
  }
  t.true(native.freeExclusive(arenaId, live.byteOffset, 0, new ArrayBuffer(100), 100) < 0)
  t.true(native.freeExclusive(arenaId, live.byteOffset, 0, {}, 0) < 0)
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.freesTotal, before.freesTotal)
  t.true(arena.owns(live))
  t.true(live.every((b) => b === 7))
  arena.free(live)
})

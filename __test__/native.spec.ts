// The raw native boundary (dist/binding.cjs): garbage in never panics or crashes; every
// failure is a JS error with a string code or a negative result code; stale or forged
// offsets and generations never free a live block.
import * as path from 'node:path'
import test from 'ava'
import { Arena } from 'tensor-arena'
import { CHUNK, MiB, arenaIdOf, arenaOffsetOf, native, repoRoot } from './helpers'

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
    ['viewWindow id', (x) => native.viewWindow(x as number, 0)],
    ['viewWindow chunk', (x) => native.viewWindow(0, x as number)],
    ['blockWindow id', (x) => native.blockWindow(x as number, 0)],
    ['blockWindow offset', (x) => native.blockWindow(0, x as number)],
    ['nativeSizeClassOf', (x) => native.nativeSizeClassOf(x as number)],
    ['viewAlloc size', (x) => native.viewAlloc(0, x as number, 0)],
    ['viewAlloc id', (x) => native.viewAlloc(x as number, 16, 0)],
    ['viewFree', (x) => native.viewFree(0, x as number, x as number)],
    ['allocExclusive', (x) => native.allocExclusive(0, x as number, 0)],
    ['freeExclusive', (x) => native.freeExclusive(0, x as number, 0, x as ArrayBuffer, x as number)],
    ['handOff', (x) => native.handOff(0, x as number, x as number, undefined, x as number, x as number)],
    ['receiveView', (x) => native.receiveView(0, x as string, x as number, x as number, x as number)],
    ['receiveExclusive', (x) => native.receiveExclusive(0, x as string, x as number, x as number, x as number)],
    ['reclaim', (x) => native.reclaim(0, x as string, x as number, x as number, x as number)],
    ['orphanedTransfers', (x) => native.orphanedTransfers(x as number)],
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

// The TypeScript layer's mapping of native result codes (internal module).
const { nativeFailure } = require(path.join(repoRoot, 'dist', 'errors.js')) as {
  nativeFailure(result: number): { code: string }
}

test('an unknown arena id is ERR_UNKNOWN_ARENA (code -7 on the hot path)', (t) => {
  const unknown = 1_000_000
  for (const call of [
    () => native.arenaStats(unknown),
    () => native.arenaTrim(unknown),
    () => native.arenaInfo(unknown),
    () => native.threadCacheStats(unknown),
    () => native.threadCacheFlush(unknown),
    () => native.viewWindow(unknown, 0),
    () => native.blockWindow(unknown, 0),
  ]) {
    t.throws(call, { code: 'ERR_UNKNOWN_ARENA' })
  }
  // src/codes.rs: UnknownArena = 7 (renumbered when ERR_CORRUPT_HEADER was removed).
  t.is(nativeFailure(-7).code, 'ERR_UNKNOWN_ARENA', 'the TypeScript table agrees')
  t.is(native.viewAlloc(unknown, 16, 0), -7)
  t.is(native.viewFree(unknown, 0, 0), -7)
  t.is(native.allocExclusive(unknown, 16, 0), -7)
  t.is(native.handOff(unknown, 0, 0, undefined, 16, 16 + 15), -7)
})

test('windows exist only over carved chunks and live blocks: anything else is ERR_NOT_OWNED', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const id = arenaIdOf(arena)
  t.deepEqual(native.arenaInfo(id), [64 * MiB, 64, CHUNK])
  t.throws(() => native.viewWindow(id, 0), { code: 'ERR_NOT_OWNED' }, 'nothing carved yet')
  const small = arena.view('uint8', 100)
  const big = arena.view('uint8', 6 * MiB)
  const smallOffset = arenaOffsetOf(small)!
  const bigOffset = arenaOffsetOf(big)!
  const chunk = native.viewWindow(id, Math.floor(smallOffset / CHUNK))
  t.is(chunk.byteLength, CHUNK)
  const block = native.blockWindow(id, bigOffset)
  t.true(block.byteLength >= 6 * MiB && block.byteLength <= 12 * MiB, String(block.byteLength))
  for (const c of [16, 1000, 2 ** 30]) t.throws(() => native.viewWindow(id, c), { code: 'ERR_NOT_OWNED' }, `chunk ${c}`)
  for (const offset of [bigOffset + 64, 63 * MiB, 2 ** 40]) {
    t.throws(() => native.blockWindow(id, offset), { code: 'ERR_NOT_OWNED' }, `offset ${offset}`)
  }
  arena.free(big)
  arena.free(small)
})

test('forged offsets and generations never free a live view', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const neighbour = arena.view('uint8', 100)
  const live = arena.view('uint8', 100)
  live.fill(7)
  const arenaId = arenaIdOf(arena)
  t.is(native.arenaInfo(arenaId)[0], 16 * MiB)
  const offset0 = arenaOffsetOf(live)!
  t.true(offset0 >= 64, 'the neighbour is below it')
  const before = arena.stats()
  for (const [offset, generation] of [
    [offset0, 0],
    [offset0, 12345],
    [offset0, 2 ** 40],
    [offset0 + 8, 0],
    [offset0 - 64, 0],
    [0, 0],
    [16 * MiB + 4096, 0],
    [2 ** 40, 0],
  ]) {
    t.true(native.viewFree(arenaId, offset, generation) < 0, `viewFree(${offset}, ${generation})`)
  }
  t.true(native.freeExclusive(arenaId, offset0, 0, new ArrayBuffer(100), 100) < 0)
  t.true(native.freeExclusive(arenaId, offset0, 0, {} as ArrayBuffer, 0) < 0)
  const after = arena.stats()
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.freesTotal, before.freesTotal)
  t.true(arena.owns(live))
  t.true(live.every((b) => b === 7))
  arena.free(live)
  arena.free(neighbour)
})

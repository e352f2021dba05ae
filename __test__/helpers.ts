// Shared helpers for the ava suites (not a test file: ava only runs `*.spec.*`).
import * as path from 'node:path'
import type { ArenaStats } from 'tensor-arena'

import type { Native } from '../src/ts/native'

/** The repository root: the package `tensor-arena` itself (its package.json is exported). */
export const repoRoot: string = path.dirname(require.resolve('tensor-arena/package.json'))

/**
 * The raw native addon, for comparing the TypeScript layer with the Rust tables and for
 * feeding the native boundary garbage: the package's own declaration of it (src/ts/native.ts,
 * internal, so not in the published types). `setScratch` is left out on purpose: calling
 * it from a test would take this thread's scratch slots away from the TypeScript layer.
 */
export type NativeBinding = Omit<Native, 'setScratch'>

// The same module instance the package loads (same resolved path, same require cache).
export const native: NativeBinding = require(path.join(repoRoot, 'dist', 'binding.cjs')) as NativeBinding

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
/** Bytes of a chunk: the unit of the arena's commits and of view windows. */
export const CHUNK = 4 * MiB

/** The arena id the TypeScript layer passes to the addon (a private field of `Arena`). */
export function arenaIdOf(arena: object): number {
  return (arena as { id: number }).id
}

/** One event-loop turn (external-buffer finalizers run in a later turn). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function runGc(): void {
  const gc = globalThis.gc
  if (typeof gc !== 'function') throw new Error('the suite must run with --expose-gc')
  gc()
}

/**
 * Runs `gc()` then two `setImmediate` turns, repeatedly, until `done()` holds or
 * `maxRounds` rounds have passed. Returns whether `done()` held.
 */
export async function collectUntil(done: () => boolean, maxRounds = 12): Promise<boolean> {
  for (let round = 0; round < maxRounds; round++) {
    runGc()
    await turn()
    await turn()
    if (done()) return true
  }
  return done()
}

/** A few rounds of `gc()` + two `setImmediate` turns. */
export async function collect(rounds = 4): Promise<void> {
  await collectUntil(() => false, rounds)
}

/** The stat fields that move with allocations, for compact before/after comparisons. */
export function usage(stats: ArenaStats): { liveAllocations: number; liveBytes: number } {
  return { liveAllocations: stats.liveAllocations, liveBytes: stats.liveBytes }
}

/** Fills `bytes` with a pattern derived from `seed`. */
export function fillPattern(bytes: Uint8Array, seed: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + seed) & 0xff
}

/** Whether `bytes` still hold the pattern `fillPattern(bytes, seed)` wrote. */
export function hasPattern(bytes: Uint8Array, seed: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((i * 31 + seed) & 0xff)) return false
  return true
}

/** Deterministic pseudo-random integers (LCG), for reproducible sampling. */
export function lcg(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state
  }
}

/** The `ArrayBuffer.prototype.transfer` method where the runtime has it (Node ≥ 21). */
export const arrayBufferTransfer: ((this: ArrayBuffer) => ArrayBuffer) | undefined = (
  ArrayBuffer.prototype as { transfer?: (this: ArrayBuffer) => ArrayBuffer }
).transfer

/**
 * The arena offset of a window's first byte, from the window's internal tag
 * (src/ts/windows.ts: every window ArrayBuffer carries `{ windows, base }` under the
 * private symbol `tensor-arena.window`); `undefined` for any other ArrayBuffer.
 */
export function windowBaseOf(buffer: ArrayBufferLike): number | undefined {
  const symbol = Object.getOwnPropertySymbols(buffer).find((s) => s.description === 'tensor-arena.window')
  if (symbol === undefined) return undefined
  const tag = (buffer as unknown as Record<symbol, { base?: unknown } | undefined>)[symbol]
  return typeof tag?.base === 'number' ? tag.base : undefined
}

/** The arena offset of a view's first byte (its window's base + its byteOffset), or `undefined`. */
export function arenaOffsetOf(view: ArrayBufferView): number | undefined {
  const base = windowBaseOf(view.buffer)
  return base === undefined ? undefined : base + view.byteOffset
}

/** The most a view's `.buffer` may expose: max(one chunk, twice the view). */
export function windowBound(byteLength: number): number {
  return Math.max(CHUNK, 2 * byteLength)
}

/** The `Windows` object (one per arena and thread) that made a window, or `undefined`. */
export function windowOwnerOf(buffer: ArrayBufferLike): object | undefined {
  const symbol = Object.getOwnPropertySymbols(buffer).find((s) => s.description === 'tensor-arena.window')
  if (symbol === undefined) return undefined
  const tag = (buffer as unknown as Record<symbol, { windows?: unknown } | undefined>)[symbol]
  return typeof tag?.windows === 'object' && tag.windows !== null ? tag.windows : undefined
}

/** This thread's `Windows` of an arena (a private field of `Arena`), once it made a view. */
export function arenaWindowsOf(arena: object): object | undefined {
  return (arena as { windows?: object }).windows
}

/** Deterministic pseudo-random 32-bit integers (xorshift32); `seed` must not be 0. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

/** The bytes of an ArrayBuffer or a typed array / DataView. */
export function bytesOf(x: ArrayBuffer | ArrayBufferView): Uint8Array {
  return x instanceof ArrayBuffer ? new Uint8Array(x) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
}

/** Overwrites every byte of `bytes` with values from `next`. */
export function scribble(bytes: Uint8Array, next: () => number): void {
  const aligned = bytes.byteOffset % 4 === 0
  const words = aligned ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2) : new Uint32Array(0)
  for (let i = 0; i < words.length; i++) words[i] = next()
  for (let i = words.length * 4; i < bytes.length; i++) bytes[i] = next() & 0xff
}

function patternWord(i: number, seed: number): number {
  return (Math.imul(i + 1, 0x9e3779b1) ^ seed) >>> 0
}

/** Fills `bytes` with a pattern unique to `seed` (fast: 32-bit words where aligned). */
export function fillWords(bytes: Uint8Array, seed: number): void {
  const aligned = bytes.byteOffset % 4 === 0
  const n = aligned ? bytes.byteLength >>> 2 : 0
  if (n > 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n)
    for (let i = 0; i < n; i++) words[i] = patternWord(i, seed)
  }
  for (let i = n * 4; i < bytes.length; i++) bytes[i] = (i * 31 + seed) & 0xff
}

/** The index of the first byte (or word) that lost the `fillWords(bytes, seed)` pattern, or -1. */
export function checkWords(bytes: Uint8Array, seed: number): number {
  const aligned = bytes.byteOffset % 4 === 0
  const n = aligned ? bytes.byteLength >>> 2 : 0
  if (n > 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n)
    for (let i = 0; i < n; i++) if (words[i] !== patternWord(i, seed)) return i * 4
  }
  for (let i = n * 4; i < bytes.length; i++) if (bytes[i] !== ((i * 31 + seed) & 0xff)) return i
  return -1
}

/** Resident set size of this process. */
export function rss(): number {
  return process.memoryUsage().rss
}

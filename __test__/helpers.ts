// Shared helpers for the ava suites (not a test file: ava only runs `*.spec.*`).
import * as path from 'node:path'
import type { ArenaStats } from 'tensor-arena'

/** The repository root: the package `tensor-arena` itself (its package.json is exported). */
export const repoRoot: string = path.dirname(require.resolve('tensor-arena/package.json'))

/** The raw native addon, for comparing the TypeScript layer with the Rust tables. */
export interface NativeBinding {
  sizeClassTable(): number[]
  nativeSizeClassOf(bytes: number): number
  statFields(): string[][]
  arenaCreate(arenaSize?: number, alignment?: number, refill?: number, localCache?: number): number
  arenaDefault(): number
  arenaRelease(id: number): void
  arenaStats(id: number): Record<string, unknown>
  arenaTrim(id: number): number
  arenaInfo(id: number): number[]
  threadCacheStats(id: number): Record<string, unknown>
  threadCacheFlush(id: number): void
  viewWindow(id: number): ArrayBuffer
  viewAlloc(id: number, byteLength: number, zero: number): number
  viewFree(id: number, offset: number, generation: number): number
  scratch(): ArrayBuffer
  allocExclusive(id: number, byteLength: number, zero: number): ArrayBuffer | number
  freeExclusive(id: number, offset: number, generation: number, buffer: unknown, byteLength: unknown): number
}

// The same module instance the package loads (same resolved path, same require cache).
export const native: NativeBinding = require(path.join(repoRoot, 'dist', 'binding.cjs')) as NativeBinding

export const MiB = 1024 * 1024

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

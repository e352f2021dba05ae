// The native addon (dist/tensor-arena.<platform>.node, loaded by the generated
// dist/binding.cjs). Raw hot-path callbacks are not in the generated types, so the whole
// surface is declared here once.

/** A stats snapshot as the addon builds it (camelCase field names). @internal */
export type RawStats = Record<string, number> & { classes: Record<string, number>[] }

/** One thread cache's stats as the addon builds it. @internal */
export type RawThreadCacheStats = Record<string, number> & { classBlocks: number[] }

/** The typed interface over the raw native functions. @internal */
export interface Native {
  /** A window over chunk `chunk` of arena `id` (arena offsets `chunk * chunkSize ...`). */
  viewWindow(id: number, chunk: number): ArrayBuffer
  /** A window over exactly the live block at arena `offset` (blocks crossing a chunk boundary). */
  blockWindow(id: number, offset: number): ArrayBuffer
  /** Arena offset of a new block (generation in scratch[0]), or a negative code. */
  viewAlloc(id: number, byteLength: number, zero: number): number
  /** 0, or a negative code. */
  viewFree(id: number, offset: number, generation: number): number
  /** Makes the hot path report side values (4 × f64) in `buffer` (this thread). */
  setScratch(buffer: ArrayBuffer): void
  /** An exclusive external ArrayBuffer (generation in scratch[0], offset in scratch[2]), or a negative code. */
  allocExclusive(id: number, byteLength: number, zero: number): ArrayBuffer | number
  /** Frees and detaches an exclusive buffer: 0, or a negative code. */
  freeExclusive(id: number, offset: number, generation: number, buffer: ArrayBuffer, byteLength: number): number
  /**
   * Starts a hand-off: the token (new generation in scratch[0]) or a negative code;
   * detaches `buffer` on success. `kind` = kind code × 16 + dtype code, kept with the
   * hand-off and checked at receive.
   */
  handOff(
    id: number,
    offset: number,
    generation: number,
    buffer: ArrayBuffer | undefined,
    byteLength: number,
    kind: number,
  ): number
  /** Claims a hand-off as a view: 0 (generation in scratch[0]) or a negative code. */
  receiveView(id: number, token: number, offset: number, byteLength: number, kind: number): number
  /** Claims a hand-off as an exclusive buffer (generation in scratch[0]) or a negative code. */
  receiveExclusive(id: number, token: number, offset: number, byteLength: number, kind: number): ArrayBuffer | number
  /** Frees a hand-off nobody received: 0 or a negative code. */
  reclaim(id: number, token: number, offset: number, byteLength: number, kind: number): number
  arenaShared(
    name: string,
    maxBytes?: number,
    alignment?: number,
    refillTargetBytes?: number,
    localCacheTargetBytes?: number,
  ): number
  arenaCreate(maxBytes?: number, alignment?: number, refillTargetBytes?: number, localCacheTargetBytes?: number): number
  arenaDefault(): number
  arenaRelease(id: number): void
  arenaStats(id: number): RawStats
  statFields(): string[][]
  arenaTrim(id: number): number
  /** `[maxBytes (0: no cap), alignment, chunk size]`. */
  arenaInfo(id: number): number[]
  threadCacheStats(id: number): RawThreadCacheStats
  threadCacheFlush(id: number): void
  sizeClassTable(): number[]
  nativeSizeClassOf(bytes: number): number
  /** This thread's lent-tier words for arena `id` (the core's `LentTier`, f64 each). */
  lentTier(id: number): ArrayBuffer
  /** `[allocations, frees, allocatedBytes, freedBytes, lentRequested, lentBlocks, words]` word indices. */
  lentTierLayout(): number[]
  /** `napi_adjust_external_memory(delta)`. */
  adjustExternalMemory(delta: number): void
}

/** The loaded addon. @internal */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: Native = require('./binding.cjs') as Native

// The native addon (dist/tensor-arena.<platform>.node or the platform package's, loaded by
// the generated dist/binding.cjs through src/ts/load-native.ts). Its surface is the #[napi]
// functions, typed by napi-rs's generated declarations (binding.d.cts), plus the raw callbacks src/lib.rs registers by hand
// (`RawNative` below). __test__/native-contract.spec.ts checks this against what the
// addon really exports.
import type * as Generated from './binding.cjs'
import { loadNative } from './load-native.js'

/** A stats snapshot as the addon builds it (camelCase field names). @internal */
export type RawStats = Record<string, number> & { classes: Record<string, number>[] }

/** One thread cache's stats as the addon builds it. @internal */
export type RawThreadCacheStats = Record<string, number> & { classBlocks: number[] }

/**
 * The raw callbacks (registered in src/lib.rs with `raw::register`, not by napi-rs, so not
 * in the generated types): the hot paths and what returns external ArrayBuffers.
 * @internal
 */
export interface RawNative {
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
  /** This thread's lent-tier words for arena `id` (the core's `LentTier`, f64 each). */
  lentTier(id: number): ArrayBuffer
  /** An exclusive external ArrayBuffer (generation in scratch[0], offset in scratch[2]), or a negative code. */
  allocExclusive(id: number, byteLength: number, zero: number): ArrayBuffer | number
  /** Frees and detaches an exclusive buffer: 0, or a negative code. */
  freeExclusive(id: number, offset: number, generation: number, buffer: ArrayBuffer, byteLength: number): number
  /**
   * Starts a hand-off: the token, 32 lowercase hex digits (new generation in scratch[0]),
   * or a negative code; detaches `buffer` on success. `kind` = kind code × 16 + dtype code,
   * kept with the hand-off and checked at receive.
   */
  handOff(
    id: number,
    offset: number,
    generation: number,
    buffer: ArrayBuffer | undefined,
    byteLength: number,
    kind: number,
  ): string | number
  /** Claims a hand-off as a view: 0 (generation in scratch[0]) or a negative code. */
  receiveView(id: number, token: string, offset: number, byteLength: number, kind: number): number
  /** Claims a hand-off as an exclusive buffer (generation in scratch[0]) or a negative code. */
  receiveExclusive(id: number, token: string, offset: number, byteLength: number, kind: number): ArrayBuffer | number
  /** Frees a hand-off nobody received: 0 or a negative code. */
  reclaim(id: number, token: string, offset: number, byteLength: number, kind: number): number
  /** Benchmark floor: an external ArrayBuffer over static memory (no allocator involved). */
  floorBuffer(byteLength: number): ArrayBuffer
  /** Benchmark floor: detaches a buffer `floorBuffer` made. */
  floorDetach(buffer: ArrayBuffer): void
  /** Remembers a live exclusive buffer with a weak reference (src/weak.rs): its entry index, or -1. */
  trackExclusive(buffer: ArrayBuffer, id: number, generation: number): number
  /** Remembers a live view with a weak reference (src/weak.rs): its entry index, or -1. */
  trackView(view: ArrayBufferView, bytes: number): number
  /** Forgets the entry of a view freed or handed off. */
  untrack(index: number): void
  /** The exclusive `buffer` (hand-out `generation`) is about to be moved by `ArrayBuffer.prototype.transfer`. */
  markMoved(buffer: ArrayBuffer, generation: number): void
  /**
   * Sweeps the weak table (always, or only if a GC ran since the last look): frees
   * unreachable exclusive buffers; returns the dead view entries waiting (-1: no sweep).
   */
  sweepUnreachable(always: number): number
  /** Bytes of exclusive buffers the weak table's sweeps freed since the last call. */
  takeReclaimedBytes(): number
  /** Dead view entries waiting for {@link RawNative.takeDeadViews}. */
  deadViewCount(): number
  /** The entry indices of views found collected (their indices are free again). */
  takeDeadViews(): number[]
}

/** The names of {@link RawNative}, in src/lib.rs's order (checked both ways below). @internal */
export const RAW_FUNCTIONS = Object.freeze([
  'viewWindow',
  'blockWindow',
  'viewAlloc',
  'viewFree',
  'setScratch',
  'lentTier',
  'allocExclusive',
  'freeExclusive',
  'handOff',
  'receiveView',
  'receiveExclusive',
  'reclaim',
  'floorBuffer',
  'floorDetach',
  'trackExclusive',
  'trackView',
  'untrack',
  'markMoved',
  'sweepUnreachable',
  'takeReclaimedBytes',
  'deadViewCount',
  'takeDeadViews',
] as const satisfies readonly (keyof RawNative)[])

/** Compile-time: every {@link RawNative} member is listed in {@link RAW_FUNCTIONS}. */
type Unlisted = Exclude<keyof RawNative, (typeof RAW_FUNCTIONS)[number]>
const everyRawFunctionListed: [Unlisted] extends [never] ? true : Unlisted = true
void everyRawFunctionListed

/**
 * The #[napi] functions as napi-rs declared them, with those whose generated return type
 * is a bare `object` narrowed to the shape the addon builds.
 * @internal
 */
export type GeneratedNative = Omit<
  typeof Generated,
  '__napiBindingTarget' | 'arenaStats' | 'threadCacheStats' | 'orphanedTransfers'
> & {
  arenaStats(id: number): RawStats
  threadCacheStats(id: number): RawThreadCacheStats
  orphanedTransfers(id: number): RawOrphan[]
}

/** An in-flight hand-off whose sender is gone, as `orphanedTransfers` describes it. @internal */
export interface RawOrphan {
  token: string
  offset: number
  byteLength: number
  /** Kind code × 16 + dtype code, as `handOff` got it. */
  kind: number
}

/** The typed interface over the whole addon. @internal */
export type Native = GeneratedNative & RawNative

/** The loaded addon (a clear `NativeLoadError` when there is none, src/ts/load-native.ts). @internal */
export const native: Native = loadNative() as Native

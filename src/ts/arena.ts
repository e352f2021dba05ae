import { constants as bufferConstants } from 'node:buffer'

import {
  constructorOf,
  DTYPES,
  dtypeOf,
  viewConstructor,
  type DType,
  type TypedArrayOf,
} from './dtypes.js'
import {
  AllocatorError,
  allocatorError,
  checkCount,
  fromNative,
  invalidArgType,
  nativeFailure,
  outOfRange,
} from './errors.js'
import { native } from './native.js'
import { arenaArgs, zeroOption, type AllocOptions, type ArenaOptions } from './options.js'
import type { ArenaStats } from './stats.js'
import { exclusiveHandOut, type Exclusive } from './exclusive-state.js'
import { ExclusiveMark, NOT_A_VIEW, OTHER_VIEW, ViewMark } from './marks.js'
import { ThreadCache } from './thread-cache.js'
import { flushViewSlots, viewSlotsOf, type ViewSlots } from './view-slots.js'
import { liveShared, rememberShared, watchArena } from './arena-lifecycle.js'
import {
  forgetExclusive,
  forgetView,
  noteNewViewBlock,
  reclaimByGc,
  rememberView,
  sweepUnreachable,
} from './unreachable.js'
import { viewOver, zeroFill } from './view-make.js'
import { checkHandle, handleFrom, kindCode, type TransferHandle } from './transfer-handle.js'
import { runScope, track, type Keep } from './scope.js'
import { toArenaStats } from './stats.js'
import { arenaReport, INSPECT, inspectArena, type ArenaReport } from './report.js'
import { Windows } from './windows.js'

/** What `alloc`, `array` and `view` return: what `free` accepts. */
export type ArenaAllocation = ArrayBuffer | ArrayBufferView

export type { TransferHandle } from './transfer-handle.js'

/**
 * This thread's scratch slots, written by the native hot path: [0] generation of the last
 * hand-out, [1] bytes available after an out-of-memory, [2] arena offset of the last
 * exclusive hand-out, [3] the arena's cap after an out-of-memory (0: none). A plain
 * ArrayBuffer (not external), handed to the addon once.
 */
const scratchCache = new Float64Array(new ArrayBuffer(32))
native.setScratch(scratchCache.buffer as ArrayBuffer)
function scratch(): Float64Array {
  return scratchCache
}

/**
 * An exclusive buffer detached by something else (`ArrayBuffer.prototype.transfer`,
 * `structuredClone` with a transfer list) moved its memory to another ArrayBuffer that
 * still reaches the block: it must not be freed (the moved-to buffer's finalizer returns
 * it when that buffer is collected).
 */
function checkNotMoved(state: Exclusive): void {
  if (state.buffer.byteLength !== state.byteLength) {
    throw allocatorError(
      'ERR_NOT_OWNED',
      'the buffer was detached outside the arena (e.g. ArrayBuffer.prototype.transfer); its memory is returned when the ArrayBuffer it moved to is garbage-collected',
    )
  }
}

const LAZY = -1
/** Native result code of an out-of-memory (src/codes.rs). */
const OUT_OF_MEMORY = -1
/** Largest ArrayBuffer this Node version creates (4 GiB on Node 20). */
const MAX_EXTERNAL_BYTES = bufferConstants.MAX_LENGTH
/** Largest integer a JavaScript number holds exactly. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER

/**
 * An arena: a pre-mapped region of memory with size classes, per-thread caches and a
 * shared central pool, handing out memory as `ArrayBuffer`s and typed arrays.
 *
 * - {@link Arena.alloc} / {@link Arena.array}: **exclusive** buffers. Each has its own
 *   external `ArrayBuffer` over exactly its block; {@link Arena.free} detaches it
 *   (`byteLength` 0 afterwards), so JavaScript can never reach the memory once freed.
 *   A buffer that is never freed is returned when it is garbage-collected.
 * - {@link Arena.view}: the **fast path**. A typed array over a *window*: an `ArrayBuffer`
 *   over the 4 MiB chunk of the arena that holds the view (or, for a view above 4 MiB, over
 *   its own block), created once per thread and reused. Like `Buffer.allocUnsafe`'s pool,
 *   a freed view still aliases memory that may be handed out again: stop using a view once
 *   freed, and never write through `view.buffer` outside the view. Allocator metadata is
 *   never in that memory, so a stray write can corrupt data but never the allocator.
 *
 * Each thread (the main thread and every `worker_threads` Worker) allocates through its
 * own thread cache automatically. An `Arena` object belongs to the thread that created
 * it; its memory is returned when that thread exits.
 */
export class Arena {
  private id: number
  private windows: Windows | undefined
  private slots: ViewSlots | undefined
  /** The cap (`maxBytes`), or 0 without one. */
  private cap: number

  /**
   * Reserves a new arena.
   *
   * @param options - sizes and alignment; every field is optional.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` or one of its fields has the wrong type.
   *   `ERR_INVALID_ARG_VALUE` for the removed `arenaSize` option (use `maxBytes`).
   * @throws {AllocatorError} `ERR_INVALID_CONFIG` when a field is out of range, with the
   *   limit and the value in the message: maxBytes not a whole number, below 4096 (refused,
   *   never rounded up) or above 64 TiB (70368744177664); alignment not a power of two in
   *   64…4096; a target of 0 or above 64 TiB. Also when the operating system refuses to
   *   reserve the arena's address space (the message says how much was asked).
   */
  constructor(options?: ArenaOptions) {
    this.windows = undefined
    this.slots = undefined
    this.cap = 0
    if ((options as unknown) === LAZY_DEFAULT) {
      this.id = LAZY
      return
    }
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw invalidArgType('options', 'of type object', options)
    }
    const args = arenaArgs(options ?? {})
    try {
      this.id = native.arenaCreate(...args)
    } catch (error) {
      throw fromNative(error)
    }
    this.cap = native.arenaInfo(this.id)[0]
    watchArena(this, this.id)
  }

  /** Resolves the lazily created default arena. */
  private resolve(): number {
    if (this.id === LAZY) {
      try {
        this.id = native.arenaDefault()
      } catch (error) {
        throw fromNative(error)
      }
      this.cap = native.arenaInfo(this.id)[0]
    }
    return this.id
  }

  /**
   * The cap on the arena's memory: the `maxBytes` it was created with, rounded up to whole
   * pages (`new Arena({ maxBytes: 5000 }).maxBytes` is 8192 with 4 KiB pages), or
   * `undefined` when the arena grows without one.
   */
  get maxBytes(): number | undefined {
    this.resolve()
    return this.cap === 0 ? undefined : this.cap
  }

  /** Alignment of every buffer and view start. */
  get alignment(): number {
    return native.arenaInfo(this.resolve())[1]
  }

  private checkBytes(bytes: number, name: string): void {
    if (this.cap !== 0 && bytes > this.cap) {
      throw outOfRange(name, `at most the arena's cap, maxBytes (${this.cap} bytes)`, bytes)
    }
    if (bytes > MAX_SAFE) throw outOfRange(name, 'at most Number.MAX_SAFE_INTEGER bytes', bytes)
    if (bytes > MAX_EXTERNAL_BYTES) {
      throw outOfRange(name, `at most buffer.constants.MAX_LENGTH (${MAX_EXTERNAL_BYTES} bytes)`, bytes)
    }
  }

  private failure(result: number, requested: number): AllocatorError {
    if (result !== OUT_OF_MEMORY) return nativeFailure(result, requested)
    return nativeFailure(result, requested, scratchCache[1], scratchCache[3])
  }

  /**
   * An exclusive `ArrayBuffer` of exactly `byteLength` bytes over arena memory.
   *
   * @param byteLength - size in bytes; 0 gives an empty buffer that can be freed once.
   * @param options - `{ zero: true }` to zero-fill.
   * @returns an external ArrayBuffer, exclusively yours until {@link Arena.free}.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a non-number `byteLength` or bad options.
   * @throws {RangeError} `ERR_OUT_OF_RANGE` for a negative, fractional or unsafe size, or one
   *   above the arena's cap or `buffer.constants.MAX_LENGTH`.
   * @throws {AllocatorError} `ERR_OUT_OF_MEMORY` (with `requested`, `available`), or
   *   `ERR_EXTERNAL_BUFFERS_UNSUPPORTED` where the runtime refuses external buffers.
   */
  alloc(byteLength: number, options?: AllocOptions): ArrayBuffer {
    checkCount(byteLength, 'byteLength')
    const zero = zeroOption(options)
    const id = this.resolve()
    this.checkBytes(byteLength, 'byteLength')
    return track(this, this.exclusive(id, byteLength, zero).buffer)
  }

  private exclusive(id: number, byteLength: number, zero: number): Exclusive {
    let result = native.allocExclusive(id, byteLength, zero)
    if (result === OUT_OF_MEMORY) {
      flushViewSlots(id)
      result = native.allocExclusive(id, byteLength, zero)
      if (result === OUT_OF_MEMORY) {
        reclaimByGc()
        flushViewSlots(id) // reclaimed views' blocks went to the lent stacks
        result = native.allocExclusive(id, byteLength, zero)
      }
    }
    if (typeof result === 'number') throw this.failure(result, byteLength)
    const s = scratch()
    return exclusiveHandOut(id, s[2], s[0], result, byteLength)
  }

  /**
   * A typed array of `length` elements over its own exclusive buffer (`byteOffset` 0).
   *
   * @param dtype - element type: int8, uint8, uint8clamped, int16, uint16, int32, uint32,
   *   float32, float64, bigint64 or biguint64.
   * @param length - number of elements.
   * @param options - `{ zero: true }` to zero-fill.
   * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown dtype; `ERR_INVALID_ARG_TYPE` as for {@link Arena.alloc}.
   * @throws {RangeError} `ERR_OUT_OF_RANGE` as for {@link Arena.alloc}.
   * @throws {AllocatorError} as for {@link Arena.alloc}.
   */
  array<D extends DType>(dtype: D, length: number, options?: AllocOptions): TypedArrayOf<D> {
    const Ctor = constructorOf(dtype)
    checkCount(length, 'length')
    const zero = zeroOption(options)
    const id = this.resolve()
    this.checkBytes(length * Ctor.BYTES_PER_ELEMENT, 'length')
    const state = this.exclusive(id, length * Ctor.BYTES_PER_ELEMENT, zero)
    const array = new Ctor(state.buffer, 0, length) as TypedArrayOf<D>
    ExclusiveMark.stamp(array, state)
    return track(this, array)
  }

  /**
   * A typed array of `length` elements over this thread's window onto the arena: the fast
   * path. A freed view's block is kept for the next view of the same byte length, so a
   * steady `view` → `free` cycle makes no native call; otherwise one. The view's `buffer`
   * is the shared window (at most max(4 MiB, 2 × `byteLength`) of arena memory), not an
   * exclusive buffer: after {@link Arena.free} the view may alias memory handed out again,
   * as `Buffer.allocUnsafe` slices alias its pool. A view that is never freed is reclaimed
   * after it is garbage-collected. Frozen or sealed views work like any other.
   *
   * @param dtype - element type (see {@link Arena.array}).
   * @param length - number of elements.
   * @param options - `{ zero: true }` to zero-fill.
   * @throws {TypeError} as for {@link Arena.array}.
   * @throws {RangeError} as for {@link Arena.array}.
   * @throws {AllocatorError} `ERR_OUT_OF_MEMORY`, or `ERR_EXTERNAL_BUFFERS_UNSUPPORTED` /
   *   `ERR_VIEW_UNSUPPORTED` when the runtime cannot make a window onto arena memory.
   */
  view<D extends DType>(dtype: D, length: number, options?: AllocOptions): TypedArrayOf<D> {
    // The common case, kept small enough for V8 to inline: a whole length, and a block of
    // exactly this size kept from an earlier view (every size check held for it then).
    // `typeof` first: `>>>` throws an uncoded TypeError for a BigInt or Symbol and calls an
    // object's valueOf (a coercion the checked path refuses).
    const slots = this.slots
    const Ctor = viewConstructor(dtype)
    if (slots !== undefined && Ctor !== undefined && typeof length === 'number' && length >>> 0 === length) {
      const zero = options === undefined ? 0 : zeroOption(options)
      const bytes = length * Ctor.BYTES_PER_ELEMENT
      const slot = slots.take(bytes)
      if (slot >= 0) {
        const view = viewOver<TypedArrayOf<D>>(this.windows as Windows, slots, slot, Ctor, length, bytes)
        // A recycled block was not zeroed natively.
        if (zero === 1) zeroFill(view, Ctor)
        return track(this, view)
      }
    }
    return this.viewChecked(dtype, length, options)
  }

  /** {@link Arena.view} with every check, and a native block when none is kept. */
  private viewChecked<D extends DType>(dtype: D, length: number, options?: AllocOptions): TypedArrayOf<D> {
    const Ctor = viewConstructor(dtype) ?? constructorOf(dtype)
    checkCount(length, 'length')
    const zero = options === undefined ? 0 : zeroOption(options)
    const id = this.resolve()
    const bytes = length * Ctor.BYTES_PER_ELEMENT
    this.checkBytes(bytes, 'length')
    const slots = this.slots ?? this.openViews(id)
    let slot = slots.take(bytes)
    const recycled = slot >= 0
    if (!recycled) slot = this.viewBlock(slots, id, bytes, zero)
    const view = viewOver<TypedArrayOf<D>>(this.windows as Windows, slots, slot, Ctor, length, bytes)
    // A recycled block was not zeroed natively.
    if (recycled && zero === 1) zeroFill(view, Ctor)
    return track(this, view)
  }

  /**
   * A slot for a new native block of `bytes`; out of memory, retried after freeing the lent
   * blocks, then after a GC reclaimed the unreachable hand-outs.
   */
  private viewBlock(slots: ViewSlots, id: number, bytes: number, zero: number): number {
    let offset = native.viewAlloc(id, bytes, zero)
    if (offset === OUT_OF_MEMORY) {
      slots.flush()
      offset = native.viewAlloc(id, bytes, zero)
      if (offset === OUT_OF_MEMORY) {
        reclaimByGc()
        slots.flush() // reclaimed views' blocks went to the lent stacks
        offset = native.viewAlloc(id, bytes, zero)
      }
    }
    if (offset < 0) throw this.failure(offset, bytes)
    noteNewViewBlock(bytes)
    return slots.add(offset, scratchCache[0], bytes)
  }

  /** This thread's windows and view slots for the arena (made on first use). */
  private openViews(id: number): ViewSlots {
    this.windows ??= new Windows(id, native.arenaInfo(id)[2])
    try {
      this.slots = viewSlotsOf(id)
    } catch (error) {
      const converted = fromNative(error)
      if (converted instanceof AllocatorError) throw converted
      throw allocatorError('ERR_VIEW_UNSUPPORTED', error instanceof Error ? error.message : String(error))
    }
    return this.slots
  }

  /** The live view slot of `allocation`, -1 for an exclusive hand-out or anything else. */
  private liveSlot(allocation: object): number {
    const slot = ViewMark.slotIn(allocation, this.slots)
    if (slot >= 0 || slot === NOT_A_VIEW) return slot
    throw allocatorError(slot === OTHER_VIEW ? 'ERR_NOT_OWNED' : 'ERR_DOUBLE_FREE')
  }

  /** The live exclusive state of `allocation`. */
  private liveExclusive(allocation: object): Exclusive {
    const state = ExclusiveMark.stateOf(allocation)
    if (state === undefined || state.arena !== this.id) throw allocatorError('ERR_NOT_OWNED')
    if (!state.live) throw allocatorError('ERR_DOUBLE_FREE')
    checkNotMoved(state)
    return state
  }

  /**
   * Frees what {@link Arena.alloc}, {@link Arena.array} or {@link Arena.view} returned.
   * An exclusive buffer is detached (its `byteLength` becomes 0); its block is reusable at
   * once.
   *
   * @param allocation - the ArrayBuffer or typed array the arena handed out.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `allocation` is not an object.
   * @throws {AllocatorError} `ERR_NOT_OWNED` for anything this arena did not hand out (a
   *   Buffer, a plain ArrayBuffer, a subarray or DataView of an arena buffer, a `Proxy` of
   *   one or an object inheriting from one, another arena's buffer): nothing is detached.
   *   `ERR_DOUBLE_FREE` when it was freed (or handed off) already, even if its block was
   *   handed out again since.
   */
  free(allocation: ArenaAllocation): void {
    // The common case, kept small enough for V8 to inline: a live view of this arena.
    const slots = this.slots
    if (slots !== undefined && typeof allocation === 'object' && allocation !== null) {
      const slot = ViewMark.slotIn(allocation, slots)
      if (slot >= 0) {
        forgetView(allocation as ArrayBufferView, slots, slot)
        if (slots.lend(slot)) return
        const result = slots.freeNative(slot)
        if (result !== 0) throw this.failure(result, 0)
        return
      }
    }
    this.freeChecked(allocation)
  }

  /** Counts a free refused here (the allocator never saw it) in `rejectedFreesTotal`. */
  private noteRejectedFree(): void {
    try {
      native.noteRejectedFree(this.resolve())
    } catch {
      // The arena cannot be resolved (its creation failed): there are no stats to count in.
    }
  }

  /** {@link Arena.free} of anything but a live view of this arena. */
  private freeChecked(allocation: ArenaAllocation): void {
    if (typeof allocation !== 'object' || allocation === null) {
      throw invalidArgType('allocation', 'an ArrayBuffer or typed array', allocation)
    }
    let state: Exclusive
    try {
      this.liveSlot(allocation) // throws for a view of another arena and for a stale view
      state = this.liveExclusive(allocation)
    } catch (error) {
      this.noteRejectedFree()
      throw error
    }
    const result = native.freeExclusive(this.id, state.offset, state.generation, state.buffer, state.byteLength)
    if (result !== 0) throw this.failure(result, 0)
    state.live = false
    forgetExclusive(state)
  }

  /**
   * Whether `allocation` is a live buffer, array or view handed out by this arena (in
   * this thread). A `Proxy` of one, or an object inheriting from one, is not.
   *
   * @param allocation - any value.
   */
  owns(allocation: unknown): boolean {
    if (typeof allocation !== 'object' || allocation === null) return false
    const slot = ViewMark.slotIn(allocation, this.slots)
    if (slot !== NOT_A_VIEW) return slot >= 0
    const state = ExclusiveMark.stateOf(allocation)
    return state !== undefined && state.arena === this.id && state.live
  }

  /**
   * Hands `allocation` to another thread without copying: returns a small
   * structured-cloneable handle to `postMessage`; the receiving thread calls
   * {@link Arena.receive} with it, on its own `Arena.shared(...)` object for this arena
   * (or the default arena). From now on `allocation` is unusable here: an exclusive buffer
   * is detached, and `free` of it (or of a view) throws `ERR_DOUBLE_FREE`.
   *
   * The handle's `token` (32 lowercase hex digits, unguessable) is what claims the memory:
   * anyone holding the handle can receive or reclaim it.
   *
   * @param allocation - what `alloc`, `array` or `view` returned (or `receive`).
   * @throws {AllocatorError} `ERR_NOT_OWNED` or `ERR_DOUBLE_FREE` as for {@link Arena.free};
   *   `ERR_RANDOM_UNAVAILABLE` when the arena's first hand-off cannot get its token key from
   *   the operating system's random number generator (nothing is handed off).
   */
  transfer<T extends ArenaAllocation>(allocation: T): TransferHandle<T> {
    if (typeof allocation !== 'object' || allocation === null) {
      throw invalidArgType('allocation', 'an ArrayBuffer or typed array', allocation)
    }
    const id = this.id
    const slot = this.liveSlot(allocation)
    if (slot >= 0) {
      const slots = this.slots as ViewSlots
      const view = allocation as ArrayBufferView
      const byteLength = slots.bytes[slot]
      const dtype = dtypeOf(view) ?? 'uint8'
      const offset = slots.offsets[slot]
      const token = native.handOff(id, offset, slots.generations[slot], undefined, byteLength, kindCode('view', dtype))
      if (typeof token === 'number') throw this.failure(token, 0)
      forgetView(view, slots, slot)
      slots.drop(slot)
      const length = byteLength / DTYPES[dtype].BYTES_PER_ELEMENT
      return { arena: id, token, kind: 'view', dtype, length, byteLength, offset }
    }
    const state = this.liveExclusive(allocation)
    const byteLength = state.byteLength
    const isBuffer = (allocation as object) === state.buffer
    const dtype = isBuffer ? null : (dtypeOf(allocation as ArrayBufferView) ?? 'uint8')
    const kind = isBuffer ? 'buffer' : 'array'
    const token = native.handOff(id, state.offset, state.generation, state.buffer, byteLength, kindCode(kind, dtype))
    if (typeof token === 'number') throw this.failure(token, 0)
    state.live = false
    forgetExclusive(state)
    if (dtype === null) {
      return { arena: id, token, kind: 'buffer', dtype: null, length: byteLength, byteLength, offset: state.offset }
    }
    const length = byteLength / DTYPES[dtype].BYTES_PER_ELEMENT
    return { arena: id, token, kind: 'array', dtype, length, byteLength, offset: state.offset }
  }

  /**
   * Claims a hand-off made by {@link Arena.transfer} in any thread: the same memory, no
   * copy, as the same kind, dtype and length. Each handle is received exactly once; the
   * result is then this thread's to use and free (a free from here goes through the
   * allocating thread's cross-thread path).
   *
   * @param handle - the handle `transfer` returned (usually received via `postMessage`).
   * @throws {AllocatorError} `ERR_ALREADY_RECEIVED` for a second `receive` (in any thread),
   *   `ERR_INVALID_HANDLE` for a forged or altered handle, `ERR_NOT_OWNED` for another
   *   arena's handle; no block is touched.
   */
  receive<T extends ArenaAllocation>(handle: TransferHandle<T>): T {
    const h = this.checkHandle(handle)
    const id = this.id
    if (h.kind === 'view') {
      const slots = this.slots ?? this.openViews(id)
      const windows = this.windows as Windows
      const Ctor = DTYPES[h.dtype as DType]
      // The window first (the block is allocated while in flight): if the runtime refuses
      // it, the hand-off stays in flight, unclaimed. No live block at that offset means the
      // hand-off is not in flight: the claim below says why (spent, forged, another arena's).
      try {
        windows.prepare(h.offset, h.byteLength)
      } catch (error) {
        if (!(error instanceof AllocatorError && error.code === 'ERR_NOT_OWNED')) throw error
      }
      const result = native.receiveView(id, h.token, h.offset, h.byteLength, kindCode(h.kind, h.dtype))
      if (result < 0) throw this.failure(result, h.byteLength)
      const slot = slots.add(h.offset, scratch()[0], h.byteLength)
      const view = windows.view<ArrayBufferView>(Ctor, h.offset, h.length, h.byteLength)
      ViewMark.stamp(view, slots, slot)
      rememberView(view, slots, slot)
      return track(this, view as unknown as T)
    }
    const buffer = native.receiveExclusive(id, h.token, h.offset, h.byteLength, kindCode(h.kind, h.dtype))
    if (typeof buffer === 'number') throw this.failure(buffer, h.byteLength)
    const state = exclusiveHandOut(id, h.offset, scratch()[0], buffer, h.byteLength)
    if (h.kind === 'buffer') return track(this, buffer as unknown as T)
    const array = new DTYPES[h.dtype as DType](buffer, 0, h.length) as ArrayBufferView
    ExclusiveMark.stamp(array, state)
    return track(this, array as unknown as T)
  }

  /**
   * Frees the memory of a hand-off that will never be received (its block is in flight
   * until then, counted in `stats().inFlightBytes`).
   *
   * @param handle - the handle `transfer` returned.
   * @throws {AllocatorError} as for {@link Arena.receive}.
   */
  reclaim(handle: TransferHandle): void {
    const h = this.checkHandle(handle)
    const result = native.reclaim(this.id, h.token, h.offset, h.byteLength, kindCode(h.kind, h.dtype))
    if (result !== 0) throw this.failure(result, 0)
  }

  /**
   * The hand-offs of this arena still in flight whose sending thread has exited (a worker
   * that ended or was terminated between `transfer` and its handle reaching a receiver),
   * oldest first, as full handles: {@link Arena.reclaim} returns their memory, or
   * {@link Arena.receive} claims them. A thread's own hand-offs are listed only once it
   * is gone, so while the main thread lives its hand-offs never are.
   *
   * The sender may have posted a handle just before it exited, and that message may still
   * be delivered: receive and reclaim are exactly-once, so whichever comes first wins and
   * the other throws `ERR_ALREADY_RECEIVED`. Reclaim orphans after the worker's `'exit'`
   * event, once the messages it had posted were handled (and treat `ERR_ALREADY_RECEIVED`
   * from `reclaim` as "someone received it").
   *
   * @returns a new array of handles (empty when there is nothing to reclaim).
   * @throws {AllocatorError} `ERR_UNKNOWN_ARENA` when the arena no longer exists.
   */
  orphanedTransfers(): TransferHandle[] {
    const id = this.resolve()
    let orphans: ReturnType<typeof native.orphanedTransfers>
    try {
      orphans = native.orphanedTransfers(id)
    } catch (error) {
      throw fromNative(error)
    }
    const handles: TransferHandle[] = []
    for (const o of orphans) {
      const handle = handleFrom(id, o.token, o.offset, o.byteLength, o.kind)
      if (handle !== undefined) handles.push(handle)
    }
    return handles
  }

  private checkHandle(handle: unknown): TransferHandle {
    return checkHandle(handle, this.resolve())
  }

  /**
   * The process-wide arena called `name`: every thread (main or worker) that asks gets the
   * same memory, so tensors move between threads with {@link Arena.transfer} /
   * {@link Arena.receive} without copying. Built on first use with `options`; a later call
   * must give the same options (or none).
   *
   * @param name - any non-empty string.
   * @param options - as for `new Arena(options)`.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a non-string name or bad option types.
   * @throws {AllocatorError} `ERR_INVALID_CONFIG` for bad values or options that differ
   *   from the existing arena's.
   */
  static shared(name: string, options?: ArenaOptions): Arena {
    if (typeof name !== 'string' || name.length === 0) throw invalidArgType('name', 'a non-empty string', name)
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw invalidArgType('options', 'of type object', options)
    }
    const o = options ?? {}
    let id: number
    try {
      // Takes a hold on the arena for this thread (given back below if this thread's
      // object for it is alive, else when the new object is collected).
      id = native.arenaShared(name, ...arenaArgs(o))
    } catch (error) {
      throw fromNative(error)
    }
    const live = liveShared(id) as Arena | undefined
    if (live !== undefined) {
      native.arenaRelease(id)
      return live
    }
    const arena = new Arena(LAZY_DEFAULT)
    arena.id = id
    arena.cap = native.arenaInfo(id)[0]
    rememberShared(id, arena)
    return arena
  }

  /** A snapshot of the arena's statistics (all threads). */
  stats(): ArenaStats {
    const id = this.resolve()
    sweepUnreachable(false)
    return toArenaStats(native.arenaStats(id))
  }

  /** A readable memory report of one `stats()` snapshot: per-class rows and totals; `String(report)` renders them. */
  report(): ArenaReport {
    return arenaReport(this.stats())
  }

  /** `util.inspect(arena)`: a one-line summary (the default arena is not created by it). @internal */
  [INSPECT](): string {
    return inspectArena(this.id === LAZY ? undefined : this.stats())
  }

  /**
   * Runs `fn(keep)`; when it returns (or its promise settles) frees every hand-out of this
   * arena this thread made inside, except what it returns and what it passed to `keep`
   * (README "Scopes": nesting, async functions, transfers).
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `fn` is not a function; what `fn` throws, after freeing.
   */
  scope<T>(fn: (keep: Keep) => T): T {
    return runScope(this, fn)
  }

  /**
   * Returns idle memory to the OS: fully free slabs go back to the shared span heap and
   * free spans are released with `madvise`. Blocks held by thread caches stay (flush them
   * with {@link ThreadCache.flush}).
   *
   * @returns bytes released.
   */
  trim(): number {
    return native.arenaTrim(this.resolve())
  }

  /**
   * The calling thread's cache for this arena.
   *
   * @returns a handle: `stats()`, `flush()`, `[Symbol.dispose]()` (flushes).
   */
  threadCache(): ThreadCache {
    return new ThreadCache(this.resolve(), this)
  }
}

/** Marker for the lazily created default arena. @internal */
export const LAZY_DEFAULT: ArenaOptions = Object.freeze({})

import { native } from './native.js'
import { classIndexOf, SIZE_CLASS_BYTES } from './size-class.js'

/** Word indices of the native lent tier (`LentTier` in the core), read from the addon. */
const [ALLOCATIONS, FREES, ALLOCATED_BYTES, FREED_BYTES, LENT_REQUESTED, LENT_BLOCKS] = native.lentTierLayout()

/** Blocks kept per class: at most 256, within 1 MiB of blocks per class, at least 1. */
const CLASS_BUDGET = 1 << 20
const MAX_PER_CLASS = 256
const LIMITS = Int32Array.from(SIZE_CLASS_BYTES, (bytes) =>
  Math.min(MAX_PER_CLASS, Math.max(1, Math.floor(CLASS_BUDGET / bytes))),
)

const INITIAL_SLOTS = 64

/**
 * One thread's views of one arena, as typed-array tables indexed by *slot*. A slot holds
 * one block of the arena that this thread got from the native allocator: its arena offset,
 * native generation and requested bytes, and the slot's *mark*, which grows by one at every
 * free, hand-off or reclaim (never reset), so a view (which carries its slot and the mark at
 * hand-out, see `ViewMark`) is live exactly while the two agree.
 *
 * The native allocator records an empty view's block as 1 requested byte; the tier counts
 * it the same way (`bytes || 1`).
 *
 * A freed view's block is not freed natively: its slot goes on its class's stack (the lent
 * tier, up to {@link LIMITS} per class), and the next `view` of the same byte length takes
 * it back, with no native call either way. The core counts those blocks and operations
 * through the words of this thread's native `LentTier` (`tier` below), kept exact at every
 * step, so stats never need a flush.
 *
 * Invariants, between two operations:
 * - a slot is in exactly one of: live (one view with its current mark), lent (on its
 *   class's stack), free (on `freeSlots`, its block gone), or unused (index ≥ `used`)
 * - `tier[LENT_BLOCKS + c]` = `tops[c]`; `Σ tops` = `lent`; `tier[LENT_REQUESTED]` = the
 *   bytes of the lent slots
 * @internal
 */
export class ViewSlots {
  /** Per slot: arena offset of the block. */
  offsets = new Float64Array(INITIAL_SLOTS)
  /** Per slot: the block's native generation. */
  generations = new Float64Array(INITIAL_SLOTS)
  /** Per slot: requested bytes (the byte length of its views). */
  bytes = new Float64Array(INITIAL_SLOTS)
  /** Per slot: grows at every free, hand-off and reclaim. */
  marks = new Float64Array(INITIAL_SLOTS)
  /** Per slot: 1 while its live view is registered for GC reclaim. */
  registered = new Uint8Array(INITIAL_SLOTS)
  /** Per slot: the window its views were made over last (set by the arena), or `undefined`. */
  windows: (ArrayBuffer | undefined)[] = new Array(INITIAL_SLOTS)
  /** Per slot: its block's byte offset inside that window. */
  within = new Float64Array(INITIAL_SLOTS)
  /**
   * Per slot (unreachable.ts): while its live view is pending, its place in the pending
   * list; once registered, its entry in the native weak table.
   */
  reclaimAt = new Int32Array(INITIAL_SLOTS)
  /** Per slot: its block's size class (-1 above the largest class: never lent). */
  classes = new Int8Array(INITIAL_SLOTS)
  private freeSlots = new Int32Array(INITIAL_SLOTS)
  private freeTop = 0
  private used = 0
  private lent = 0
  /** The last size `take` was asked for, and its class (most callers repeat sizes). */
  private lastBytes = -1
  private lastClass = -1
  private readonly stacks: Int32Array[] = Array.from(LIMITS, (limit) => new Int32Array(limit))
  private readonly tops = new Int32Array(LIMITS.length)
  private readonly tier: Float64Array

  /**
   * @param arena - the arena id.
   * @param tier - this thread's lent-tier words for the arena (`native.lentTier`).
   */
  constructor(
    readonly arena: number,
    tier: ArrayBuffer,
  ) {
    this.tier = new Float64Array(tier)
  }

  /** A lent slot whose block was requested with exactly `bytes` (now live), or -1. */
  take(bytes: number): number {
    if (this.lent === 0) return -1
    let c = this.lastClass
    if (bytes !== this.lastBytes) {
      c = classIndexOf(bytes)
      this.lastBytes = bytes
      this.lastClass = c
    }
    if (c < 0) return -1
    const top = this.tops[c]
    if (top === 0) return -1
    const slot = this.stacks[c][top - 1]
    if (this.bytes[slot] !== bytes) return -1
    this.tops[c] = top - 1
    this.lent--
    const t = this.tier
    const recorded = bytes || 1
    t[ALLOCATIONS]++
    t[ALLOCATED_BYTES] += recorded
    t[LENT_REQUESTED] -= recorded
    t[LENT_BLOCKS + c]--
    return slot
  }

  /** A slot (now live) for a block the native allocator just handed out. */
  add(offset: number, generation: number, bytes: number): number {
    const slot = this.freeTop > 0 ? this.freeSlots[--this.freeTop] : this.fresh()
    this.offsets[slot] = offset
    this.generations[slot] = generation
    this.bytes[slot] = bytes
    this.classes[slot] = classIndexOf(bytes)
    this.windows[slot] = undefined
    return slot
  }

  /**
   * Frees live slot `slot`: its views go stale, its block is lent (kept for the next view
   * of its size) or, when its class's stack is full, freed natively.
   * @returns 0, or the native result code.
   */
  release(slot: number): number {
    return this.lend(slot) ? 0 : this.freeNative(slot)
  }

  /** Frees live slot `slot` into its class's stack if there is room (its views go stale). */
  lend(slot: number): boolean {
    const c = this.classes[slot]
    if (c < 0) return false
    const top = this.tops[c]
    if (top >= LIMITS[c]) return false
    this.marks[slot]++
    this.stacks[c][top] = slot
    this.tops[c] = top + 1
    this.lent++
    const t = this.tier
    const recorded = this.bytes[slot] || 1
    t[FREES]++
    t[FREED_BYTES] += recorded
    t[LENT_REQUESTED] += recorded
    t[LENT_BLOCKS + c]++
    return true
  }

  /** Frees live slot `slot`'s block natively (its views go stale). @returns 0, or the native result code. */
  freeNative(slot: number): number {
    this.marks[slot]++
    const result = native.viewFree(this.arena, this.offsets[slot], this.generations[slot])
    this.freeSlots[this.freeTop++] = slot
    return result
  }

  /** Live slot `slot` no longer belongs here (handed off, or its view could not be made). */
  drop(slot: number): void {
    this.marks[slot]++
    this.freeSlots[this.freeTop++] = slot
  }

  /** GC reclaim of a view never freed: frees its slot if it is still that view's (and says so). */
  reclaim(slot: number, mark: number): boolean {
    if (this.marks[slot] !== mark) return false
    this.registered[slot] = 0
    this.release(slot)
    return true
  }

  /** Frees every lent block natively (the core counts those frees; the tier stops counting them). */
  flush(): void {
    if (this.lent === 0) return
    const t = this.tier
    for (let c = 0; c < this.tops.length; c++) {
      const stack = this.stacks[c]
      for (let i = this.tops[c] - 1; i >= 0; i--) {
        const slot = stack[i]
        const recorded = this.bytes[slot] || 1
        // Cannot fail: the block is live and ours (its metadata is out of reach of JS).
        native.viewFree(this.arena, this.offsets[slot], this.generations[slot])
        t[FREES]--
        t[FREED_BYTES] -= recorded
        t[LENT_REQUESTED] -= recorded
        t[LENT_BLOCKS + c]--
        this.freeSlots[this.freeTop++] = slot
      }
      this.tops[c] = 0
    }
    this.lent = 0
  }

  /**
   * No `Arena` object of this thread uses the table any more: frees the lent blocks, lets
   * the windows go, and makes every later free of a remaining live view a native free.
   */
  close(): void {
    this.flush()
    this.classes.fill(-1)
    this.windows.fill(undefined)
  }

  /** A never used slot, growing the tables when they are full. */
  private fresh(): number {
    if (this.used === this.marks.length) {
      const grow = <T extends Float64Array | Int32Array | Int8Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2)
        b.set(a)
        return b
      }
      this.offsets = grow(this.offsets)
      this.generations = grow(this.generations)
      this.bytes = grow(this.bytes)
      this.marks = grow(this.marks)
      this.registered = grow(this.registered)
      this.classes = grow(this.classes)
      this.reclaimAt = grow(this.reclaimAt)
      this.within = grow(this.within)
      this.freeSlots = grow(this.freeSlots)
    }
    return this.used++
  }
}

const slotTables = new Map<number, ViewSlots>()

/** This thread's slot table for arena `id` (made on first use). @internal */
export function viewSlotsOf(id: number): ViewSlots {
  let slots = slotTables.get(id)
  if (slots === undefined) {
    slots = new ViewSlots(id, native.lentTier(id))
    slotTables.set(id, slots)
  }
  return slots
}

/**
 * This thread has no `Arena` object for arena `id` any more: its slot table is closed
 * (lent blocks freed natively; views still live are freed natively when freed or
 * reclaimed, never lent again) and forgotten, so it no longer keeps windows alive. @internal
 */
export function closeViewSlots(id: number): void {
  const slots = slotTables.get(id)
  if (slots === undefined) return
  slotTables.delete(id)
  slots.close()
}

/** Frees this thread's lent view blocks of arena `id`, if it has any. @internal */
export function flushViewSlots(id: number): void {
  slotTables.get(id)?.flush()
}

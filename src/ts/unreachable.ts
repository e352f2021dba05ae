// Hand-outs nobody can reach any more, reclaimed without waiting for the event loop. @internal
//
// Node runs external-buffer finalizers and FinalizationRegistry callbacks at a later
// event-loop turn, so code that drops buffers without freeing them in a loop that never
// yields would exhaust the arena. So an exclusive buffer or view that outlives its turn
// (or a burst of them) enters the addon's weak table (src/weak.rs): a weak reference the
// GC clears when it collects the object, and a sweep after the GC frees the block. The
// arena makes GCs happen as Buffer.alloc's memory does: it counts the bytes handed out and
// not freed since the last look (its *pressure*), and past PRESSURE_BYTES without a GC in
// between it runs a minor GC itself (V8 runs one for Buffer.alloc's young backing stores);
// at exhaustion, a full GC.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import type { Exclusive } from './exclusive-state.js'
import { ExclusiveMark, ViewMark } from './marks.js'
import { native } from './native.js'
import type { ViewSlots } from './view-slots.js'

// Entering the weak table costs ~100–200 ns (a Node-API reference, deleted later), several
// views' worth and a sixth of an exclusive buffer, so a new hand-out is first only
// remembered in a *pending* list (its place kept in its slot or state); at the next
// event-loop turn, after PENDING_MAX hand-outs or after PENDING_BYTES of them, the ones
// still live enter the table. A hand-out freed in the same turn leaves the list at once.
// The lists are new arrays after every flush, so they stay young: storing a new view in an
// old array would cost an old-to-new write barrier (about 8 ns per view).
const PENDING_MAX = 4096
/**
 * Bytes of pending hand-outs past which the next one makes them all enter the table (a loop
 * of big ones that never yields).
 */
const PENDING_BYTES = 8 << 20
let pendingViews: (ArrayBufferView | undefined)[] = new Array(PENDING_MAX)
let pendingCount = 0
let pendingExclusive: (Exclusive | undefined)[] = new Array(PENDING_MAX)
let pendingExclusiveCount = 0
/** Bytes of the pending exclusive hand-outs. */
let pendingExclusiveBytes = 0
/**
 * Bytes of new view blocks (from the allocator, not recycled) since the pending views were
 * last taken: a loop of views that are never freed gets every block new. Counted off the
 * fast path (a recycled view is not counted, a freed one not subtracted).
 */
let newViewBytes = 0
let flushScheduled = false

function scheduleFlush(): void {
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flushPending).unref()
  }
}

// Bytes of views in the table are reported to V8 as external memory (in steps of at least
// 1 MiB), so garbage views trigger GCs like garbage ArrayBuffers do.
const EXTERNAL_STEP = 1 << 20
let externalPending = 0
function reportExternal(delta: number): void {
  externalPending += delta
  if (externalPending >= EXTERNAL_STEP || externalPending <= -EXTERNAL_STEP) {
    native.adjustExternalMemory(externalPending)
    externalPending = 0
  }
}

/** Held for a view in the table: its slot table, slot, mark at hand-out and bytes. */
type Held = [ViewSlots, number, number, number]
/** By weak-table entry index. */
const held: (Held | undefined)[] = []

// Only if the addon cannot make a weak reference (it never could so far): reclaimed at a
// later event-loop turn instead.
const fallbackReclaimer = new FinalizationRegistry<Held>(([slots, slot, mark, bytes]) => {
  if (slots.reclaim(slot, mark)) reportExternal(-bytes)
})

/**
 * Reclaims the views the native weak table found collected (a late entry, whose slot was
 * freed and handed out again since, finds the mark moved on and frees nothing).
 */
export function reclaimDeadViews(): void {
  if (native.deadViewCount() === 0) return
  for (const index of native.takeDeadViews()) {
    const h = held[index]
    held[index] = undefined
    if (h?.[0].reclaim(h[1], h[2])) {
      reportExternal(-h[3])
      reclaimedViewBytes += h[3]
    }
  }
}

/** Bytes of views reclaimed since {@link takeReclaimed} last read it. */
let reclaimedViewBytes = 0

/** Bytes of hand-outs (views and exclusive buffers) reclaimed since the last call. */
function takeReclaimed(): number {
  const views = reclaimedViewBytes
  reclaimedViewBytes = 0
  return views + native.takeReclaimedBytes()
}

/** The live views of the pending list, which is emptied (a new, young array). */
function takeLivePending(): ArrayBufferView[] {
  const views = pendingViews
  const count = pendingCount
  pendingViews = new Array(PENDING_MAX)
  pendingCount = 0
  newViewBytes = 0
  const live: ArrayBufferView[] = []
  for (let i = 0; i < count; i++) {
    const view = views[i]
    if (view === undefined) continue
    const slots = ViewMark.slotsOf(view) as ViewSlots
    const slot = ViewMark.slotIn(view, slots)
    if (slot >= 0 && slots.registered[slot] === 0) live.push(view)
  }
  return live
}

function register(view: ArrayBufferView): void {
  const slots = ViewMark.slotsOf(view) as ViewSlots
  const slot = ViewMark.slot(view)
  const bytes = slots.bytes[slot]
  const entry: Held = [slots, slot, ViewMark.mark(view), bytes]
  const index = native.trackView(view, bytes)
  if (index >= 0) held[index] = entry
  else fallbackReclaimer.register(view, entry, view)
  slots.reclaimAt[slot] = index
  slots.registered[slot] = 1
  reportExternal(bytes)
  pressure += bytes
}

function registerAll(views: ArrayBufferView[]): void {
  for (const view of views) register(view)
  views.length = 0 // a GC `addPressure` runs must be free to collect them
  reclaimDeadViews()
  addPressure(0)
}

/** At the end of a turn: every pending hand-out still live enters the weak table. */
function flushPending(): void {
  flushScheduled = false
  registerAll(takeLivePending())
  registerPendingExclusive()
}

/**
 * The list is full in the middle of a turn: its live views go back in it, to be registered
 * at the end of the turn (most of a burst of live views is freed before then, and a
 * registration plus its unregistration cost ~300 ns), unless they fill half of it: then
 * they are registered now, so a loop that never frees nor yields holds no more than that.
 */
function flushEarly(): void {
  const live = takeLivePending()
  if (live.length > PENDING_MAX / 2) {
    registerAll(live)
    return
  }
  for (const view of live) {
    const slots = ViewMark.slotsOf(view) as ViewSlots
    const slot = ViewMark.slot(view)
    slots.reclaimAt[slot] = pendingCount
    pendingViews[pendingCount++] = view
  }
}

/** A view just handed out (and marked) in `slots`' slot `slot`: reclaimed by GC if it is never freed. */
export function rememberView(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
  const n = pendingCount
  slots.reclaimAt[slot] = n
  pendingViews[n] = view
  pendingCount = n + 1
  if (n === 0) {
    scheduleFlush()
  } else if (n + 1 === PENDING_MAX) {
    flushEarly()
  }
}

/**
 * A view block of `bytes` just came from the allocator (its view is made next). Past
 * PENDING_BYTES of them since the pending views were last taken, the pending hand-outs
 * enter the weak table (the bytes before this one count: a single big view freed at once
 * never does).
 */
export function noteNewViewBlock(bytes: number): void {
  const before = newViewBytes
  newViewBytes = before + bytes
  if (before >= PENDING_BYTES) {
    registerPendingViews()
    registerPendingExclusive()
  }
}

/** Registers the pending views now (before a forced GC: a pending view is held strongly). */
function registerPendingViews(): void {
  if (pendingCount > 0) registerAll(takeLivePending())
}

/**
 * Every pending exclusive hand-out still live enters the weak table: still live and
 * attached (one detached by something else, e.g. `ArrayBuffer.prototype.transfer`, moved
 * its memory to another buffer, and is left to the finalizer). The list is emptied.
 */
function registerPendingExclusive(): void {
  const states = pendingExclusive
  const count = pendingExclusiveCount
  if (count === 0) return
  pendingExclusive = new Array(PENDING_MAX)
  pendingExclusiveCount = 0
  for (let i = 0; i < count; i++) {
    const state = states[i]
    if (state === undefined) continue
    states[i] = undefined // a GC `addPressure` runs must be free to collect it
    pendingExclusiveBytes -= state.byteLength
    state.pendingAt = -1
    if (state.live && state.buffer.byteLength === state.byteLength) {
      native.trackExclusive(state.buffer, state.arena, state.generation)
    }
  }
  addPressure(0)
}

/** An exclusive hand-out just made (alloc, array, receive): reclaimed by GC if it is never freed. */
export function rememberExclusive(state: Exclusive): void {
  if (!transferGuarded) guardTransfer()
  const n = pendingExclusiveCount
  state.pendingAt = n
  pendingExclusive[n] = state
  pendingExclusiveCount = n + 1
  const before = pendingExclusiveBytes
  pendingExclusiveBytes = before + state.byteLength
  pressure += state.byteLength
  if (n === 0) scheduleFlush()
  else if (before >= PENDING_BYTES || n + 1 === PENDING_MAX) {
    registerPendingExclusive()
    registerPendingViews()
  }
}

/** An exclusive hand-out freed or handed off: no longer to be reclaimed by GC. */
export function forgetExclusive(state: Exclusive): void {
  pressure -= state.byteLength
  const at = state.pendingAt
  if (at >= 0 && at < pendingExclusiveCount && pendingExclusive[at] === state) {
    pendingExclusive[at] = undefined
    pendingExclusiveBytes -= state.byteLength
  }
  state.pendingAt = -1
}

/**
 * A live view about to be freed or handed off: no longer to be reclaimed by GC. A view
 * still in the pending list leaves it (no reference is kept to a freed view).
 */
export function forgetView(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
  if (slots.registered[slot] === 0) {
    const at = slots.reclaimAt[slot]
    if (at < pendingCount && pendingViews[at] === view) pendingViews[at] = undefined
    return
  }
  slots.registered[slot] = 0
  const index = slots.reclaimAt[slot]
  if (index >= 0) {
    native.untrack(index)
    held[index] = undefined
  } else {
    fallbackReclaimer.unregister(view)
  }
  reportExternal(-slots.bytes[slot])
  pressure -= slots.bytes[slot]
}

let gc: (() => void) | null | undefined

/**
 * `globalThis.gc` under `--expose-gc`; otherwise V8's gc function, taken once from a new
 * context made while the `--expose-gc` flag is set (and cleared right after, so no other
 * context gets a `gc` global); `null` if neither works.
 */
function obtainGc(): (() => void) | null {
  const global = (globalThis as { gc?: unknown }).gc
  if (typeof global === 'function') return global as () => void
  try {
    setFlagsFromString('--expose-gc')
    try {
      const fn: unknown = runInNewContext('gc')
      return typeof fn === 'function' ? (fn as () => void) : null
    } finally {
      setFlagsFromString('--no-expose-gc')
    }
  } catch {
    return null
  }
}

/** Runs a synchronous GC (a minor one: young objects only); false if this runtime offers none. */
function collectGarbage(minor: boolean): boolean {
  if (gc === undefined) gc = obtainGc()
  if (gc === null) return false
  if (minor) (gc as (options: object) => void)({ type: 'minor', execution: 'sync' })
  else gc()
  return true
}

/**
 * Frees the hand-outs found collected: every time when `always`, else only if a GC ran
 * since the last look (cheap enough to run before every `stats()`). False if it did not
 * look.
 */
export function sweepUnreachable(always: boolean): boolean {
  const waiting = native.sweepUnreachable(always ? 1 : 0)
  if (waiting > 0) reclaimDeadViews()
  return waiting >= 0
}

/**
 * The arena is out of memory: every unreachable hand-out goes back before it gives up
 * (pending views enter the weak table, a full GC runs, the table is swept).
 */
export function reclaimByGc(): void {
  registerPendingViews()
  registerPendingExclusive()
  collectGarbage(false)
  sweepUnreachable(true)
  pressure = 0
}

/** Bytes handed out and not freed since the last look, past which the arena looks. */
const PRESSURE_BYTES = 16 << 20
let pressure = 0
/**
 * Bytes the looks (and the minor GCs they ran) did not get back, past which the next look
 * runs a full GC: V8 runs one for about every 64 MiB of external memory growth too.
 */
const FULL_GC_BYTES = 64 << 20
let unrelieved = 0

/**
 * `bytes` handed out (exclusive buffers, views entering the weak table) or, negative,
 * freed or handed off. Past PRESSURE_BYTES the arena sweeps what GCs found since the last
 * look, and runs a minor GC first if none ran; what that did not give back accumulates,
 * and past FULL_GC_BYTES it runs a full GC (Node's external buffers outlive minor GCs):
 * memory dropped without `free` comes back about as soon as Buffer.alloc's would.
 */
function addPressure(bytes: number): void {
  pressure += bytes
  if (pressure < PRESSURE_BYTES) return
  const owed = pressure
  pressure = 0
  // What came back since the last look (sweeps after V8's own GCs included) counts.
  if (!sweepUnreachable(false)) {
    registerPendingViews()
    registerPendingExclusive()
    collectGarbage(true)
    sweepUnreachable(true)
  }
  unrelieved += Math.max(0, owed - takeReclaimed())
  if (unrelieved < FULL_GC_BYTES) return
  unrelieved = 0
  registerPendingViews()
  registerPendingExclusive()
  collectGarbage(false)
  sweepUnreachable(true)
  takeReclaimed()
}

let transferGuarded = false

/**
 * `ArrayBuffer.prototype.transfer` (and `transferToFixedLength`) moves a buffer's memory to
 * a new ArrayBuffer the arena does not know: after that, the old exclusive buffer dying
 * says nothing about the block, which the new buffer still reaches. Installed before the
 * first exclusive hand-out of this thread, the guard tells the addon first, which then
 * leaves the block to the finalizer (it runs when the new buffer dies). Every other
 * ArrayBuffer goes straight through to the original method.
 */
function guardTransfer(): void {
  transferGuarded = true
  const proto = ArrayBuffer.prototype as unknown as Record<string, unknown>
  for (const name of ['transfer', 'transferToFixedLength']) {
    const original = proto[name]
    if (typeof original !== 'function') continue
    const guarded = {
      [name](this: unknown, ...args: unknown[]): unknown {
        if (typeof this === 'object' && this !== null) {
          const state = ExclusiveMark.stateOf(this)
          if (state?.live && state.buffer === this) {
            native.markMoved(state.buffer, state.generation)
          }
        }
        return Reflect.apply(original, this, args)
      },
    }[name]
    Object.defineProperty(proto, name, { value: guarded, writable: true, enumerable: false, configurable: true })
  }
}

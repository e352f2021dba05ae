// Reclaiming views that are never freed. @internal
import { ViewMark } from './marks.js'
import { native } from './native.js'
import type { ViewSlots } from './view-slots.js'

// Registering every view with a FinalizationRegistry costs ~280 ns, ten times a view. So a
// new view is only remembered in a list (its position kept in its slot); at the next
// event-loop turn (or after PENDING_MAX views) the ones still live are registered. A view
// freed in the same turn leaves the list at once, so it dies young.
// The list is a new array after every flush, so it stays young: storing a new view in an
// old array would cost an old-to-new write barrier (about 8 ns per view).
const PENDING_MAX = 4096
let pendingViews: (ArrayBufferView | undefined)[] = new Array(PENDING_MAX)
let pendingCount = 0
let flushScheduled = false

// Bytes of views registered for reclaim are reported to V8 as external memory (in steps of
// at least 1 MiB), so garbage views trigger GCs like garbage ArrayBuffers do.
const EXTERNAL_STEP = 1 << 20
let externalPending = 0
function reportExternal(delta: number): void {
  externalPending += delta
  if (externalPending >= EXTERNAL_STEP || externalPending <= -EXTERNAL_STEP) {
    native.adjustExternalMemory(externalPending)
    externalPending = 0
  }
}

/** Held for a registered view: its slot table, slot, mark at hand-out and bytes. */
type Held = [ViewSlots, number, number, number]

// A late callback (the slot was freed and handed out again since) finds the mark moved on
// and frees nothing.
const viewReclaimer = new FinalizationRegistry<Held>(([slots, slot, mark, bytes]) => {
  slots.reclaim(slot, mark)
  reportExternal(-bytes)
})

/** The live views of the pending list, which is emptied (a new, young array). */
function takeLivePending(): ArrayBufferView[] {
  const views = pendingViews
  const count = pendingCount
  pendingViews = new Array(PENDING_MAX)
  pendingCount = 0
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
  viewReclaimer.register(view, [slots, slot, ViewMark.mark(view), bytes], view)
  slots.registered[slot] = 1
  reportExternal(bytes)
}

/** At the end of a turn: registers every view still live. */
function flushPendingViews(): void {
  flushScheduled = false
  for (const view of takeLivePending()) register(view)
}

/**
 * The list is full in the middle of a turn: its live views go back in it, to be registered
 * at the end of the turn (most of a burst of live views is freed before then, and a
 * registration plus its unregistration cost ~500 ns), unless they fill half of it: then
 * they are registered now, so a loop that never frees nor yields holds no more than that.
 */
function flushEarly(): void {
  const live = takeLivePending()
  if (live.length > PENDING_MAX / 2) {
    for (const view of live) register(view)
    return
  }
  for (const view of live) {
    const slots = ViewMark.slotsOf(view) as ViewSlots
    slots.pendingAt[ViewMark.slot(view)] = pendingCount
    pendingViews[pendingCount++] = view
  }
}

/** A view just handed out (and marked) in `slots`' slot `slot`: reclaimed by GC if it is never freed. */
export function rememberView(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
  const n = pendingCount
  slots.pendingAt[slot] = n
  pendingViews[n] = view
  pendingCount = n + 1
  if (n === 0) {
    if (!flushScheduled) {
      flushScheduled = true
      setImmediate(flushPendingViews).unref()
    }
  } else if (n + 1 === PENDING_MAX) {
    flushEarly()
  }
}

/**
 * A live view about to be freed or handed off: no longer to be reclaimed by GC. A view
 * still in the pending list leaves it (no reference is kept to a freed view).
 */
export function forgetView(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
  if (slots.registered[slot] === 0) {
    const at = slots.pendingAt[slot]
    if (at < pendingCount && pendingViews[at] === view) pendingViews[at] = undefined
    return
  }
  slots.registered[slot] = 0
  if (viewReclaimer.unregister(view)) reportExternal(-slots.bytes[slot])
}

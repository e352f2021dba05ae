// Reclaiming views that are never freed. @internal
import { ViewMark } from './marks.js'
import { native } from './native.js'
import type { ViewSlots } from './view-slots.js'

// Registering every view with a FinalizationRegistry costs ~280 ns, ten times a view. So a
// new view is only remembered; at the next event-loop turn (or after PENDING_MAX views),
// the ones still live are registered. A view freed in the same turn never pays for it.
const PENDING_MAX = 4096
const pendingViews: (ArrayBufferView | undefined)[] = []
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

function flushPendingViews(): void {
  flushScheduled = false
  for (let i = 0; i < pendingCount; i++) {
    const view = pendingViews[i]
    if (view === undefined) continue
    const slots = ViewMark.slotsOf(view) as ViewSlots
    const slot = ViewMark.slotIn(view, slots)
    if (slot >= 0) {
      const bytes = slots.bytes[slot]
      viewReclaimer.register(view, [slots, slot, ViewMark.mark(view), bytes], view)
      slots.registered[slot] = 1
      reportExternal(bytes)
    }
  }
  pendingViews.fill(undefined, 0, pendingCount)
  pendingCount = 0
}

/** A view just handed out (and marked) in `slots`' slot `slot`: reclaimed by GC if it is never freed. */
export function rememberView(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
  slots.pendingAt[slot] = pendingCount
  pendingViews[pendingCount] = view
  if (++pendingCount >= PENDING_MAX) {
    flushPendingViews()
  } else if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flushPendingViews).unref()
  }
}

/**
 * A live view about to be freed or handed off: no longer to be reclaimed. A view still in
 * the pending list leaves it at once, so a view freed in the turn it was made is garbage
 * as soon as the caller drops it (it dies young instead of surviving until the flush).
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

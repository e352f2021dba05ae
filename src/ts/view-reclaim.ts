// Reclaiming views that are never freed. @internal
import { native } from './native.js'
import { FREED, REGISTERED, STATE, type Tagged } from './tags.js'

// ---- reclaiming views that are never freed ----------------------------------------------
// Registering every view with a FinalizationRegistry costs ~280 ns, ten times a view. So a
// new view is only remembered; at the next event-loop turn (or after PENDING_MAX views),
// the ones still live are registered. A view freed in the same turn never pays for it.
const PENDING_MAX = 4096
const pendingViews: (ArrayBufferView | undefined)[] = []
const pendingArenas: number[] = []
const pendingOffsets: number[] = []
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

const viewReclaimer = new FinalizationRegistry<[number, number, number, number]>(
  ([arena, offset, generation, byteLength]) => {
    native.viewFree(arena, offset, generation)
    reportExternal(-byteLength)
  },
)

function flushPendingViews(): void {
  flushScheduled = false
  for (let i = 0; i < pendingCount; i++) {
    const view = pendingViews[i] as ArrayBufferView & Tagged
    pendingViews[i] = undefined
    const generation = view[STATE]
    if (typeof generation === 'number' && generation !== FREED) {
      viewReclaimer.register(view, [pendingArenas[i], pendingOffsets[i], generation, view.byteLength], view)
      view[REGISTERED] = true
      reportExternal(view.byteLength)
    }
  }
  pendingCount = 0
}

/** A view just handed out at arena `offset`: reclaimed by GC if it is never freed. */
export function rememberView(view: ArrayBufferView, arena: number, offset: number): void {
  pendingViews[pendingCount] = view
  pendingArenas[pendingCount] = arena
  pendingOffsets[pendingCount] = offset
  if (++pendingCount >= PENDING_MAX) {
    flushPendingViews()
  } else if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flushPendingViews).unref()
  }
}

/** A view just freed or handed off: no longer to be reclaimed by GC. */
export function forgetView(view: ArrayBufferView & Tagged): void {
  if (view[REGISTERED] === true && viewReclaimer.unregister(view)) reportExternal(-view.byteLength)
}

// What keeps an arena alive in this thread, and what happens when its last object goes. @internal
import { native } from './native.js'
import { sweepUnreachable } from './unreachable.js'
import { closeViewSlots } from './view-slots.js'

/**
 * This thread's `Arena` object for each shared arena id, held weakly: a shared arena lives
 * while any thread's object for it does.
 */
const sharedArenas = new Map<number, WeakRef<object>>()

/** This thread's live `Arena` object for shared arena `id`, if any. */
export function liveShared(id: number): object | undefined {
  return sharedArenas.get(id)?.deref()
}

/**
 * An `Arena` object was collected: it gives back its hold on the arena (the arena leaves
 * the registry, and every thread drops its state for it, when no thread's object for it
 * is left). Unless this thread made a new object for the same shared arena meanwhile, the
 * thread's view slots for it are closed (kept view blocks freed, windows let go). Buffers
 * and views still reachable keep the arena's memory mapped and keep working.
 */
function arenaCollected(id: number): void {
  // The GC that collected the object may have collected its hand-outs too: their blocks
  // go back first (through this thread's cache, while it still has one for the arena).
  sweepUnreachable(true)
  if (liveShared(id) !== undefined) {
    native.arenaRelease(id)
    return
  }
  sharedArenas.delete(id)
  closeViewSlots(id)
  native.arenaRelease(id)
}

const arenaReclaimer = new FinalizationRegistry<number>(arenaCollected)

/** `arena` holds arena `id` (one hold per object) until it is collected. */
export function watchArena(arena: object, id: number): void {
  arenaReclaimer.register(arena, id)
}

/** `arena` is this thread's object for shared arena `id` (held weakly), and holds it. */
export function rememberShared(id: number, arena: object): void {
  sharedArenas.set(id, new WeakRef(arena))
  watchArena(arena, id)
}

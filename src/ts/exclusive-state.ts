// What an exclusive hand-out (`alloc`, `array`, `receive` of one) knows about itself. @internal
import { ExclusiveMark } from './marks.js'
import { rememberExclusive } from './unreachable.js'

/** State of an exclusive hand-out, shared by its ArrayBuffer and (for `array`) its typed array. */
export interface Exclusive {
  readonly arena: number
  readonly offset: number
  readonly generation: number
  readonly buffer: ArrayBuffer
  /** `buffer.byteLength` at hand-out: differs once something else detached the buffer. */
  readonly byteLength: number
  live: boolean
  /** Its place in the pending-reclaim list (unreachable.ts) until it enters the weak table; -1 after. */
  pendingAt: number
}

/**
 * The state of a new exclusive hand-out of arena `arena` (block at `offset`, hand-out
 * `generation`) over `buffer`: stamped on the buffer, and remembered for GC reclaim.
 */
export function exclusiveHandOut(
  arena: number,
  offset: number,
  generation: number,
  buffer: ArrayBuffer,
  byteLength: number,
): Exclusive {
  const state: Exclusive = { arena, offset, generation, buffer, byteLength, live: true, pendingAt: -1 }
  ExclusiveMark.stamp(buffer, state)
  rememberExclusive(state)
  return state
}

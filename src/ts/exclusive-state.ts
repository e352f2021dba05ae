// Private tags on the objects an arena hands out. @internal

/** Hand-out state, under a private symbol on every object the arena returns. */
export const STATE = Symbol('tensor-arena.state')
/** Set on a view registered for GC reclaim. */
export const REGISTERED = Symbol('tensor-arena.registered')
/** A view's STATE after it was freed. */
export const FREED = -1

/** State of an exclusive hand-out, shared by its ArrayBuffer and (for `array`) its typed array. */
export interface Exclusive {
  readonly arena: number
  readonly offset: number
  readonly generation: number
  readonly buffer: ArrayBuffer
  /** `buffer.byteLength` at hand-out: differs once something else detached the buffer. */
  readonly byteLength: number
  live: boolean
}

export type Tagged = { [STATE]?: number | Exclusive; [REGISTERED]?: true }

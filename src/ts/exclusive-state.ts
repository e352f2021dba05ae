// What an exclusive hand-out (`alloc`, `array`, `receive` of one) knows about itself. @internal

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

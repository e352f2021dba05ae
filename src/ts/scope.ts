// Scopes: the hand-outs an arena makes while a scope runs are freed when it settles.
import { AsyncLocalStorage } from 'node:async_hooks'

import type { Arena } from './arena.js'
import { invalidArgType } from './errors.js'
import type { Exclusive } from './exclusive-state.js'
import { ExclusiveMark } from './marks.js'

/**
 * What a scope hands to its function: `keep(value)` exempts every allocation in `value`
 * (an allocation, or an array, plain object, Map or Set holding some, nested up to
 * {@link SCOPE_WALK_DEPTH} levels) from every scope, so no scope frees it: it is yours to
 * free (or the garbage collector's). Returns `value`.
 *
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `value` is not an object.
 */
export type Keep = <T>(value: T) => T

/**
 * How deep a scope looks into what its function returns (and into what is passed to
 * `keep`): the value itself is level 0, the elements of a returned array level 1, and so
 * on. An allocation nested deeper is not seen, so it is freed.
 */
export const SCOPE_WALK_DEPTH = 16

/** An open or settled scope: its arena, the scope it was opened in, what it handed out. */
interface Frame {
  readonly arena: Arena
  readonly parent: Frame | undefined
  /** Hand-outs of `arena` made in the scope, as returned to the caller. */
  readonly items: object[]
  /** Whether the scope's function is an async function (its frame lives in `storage`). */
  readonly async: boolean
  open: boolean
}

/** Open frames (the hand-out hook does nothing while 0) and open async frames. */
const counts = { open: 0, async: 0 }
/** The frame of the scope whose synchronous part runs now (microtasks never see one). */
let syncTop: Frame | undefined
/** The frame of the async scope a continuation belongs to; made on the first async scope. */
let storage: AsyncLocalStorage<Frame> | undefined
/** Turns `storage` off a while after the last async scope settled (see `asyncClosed`). */
let idleTimer: NodeJS.Timeout | undefined
/** Keys (views, exclusive states) passed to `keep`: no scope frees them. */
const kept = new WeakSet<object>()

const AsyncFunction = (async () => {}).constructor

/**
 * `handOut`, recorded in the innermost open scope of `arena` this code runs in, if any.
 * On the view path: one property read and compare when no scope is open. @internal
 */
export function track<T>(arena: Arena, handOut: T): T {
  if (counts.open !== 0) record(arena, handOut as object)
  return handOut
}

function current(): Frame | undefined {
  if (syncTop !== undefined) return syncTop
  return counts.async !== 0 ? storage?.getStore() : undefined
}

/** The innermost open frame of `arena` from `frame` outwards. */
function openFrameOf(frame: Frame | undefined, arena: Arena): Frame | undefined {
  let f = frame
  while (f !== undefined && !(f.open && f.arena === arena)) f = f.parent
  return f
}

function record(arena: Arena, handOut: object): void {
  openFrameOf(current(), arena)?.items.push(handOut)
}

/** What identifies an allocation: an exclusive hand-out's state (shared by its array and buffer), else the view. */
function keyOf(allocation: object): object {
  return ExclusiveMark.stateOf(allocation) ?? allocation
}

/**
 * Calls `visit` with the key of every allocation in `value` (see {@link Keep}) until it
 * returns true. Cycles and shared objects are visited once.
 */
function walk(value: unknown, visit: (key: object) => boolean): void {
  if (typeof value !== 'object' || value === null) return
  const seen = new Set<object>()
  const stack: [object, number][] = [[value, 0]]
  const push = (child: unknown, depth: number) => {
    if (typeof child === 'object' && child !== null && !seen.has(child)) stack.push([child, depth])
  }
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top
    if (seen.has(v)) continue
    seen.add(v)
    if (ArrayBuffer.isView(v)) {
      // The view itself, an exclusive array's state, or (a subarray or DataView of an
      // exclusive buffer) the state of its buffer.
      if (visit(v)) return
      const state = ExclusiveMark.stateOf(v) ?? ExclusiveMark.stateOf(v.buffer)
      if (state !== undefined && visit(state)) return
      continue
    }
    if (v instanceof ArrayBuffer) {
      const state = ExclusiveMark.stateOf(v)
      if (state !== undefined && visit(state)) return
      continue
    }
    if (depth >= SCOPE_WALK_DEPTH) continue
    if (Array.isArray(v)) for (const x of v) push(x, depth + 1)
    else if (v instanceof Map) for (const x of v.values()) push(x, depth + 1)
    else if (v instanceof Set) for (const x of v) push(x, depth + 1)
    else for (const x of Object.values(v)) push(x, depth + 1)
  }
}

/** The keys of `items` that `value` holds (see {@link Keep}); stops once all are found. */
function returnedKeys(value: unknown, items: object[]): Set<object> {
  const wanted = new Set<object>()
  for (const x of items) wanted.add(keyOf(x))
  const found = new Set<object>()
  walk(value, (key) => {
    if (wanted.has(key)) found.add(key)
    return found.size === wanted.size
  })
  return found
}

/** {@link Keep}: the `keep` every scope hands to its function. */
function keep<T>(value: T): T {
  if (typeof value !== 'object' || value === null) {
    throw invalidArgType('value', 'an allocation, or an array or object holding allocations', value)
  }
  walk(value, (key) => {
    kept.add(key)
    return false
  })
  return value
}

/**
 * Frees `allocation` (`state`: its exclusive state, or undefined for a view) unless it was
 * freed, handed off or moved out already.
 */
function release(arena: Arena, allocation: object, state: Exclusive | undefined): void {
  if (state === undefined) {
    if (!arena.owns(allocation)) return // a view freed, transferred or reclaimed already
  } else if (!state.live || state.buffer.byteLength !== state.byteLength) {
    // Freed or transferred, or detached outside the arena (ArrayBuffer.prototype.transfer):
    // then it is returned when the buffer it moved to is collected.
    return
  }
  arena.free(allocation as ArrayBuffer)
}

function asyncOpened(): AsyncLocalStorage<Frame> {
  counts.async++
  storage ??= new AsyncLocalStorage<Frame>()
  return storage
}

/**
 * On Node 20 an enabled AsyncLocalStorage slows every promise of the process (promise
 * hooks), and turning it on costs ~5 µs: it is turned off 100 ms after the last async scope
 * settled, unless another one opened meanwhile.
 */
function asyncClosed(): void {
  counts.async--
  if (counts.async === 0 && idleTimer === undefined) {
    idleTimer = setTimeout(() => {
      idleTimer = undefined
      if (counts.async === 0) storage?.disable()
    }, 100).unref()
  }
}

/**
 * Settles `frame`: what `value` holds moves to the enclosing open scope of the arena (or
 * out of all scopes), kept allocations stay, the rest is freed. After a throw
 * (`threw`), everything but kept allocations is freed and `error` rethrown.
 */
function close(frame: Frame, value: unknown, threw: boolean, error?: unknown): void {
  frame.open = false
  counts.open--
  if (frame.async) asyncClosed()
  const items = frame.items
  if (items.length === 0) {
    if (threw) throw error
    return
  }
  // A primitive (or nothing) returned holds no allocation: nothing to walk.
  const escaping = threw || typeof value !== 'object' || value === null ? undefined : returnedKeys(value, items)
  const outer = openFrameOf(frame.parent, frame.arena)
  let failure: unknown
  let failed = false
  for (const allocation of items) {
    const state = ExclusiveMark.stateOf(allocation)
    const key = state ?? allocation
    if (kept.has(key)) continue
    if (escaping?.has(key) === true) {
      outer?.items.push(allocation)
      continue
    }
    try {
      release(frame.arena, allocation, state)
    } catch (freeError) {
      if (!failed) failure = freeError
      failed = true
    }
  }
  if (threw) throw error
  if (failed) throw failure
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

/** `arena.scope(fn)` (see the README's "Scopes"). @internal */
export function runScope<T>(arena: Arena, fn: (keep: Keep) => T): T {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn)
  const isAsync = fn instanceof AsyncFunction
  const frame: Frame = { arena, parent: current(), items: [], async: isAsync, open: true }
  counts.open++
  const outerTop = syncTop
  syncTop = frame
  let result: T
  try {
    result = isAsync ? asyncOpened().run(frame, fn, keep) : fn(keep)
  } catch (error) {
    syncTop = outerTop
    close(frame, undefined, true, error)
    throw error // close rethrows; this line only tells the compiler
  }
  syncTop = outerTop
  if (!isThenable(result)) {
    close(frame, result, false)
    return result
  }
  return Promise.resolve(result).then(
    (value) => {
      close(frame, value, false)
      return value
    },
    (error: unknown) => close(frame, undefined, true, error),
  ) as T
}

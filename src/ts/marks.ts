// Marks on what an arena hands out, kept in #private fields. @internal
import type { Exclusive } from './exclusive-state.js'
import type { ViewSlots } from './view-slots.js'

/**
 * A base class whose constructor returns its argument: a subclass constructed over an
 * object installs its #private fields on that object, not on a new one. So marks are not
 * properties: they cannot be read, forged or overwritten by users, never collide with
 * user properties, survive `Object.freeze` (they are added when the object is made, and a
 * frozen object's private fields stay writable), and a `Proxy` of a marked object or an
 * object inheriting from one has none. `value.constructor` stays the plain class.
 */
class Identity {
  constructor(target: object) {
    // biome-ignore lint/correctness/noConstructorReturn: the point of the class
    return target
  }
}

/** {@link ViewMark.slotIn}: not a view at all (maybe an exclusive hand-out). */
export const NOT_A_VIEW = -1
/** {@link ViewMark.slotIn}: a view of another arena or thread. */
export const OTHER_VIEW = -2
/** {@link ViewMark.slotIn}: a view already freed, handed off or reclaimed. */
export const STALE_VIEW = -3

/**
 * The mark of a view: the slot table of the (thread, arena) that made it, its slot and
 * the slot's mark at hand-out. The view is live while `slots.marks[slot] === mark`; any
 * free, hand-off or reclaim bumps the slot's mark, so every older view of the slot (and
 * every late finalizer) is recognised as stale.
 * @internal
 */
export class ViewMark extends Identity {
  #slots: ViewSlots
  #slot: number
  #mark: number

  private constructor(view: ArrayBufferView, slots: ViewSlots, slot: number) {
    super(view)
    this.#slots = slots
    this.#slot = slot
    this.#mark = slots.marks[slot]
  }

  /** Marks a view just made over `slots`' block `slot`. */
  static stamp(view: ArrayBufferView, slots: ViewSlots, slot: number): void {
    new ViewMark(view, slots, slot)
  }

  /**
   * The slot of `value` if it is a live view of `slots`, else {@link NOT_A_VIEW},
   * {@link OTHER_VIEW} or {@link STALE_VIEW}. One brand check (a Proxy or an object
   * inheriting from a view has no brand: not a view).
   */
  static slotIn(value: object, slots: ViewSlots | undefined): number {
    if (!(#slots in value)) return NOT_A_VIEW
    const v = value as ViewMark
    if (v.#slots !== slots) return OTHER_VIEW
    const slot = v.#slot
    return v.#slots.marks[slot] === v.#mark ? slot : STALE_VIEW
  }

  /** The slot table of a marked view, or `undefined` for anything else. */
  static slotsOf(value: object): ViewSlots | undefined {
    return #slots in value ? (value as ViewMark).#slots : undefined
  }

  /** The slot of a marked view (`slotsOf` said it is one). */
  static slot(view: object): number {
    return (view as ViewMark).#slot
  }

  /** The slot's mark the view was handed out with. */
  static mark(view: object): number {
    return (view as ViewMark).#mark
  }
}

/**
 * The mark of an exclusive hand-out: the ArrayBuffer of `alloc` and the typed array of
 * `array` (and that array's buffer) carry the same {@link Exclusive} state.
 * @internal
 */
export class ExclusiveMark extends Identity {
  #state: Exclusive

  private constructor(target: object, state: Exclusive) {
    super(target)
    this.#state = state
  }

  /** Marks an exclusive buffer or the typed array over one. */
  static stamp(target: object, state: Exclusive): void {
    new ExclusiveMark(target, state)
  }

  /** The state of a marked exclusive hand-out, or `undefined` for anything else. */
  static stateOf(value: object): Exclusive | undefined {
    return #state in value ? (value as ExclusiveMark).#state : undefined
  }
}

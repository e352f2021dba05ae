// Making a view over a slot's block: the typed array, its marks, its reclaim. @internal
import type { TypedArrayConstructor } from './dtypes.js'
import { ViewMark } from './marks.js'
import { rememberView } from './unreachable.js'
import type { ViewSlots } from './view-slots.js'
import type { Windows } from './windows.js'

/**
 * `new Ctor(buffer, byteOffset, length)`, with one `new` site per constructor: each site
 * stays monomorphic, so V8 inlines the typed-array allocation even when a program cycles
 * through several dtypes (one shared `new Ctor` site goes generic from the second dtype).
 */
function construct(Ctor: TypedArrayConstructor, buffer: ArrayBuffer, byteOffset: number, length: number): ArrayBufferView {
  switch (Ctor) {
    case Uint8Array:
      return new Uint8Array(buffer, byteOffset, length)
    case Float32Array:
      return new Float32Array(buffer, byteOffset, length)
    case Float64Array:
      return new Float64Array(buffer, byteOffset, length)
    case Int32Array:
      return new Int32Array(buffer, byteOffset, length)
    default:
      return new Ctor(buffer, byteOffset, length)
  }
}

/** Zero-fills a view of `Ctor` (a BigInt array takes `0n`). */
export function zeroFill(view: ArrayBufferView, Ctor: TypedArrayConstructor): void {
  if (Ctor === BigInt64Array || Ctor === BigUint64Array) (view as BigInt64Array).fill(0n)
  else (view as Uint8Array).fill(0)
}

/**
 * The marked, remembered view over live slot `slot` of `slots`: over the window its views
 * were made over last while that is not detached, else through `windows` (which opens or
 * reopens one). If no window can be made, the block goes back and the error is thrown.
 */
export function viewOver<T extends ArrayBufferView>(
  windows: Windows,
  slots: ViewSlots,
  slot: number,
  Ctor: TypedArrayConstructor,
  length: number,
  bytes: number,
): T {
  const window = slots.windows[slot]
  let view: T
  if (window !== undefined && window.byteLength !== 0) {
    view = construct(Ctor, window, slots.within[slot], length) as unknown as T
  } else {
    try {
      view = windows.view<T>(Ctor, slots.offsets[slot], length, bytes)
    } catch (error) {
      slots.release(slot)
      throw error
    }
    slots.windows[slot] = view.buffer as ArrayBuffer
    slots.within[slot] = view.byteOffset
  }
  ViewMark.stamp(view, slots, slot)
  rememberView(view, slots, slot)
  return view
}

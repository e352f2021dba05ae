// This thread's windows onto one arena's memory. @internal
import type { TypedArrayConstructor } from './dtypes.js'
import { AllocatorError, allocatorError, fromNative } from './errors.js'
import { native } from './native.js'

/**
 * The most a view's `.buffer` may expose beyond the view itself: a clone or `postMessage`
 * of a view copies its whole buffer, which is at most max(WINDOW_FLOOR, 2 × byteLength).
 */
const WINDOW_FLOOR = 4 * 1024 * 1024

/**
 * A window's tag, under a symbol on its ArrayBuffer (set once, when it is made): the
 * `Windows` that made it and the arena offset of its first byte. Nothing in the package
 * reads it on a hot path (views carry their slot); it lets tests and debuggers map a view
 * to its arena offset.
 */
const WINDOW = Symbol('tensor-arena.window')

/**
 * This thread's windows onto one arena: external ArrayBuffers over arena memory that
 * views are typed arrays over. A block inside one 4 MiB chunk is viewed through that
 * chunk's window (created on first use, then shared by every view of the chunk); a block
 * that crosses a chunk boundary (blocks above 4 MiB) through a window over the block
 * itself, reused while the same block address comes back with a similar size. So a view's
 * `.buffer` is never more than max(4 MiB, 2 × its byteLength) of arena memory, and arenas
 * of any size work on Node 20 (whose ArrayBuffers stop at 4 GiB).
 * @internal
 */
export class Windows {
  private readonly chunks: (ArrayBuffer | undefined)[] = []
  private readonly blocks = new Map<number, ArrayBuffer>()

  /**
   * @param arena - the arena id.
   * @param chunkSize - bytes of a chunk (the native `CHUNK_SIZE`).
   */
  constructor(
    private readonly arena: number,
    private readonly chunkSize: number,
  ) {}

  /** A typed array of `length` elements over the block at arena `offset` (`bytes` long). */
  view<T extends ArrayBufferView>(Ctor: TypedArrayConstructor, offset: number, length: number, bytes: number): T {
    const chunk = Math.floor(offset / this.chunkSize)
    const within = offset - chunk * this.chunkSize
    if (within + bytes <= this.chunkSize) {
      const window = this.chunks[chunk] ?? this.openChunk(chunk)
      try {
        return new Ctor(window, within, length) as unknown as T
      } catch (error) {
        // Something detached the window (`view.buffer.transfer()`, a transfer list):
        // a new one over the same chunk; views over the old one stay detached.
        if (window.byteLength !== 0) throw error
        return new Ctor(this.openChunk(chunk), within, length) as unknown as T
      }
    }
    return new Ctor(this.blockWindow(offset, bytes), 0, length) as unknown as T
  }

  /** Opens (or finds) the window a view of `bytes` at arena `offset` would use. */
  prepare(offset: number, bytes: number): void {
    const chunk = Math.floor(offset / this.chunkSize)
    if (offset - chunk * this.chunkSize + bytes <= this.chunkSize) {
      if (this.chunks[chunk] === undefined) this.openChunk(chunk)
    } else {
      this.blockWindow(offset, bytes)
    }
  }

  private openChunk(chunk: number): ArrayBuffer {
    const window = this.open(() => native.viewWindow(this.arena, chunk), chunk * this.chunkSize)
    this.chunks[chunk] = window
    return window
  }

  private blockWindow(offset: number, bytes: number): ArrayBuffer {
    const cached = this.blocks.get(offset)
    if (cached !== undefined && cached.byteLength >= bytes && cached.byteLength <= Math.max(WINDOW_FLOOR, 2 * bytes)) {
      return cached
    }
    const window = this.open(() => native.blockWindow(this.arena, offset), offset)
    this.blocks.set(offset, window)
    return window
  }

  private open(create: () => ArrayBuffer, base: number): ArrayBuffer {
    let window: ArrayBuffer
    try {
      window = create()
    } catch (error) {
      const converted = fromNative(error)
      if (converted instanceof AllocatorError) throw converted
      throw allocatorError('ERR_VIEW_UNSUPPORTED', error instanceof Error ? error.message : String(error))
    }
    Object.defineProperty(window, WINDOW, { value: Object.freeze({ windows: this, base }) })
    return window
  }
}

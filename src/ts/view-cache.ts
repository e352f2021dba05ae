import { native } from './native.js'
import { classIndexOf, SIZE_CLASS_BYTES } from './size-class.js'

/**
 * A per-thread, per-arena, per-class stack of recently freed views' blocks, so a steady
 * `view` → `free` cycle never calls into native code (two native calls cost ~70 ns, more
 * than a whole `Buffer.alloc(64)`). A block is reused only for a view of exactly the same
 * byte length (the allocator's record of its size stays exact). The blocks stay allocated
 * in the native allocator (a thread's teardown frees them); `flush()` hands them back and
 * reports the recycled operations to the native counters. `stats()`, `threadCache()`'s
 * `stats()`/`flush()` and any out-of-memory flush first, so stats are exact. A freed view
 * object stays marked freed, so double frees are caught as before.
 * @internal
 */
export class ViewCache {
  /** Per class: offset, generation, byteLength, offset, generation, byteLength, ... */
  private readonly stacks: number[][] = SIZE_CLASS_BYTES.map(() => [])
  private held = 0
  private takes = 0
  private takenBytes = 0
  private puts = 0
  private putBytes = 0
  /** Generation of the block the last successful `take` returned. */
  generation = 0

  constructor(private readonly arena: number) {}

  /** A cached block for a view of `bytes` (its arena offset), or -1. */
  take(bytes: number): number {
    if (this.held === 0) return -1
    const c = classIndexOf(bytes)
    if (c < 0) return -1
    const stack = this.stacks[c]
    const top = stack.length
    if (top === 0 || stack[top - 1] !== bytes) return -1
    const offset = stack[top - 3]
    this.generation = stack[top - 2]
    stack.length = top - 3
    this.held--
    this.takes++
    this.takenBytes += bytes
    return offset
  }

  /** Keeps a freed view's block if its class has room; false: free it natively. */
  put(bytes: number, offset: number, generation: number): boolean {
    const c = classIndexOf(bytes)
    if (c < 0) return false
    const stack = this.stacks[c]
    if (stack.length >= 3 * limits[c]) return false
    stack.push(offset, generation, bytes)
    this.held++
    this.puts++
    this.putBytes += bytes
    return true
  }

  /** Frees every cached block natively and reports the recycled operations. */
  flush(): void {
    if (this.takes === 0 && this.puts === 0) return
    let flushed = 0
    let flushedBytes = 0
    for (const stack of this.stacks) {
      for (let i = 0; i < stack.length; i += 3) {
        native.viewFree(this.arena, stack[i], stack[i + 1])
        flushed++
        flushedBytes += stack[i + 2]
      }
      stack.length = 0
    }
    // A flushed block's native free counts itself; its `put` must not count twice.
    native.recordRecycled(this.arena, this.takes, this.puts - flushed, this.takenBytes, this.putBytes - flushedBytes)
    this.held = this.takes = this.takenBytes = this.puts = this.putBytes = 0
  }
}

/** Blocks kept per class: up to 256 KiB of them, at least 1, at most 64. */
const CLASS_BUDGET = 256 * 1024
const limits = SIZE_CLASS_BYTES.map((bytes) => Math.min(64, Math.max(1, Math.floor(CLASS_BUDGET / bytes))))

const caches = new Map<number, ViewCache>()

/** This thread's view cache for arena `id`. @internal */
export function viewCacheOf(id: number): ViewCache {
  let cache = caches.get(id)
  if (cache === undefined) {
    cache = new ViewCache(id)
    caches.set(id, cache)
  }
  return cache
}

/** Frees this thread's cached view blocks of arena `id`. @internal */
export function flushViewCache(id: number): void {
  caches.get(id)?.flush()
}

import { fromNative } from './errors.js'
import { native } from './native.js'
import { flushViewSlots } from './view-slots.js'
import { type ThreadCacheStats, toThreadCacheStats } from './stats.js'

declare global {
  /**
   * `Symbol.dispose`, which `ThreadCache` implements: the one declaration of TypeScript's
   * `esnext.disposable` lib (and of `@types/node`) these types need, so that they type-check
   * without either. It is the same declaration as theirs, so it merges with them.
   */
  interface SymbolConstructor {
    /** The method `using` calls at scope exit. */
    readonly dispose: unique symbol
  }
}

/**
 * The calling thread's cache for one arena (see `Arena.threadCache()`). Every thread gets
 * one automatically on first use; this handle only inspects and flushes it.
 */
export class ThreadCache {
  private readonly arena: number
  /** The `Arena` object this handle came from: the handle keeps it (so the arena) alive. */
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: held, never read, to keep the arena alive
  private readonly owner: object | undefined

  /** @internal */
  constructor(arena: number, owner?: object) {
    this.arena = arena
    this.owner = owner
  }

  /**
   * Free blocks this thread's cache holds, per size class, including the blocks of freed
   * views it keeps for the next views of their size.
   */
  stats(): ThreadCacheStats {
    try {
      return toThreadCacheStats(native.threadCacheStats(this.arena))
    } catch (error) {
      throw fromNative(error)
    }
  }

  /**
   * Hands every cached block back to the central pool (visible to other threads),
   * including this thread's recently freed views kept for reuse.
   */
  flush(): void {
    try {
      flushViewSlots(this.arena)
      native.threadCacheFlush(this.arena)
    } catch (error) {
      throw fromNative(error)
    }
  }

  /** Flushes the cache: `using cache = arena.threadCache()` flushes at scope exit. */
  [Symbol.dispose](): void {
    this.flush()
  }
}

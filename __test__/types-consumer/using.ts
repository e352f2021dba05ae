// `using` with a thread cache: __test__/published-types.spec.ts type-checks it (as
// using.mts) where the consumer has the esnext.disposable lib, which `using` needs.
import { Arena } from 'tensor-arena'

export function scoped(): number {
  const arena = new Arena({ maxBytes: 1 << 20 })
  using cache = arena.threadCache()
  return cache.stats().classBlocks.length
}

import test from 'ava'

import { Arena } from 'tensor-arena'

const MiB = 1024 * 1024
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

// Views live inside window ArrayBuffers, which V8 counted once each: without reporting the
// bytes of views waiting for reclaim as external memory, a loop of unfreed views filled
// the arena before V8 ever collected: ~1,020 views of 1 MiB exhausted a 1 GiB arena
// (found by the GC-only benchmark case). Keep headroom: GC and FinalizationRegistry
// callbacks run some turns later.
test('unfreed views are reclaimed by V8 on its own: 4 GiB of 1 MiB views through an arena capped at 1 GiB', async (t) => {
  const arena = new Arena({ maxBytes: 1024 * MiB })
  let peak = 0
  for (let i = 0; i < 4096; i++) {
    const view = arena.view('uint8', MiB)
    view[0] = i & 255
    if (i % 16 === 15) {
      await turn()
      peak = Math.max(peak, arena.stats().liveBytes)
    }
  }
  t.true(peak <= 1024 * MiB)
  t.log(`peak live ${Math.round(peak / MiB)} MiB`)
})

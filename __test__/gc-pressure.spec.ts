import test from 'ava'

import { Arena } from 'tensor-arena'

const MiB = 1024 * 1024
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

// Views live inside the window ArrayBuffer, which V8 counted once: without reporting the
// bytes of views waiting for reclaim as external memory, a loop of unfreed views filled
// the arena before V8 ever collected (found by the GC-only benchmark case).
test('unfreed views are reclaimed by V8 on its own: 2 GiB of 1 MiB views through a 256 MiB arena', async (t) => {
  const arena = new Arena({ arenaSize: 256 * MiB })
  let peak = 0
  for (let i = 0; i < 2048; i++) {
    const view = arena.view('uint8', MiB)
    view[0] = i & 255
    if (i % 16 === 15) {
      await turn()
      peak = Math.max(peak, arena.stats().liveBytes)
    }
  }
  t.true(peak <= 256 * MiB)
  t.log(`peak live ${Math.round(peak / MiB)} MiB`)
})

// Regression (issue 13, found by the stress run in scripts/stress): a spent hand-off must be
// refused with ERR_ALREADY_RECEIVED (README, Errors), but receiving a reclaimed view of more
// than 4 MiB in a thread with no window onto its block threw ERR_NOT_OWNED ("blockWindow: no
// live block at that offset"): the view path made the window before it claimed the hand-off,
// and a missing block ended the receive. Now the claim decides the error.
import { Worker } from 'node:worker_threads'
import test from 'ava'
import { Arena, type TransferHandle } from 'tensor-arena'
import { repoRoot } from './helpers'

test('issue 13: receiving a reclaimed view above 4 MiB sent by another thread throws ERR_ALREADY_RECEIVED', async (t) => {
  const name = `spent-view-${process.pid}`
  const arena = Arena.shared(name)
  const source = `const { parentPort } = require('node:worker_threads')
    const { Arena } = require(${JSON.stringify(`${repoRoot}/dist/index.js`)})
    const a = Arena.shared(${JSON.stringify(name)})
    parentPort.postMessage(a.transfer(a.view('float32', 1200000)))`
  const worker = new Worker(source, { eval: true })
  const handle = await new Promise<TransferHandle>((resolve) => worker.once('message', resolve))
  await worker.terminate()
  arena.reclaim(handle)
  const error = t.throws(() => arena.receive(handle))
  t.is((error as { code?: string } | undefined)?.code, 'ERR_ALREADY_RECEIVED')
  t.is(arena.stats().inFlightCount, 0)
})

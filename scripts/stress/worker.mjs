// A stress worker: a stable one (index 1..4, lives the whole run) or a churn worker (a
// slot of the churn pool, terminated mid-work by the main thread).
import { parentPort, workerData } from 'node:worker_threads'
import { EPHEMERAL, OwnerMap, StressFailure, pkg, rng } from './common.mjs'
import { Participant } from './participant.mjs'

const { name, shared, seed, role, index, slot } = workerData
const arena = pkg.Arena.shared(name)
const owners = new OwnerMap(shared, role === 'churn' ? slot : undefined)
const counter = new Int32Array(shared.counter)
const r = rng(seed)
const churn = role === 'churn'
let sequence = 0
const nextId = churn
  ? () => (EPHEMERAL | (slot << 24) | (++sequence & 0xffffff)) >>> 0
  : () => Atomics.add(counter, 0, 1) + 1
const send = churn
  ? (h, id) => parentPort.postMessage({ type: 'send', to: 0, h, id })
  : (h, id) => parentPort.postMessage({ type: 'send', to: r.below(5), h, id })
const me = new Participant(arena, owners, r, nextId, send, churn ? 16 : undefined)
let generating = true

function report(e) {
  // A churn worker that is being terminated may find its own marks taken over: not a failure.
  if (churn && Atomics.load(owners.dying, slot) === 1) return
  const message = e instanceof StressFailure ? e.message : `${e?.code ?? ''} ${e?.stack ?? e}`
  parentPort.postMessage({ type: 'fail', message: `${churn ? `churn worker (slot ${slot})` : `worker ${index}`}: ${message}` })
}

function guarded(fn) {
  try {
    fn()
    return true
  } catch (e) {
    generating = false
    report(e)
    return false
  }
}

parentPort.on('message', (m) => {
  if (m.type === 'handle') guarded(() => me.receive(m.h, m.id))
  else if (m.type === 'quiesce') {
    generating = false
    parentPort.postMessage({ type: 'quiet' })
  } else if (m.type === 'drain') {
    if (guarded(() => me.freeAll())) parentPort.postMessage({ type: 'done', ops: me.ops, total: me.total() })
    parentPort.close()
  }
})

if (churn) parentPort.postMessage({ type: 'ready' })
function loop() {
  if (!generating) return
  const ok = guarded(() => {
    for (let i = 0; i < 64; i++) me.step()
  })
  if (!ok) return
  // A 1 ms pause between batches leaves CPU to the churn workers starting up (2 cores).
  setTimeout(loop, 1)
}
loop()

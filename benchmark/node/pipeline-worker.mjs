// One side of the two-worker pipeline (see pipeline.mjs). workerData:
//   { role: 'producer' | 'consumer', variant, length, window, credit, port, arenaName, arenaOptions }
// variant: 'float32array' (new Float32Array + postMessage with a transfer list),
//          'buffer-alloc' (Buffer.alloc + a Float32Array over it, same transfer),
//          'view' / 'array' (ours: Arena.shared('bench') + transfer/receive; the consumer frees).
// The producer keeps at most `window` tensors in flight; the consumer returns credit every
// `credit` tensors. Control messages from the main thread: { cmd: 'run', count } → the
// consumer answers { done, checksum } once it has consumed every tensor asked for so far.
// The main thread terminates both workers at the end.

import { parentPort, workerData } from 'node:worker_threads'

import { Arena } from 'tensor-arena'

const { role, variant, length, window, credit, port, arenaName, arenaOptions } = workerData
const ours = variant === 'view' || variant === 'array'
const arena = ours ? Arena.shared(arenaName, arenaOptions) : undefined

function allocate() {
  switch (variant) {
    case 'view':
      return arena.view('float32', length)
    case 'array':
      return arena.array('float32', length)
    case 'buffer-alloc': {
      const b = Buffer.alloc(length * 4)
      return new Float32Array(b.buffer, b.byteOffset, length)
    }
    default:
      return new Float32Array(length)
  }
}

if (role === 'producer') {
  let credits = window
  let remaining = 0
  let seq = 0
  const pump = () => {
    while (credits > 0 && remaining > 0) {
      const t = allocate()
      t.fill(seq++ & 1023)
      if (ours) port.postMessage(arena.transfer(t))
      else port.postMessage(t, [t.buffer])
      credits--
      remaining--
    }
  }
  port.on('message', (n) => {
    credits += n
    pump()
  })
  parentPort.on('message', (msg) => {
    if (msg.cmd === 'run') {
      remaining += msg.count
      pump()
    }
  })
} else {
  let target = 0
  let consumed = 0
  let pending = 0
  let checksum = 0
  port.on('message', (msg) => {
    const t = ours ? arena.receive(msg) : msg
    let sum = 0
    for (let i = 0; i < t.length; i++) sum += t[i]
    checksum += sum / t.length
    if (ours) arena.free(t)
    consumed++
    if (++pending === credit) {
      port.postMessage(credit)
      pending = 0
    }
    if (consumed === target) parentPort.postMessage({ done: consumed, checksum })
  })
  parentPort.on('message', (msg) => {
    if (msg.cmd !== 'run') return
    // Cumulative across runs. Messages on two ports are not ordered: the tensors of this
    // run may all have arrived before this message.
    target += msg.count
    if (consumed === target) parentPort.postMessage({ done: consumed, checksum })
  })
}
parentPort.postMessage({ ready: role })

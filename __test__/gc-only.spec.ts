// Code written for Buffer.alloc drops its buffers and lets GC collect them. Issue 12: a
// synchronous loop of unfreed 1 MiB arrays exhausted the default arena at op 1,020 (it
// only got blocks back from finalizers, which Node runs a turn later), and 16 MiB arrays
// failed at op 3 in a 64 MiB arena. Now every hand-out has a weak reference the GC clears
// at once, the arena runs a GC when memory it handed out piles up without frees, and a
// full GC before it reports exhaustion. Serial: the tests read arena-wide counters.
import test from 'ava'
import { Worker } from 'node:worker_threads'
import { Arena, array, defaultArena, view } from 'tensor-arena'

import { MiB, collect, collectUntil, fillPattern, hasPattern } from './helpers'

const SIZES = [64 * 1024, MiB, 16 * MiB]
/** Bytes each loop hands out: many times what it may keep. */
const TOTAL = 1024 * MiB

/** Drops `count` hand-outs of `bytes` in a loop that never yields, writing a byte per page. */
function dropInALoop(make: (bytes: number) => Uint8Array, bytes: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const x = make(bytes)
    for (let p = 0; p < bytes; p += 4096) x[p] = 1
  }
}

for (const kind of ['array', 'view'] as const) {
  test.serial(`the default arena survives a synchronous GC-only loop of ${kind}s and reuses their memory`, (t) => {
    const make = kind === 'array' ? (n: number) => array('uint8', n) : (n: number) => view('uint8', n)
    for (const bytes of SIZES) {
      const carved = defaultArena.stats().carvedBytes
      t.notThrows(() => dropInALoop(make, bytes, TOTAL / bytes), `${bytes} B`)
      const grown = defaultArena.stats().carvedBytes - carved
      t.true(grown <= 256 * MiB, `${kind}s of ${bytes} B: the arena grew by ${grown / MiB} MiB for ${TOTAL / MiB} MiB dropped`)
    }
  })

  test.serial(`an arena capped at 64 MiB survives synchronous GC-only loops of ${kind}s from 64 KiB to 16 MiB`, (t) => {
    const arena = new Arena({ maxBytes: 64 * MiB })
    const make = kind === 'array' ? (n: number) => arena.array('uint8', n) : (n: number) => arena.view('uint8', n)
    for (const bytes of SIZES) t.notThrows(() => dropInALoop(make, bytes, (256 * MiB) / bytes), `${bytes} B`)
    t.true(arena.stats().carvedBytes <= 64 * MiB)
  })
}

test.serial('what is still reachable survives the forced collections, and the cap still holds for it', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const kept = [arena.array('uint8', 16 * MiB), arena.view('uint8', 16 * MiB)]
  kept.forEach((x, i) => fillPattern(x, i + 1))
  dropInALoop((n) => arena.array('uint8', n), 16 * MiB, 32)
  dropInALoop((n) => arena.view('uint8', n), 16 * MiB, 32)
  kept.forEach((x, i) => t.true(hasPattern(x, i + 1), `kept hand-out ${i} intact`))
  t.true(kept.every((x) => arena.owns(x)))
  // 48 MiB reachable in a 64 MiB arena: a fourth 16 MiB block cannot fit, GC or not.
  const third = arena.array('uint8', 16 * MiB)
  const error = t.throws(() => arena.array('uint8', 16 * MiB + 1)) as Error & { code?: string }
  t.is(error.code, 'ERR_OUT_OF_MEMORY')
  for (const x of [...kept, third]) arena.free(x)
  t.is(arena.stats().liveAllocations, 0)
})

test.serial('stats() counts dropped hand-outs as freed right after a GC, without waiting for finalizers', async (t) => {
  const arena = new Arena()
  dropInALoop((n) => arena.array('uint8', n), 64 * 1024, 50)
  dropInALoop((n) => arena.alloc(n) as unknown as Uint8Array, 4096, 50)
  dropInALoop((n) => arena.view('uint8', n), 4096, 50)
  t.is(arena.stats().liveAllocations, 150)
  // Hand-outs of this turn are remembered strongly until its end (most are freed by then).
  await new Promise((resolve) => setImmediate(resolve))
  globalThis.gc?.()
  const stats = arena.stats()
  t.is(stats.liveAllocations, 0)
  t.is(stats.liveBytes, 0)
  t.is(stats.freesTotal, 150)
  t.is(stats.rejectedFreesTotal, 0)
})

test.serial('rejectedFreesTotal stays 0 after 1,000 alloc/free pairs are collected (issue 12)', async (t) => {
  const arena = new Arena()
  for (let i = 0; i < 1000; i++) arena.free(i % 2 === 0 ? arena.alloc(256) : arena.array('float32', 64))
  await collect(4)
  const stats = arena.stats()
  t.is(stats.rejectedFreesTotal, 0)
  t.is(stats.freesTotal, 1000)
  t.is(stats.liveAllocations, 0)
})

test.serial('an exclusive buffer moved by ArrayBuffer.prototype.transfer keeps its block while the moved-to buffer lives', async (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const transfer = (ArrayBuffer.prototype as { transfer?: unknown }).transfer
  if (typeof transfer !== 'function') {
    // Node 20 has no way to move an ArrayBuffer's memory: nothing to guard.
    t.false('transfer' in ArrayBuffer.prototype)
    return
  }
  t.is(transfer.name, 'transfer')
  let moved: ArrayBuffer | undefined = (() => {
    const original = arena.alloc(MiB)
    const m = (original as ArrayBuffer & { transfer(): ArrayBuffer }).transfer()
    t.is(original.byteLength, 0)
    return m
  })()
  fillPattern(new Uint8Array(moved), 7)
  // The original buffer is garbage now; the arena must not take its block back.
  dropInALoop((n) => arena.array('uint8', n), MiB, 256)
  globalThis.gc?.()
  const others = Array.from({ length: 40 }, () => arena.array('uint8', MiB).fill(9))
  t.true(hasPattern(new Uint8Array(moved), 7), 'no later hand-out got the moved memory')
  t.true(arena.stats().liveAllocations >= 41)
  for (const x of others) arena.free(x)
  // Once the moved-to buffer dies, its finalizer returns the block.
  moved = undefined
  t.true(await collectUntil(() => arena.stats().liveAllocations === 0))
  // Every other ArrayBuffer still transfers as before.
  const plain = new ArrayBuffer(8)
  t.is((plain as ArrayBuffer & { transfer(): ArrayBuffer }).transfer().byteLength, 8)
  t.is(plain.byteLength, 0)
})

test.serial('a worker survives its own synchronous GC-only loop (each thread reclaims its hand-outs)', async (t) => {
  const code = `
    const { parentPort } = require('node:worker_threads')
    const { Arena } = require('tensor-arena')
    const arena = new Arena({ maxBytes: 64 * 1024 * 1024 })
    let ok = 0
    for (let i = 0; i < 64; i++) { arena.array('uint8', 16 << 20)[0] = 1; arena.view('uint8', 16 << 20)[0] = 1; ok++ }
    parentPort.postMessage(ok)
  `
  const worker = new Worker(code, { eval: true })
  const ok = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  t.is(ok, 64)
  await worker.terminate()
})

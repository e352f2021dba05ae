import test from 'ava'
import * as path from 'node:path'

import { Arena, AllocatorError } from 'tensor-arena'

import { MiB, native, repoRoot } from './helpers'

// Internal module (not exported by the package): the fast class lookup the view slots use.
const { classIndexOf } = require(path.join(repoRoot, 'dist', 'size-class.js')) as {
  classIndexOf(bytes: number): number
}

test('the view slots compute the same size class as the core for every request size', (t) => {
  const sizes = [1, 63, 64, 65, 4095, 4096, 4097, 5120, 5121, 70_000, MiB + 1, 16 * MiB, 16 * MiB + 1]
  for (let n = 1; n <= 20_000; n += 7) sizes.push(n)
  for (const n of sizes) t.is(classIndexOf(n), native.nativeSizeClassOf(n), `${n} bytes`)
  t.is(classIndexOf(0), classIndexOf(1))
})

test('a freed view block is reused by the next view of its class without losing double-free detection', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const a = arena.view('float32', 16)
  const offset = a.byteOffset
  arena.free(a)
  const b = arena.view('float32', 16)
  t.is(b.byteOffset, offset)
  b.fill(7)
  t.throws(() => arena.free(a), { instanceOf: AllocatorError, code: 'ERR_DOUBLE_FREE' })
  t.true(arena.owns(b))
  t.true(b.every((x) => x === 7))
  arena.free(b)
  t.is(arena.stats().liveBytes, 0, 'stats() hands cached view blocks back first')
})

test('{ zero: true } zeroes a reused view block', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const a = arena.view('uint8', 1000)
  a.fill(255)
  arena.free(a)
  const b = arena.view('bigint64', 125, { zero: true })
  t.is(b.byteOffset, a.byteOffset)
  t.true(b.every((x) => x === 0n))
  arena.free(b)
})

test('memory held for reuse by freed views is given back when another class runs out', (t) => {
  const arena = new Arena({ maxBytes: 8 * MiB })
  const views = []
  for (;;) {
    try {
      views.push(arena.view('uint8', 64 * 1024))
    } catch (error) {
      t.is((error as AllocatorError).code, 'ERR_OUT_OF_MEMORY')
      break
    }
  }
  for (const v of views) arena.free(v)
  // The arena is full of freed 64 KiB view blocks (some held for reuse in this thread):
  // a 6 MiB exclusive buffer and a 3 MiB view of other classes still fit.
  const big = arena.alloc(6 * MiB)
  arena.free(big)
  const v = arena.view('uint8', 3 * MiB)
  arena.free(v)
  arena.threadCache().flush()
  t.is(arena.stats().liveBytes, 0)
})

// onnxruntime-node over arena memory: ORT reads `view`/`array` inputs in place, writes
// outputs into pre-allocated arena tensors (`session.run(feeds, fetches)`), and gives
// bit-identical results to the same runs on plain Float32Arrays. The model is the committed
// MLP of examples/models (x[batch, 64] -> y[batch, 10], float32). One session, one thread:
// ORT's results do not depend on its thread count for this graph, but a single intra-op
// thread keeps the suite light on a shared machine.
import { existsSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import test, { type ExecutionContext } from 'ava'
import type * as Ort from 'onnxruntime-node'
import { Arena } from 'tensor-arena'

import { MiB, repoRoot } from './helpers'

/**
 * Why onnxruntime-node cannot run here, or `undefined`. It ships glibc binaries for
 * linux x64/arm64, darwin arm64 and win32 x64/arm64 only, so on musl (the release
 * workflow's Alpine images) and on Intel macOS every test below is registered as skipped
 * with this reason in its title; anywhere it ships a binary, a failure to load it fails.
 */
// The package loader's platform name (musl decided the way napi-rs decides it; internal module).
const { currentPlatform } = require(path.join(repoRoot, 'dist', 'load-native.js')) as { currentPlatform(): string }

function ortUnavailable(): string | undefined {
  const root = path.dirname(require.resolve('onnxruntime-node/package.json'))
  const { version } = require(path.join(root, 'package.json')) as { version: string }
  const bin = path.join(root, 'bin')
  const shipped = readdirSync(bin).some((napi) => existsSync(path.join(bin, napi, process.platform, process.arch)))
  if (!shipped) return `onnxruntime-node ${version} ships no binary for ${process.platform}-${process.arch}`
  if (currentPlatform().endsWith('-musl')) {
    return `onnxruntime-node ${version} ships glibc binaries only, and this Linux uses musl`
  }
  return undefined
}

const unavailable = ortUnavailable()
const ort = (unavailable === undefined ? require('onnxruntime-node') : undefined) as typeof Ort

/** Registers a test, or, where onnxruntime-node cannot run, a skipped one with the reason in its title. */
function ortTest(title: string, impl: (t: ExecutionContext) => Promise<void>): void {
  if (unavailable === undefined) test(title, impl)
  else test.skip(`${title} (skipped: ${unavailable})`, impl)
}

const MODEL = path.join(repoRoot, 'examples', 'models', 'mlp.onnx')
const IN = 64
const OUT = 10

let session: Ort.InferenceSession
test.before(async () => {
  if (unavailable !== undefined) return
  session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1, interOpNumThreads: 1 })
})

/** Deterministic inputs of order one, different for each seed. */
function fillInput(x: Float32Array, seed: number): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37 + seed * 1.3) * 2
  return x
}

/** The output of a run on a fresh plain Float32Array copy of `x` (ORT allocates the output). */
async function plainRun(x: Float32Array, batch: number): Promise<Float32Array> {
  const input = new Float32Array(x)
  const out = await session.run({ x: new ort.Tensor('float32', input, [batch, IN]) })
  return out.y!.data as Float32Array
}

/** The exact bits of a float32 array, for bit-identity checks (NaN and -0 included). */
function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length).slice()
}

/** Where two bit patterns first differ ('equal' when they do not): a short failure message. */
function firstDifference(a: Uint32Array, b: Uint32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `element ${i}: 0x${a[i]!.toString(16)} vs 0x${b[i]!.toString(16)}`
  return 'equal'
}

ortTest('outputs of view and array inputs are bit-identical to plain Float32Array runs', async (t) => {
  const arena = new Arena()
  for (const batch of [1, 7, 256]) {
    const expected = bits(await plainRun(fillInput(new Float32Array(batch * IN), batch), batch))
    for (const kind of ['view', 'array'] as const) {
      const x = fillInput(arena[kind]('float32', batch * IN), batch)
      const out = await session.run({ x: new ort.Tensor('float32', x, [batch, IN]) })
      t.deepEqual(out.y!.dims, [batch, OUT])
      t.is(firstDifference(bits(out.y!.data as Float32Array), expected), 'equal', `${kind}, batch ${batch}`)
      arena.free(x)
    }
  }
  t.is(arena.stats().liveAllocations, 0)
})

ortTest('inputs are read in place: changing arena memory changes the next run of the same Tensor', async (t) => {
  const arena = new Arena()
  const batch = 32
  for (const kind of ['view', 'array'] as const) {
    const x = fillInput(arena[kind]('float32', batch * IN), 1)
    const tensor = new ort.Tensor('float32', x, [batch, IN])
    t.is(tensor.data, x, 'the Tensor holds the arena typed array itself, not a copy')
    const first = bits((await session.run({ x: tensor })).y!.data as Float32Array)
    t.is(firstDifference(first, bits(await plainRun(x, batch))), 'equal')

    // Rewrite the arena memory through a second typed array over the same bytes (not
    // through the Tensor), then run the very same Tensor object again.
    const alias = new Float32Array(x.buffer, x.byteOffset, x.length)
    fillInput(alias, 2)
    const second = bits((await session.run({ x: tensor })).y!.data as Float32Array)
    t.not(firstDifference(second, first), 'equal', `${kind}: the second run saw the new arena contents`)
    t.is(firstDifference(second, bits(await plainRun(alias, batch))), 'equal', `${kind}: a fresh plain run on the new data`)
    arena.free(x)
  }
})

ortTest('outputs are written in place into a pre-allocated arena tensor passed as fetches', async (t) => {
  const arena = new Arena()
  const batch = 64
  const x = fillInput(arena.view('float32', batch * IN), 3)
  const expected = bits(await plainRun(x, batch))
  for (const kind of ['view', 'array'] as const) {
    const y = arena[kind]('float32', batch * OUT).fill(Number.NaN)
    const fetch = new ort.Tensor('float32', y, [batch, OUT])
    const out = await session.run({ x: new ort.Tensor('float32', x, [batch, IN]) }, { y: fetch })
    t.is(fetch.data, y, 'the fetch Tensor holds the arena typed array itself')
    t.is(firstDifference(bits(y), expected), 'equal', `${kind}: the arena memory holds the result`)
    t.true(arena.owns(y), 'the arena still owns the output block')
    // onnxruntime-node 1.30 also returns the output in `results`, as a copy in a buffer of
    // its own (README, "Using with onnxruntime-node", says so: read the fetch tensor).
    const result = out.y!.data as Float32Array
    t.is(firstDifference(bits(result), expected), 'equal')
    t.not(result.buffer, y.buffer, `${kind}: results.y is a copy, not the arena memory`)
    arena.free(y)
  }
  arena.free(x)
  t.is(arena.stats().liveAllocations, 0)
})

ortTest('the same arena input and output tensors serve many runs without allocating', async (t) => {
  const arena = new Arena()
  const batch = 16
  const x = arena.array('float32', batch * IN)
  const y = arena.view('float32', batch * OUT)
  const feeds = { x: new ort.Tensor('float32', x, [batch, IN]) }
  const fetches = { y: new ort.Tensor('float32', y, [batch, OUT]) }
  const before = arena.stats().allocationsTotal
  for (let step = 0; step < 5; step++) {
    fillInput(x, 10 + step)
    await session.run(feeds, fetches)
    t.is(firstDifference(bits(y), bits(await plainRun(x, batch))), 'equal', `step ${step}`)
  }
  t.is(arena.stats().allocationsTotal, before, 'no arena allocation in the loop')
  arena.free(x)
  arena.free(y)
})

ortTest('a multi-MiB arena input (batch 32768, 8 MiB) gives the plain result', async (t) => {
  const arena = new Arena()
  const batch = 32768
  t.is(batch * IN * 4, 8 * MiB)
  const expected = bits(await plainRun(fillInput(new Float32Array(batch * IN), 4), batch))
  for (const kind of ['view', 'array'] as const) {
    const x = fillInput(arena[kind]('float32', batch * IN), 4)
    const y = arena[kind]('float32', batch * OUT)
    await session.run({ x: new ort.Tensor('float32', x, [batch, IN]) }, { y: new ort.Tensor('float32', y, [batch, OUT]) })
    t.is(firstDifference(bits(y), expected), 'equal', kind)
    arena.free(x)
    arena.free(y)
  }
})

ortTest('a Tensor over a freed array has no data left: ORT refuses it as input or output instead of reading freed memory', async (t) => {
  const arena = new Arena()
  const batch = 4
  const x = fillInput(arena.array('float32', batch * IN), 5)
  const input = new ort.Tensor('float32', x, [batch, IN])
  arena.free(x)
  t.is(x.length, 0, 'free detached the exclusive buffer under the Tensor')
  await t.throwsAsync(session.run({ x: input }), { message: /not enough space: expected 1024, got 0/ })

  const live = fillInput(arena.array('float32', batch * IN), 5)
  const y = arena.array('float32', batch * OUT)
  const output = new ort.Tensor('float32', y, [batch, OUT])
  arena.free(y)
  await t.throwsAsync(session.run({ x: new ort.Tensor('float32', live, [batch, IN]) }, { y: output }), {
    message: /not enough space: expected 160, got 0/,
  })
  arena.free(live)
})

ortTest('a Tensor over a freed view reads whatever its block holds next: the next view of that length', async (t) => {
  const arena = new Arena()
  const batch = 8
  const x = fillInput(arena.view('float32', batch * IN), 6)
  const stale = new ort.Tensor('float32', x, [batch, IN])
  arena.free(x)
  // The next view of the same byte length takes the freed block back (README, "How a view
  // is tracked"): the stale Tensor now reads the new owner's data, without any error.
  const next = fillInput(arena.view('float32', batch * IN), 7)
  t.is(next.buffer, x.buffer)
  t.is(next.byteOffset, x.byteOffset, 'the same block')
  const out = bits((await session.run({ x: stale })).y!.data as Float32Array)
  t.is(firstDifference(out, bits(await plainRun(next, batch))), 'equal')
  arena.free(next)
})

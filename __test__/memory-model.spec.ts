// The memory model seen from JavaScript (core v2): allocator metadata lives outside the
// memory JavaScript can reach, so scribbling over every byte of every window (live, freed
// and never-issued blocks alike) can corrupt data but never the allocator; a view's
// `.buffer` is a window of at most max(4 MiB, 2 × its byteLength), which bounds what
// structuredClone / postMessage copy; arenas grow on demand (untouched memory costs no
// RSS) and views work at arena offsets above 4 GiB, also on Node 20.
// Serial: several tests measure this process's RSS or fill gigabytes of address space.
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads'
import test, { type ExecutionContext } from 'ava'
import { AllocatorError, Arena, defaultArena, type ArenaStats } from 'tensor-arena'
import {
  CHUNK,
  GiB,
  MiB,
  arenaIdOf,
  arenaOffsetOf,
  arenaWindowsOf,
  bytesOf,
  checkWords,
  collect,
  fillWords,
  native,
  rss,
  scribble,
  windowBaseOf,
  windowBound,
  windowOwnerOf,
  xorshift32,
} from './helpers'

type Item = Uint8Array | Float32Array | Float64Array
type Kind = 'view' | 'array'

/** A live allocation of the model: what the arena handed out and the pattern it holds. */
interface Live {
  readonly item: Item
  readonly kind: Kind
  readonly bytes: number
  readonly seed: number
}

/** A model of an arena's live allocations, checked against `stats()` and the memory itself. */
class Model {
  readonly live: Live[] = []
  readonly freedViews: Item[] = []
  private nextSeed = 1
  liveBytes = 0
  outOfMemory = 0

  constructor(
    readonly t: ExecutionContext,
    readonly arena: Arena,
    readonly label: string,
  ) {}

  /** Allocates a view or an array of `bytes` bytes, checks it, fills it with its pattern. */
  alloc(kind: Kind, bytes: number): Live | undefined {
    const { t, arena } = this
    const [dtype, per] = bytes % 8 === 0 ? (['float64', 8] as const) : bytes % 4 === 0 ? (['float32', 4] as const) : (['uint8', 1] as const)
    let item: Item
    try {
      item = kind === 'view' ? arena.view(dtype, bytes / per) : arena.array(dtype, bytes / per)
    } catch (error) {
      if (error instanceof AllocatorError && error.code === 'ERR_OUT_OF_MEMORY') {
        this.outOfMemory++
        return undefined
      }
      throw error
    }
    if (item.byteLength !== bytes) t.fail(`${this.label}: ${kind} of ${bytes} bytes has byteLength ${item.byteLength}`)
    if (!arena.owns(item)) t.fail(`${this.label}: a fresh ${kind} is not owned`)
    if (kind === 'view') this.checkWindow(item)
    else if (item.byteOffset !== 0 || item.buffer.byteLength !== bytes || windowBaseOf(item.buffer) !== undefined) {
      t.fail(`${this.label}: array of ${bytes} bytes is not over its own exclusive buffer`)
    }
    const live: Live = { item, kind, bytes, seed: this.nextSeed++ }
    fillWords(bytesOf(item), live.seed)
    this.live.push(live)
    this.liveBytes += bytes
    return live
  }

  /** A view must be over one of this arena's windows, inside the arena, within the bound. */
  private checkWindow(view: Item): void {
    const { t, arena } = this
    const owner = windowOwnerOf(view.buffer)
    if (owner === undefined || owner !== arenaWindowsOf(arena)) t.fail(`${this.label}: a view over a window of another arena (or none)`)
    const offset = arenaOffsetOf(view)!
    const cap = arena.maxBytes ?? Number.MAX_SAFE_INTEGER
    if (offset < 0 || offset + view.byteLength > cap) t.fail(`${this.label}: view at arena offset ${offset} outside the arena`)
    if (offset % arena.alignment !== 0) t.fail(`${this.label}: view at ${offset} not aligned`)
    if (view.buffer.byteLength > windowBound(view.byteLength)) {
      t.fail(`${this.label}: view of ${view.byteLength} bytes over a window of ${view.buffer.byteLength}`)
    }
    // Arena ranges of live views never overlap (arrays are checked by their patterns).
    for (const other of this.live) {
      if (other.kind !== 'view') continue
      const start = arenaOffsetOf(other.item)!
      if (offset < start + other.bytes && start < offset + view.byteLength && view.byteLength > 0 && other.bytes > 0) {
        t.fail(`${this.label}: view [${offset}, +${view.byteLength}) overlaps live view [${start}, +${other.bytes})`)
      }
    }
  }

  /** Frees live allocation `index` after checking that its pattern survived. */
  free(index: number): void {
    const { t, arena } = this
    const [live] = this.live.splice(index, 1)
    const bad = checkWords(bytesOf(live.item), live.seed)
    if (bad >= 0) t.fail(`${this.label}: ${live.kind} #${live.seed} (${live.bytes} bytes) was overwritten at byte ${bad}: overlapping hand-outs`)
    arena.free(live.item)
    this.liveBytes -= live.bytes
    if (live.kind === 'view') this.freedViews.push(live.item)
  }

  /** Re-writes every live allocation's pattern (after a scribble destroyed them). */
  refill(): void {
    for (const live of this.live) fillWords(bytesOf(live.item), live.seed)
  }

  /** `stats()` must match the model exactly. */
  checkStats(when: string): ArenaStats {
    const s = this.arena.stats()
    if (s.liveAllocations !== this.live.length || s.liveBytes !== this.liveBytes) {
      this.t.fail(
        `${this.label} ${when}: stats say ${s.liveAllocations} live / ${s.liveBytes} bytes, the model ${this.live.length} / ${this.liveBytes}`,
      )
    }
    return s
  }

  /** `steps` random alloc/free steps; sizes from `sizes`, live bytes kept under `budget`. */
  randomSteps(next: () => number, steps: number, sizes: readonly number[], budget: number): void {
    for (let step = 0; step < steps; step++) {
      const r = next() % 100
      if (this.live.length > 0 && (r < 45 || this.liveBytes > budget)) {
        this.free(next() % this.live.length)
      } else {
        this.alloc(next() % 2 === 0 ? 'view' : 'array', sizes[next() % sizes.length])
      }
      if (step % 100 === 99) this.checkStats(`after step ${step + 1}`)
    }
    this.checkStats(`after ${steps} steps`)
  }

  /** Checks and frees everything still live. */
  freeAll(): void {
    while (this.live.length > 0) this.free(this.live.length - 1)
  }
}

/** Every freed view still throws ERR_DOUBLE_FREE and changes nothing. */
function expectDoubleFrees(t: ExecutionContext, arena: Arena, views: readonly Item[], label: string): void {
  const before = arena.stats()
  let wrong = 0
  for (const v of views) {
    try {
      arena.free(v)
      wrong++
    } catch (error) {
      if (!(error instanceof AllocatorError) || error.code !== 'ERR_DOUBLE_FREE') wrong++
    }
  }
  t.is(wrong, 0, `${label}: ${wrong} of ${views.length} freed views did not throw ERR_DOUBLE_FREE`)
  const after = arena.stats()
  t.deepEqual([after.liveAllocations, after.liveBytes, after.freesTotal], [before.liveAllocations, before.liveBytes, before.freesTotal])
  t.is(after.rejectedFreesTotal - before.rejectedFreesTotal, views.length, `${label}: each refusal is a rejected free`)
}

/** Subarrays, DataViews and copies of live hand-outs are ERR_NOT_OWNED and detach nothing. */
function expectNotOwned(t: ExecutionContext, arena: Arena, live: readonly Live[], label: string): void {
  const rejectedBefore = arena.stats().rejectedFreesTotal
  let wrong = 0
  let tried = 0
  for (const { item } of live) {
    const candidates: object[] = [item.subarray(0, Math.min(1, item.length)), item.slice(0, 4), new DataView(item.buffer, item.byteOffset, item.byteLength)]
    if (item.byteLength <= 1024) candidates.push(structuredClone(item))
    for (const value of candidates) {
      tried++
      try {
        arena.free(value as Uint8Array)
        wrong++
      } catch (error) {
        if (!(error instanceof AllocatorError) || error.code !== 'ERR_NOT_OWNED') wrong++
      }
    }
    if (!arena.owns(item)) wrong++
  }
  t.is(wrong, 0, `${label}: ${wrong} subarrays/copies were not rejected with ERR_NOT_OWNED`)
  t.is(arena.stats().rejectedFreesTotal - rejectedBefore, tried, `${label}: each refusal is a rejected free`)
}

const SCRIBBLE_SEED = 0x2545f491
const SIZES = [1, 64, 100, 640, 1000, 4096, 5000, 12_000, 70_000, 300_000, MiB, 3 * MiB, 5 * MiB, 8 * MiB] as const

test.serial(
  `scribbling random bytes (xorshift32 seed 0x${SCRIBBLE_SEED.toString(16)}) over every byte of every window never corrupts the allocator: double frees still caught, copies not owned, stats exact, 2,000 further steps never overlap`,
  (t) => {
    const next = xorshift32(SCRIBBLE_SEED)
    const arena = new Arena({ maxBytes: 64 * MiB })
    const other = new Arena({ maxBytes: 16 * MiB })
    const foreign = other.view('uint8', 100)
    const model = new Model(t, arena, `seed 0x${SCRIBBLE_SEED.toString(16)}`)

    // A mix of views and arrays over many size classes (64 B … 8 MiB).
    for (const bytes of SIZES) {
      const count = bytes >= 3 * MiB ? 2 : bytes >= MiB ? 3 : 6
      for (let i = 0; i < count; i++) model.alloc(i % 2 === 0 ? 'view' : 'array', bytes)
    }
    t.is(model.outOfMemory, 0, 'the initial mix fits under the cap')
    // Free about a third of them, large views among them (block windows of freed blocks).
    for (let i = model.live.length - 1; i >= 0; i -= 3) model.free(i)
    t.true(model.freedViews.some((v) => v.byteLength > CHUNK), 'a freed view above 4 MiB')
    model.checkStats('before the scribble')

    // Every window reachable from a view (chunk windows and block windows, of live and
    // freed views), and through the addon every carved chunk: random bytes over all of it.
    const windows = new Set<ArrayBuffer>()
    for (const v of [...model.live.map((l) => l.item).filter((x) => windowBaseOf(x.buffer) !== undefined), ...model.freedViews]) {
      windows.add(v.buffer as ArrayBuffer)
    }
    const viewWindows = windows.size
    const id = arenaIdOf(arena)
    let carvedChunks = 0
    for (let chunk = 0; chunk < (64 * MiB) / CHUNK; chunk++) {
      try {
        windows.add(native.viewWindow(id, chunk))
        carvedChunks++
      } catch (error) {
        t.is((error as { code?: string }).code, 'ERR_NOT_OWNED', `chunk ${chunk}`)
      }
    }
    let scribbled = 0
    for (const window of windows) {
      scribble(new Uint8Array(window), next)
      scribbled += window.byteLength
    }
    t.log(`${viewWindows} view windows + ${carvedChunks} chunk windows: ${(scribbled / MiB).toFixed(0)} MiB of random bytes`)
    t.true(scribbled >= arena.stats().carvedBytes, 'every carved byte was overwritten')

    expectDoubleFrees(t, arena, model.freedViews, 'after the scribble')
    expectNotOwned(t, arena, model.live, 'after the scribble')
    t.throws(() => arena.free(foreign), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' })
    for (const window of windows) t.throws(() => arena.free(window), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' })
    model.checkStats('after the scribble')

    // Live hand-outs free fine (half of them now; the rest after the random steps).
    model.refill()
    for (let i = model.live.length - 1; i >= 0; i -= 2) model.free(i)
    model.checkStats('after freeing half of the survivors')

    model.randomSteps(next, 2000, SIZES, 40 * MiB)
    t.log(`${model.live.length} live after 2,000 steps (${(model.liveBytes / MiB).toFixed(1)} MiB), ${model.outOfMemory} out-of-memory refusals`)
    expectNotOwned(t, arena, model.live.slice(0, 50), 'after the random steps')
    model.freeAll()
    expectDoubleFrees(t, arena, model.freedViews.slice(-500), 'at the end')
    const end = model.checkStats('at the end')
    t.like(end, { liveAllocations: 0, liveBytes: 0, inFlightCount: 0 })
    other.free(foreign)
  },
)

test.serial('use-after-free regression: garbage written through eight stale 1 MiB views over reused memory crashes nothing and hands out nothing twice', (t) => {
  const next = xorshift32(0x6a09e667)
  // The cap leaves no other room: the small views below must reuse the stale views' span.
  const arena = new Arena({ maxBytes: 8 * MiB })
  const model = new Model(t, arena, 'stale views')
  const stale = Array.from({ length: 8 }, () => arena.view('uint8', MiB))
  const staleRanges = stale.map((v) => [arenaOffsetOf(v)!, arenaOffsetOf(v)! + MiB] as const)
  for (const v of stale) arena.free(v)
  arena.threadCache().flush()
  arena.trim()
  t.is(arena.stats().liveAllocations, 0)

  // Many small views: they reuse the span the 1 MiB views had.
  const smallSizes = [64, 100, 256, 700, 1024, 3000, 4096, 9000, 16_384]
  while (model.liveBytes < 5 * MiB) {
    if (model.alloc('view', smallSizes[next() % smallSizes.length]) === undefined) break
  }
  const reusing = model.live.filter(({ item }) => staleRanges.some(([a, b]) => arenaOffsetOf(item)! >= a && arenaOffsetOf(item)! < b))
  t.true(reusing.length > 100, `${reusing.length} of ${model.live.length} small views reuse the stale views' memory`)
  model.checkStats('before the garbage')

  // Garbage through the stale views, every byte of each.
  for (const v of stale) scribble(v, next)
  expectDoubleFrees(t, arena, stale, 'stale views')
  model.checkStats('after the garbage')
  model.refill()

  // Keep allocating and freeing (views and arrays, small and large).
  model.randomSteps(next, 2000, [...smallSizes, 70_000, 300_000, MiB], 6 * MiB)
  model.freeAll()
  t.like(model.checkStats('at the end'), { liveAllocations: 0, liveBytes: 0 })
  // The whole cap is usable again: eight 1 MiB views fit.
  arena.threadCache().flush()
  arena.trim()
  const again = Array.from({ length: 8 }, () => arena.view('uint8', MiB))
  for (const v of again) arena.free(v)
})

test.serial("structuredClone and postMessage of a view copy at most max(4 MiB, 2 × its byteLength), never the arena", (t) => {
  const arena = new Arena()
  const { port1, port2 } = new MessageChannel()
  t.teardown(() => {
    port1.close()
    port2.close()
  })
  for (const bytes of [16, 1024, 3 * MiB, 5 * MiB, 17 * MiB]) {
    const view = arena.view('uint8', bytes)
    view[0] = 0x5a
    view[bytes - 1] = 0xa5
    const bound = windowBound(bytes)
    const clone = structuredClone(view)
    t.is(clone.byteLength, bytes)
    t.true(clone.buffer.byteLength <= bound, `structuredClone of ${bytes} bytes copied ${clone.buffer.byteLength}`)
    if (bytes === 16) t.true(clone.buffer.byteLength <= 4 * MiB, 'a 16-byte view clones at most 4 MiB')
    t.deepEqual([clone[0], clone[bytes - 1]], [0x5a, 0xa5])
    t.not(clone.buffer, view.buffer)
    t.false(arena.owns(clone))
    port1.postMessage(view)
    const posted = receiveMessageOnPort(port2)?.message as Uint8Array | undefined
    t.truthy(posted, `${bytes}: nothing received`)
    if (posted !== undefined) {
      t.is(posted.byteLength, bytes)
      t.true(posted.buffer.byteLength <= bound, `postMessage of ${bytes} bytes copied ${posted.buffer.byteLength}`)
      t.deepEqual([posted[0], posted[bytes - 1]], [0x5a, 0xa5])
      t.throws(() => arena.free(posted), { instanceOf: AllocatorError, code: 'ERR_NOT_OWNED' })
    }
    t.true(arena.owns(view), 'the original stays a live hand-out')
    arena.free(view)
  }
  t.is(arena.stats().liveBytes, 0)
})

test.serial('an uncapped arena grows on demand: 3 GiB of untouched 16 MiB arrays and views in the default arena cost no RSS, and all come back', async (t) => {
  await collect(2)
  const rss0 = rss()
  let peak = rss0
  const before = defaultArena.stats()
  t.is(before.maxBytes, 0, 'the default arena has no cap')
  const held: (Uint8Array | Float32Array)[] = []
  for (let i = 0; i < 96; i++) {
    held.push(defaultArena.array('uint8', 16 * MiB), defaultArena.view('float32', (16 * MiB) / 4))
    if (i % 16 === 15) peak = Math.max(peak, rss())
  }
  const during = defaultArena.stats()
  peak = Math.max(peak, rss())
  t.is(during.liveBytes - before.liveBytes, 3 * GiB)
  t.is(during.liveAllocations - before.liveAllocations, 192)
  t.true(during.carvedBytes - before.carvedBytes >= 3 * GiB - 64 * MiB, `carved ${during.carvedBytes - before.carvedBytes}`)
  t.true(during.regions >= before.regions && during.regions >= 1)
  t.true(during.reservedBytes >= during.carvedBytes, `reserved ${during.reservedBytes} < carved ${during.carvedBytes}`)
  t.true(during.reservedBytes >= before.reservedBytes)
  if (during.regions === 1) t.is(during.remainingBytes, during.reservedBytes - during.carvedBytes + during.freeSpanBytes)
  // Each view is over its own block window (a 16 MiB block crosses chunk boundaries).
  for (const x of held) if (windowBaseOf(x.buffer) !== undefined) t.true(x.buffer.byteLength <= windowBound(x.byteLength))

  for (const x of held) defaultArena.free(x)
  held.length = 0
  const after = defaultArena.stats()
  peak = Math.max(peak, rss())
  t.is(after.liveBytes, before.liveBytes, 'liveBytes back')
  t.is(after.liveAllocations, before.liveAllocations)
  t.is(after.regions, during.regions, 'regions are kept')
  t.is(after.reservedBytes, during.reservedBytes, 'reserved address space is kept')
  t.is(after.carvedBytes, during.carvedBytes, 'carvedBytes never shrinks')
  t.true(after.freeSpanBytes + after.centralBytes + after.threadCacheBytes >= 3 * GiB - 64 * MiB, 'the memory is free for reuse')
  if (after.regions === 1) t.is(after.remainingBytes, after.reservedBytes - after.carvedBytes + after.freeSpanBytes)
  t.log(`regions ${after.regions}, reserved ${(after.reservedBytes / GiB).toFixed(1)} GiB, carved ${(after.carvedBytes / GiB).toFixed(2)} GiB, RSS +${((peak - rss0) / MiB).toFixed(1)} MiB at peak`)
  t.true(peak - rss0 < 256 * MiB, `RSS grew by ${((peak - rss0) / MiB).toFixed(1)} MiB for untouched memory`)
})

test.serial('an uncapped arena serves a single 2 GiB buffer and a 2 GiB view (no fixed arena size), untouched and without RSS', async (t) => {
  await collect(2)
  const rss0 = rss()
  const arena = new Arena()
  const buffer = arena.alloc(2 * GiB)
  const big = arena.view('uint8', 2 * GiB)
  t.is(buffer.byteLength, 2 * GiB)
  t.is(big.byteLength, 2 * GiB)
  t.is(big.byteOffset, 0)
  t.true(big.buffer.byteLength <= windowBound(2 * GiB))
  t.like(arena.stats(), { liveBytes: 4 * GiB, largeLiveAllocations: 2 })
  big[2 * GiB - 1] = 9
  t.is(big[2 * GiB - 1], 9)
  arena.free(buffer)
  arena.free(big)
  t.like(arena.stats(), { liveBytes: 0, largeLiveAllocations: 0 })
  t.true(rss() - rss0 < 256 * MiB, `RSS grew by ${((rss() - rss0) / MiB).toFixed(1)} MiB`)
})

test.serial('arena.view and arena.array work at arena offsets above 4 GiB (also on Node 20, whose ArrayBuffers stop at 4 GiB)', async (t) => {
  await collect(2)
  const rss0 = rss()
  const arena = new Arena()
  const filler: Uint8Array[] = []
  while (arena.stats().carvedBytes <= 4 * GiB + 16 * MiB) filler.push(arena.view('uint8', 16 * MiB))
  const small = arena.view('float64', 16)
  const offset = arenaOffsetOf(small)!
  t.true(offset >= 4 * GiB, `the small view is at arena offset ${offset}`)
  t.is(small.buffer.byteLength, CHUNK)
  for (let i = 0; i < small.length; i++) small[i] = i + 0.25
  const readBack = Buffer.from(small.buffer, small.byteOffset, small.byteLength)
  for (let i = 0; i < small.length; i++) t.is(readBack.readDoubleLE(i * 8), i + 0.25)
  // Through a second window onto the same chunk (made by the addon): the same memory.
  const chunkWindow = native.viewWindow(arenaIdOf(arena), Math.floor(offset / CHUNK))
  t.is(new Float64Array(chunkWindow, offset % CHUNK, 16)[15], 15.25)

  const top = filler[filler.length - 1]
  t.true(arenaOffsetOf(top)! >= 4 * GiB - 16 * MiB)
  top[top.length - 1] = 0x77
  t.is(new Uint8Array(top.buffer, top.byteOffset + top.byteLength - 1, 1)[0], 0x77)
  const array = arena.array('int32', 1000)
  array.fill(-3)
  t.is(array[999], -3)
  t.true(arena.owns(small) && arena.owns(array))

  arena.free(small)
  arena.free(array)
  for (const v of filler) arena.free(v)
  t.like(arena.stats(), { liveBytes: 0, liveAllocations: 0 })
  t.true(rss() - rss0 < 256 * MiB, `RSS grew by ${((rss() - rss0) / MiB).toFixed(1)} MiB`)
})

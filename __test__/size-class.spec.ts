// SizeClass / SIZE_CLASS_BYTES / sizeClassOf against the native (Rust) table.
import test from 'ava'
import { Arena, MAX_SMALL_SIZE, SIZE_CLASS_BYTES, SizeClass, sizeClassOf } from 'tensor-arena'
import { MiB, lcg, native } from './helpers'

// ---- compile-time checks: SizeClass is an `as const` object, its type the index union ----
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const b64IsLiteral: Equal<typeof SizeClass.B64, 0> = true
const lastIsLiteral: Equal<typeof SizeClass.B16777216, 67> = true
const unionIsValues: Equal<SizeClass, (typeof SizeClass)[keyof typeof SizeClass]> = true
const returnsUnion: Equal<ReturnType<typeof sizeClassOf>, SizeClass | undefined> = true
// @ts-expect-error -- readonly: `as const` members cannot be assigned
const assignRejected = (): void => void (SizeClass.B64 = 1)
void [b64IsLiteral, lastIsLiteral, unionIsValues, returnsUnion, assignRejected]

const table = native.sizeClassTable()

test('SizeClass maps B<payload> to the class index of the native table, in order, frozen', (t) => {
  t.is(table.length, 68)
  t.deepEqual(Object.keys(SizeClass), table.map((payload) => `B${payload}`))
  t.deepEqual(Object.values(SizeClass), table.map((_, index) => index))
  t.true(Object.isFrozen(SizeClass))
  t.false(Reflect.set(SizeClass, 'B64', 5), 'members cannot be reassigned')
  t.is(SizeClass.B64, 0)
})

test('SIZE_CLASS_BYTES equals the native table and MAX_SMALL_SIZE its last entry', (t) => {
  t.deepEqual([...SIZE_CLASS_BYTES], table)
  t.true(Object.isFrozen(SIZE_CLASS_BYTES))
  t.is(MAX_SMALL_SIZE, table[table.length - 1])
  t.is(MAX_SMALL_SIZE, 16 * MiB)
})

test('the native stats classes carry the same payloads', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  t.deepEqual(arena.stats().classes.map((c) => c.payload), table)
})

function expected(bytes: number): number | undefined {
  const index = native.nativeSizeClassOf(bytes)
  return index === -1 ? undefined : index
}

test('sizeClassOf matches nativeSizeClassOf for every size from 0 to 10000', (t) => {
  let mismatches = 0
  for (let bytes = 0; bytes <= 10_000; bytes++) {
    if (sizeClassOf(bytes) !== expected(bytes)) mismatches++
  }
  t.is(mismatches, 0)
})

test('sizeClassOf matches nativeSizeClassOf around every class boundary and power of two', (t) => {
  const values = new Set<number>()
  for (const payload of table) for (let d = -3; d <= 3; d++) values.add(payload + d)
  for (let p = 0; p <= 52; p++) for (const d of [-1, 0, 1]) values.add(2 ** p + d)
  values.add(Number.MAX_SAFE_INTEGER)
  for (const bytes of values) {
    if (bytes < 0) continue
    t.is<number | undefined, number | undefined>(sizeClassOf(bytes), expected(bytes), `bytes ${bytes}`)
  }
})

test('sizeClassOf matches nativeSizeClassOf for 20000 pseudo-random sizes', (t) => {
  const next = lcg(42)
  let mismatches = 0
  const bad: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const bytes = i % 2 === 0 ? next() % (MAX_SMALL_SIZE + 4096) : next() % 70_000
    if (sizeClassOf(bytes) !== expected(bytes)) {
      mismatches++
      if (bad.length < 5) bad.push(bytes)
    }
  }
  t.is(mismatches, 0, bad.join(','))
})

test('sizeClassOf gives the smallest class whose payload fits, undefined for 0 and above 16 MiB', (t) => {
  t.is(sizeClassOf(0), undefined)
  t.is(sizeClassOf(1), SizeClass.B64)
  t.is(sizeClassOf(64), SizeClass.B64)
  t.is(sizeClassOf(65), SizeClass.B128)
  t.is(sizeClassOf(4097), SizeClass.B5120)
  t.is(sizeClassOf(MAX_SMALL_SIZE), SizeClass.B16777216)
  t.is(sizeClassOf(MAX_SMALL_SIZE + 1), undefined)
  table.forEach((payload, index) => {
    t.is<number | undefined, number | undefined>(sizeClassOf(payload), index)
    if (index > 0) t.is<number | undefined, number | undefined>(sizeClassOf(table[index - 1] + 1), index)
  })
})

test('sizeClassOf rejects bad input like alloc does', (t) => {
  for (const bytes of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    t.throws(() => sizeClassOf(bytes), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(bytes))
  }
  for (const bytes of [8n, '8', null, undefined, {}]) {
    t.throws(() => sizeClassOf(bytes as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
})

test('an allocation lands in the class sizeClassOf names', (t) => {
  const arena = new Arena({ maxBytes: 64 * MiB })
  const cache = arena.threadCache()
  // Freeing pushes the block onto this thread's cache list of its class: exactly one count moves.
  const classOfFreed = (item: ArrayBuffer | ArrayBufferView): number[] => {
    const before = cache.stats().classBlocks
    arena.free(item)
    const after = cache.stats().classBlocks
    return after.flatMap((n, i) => (n === before[i] + 1 ? [i] : n === before[i] ? [] : [-1]))
  }
  for (const bytes of [1, 64, 65, 1000, 4097, 100_000, 1_000_000, 5 * MiB, MAX_SMALL_SIZE]) {
    const cls = sizeClassOf(bytes)!
    t.deepEqual(classOfFreed(arena.alloc(bytes)), [cls], `alloc(${bytes})`)
    t.deepEqual(classOfFreed(arena.view('uint8', bytes)), [cls], `view('uint8', ${bytes})`)
  }
})

// Argument validation: sizes, dtypes, options and Arena options. Nothing is coerced or
// truncated, and a rejected call allocates nothing.
import { constants as bufferConstants } from 'node:buffer'
import test from 'ava'
import { AllocatorError, Arena, DTYPES, alloc, array, defaultArena, free, stats, view } from 'tensor-arena'
import { MiB } from './helpers'

const BAD_NUMBERS: readonly [string, number][] = [
  ['-1', -1],
  ['1.5', 1.5],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
  ['2**53', 2 ** 53],
  ['-0.5', -0.5],
  // The largest ArrayBuffer this Node version makes (4 GiB on Node 20, 2**53 - 1 later).
  ['buffer.constants.MAX_LENGTH + 1', bufferConstants.MAX_LENGTH + 1],
]

// Sizes above the cap of a capped arena. The default arena has no cap: there, 2**32+5 is a
// legal size wherever buffer.constants.MAX_LENGTH allows it (Node >= 22).
const ABOVE_CAP: readonly [string, number][] = [
  ['2**32+5', 2 ** 32 + 5],
  ['16 MiB + 1', 16 * MiB + 1],
]

const BAD_TYPES: readonly [string, unknown][] = [
  ['8n', 8n],
  ["'8'", '8'],
  ['null', null],
  ['undefined', undefined],
  ['{}', {}],
  ['[8]', [8]],
  ['true', true],
  ['Number(8) object', Object(8)],
]

// The three entry points, on the default arena (module functions) and on an own arena.
const ownArena = new Arena({ maxBytes: 16 * MiB })
type Entry = (size: unknown) => unknown
const ENTRIES: readonly [string, Entry][] = [
  ['alloc', (n) => alloc(n as number)],
  ['array', (n) => array('float32', n as number)],
  ['view', (n) => view('float32', n as number)],
  ['arena.alloc', (n) => ownArena.alloc(n as number)],
  ['arena.array', (n) => ownArena.array('uint8', n as number)],
  ['arena.view', (n) => ownArena.view('float64', n as number)],
]
const badNumbersOf = (entryName: string): readonly [string, number][] =>
  entryName.startsWith('arena.') ? [...BAD_NUMBERS, ...ABOVE_CAP] : BAD_NUMBERS

for (const [entryName, entry] of ENTRIES) {
  test(`${entryName} rejects every out-of-range size with RangeError ERR_OUT_OF_RANGE`, (t) => {
    for (const [label, value] of badNumbersOf(entryName)) {
      // (void: if a call wrongly succeeds, ava must not try to print a multi-GiB result)
      t.throws(() => void entry(value), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, `${entryName}(${label})`)
    }
  })

  test(`${entryName} rejects every non-number size with TypeError ERR_INVALID_ARG_TYPE`, (t) => {
    for (const [label, value] of BAD_TYPES) {
      t.throws(() => void entry(value), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, `${entryName}(${label})`)
    }
  })

  test(`${entryName}(0) gives a zero-length result that can be freed exactly once`, (t) => {
    const arena = entryName.startsWith('arena.') ? ownArena : defaultArena
    const result = entry(0) as ArrayBuffer | ArrayBufferView
    t.is(result.byteLength, 0)
    t.true(arena.owns(result))
    t.notThrows(() => arena.free(result))
    t.false(arena.owns(result))
    t.throws(() => arena.free(result), { instanceOf: AllocatorError, code: 'ERR_DOUBLE_FREE' })
  })
}

test.serial('rejected sizes and types allocate nothing', (t) => {
  const before = ownArena.stats()
  const defaultBefore = stats()
  for (const [entryName, entry] of ENTRIES) {
    for (const [, value] of [...badNumbersOf(entryName), ...BAD_TYPES]) t.throws(() => void entry(value))
  }
  t.is(ownArena.stats().allocationsTotal, before.allocationsTotal)
  t.is(ownArena.stats().liveAllocations, before.liveAllocations)
  t.is(stats().allocationsTotal, defaultBefore.allocationsTotal)
})

test('a safe integer size above the cap (maxBytes) is a RangeError naming maxBytes, not an allocation attempt', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  const error = t.throws(() => arena.alloc(16 * MiB + 1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.regex(error?.message ?? '', /maxBytes/)
  // length within the cap, byte size beyond it
  t.throws(() => arena.array('float64', 4 * MiB), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => arena.view('int32', 8 * MiB), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.is(arena.stats().allocationsTotal, 0)
})

test('array and view reject an unknown dtype with TypeError ERR_INVALID_ARG_VALUE', (t) => {
  const unknown: unknown[] = ['float16', 'Float32', 'float', '', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 42, null, undefined, {}, Float32Array]
  for (const dtype of unknown) {
    for (const make of [
      () => array(dtype as 'uint8', 4),
      () => view(dtype as 'uint8', 4),
      () => ownArena.array(dtype as 'uint8', 4),
      () => ownArena.view(dtype as 'uint8', 4),
    ]) {
      t.throws(make, { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' }, `dtype ${String(dtype)}`)
    }
  }
})

test('array and view accept every documented dtype', (t) => {
  for (const dtype of Object.keys(DTYPES) as (keyof typeof DTYPES)[]) {
    const a = ownArena.array(dtype, 3)
    const v = ownArena.view(dtype, 3)
    t.true(a instanceof DTYPES[dtype], dtype)
    t.true(v instanceof DTYPES[dtype], dtype)
    ownArena.free(a)
    ownArena.free(v)
  }
})

test('alloc options must be an object whose zero field is a boolean', (t) => {
  for (const options of [null, 5, 'zero', true]) {
    t.throws(() => ownArena.alloc(8, options as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => ownArena.view('uint8', 8, options as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
  for (const zero of [1, 'yes', null]) {
    t.throws(() => ownArena.array('uint8', 8, { zero } as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
  for (const options of [undefined, {}, { zero: false }, { zero: true }]) {
    const buffer = ownArena.alloc(8, options)
    t.is(buffer.byteLength, 8)
    ownArena.free(buffer)
  }
})

test('free rejects a non-object with TypeError ERR_INVALID_ARG_TYPE', (t) => {
  for (const value of [5, 'buffer', null, undefined, 8n, Symbol('x'), true]) {
    t.throws(() => free(value as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => ownArena.free(value as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
})

function assertInvalidConfig(t: import('ava').ExecutionContext, options: object, field: string): void {
  const error = t.throws(() => new Arena(options), undefined, JSON.stringify(options)) as
    | (Error & { code?: string })
    | undefined
  if (error === undefined) return
  const ok =
    (error instanceof AllocatorError && error.code === 'ERR_INVALID_CONFIG') ||
    (error instanceof RangeError && error.code === 'ERR_OUT_OF_RANGE')
  t.true(ok, `${JSON.stringify(options)}: got ${error.name} ${String(error.code)}`)
  t.true(error.message.includes(field), `message names ${field}: ${error.message}`)
}

test('Arena rejects a bad alignment (0, 3, 65, 2**31, 32, 8192, 1.5, -64)', (t) => {
  for (const alignment of [0, 3, 65, 2 ** 31, 32, 8192, 1.5, -64, Number.NaN]) {
    assertInvalidConfig(t, { maxBytes: 16 * MiB, alignment }, 'alignment')
    assertInvalidConfig(t, { alignment }, 'alignment')
  }
})

test('Arena rejects a bad maxBytes (0, 4095, 1.5, -1, NaN, Infinity, 2**60) with ERR_INVALID_CONFIG naming maxBytes', (t) => {
  for (const maxBytes of [0, 1, 4095, 1.5, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
    assertInvalidConfig(t, { maxBytes }, 'maxBytes')
    const error = t.throws(() => Arena.shared(`validation-bad-cap-${maxBytes}`, { maxBytes }), { instanceOf: AllocatorError })
    t.is(error?.code, 'ERR_INVALID_CONFIG', `Arena.shared maxBytes ${maxBytes}`)
  }
})

test('maxBytes below 4096 is ERR_INVALID_CONFIG; 4096 (one page) is the smallest cap', (t) => {
  for (const maxBytes of [1, 64, 4095]) {
    const error = t.throws(() => new Arena({ maxBytes }), { instanceOf: AllocatorError, code: 'ERR_INVALID_CONFIG' })
    t.regex(error?.message ?? '', /maxBytes/)
  }
  const arena = new Arena({ maxBytes: 4096 })
  t.is(arena.maxBytes, 4096)
  t.is(arena.stats().maxBytes, 4096)
  const page = arena.alloc(4096)
  t.is(page.byteLength, 4096)
  t.throws(() => arena.alloc(64), { instanceOf: AllocatorError, code: 'ERR_OUT_OF_MEMORY' })
  arena.free(page)
})

test('the removed arenaSize option throws TypeError ERR_INVALID_ARG_VALUE telling to use maxBytes, whatever its value', (t) => {
  for (const arenaSize of [16 * MiB, 0, undefined, '16777216', null]) {
    for (const make of [
      () => new Arena({ arenaSize } as never),
      () => new Arena({ arenaSize, maxBytes: 16 * MiB } as never),
      () => Arena.shared('validation-arena-size', { arenaSize } as never),
    ]) {
      const error = t.throws(make, { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' }, `arenaSize ${String(arenaSize)}`)
      t.regex(error?.message ?? '', /arenaSize/)
      t.regex(error?.message ?? '', /removed, use "maxBytes"/)
    }
  }
  // Nothing was registered under the shared name by the rejected calls.
  t.is(Arena.shared('validation-arena-size', { maxBytes: 8 * MiB }).maxBytes, 8 * MiB)
})

test('Arena rejects bad cache sizes', (t) => {
  assertInvalidConfig(t, { maxBytes: 16 * MiB, refillTargetBytes: 0 }, 'refillTargetBytes')
  assertInvalidConfig(t, { maxBytes: 16 * MiB, refillTargetBytes: 1.5 }, 'refillTargetBytes')
  assertInvalidConfig(t, { maxBytes: 16 * MiB, localCacheTargetBytes: -5 }, 'localCacheTargetBytes')
})

test('byte targets above the cap are not errors', (t) => {
  const arena = new Arena({ maxBytes: 64 * 1024, refillTargetBytes: MiB, localCacheTargetBytes: 4 * MiB })
  const views = Array.from({ length: 10 }, () => arena.view('uint8', 100))
  t.is(arena.stats().liveAllocations, 10)
  for (const v of views) arena.free(v)
  t.is(arena.stats().liveBytes, 0)
})

test('Arena rejects options of the wrong type with TypeError ERR_INVALID_ARG_TYPE', (t) => {
  for (const options of [null, 5, 'big', true]) {
    t.throws(() => new Arena(options as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  }
  for (const options of [{ maxBytes: '16777216' }, { maxBytes: 16n }, { alignment: 64n }, { refillTargetBytes: null }, { localCacheTargetBytes: {} }]) {
    t.throws(() => new Arena(options as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, JSON.stringify(options, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)))
  }
})

test('Arena accepts every power-of-two alignment from 64 to 4096 and aligns views to it', (t) => {
  for (let alignment = 64; alignment <= 4096; alignment *= 2) {
    const arena = new Arena({ maxBytes: 16 * MiB, alignment })
    t.is(arena.alignment, alignment)
    t.is(arena.maxBytes, 16 * MiB)
    const views = [arena.view('uint8', 1), arena.view('float64', 100), arena.view('uint8', 5000)]
    for (const v of views) t.is(v.byteOffset % alignment, 0, `alignment ${alignment}`)
    for (const v of views) arena.free(v)
  }
})

test('arena.maxBytes is the cap rounded up to whole pages, the same value stats and out-of-memory errors report', (t) => {
  for (const maxBytes of [4097, 10 * MiB + 1]) {
    const arena = new Arena({ maxBytes })
    t.is(arena.maxBytes, Math.ceil(maxBytes / 4096) * 4096, `maxBytes ${maxBytes}`)
    t.is(arena.stats().maxBytes, arena.maxBytes ?? -1)
  }
  // 4097 rounds up to two pages: two 4 KiB buffers fit, a third is refused at that cap.
  const arena = new Arena({ maxBytes: 4097 })
  const blocks: ArrayBuffer[] = [arena.alloc(4096), arena.alloc(4096)]
  const error = t.throws(() => arena.alloc(4096), { instanceOf: AllocatorError })
  t.is(error?.code, 'ERR_OUT_OF_MEMORY')
  t.is(error?.maxBytes, 8192)
  for (const b of blocks) arena.free(b)
})

test('an absurd maxBytes is refused with the limit and the value in numbers', (t) => {
  const cases: [number, string][] = [
    [2 ** 53, 'maxBytes must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves; got 9007199254740992'],
    [2 ** 60, 'maxBytes must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves; got 1152921504606847000'],
    [2 ** 46 + 4096, 'maxBytes must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves; got 70368744181760'],
    [1e300, 'maxBytes must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves; got 1e300'],
    [1, 'maxBytes must be at least 4096 bytes (one page): a smaller cap is refused, not rounded up; got 1'],
    [4095, 'maxBytes must be at least 4096 bytes (one page): a smaller cap is refused, not rounded up; got 4095'],
    [-1, 'maxBytes must be a whole number of bytes (a non-negative integer); got -1'],
    [1.5, 'maxBytes must be a whole number of bytes (a non-negative integer); got 1.5'],
    [Number.NaN, 'maxBytes must be a whole number of bytes (a non-negative integer); got NaN'],
  ]
  for (const [maxBytes, expected] of cases) {
    for (const make of [() => new Arena({ maxBytes }), () => Arena.shared(`validation-absurd-${maxBytes}`, { maxBytes })]) {
      const error = t.throws(make, { instanceOf: AllocatorError, code: 'ERR_INVALID_CONFIG' }, String(maxBytes))
      t.is(error?.message, `invalid arena options: ${expected}`)
    }
  }
})

test('other options out of range give their limits in numbers', (t) => {
  const message = (options: object): string | undefined =>
    t.throws(() => new Arena(options), { instanceOf: AllocatorError, code: 'ERR_INVALID_CONFIG' })?.message
  t.is(message({ alignment: 96 }), 'invalid arena options: alignment must be a power of two from 64 to 4096; got 96')
  t.is(message({ refillTargetBytes: 0 }), 'invalid arena options: refillTargetBytes must be between 1 and 70368744177664 bytes (64 TiB); got 0')
  t.is(message({ localCacheTargetBytes: 2 ** 53 }), 'invalid arena options: localCacheTargetBytes must be at most 70368744177664 bytes (64 TiB); got 9007199254740992')
})

test('a cap that is not a whole number of pages is rounded up to pages, and maxBytes reports the rounded cap', (t) => {
  for (const [asked, cap] of [[4097, 8192], [5000, 8192], [MiB + 1, MiB + 4096]]) {
    const arena = new Arena({ maxBytes: asked })
    t.is(arena.maxBytes, cap, `maxBytes ${asked}`)
    t.is(arena.stats().maxBytes, cap)
  }
})

test('the removed arenaSize option says "removed, use maxBytes" for absurd values too', (t) => {
  for (const arenaSize of [2 ** 53, 1]) {
    const error = t.throws(() => new Arena({ arenaSize } as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
    t.true(error?.message.startsWith(`The "options.arenaSize" option was removed, use "maxBytes" instead (received arenaSize ${arenaSize})`), error?.message)
  }
})

test('Arena.shared with options other than the existing arena\'s says what the existing ones are', (t) => {
  const arena = Arena.shared('validation-mismatch', { maxBytes: 8 * MiB })
  const error = t.throws(() => Arena.shared('validation-mismatch', { maxBytes: 16 * MiB }), { instanceOf: AllocatorError, code: 'ERR_INVALID_CONFIG' })
  t.is(
    error?.message,
    "Arena.shared('validation-mismatch'): the options differ from those the shared arena was created with (it exists with maxBytes: 8388608, alignment: 64, refillTargetBytes: 32768, localCacheTargetBytes: 65536); pass the same options, or none to accept the existing ones",
  )
  t.is(Arena.shared('validation-mismatch'), arena)
})

// Found by the property test of issue 13: with a view block kept for reuse, view()'s fast
// path ran `length >>> 0` before any type check.
test('issue 13: view refuses a BigInt, Symbol or object length with ERR_INVALID_ARG_TYPE even when a block of that size is kept', (t) => {
  const arena = new Arena({ maxBytes: 16 * MiB })
  arena.free(arena.view('float32', 10)) // keeps a 40-byte block for the next view of 10 floats
  let coerced = 0
  const objectLength = {
    valueOf() {
      coerced++
      return 10
    },
  }
  for (const [label, length] of [
    ['BigInt', 10n],
    ['Symbol', Symbol('10')],
    ['object with valueOf', objectLength],
  ] as const) {
    t.throws(() => arena.view('float32', length as unknown as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, label)
  }
  t.is(coerced, 0, 'valueOf is never called')
  t.is(arena.stats().liveAllocations, 0)
  arena.free(arena.view('float32', 10)) // the kept block still serves a valid call
})

// Hand-off tokens: forged or altered handles and tokens are refused and change nothing, and
// a seeded brute force claims nothing. Each test uses its own shared arena (by name).
import test from 'ava'
import type { AllocatorError, ArenaAllocation, TransferHandle } from 'tensor-arena'
import { arenaIdOf, fillPattern, hasPattern, native } from './helpers'
import { sharedArena, codeOf, nativeFailureCode, bytesOf, failure, make, type Kind } from './handoff-helpers'

// Forged or altered handles: each case on a fresh hand-off; afterwards nothing changed and the
// genuine handle is still received intact.
type Forge = (h: TransferHandle) => unknown
const INVALID = 'ERR_INVALID_HANDLE'
const FORGED: [string, Kind, string | null, Forge, string, number?][] = [
  ['token’s last digit changed', 'array', 'float32', (h) => ({ ...h, token: h.token.slice(0, -1) + (h.token.endsWith('0') ? '1' : '0') }), INVALID],
  ['token upper case', 'array', 'float32', (h) => ({ ...h, token: h.token.toUpperCase().replace(/^[0-9]*$/, 'A'.repeat(32)) }), INVALID],
  ['token one digit short', 'array', 'float32', (h) => ({ ...h, token: h.token.slice(1) }), INVALID],
  ['token one digit long', 'array', 'float32', (h) => ({ ...h, token: h.token + '0' }), INVALID],
  ['token with a 0x prefix', 'array', 'float32', (h) => ({ ...h, token: '0x' + h.token.slice(2) }), INVALID],
  ['token with spaces', 'array', 'float32', (h) => ({ ...h, token: ` ${h.token.slice(1, -1)} ` }), INVALID],
  ['token of 32 zeros', 'buffer', null, (h) => ({ ...h, token: '0'.repeat(32) }), INVALID],
  ['token empty', 'buffer', null, (h) => ({ ...h, token: '' }), INVALID],
  ['token as a number', 'array', 'float32', (h) => ({ ...h, token: Number.parseInt(h.token.slice(0, 13), 16) }), INVALID],
  ['token as a bigint', 'array', 'float32', (h) => ({ ...h, token: BigInt('0x' + h.token) }), INVALID],
  ['token as a String object', 'array', 'float32', (h) => ({ ...h, token: new String(h.token) }), INVALID],
  ['token with a wide character whose low byte is a digit', 'array', 'float32', (h) => ({ ...h, token: '\u0130' + h.token.slice(1) }), INVALID],
  ['offset + 64', 'array', 'float32', (h) => ({ ...h, offset: h.offset + 64 }), INVALID],
  ['offset − 4096 (view)', 'view', 'float32', (h) => ({ ...h, offset: h.offset - 4096 }), INVALID],
  ['offset past the arena', 'buffer', null, (h) => ({ ...h, offset: 2 ** 40 }), INVALID],
  ['offset negative', 'buffer', null, (h) => ({ ...h, offset: -64 }), INVALID],
  ['byteLength only', 'array', 'float32', (h) => ({ ...h, byteLength: h.byteLength + 4 }), INVALID],
  ['byteLength and length (buffer)', 'buffer', null, (h) => ({ ...h, byteLength: h.byteLength + 64, length: h.length + 64 }), INVALID],
  ['byteLength and length (array)', 'array', 'float32', (h) => ({ ...h, byteLength: h.byteLength - 4, length: h.length - 1 }), INVALID],
  ['byteLength 0 → 1 (alloc(0))', 'buffer', null, (h) => ({ ...h, byteLength: 1, length: 1 }), INVALID, 0],
  ['byteLength 1 → 0 (alloc(1))', 'buffer', null, (h) => ({ ...h, byteLength: 0, length: 0 }), INVALID, 1],
  ['kind array → view', 'array', 'float32', (h) => ({ ...h, kind: 'view' }), INVALID],
  ['kind array → buffer', 'array', 'float32', (h) => ({ ...h, kind: 'buffer', dtype: null, length: h.byteLength }), INVALID],
  ['kind buffer → array (uint8)', 'buffer', null, (h) => ({ ...h, kind: 'array', dtype: 'uint8' }), INVALID],
  ['kind view → array', 'view', 'float32', (h) => ({ ...h, kind: 'array' }), INVALID],
  ['kind unknown', 'array', 'float32', (h) => ({ ...h, kind: 'tensor' }), INVALID],
  ['dtype float32 → int32', 'array', 'float32', (h) => ({ ...h, dtype: 'int32' }), INVALID],
  ['dtype float32 → float64, length halved (view)', 'view', 'float32', (h) => ({ ...h, dtype: 'float64', length: h.length / 2 }), INVALID],
  ['dtype float32 → float64', 'array', 'float32', (h) => ({ ...h, dtype: 'float64' }), INVALID],
  ['dtype unknown', 'array', 'float32', (h) => ({ ...h, dtype: 'float16x' }), INVALID],
  ['dtype on a buffer', 'buffer', null, (h) => ({ ...h, dtype: 'uint8' }), INVALID],
  ...(['arena', 'token', 'kind', 'dtype', 'length', 'byteLength', 'offset'] as const).map(
    (field): [string, Kind, string | null, Forge, string] => [`missing ${field}`, 'array', 'float32', (h) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== field)), INVALID],
  ),
  ['empty object', 'array', 'float32', () => ({}), INVALID],
  ['an array of the values', 'array', 'float32', (h) => Object.values(h), INVALID],
  ['null', 'array', 'float32', () => null, 'TypeError'],
  ['undefined', 'array', 'float32', () => undefined, 'TypeError'],
  ['the token string', 'array', 'float32', (h) => h.token, 'TypeError'],
  ['the handle as JSON', 'array', 'float32', (h) => JSON.stringify(h), 'TypeError'],
]
for (const [what, kind, dtype, forge, expected, length = 256] of FORGED) {
  test(`forged handle (${what}) → ${expected}, nothing touched`, (t) => {
    const arena = sharedArena('handoff-forged')
    const x = make(arena, kind, dtype, length)
    fillPattern(bytesOf(x), 7)
    const h = arena.transfer(x)
    const before = arena.stats()
    for (const op of ['receive', 'reclaim'] as const) {
      const error = failure(t, arena, () => arena[op](forge(h) as TransferHandle))
      const want = expected === 'TypeError' ? { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' } : { name: 'AllocatorError', code: expected }
      t.deepEqual(error, want, op)
    }
    const after = arena.stats()
    t.deepEqual([after.inFlightCount, after.liveBytes, after.freesTotal], [before.inFlightCount, before.liveBytes, before.freesTotal], 'nothing touched')
    let got: ArenaAllocation | undefined
    try {
      got = arena.receive(h)
    } catch (error) {
      t.fail(`the genuine handle is no longer receivable: ${(error as AllocatorError).code}`)
    }
    if (got !== undefined) {
      t.true(hasPattern(bytesOf(got), 7), 'genuine handle intact')
      arena.free(got)
    }
  })
}

test('a token is 32 lowercase hex digits, different in most digits from one hand-off to the next', (t) => {
  const arena = sharedArena('handoff-token-format')
  const handles = Array.from({ length: 64 }, () => arena.transfer(arena.array('uint8', 64)))
  for (const h of handles) t.regex(h.token, /^[0-9a-f]{32}$/)
  t.is(new Set(handles.map((h) => h.token)).size, handles.length, 'no token repeats')
  for (let i = 1; i < handles.length; i++) {
    const [a, b] = [handles[i - 1].token, handles[i].token]
    const same = [...a].filter((c, j) => c === b[j]).length
    // Expected 2 of 32 digits in common for unrelated tokens; 12 is over 7σ away.
    t.true(same <= 12, `${a} → ${b}: ${same} digits in common`)
  }
  for (const h of handles) arena.reclaim(h)
  t.is(arena.stats().inFlightCount, 0)
})

test('every altered token digit (each position, every other hex digit: all 128 bit flips and more) is ERR_INVALID_HANDLE and touches nothing, in TypeScript and natively', (t) => {
  const arena = sharedArena('handoff-token-digits')
  const id = arenaIdOf(arena)
  const x = arena.array('float32', 256)
  fillPattern(bytesOf(x), 5)
  const h = arena.transfer(x)
  const other = arena.transfer(arena.view('float32', 256))
  const before = arena.stats()
  const kind = 16 + 7 // kindCode('array', 'float32'): kind 1, float32 is DTYPES' entry 7
  const codes = new Map<string, number>()
  const count = (code: string | undefined): void => void codes.set(String(code), (codes.get(String(code)) ?? 0) + 1)
  let altered = 0
  for (let i = 0; i < 32; i++) {
    for (const digit of '0123456789abcdef') {
      if (digit === h.token[i]) continue
      const token = h.token.slice(0, i) + digit + h.token.slice(i + 1)
      altered++
      count(codeOf(t.throws(() => arena.receive({ ...h, token }))))
      count(codeOf(t.throws(() => arena.reclaim({ ...h, token }))))
      // The native checks on their own, without the TypeScript layer's.
      count(nativeFailureCode(native.receiveExclusive(id, token, h.offset, h.byteLength, kind)))
      count(nativeFailureCode(native.reclaim(id, token, h.offset, h.byteLength, kind)))
    }
  }
  t.is(altered, 32 * 15)
  t.deepEqual([...codes], [['ERR_INVALID_HANDLE', 4 * altered]])
  // Natively, a wide character whose low byte is the right digit is not that digit.
  const wide = String.fromCharCode(0x100 + h.token.charCodeAt(0)) + h.token.slice(1)
  t.is(nativeFailureCode(native.reclaim(id, wide, h.offset, h.byteLength, kind)), 'ERR_INVALID_HANDLE')
  // Another in-flight hand-off's genuine token with this handle's details: refused too.
  t.is(codeOf(t.throws(() => arena.receive({ ...h, token: other.token }))), 'ERR_INVALID_HANDLE')
  const after = arena.stats()
  t.deepEqual([after.inFlightCount, after.liveBytes, after.freesTotal], [before.inFlightCount, before.liveBytes, before.freesTotal], 'nothing touched')
  const got = arena.receive(h)
  t.true(hasPattern(bytesOf(got), 5), 'the genuine handle still works')
  arena.free(got)
  arena.reclaim(other)
})

test('a seeded brute force of 100,000 random tokens against 64 in-flight hand-offs claims nothing', (t) => {
  const arena = sharedArena('handoff-brute-force')
  const handles = Array.from({ length: 64 }, (_, i) => arena.transfer(i % 2 ? arena.view('uint8', 64) : arena.array('uint8', 64)))
  const before = arena.stats()
  let seed = 0x5eed_0012
  const next = (): number => {
    // xorshift32
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return seed >>> 0
  }
  const hex = (): string => next().toString(16).padStart(8, '0')
  const outcomes = new Map<string, number>()
  for (let i = 0; i < 100_000; i++) {
    const target = handles[i % handles.length]
    // Random tokens, and (every other guess) the target's low half with a random tag.
    const token = i % 2 === 0 ? hex() + hex() + hex() + hex() : hex() + hex() + target.token.slice(16)
    let outcome: string
    try {
      arena.reclaim({ ...target, token })
      outcome = 'claimed'
    } catch (error) {
      outcome = String(codeOf(error))
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
  }
  t.deepEqual([...outcomes], [['ERR_INVALID_HANDLE', 100_000]])
  const after = arena.stats()
  t.deepEqual([after.inFlightCount, after.freesTotal], [before.inFlightCount, before.freesTotal])
  for (const h of handles) arena.reclaim(h)
  t.is(arena.stats().inFlightCount, 0)
})


// The ESM entry: named imports work and are the same objects as the CommonJS ones (no
// dual-package hazard for defaultArena, instanceof AllocatorError, etc.).
import { createRequire } from 'node:module'
import test from 'ava'
import * as esm from 'tensor-arena'
import {
  ARENA_STAT_FIELDS,
  AllocatorError,
  Arena,
  DTYPES,
  MAX_SMALL_SIZE,
  SIZE_CLASS_BYTES,
  SizeClass,
  ThreadCache,
  alloc,
  array,
  defaultArena,
  free,
  sizeClassOf,
  stats,
  view,
} from 'tensor-arena'

const require = createRequire(import.meta.url)
const cjs = require('tensor-arena') as typeof esm

const NAMES = [
  'ARENA_STAT_FIELDS',
  'AllocatorError',
  'Arena',
  'DTYPES',
  'MAX_SMALL_SIZE',
  'SIZE_CLASS_BYTES',
  'SizeClass',
  'ThreadCache',
  'alloc',
  'array',
  'defaultArena',
  'free',
  'sizeClassOf',
  'stats',
  'view',
] as const

test('every named ESM export is the same object as the CommonJS export', (t) => {
  const named = {
    ARENA_STAT_FIELDS, AllocatorError, Arena, DTYPES, MAX_SMALL_SIZE, SIZE_CLASS_BYTES, SizeClass,
    ThreadCache, alloc, array, defaultArena, free, sizeClassOf, stats, view,
  }
  for (const name of NAMES) {
    t.not(named[name], undefined, name)
    t.is(named[name], cjs[name], name)
    t.is(esm[name], cjs[name], name)
  }
})

test('the ESM namespace exports every CommonJS public name, each the same object', (t) => {
  const hidden = new Set(['default', 'module.exports', '__esModule'])
  const esmNames = Object.keys(esm).filter((k) => !hidden.has(k)).sort()
  const cjsNames = Object.keys(cjs).filter((k) => !hidden.has(k)).sort()
  t.deepEqual(esmNames, cjsNames)
  for (const name of NAMES) t.true(esmNames.includes(name), name)
  for (const name of esmNames) t.is((esm as Record<string, unknown>)[name], (cjs as Record<string, unknown>)[name], name)
})

test('memory from the ESM entry is freed through the CommonJS entry, errors are shared classes', (t) => {
  const buffer = alloc(64)
  const v = view('float32', 4)
  const typed = array('uint8', 4)
  t.true(cjs.defaultArena.owns(buffer))
  cjs.free(buffer)
  cjs.free(v)
  cjs.free(typed)
  const error = t.throws(() => free(buffer), { instanceOf: cjs.AllocatorError, code: 'ERR_DOUBLE_FREE' })
  t.true(error instanceof AllocatorError)
  const arena = new Arena({ maxBytes: 16 * 1024 * 1024 })
  t.true(arena instanceof cjs.Arena)
  const owned = arena.alloc(8)
  t.true(arena.threadCache() instanceof cjs.ThreadCache)
  t.throws(() => defaultArena.free(owned), { instanceOf: cjs.AllocatorError, code: 'ERR_NOT_OWNED' })
  arena.free(owned)
  t.is(stats().liveBytes, cjs.stats().liveBytes)
  t.is(sizeClassOf(MAX_SMALL_SIZE), SizeClass.B16777216)
  t.is(SIZE_CLASS_BYTES.length, ARENA_STAT_FIELDS.length > 0 ? 68 : 0)
  t.true(DTYPES.float32 === Float32Array)
})

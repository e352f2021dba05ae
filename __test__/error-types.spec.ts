// The runtime side of the error types (src/ts/errors.ts): what the AllocatorError union
// promises, every error built by the native-result path holds — requested and available
// are numbers exactly under ERR_OUT_OF_MEMORY, and absent under every other code.
// (__test__/published-types.spec.ts checks the compile-time side.)
import * as path from 'node:path'
import test from 'ava'
import { AllocatorError, type AllocatorErrorCode } from 'tensor-arena'

import type * as Errors from '../src/ts/errors'
import { native, repoRoot } from './helpers'

const { nativeFailure } = require(path.join(repoRoot, 'dist', 'errors.js')) as typeof Errors

test('an out-of-memory at a cap carries requested, available and maxBytes as numbers', (t) => {
  const error = nativeFailure(-1, 100, 50, 8192)
  t.true(error instanceof AllocatorError)
  t.is(error.code, 'ERR_OUT_OF_MEMORY')
  t.deepEqual([error.requested, error.available, error.maxBytes], [100, 50, 8192])
})

test('an out-of-memory the operating system caused has requested, available 0 and no maxBytes', (t) => {
  for (const cap of [undefined, 0]) {
    const error = nativeFailure(-1, 100, 12345, cap)
    t.is(error.code, 'ERR_OUT_OF_MEMORY')
    t.is(error.requested, 100)
    t.is(error.available, 0)
    t.false('maxBytes' in error)
  }
  const unknown = nativeFailure(-1)
  t.deepEqual([unknown.requested, unknown.available], [0, 0])
})

test('every other code has no requested, available or maxBytes field at all', (t) => {
  for (const [value, code] of native.errorCodes() as [number, AllocatorErrorCode, string][]) {
    if (code === 'ERR_OUT_OF_MEMORY') continue
    const error = nativeFailure(-value)
    t.is(error.code, code)
    t.deepEqual(
      ['requested', 'available', 'maxBytes'].filter((field) => field in error),
      [],
      code,
    )
  }
})

test('AllocatorError constructs as a class named AllocatorError, with the fields its code requires', (t) => {
  const oom = new AllocatorError('ERR_OUT_OF_MEMORY', 'full', { requested: 64, available: 8 })
  t.true(oom instanceof AllocatorError && oom instanceof Error)
  t.is(oom.name, 'AllocatorError')
  t.is(oom.constructor.name, 'AllocatorError')
  t.deepEqual([oom.code, oom.message, oom.requested, oom.available, 'maxBytes' in oom], ['ERR_OUT_OF_MEMORY', 'full', 64, 8, false])
  const plain = new AllocatorError('ERR_DOUBLE_FREE', 'again')
  t.true(plain instanceof AllocatorError)
  t.false('requested' in plain)
  t.false(new Error('x') instanceof AllocatorError)
})

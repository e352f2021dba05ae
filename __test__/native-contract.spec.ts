// Issue 11 ("one native contract"): the TypeScript declaration of the addon (src/ts/native.ts:
// napi-rs's generated types plus the declared raw callbacks) is exactly what the addon
// exports, and the error-code table comes from Rust, with unknown codes failing loudly.
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { AllocatorError } from 'tensor-arena'

import { native, repoRoot } from './helpers'

const dist = (file: string): string => path.join(repoRoot, 'dist', file)
const { RAW_FUNCTIONS } = require(dist('native.js')) as { RAW_FUNCTIONS: readonly string[] }
const { NATIVE_CODES, MESSAGES } = require(dist('codes.js')) as {
  NATIVE_CODES: readonly (string | undefined)[]
  MESSAGES: Readonly<Record<string, string>>
}
const { nativeFailure } = require(dist('errors.js')) as { nativeFailure(result: number): AllocatorError }

/** The functions napi-rs declared in the generated binding types. */
function generatedFunctions(): string[] {
  const declarations = fs.readFileSync(dist('binding.d.cts'), 'utf8')
  return [...declarations.matchAll(/^export declare function (\w+)\(/gm)].map((m) => m[1])
}

test('the addon exports exactly the generated #[napi] functions plus the declared raw callbacks, all functions', (t) => {
  const addon = native as unknown as Record<string, unknown>
  const exported = Object.keys(addon).filter((name) => name !== '__napiBindingTarget')
  const declared = [...generatedFunctions(), ...RAW_FUNCTIONS]
  t.deepEqual([...exported].sort(), [...declared].sort())
  t.is(new Set(declared).size, declared.length, 'no name is both generated and raw')
  for (const name of exported) t.is(typeof addon[name], 'function', name)
})

test('the TypeScript error-code table is the native one: every code, number and message', (t) => {
  const table = native.errorCodes()
  t.true(table.length > 0)
  for (const [value, code, message] of table) {
    t.is(NATIVE_CODES[value], code, `code ${value}`)
    t.is(MESSAGES[code], message, code)
  }
  t.is(NATIVE_CODES.filter((c) => c !== undefined).length, table.length)
  t.is(Object.keys(MESSAGES).length, table.length)
})

test('a native result code the table does not know fails loudly as an internal error, not as a user error', (t) => {
  const error = t.throws(() => nativeFailure(-250))
  t.false(error instanceof AllocatorError)
  t.is((error as Error & { code?: string }).code, 'ERR_INTERNAL_ASSERTION')
  t.regex(error!.message, /unknown native result -250/)
})

test('every code the native hot paths return maps to an AllocatorError with its generated message', (t) => {
  for (const [value, code, message] of native.errorCodes()) {
    const error = nativeFailure(-value)
    t.true(error instanceof AllocatorError, code)
    t.is(error.code as string, code)
    if (code !== 'ERR_OUT_OF_MEMORY') t.is(error.message, message)
  }
})

test("the benchmark floor hooks: floorBuffer is an external buffer over static memory, floorDetach detaches only such a buffer", (t) => {
  const buffer = native.floorBuffer(64)
  t.is(buffer.byteLength, 64)
  const pooled = Buffer.allocUnsafe(8)
  const plain = new ArrayBuffer(8)
  for (const other of [pooled.buffer as ArrayBuffer, plain]) {
    t.throws(() => native.floorDetach(other), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.not(other.byteLength, 0, 'nothing else is ever detached')
  }
  t.throws(() => native.floorBuffer(32 * 1024 * 1024), { instanceOf: TypeError })
  native.floorDetach(buffer)
  t.is(buffer.byteLength, 0)
})

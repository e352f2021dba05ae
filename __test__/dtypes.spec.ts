// The hot path's dtype switch agrees with the DTYPES table and rejects everything else.
import test from 'ava'
import * as path from 'node:path'
import { DTYPES } from 'tensor-arena'

import { repoRoot } from './helpers'

const { viewConstructor } = require(path.join(repoRoot, 'dist', 'dtypes.js')) as {
  viewConstructor(dtype: unknown): unknown
}

test('viewConstructor gives the DTYPES constructor for every dtype', (t) => {
  for (const [name, Ctor] of Object.entries(DTYPES)) t.is(viewConstructor(name), Ctor, name)
})

test('viewConstructor gives undefined for any other value, inherited names included', (t) => {
  for (const other of ['', 'float16', 'Uint8', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 1, null, undefined, {}, Symbol('uint8')]) {
    t.is(viewConstructor(other), undefined, String(other))
  }
})

// Fails if any published declaration file contains a `const enum` (they break
// isolatedModules consumers and bundlers).
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const dist = path.join(__dirname, '..', 'dist')
const offenders = fs
  .readdirSync(dist)
  .filter((f) => /\.d\.[mc]?ts$/.test(f))
  .filter((f) => /\bconst\s+enum\b/.test(fs.readFileSync(path.join(dist, f), 'utf8')))
if (offenders.length > 0) {
  console.error(`const enum found in: ${offenders.join(', ')}`)
  process.exit(1)
}

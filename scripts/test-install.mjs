// Installs the package the way users do: `npm pack` the root package and the
// linux-x64-gnu platform package, install both tarballs into a fresh directory with no
// Rust toolchain on PATH and NAPI_RS_ENFORCE_VERSION_CHECK=1, then run a smoke test
// through require() and import(). Also checks both tarballs' file lists and the loader's
// errors for a missing and for a mismatched platform package. Run after `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const platform = 'linux-x64-gnu'
const binary = `tensor-arena.${platform}.node`
const platformDir = join(root, 'npm', platform)
const work = mkdtempSync(join(tmpdir(), 'tensor-arena-install-'))
let failures = 0
let passes = 0

function check(name, ok, detail = '') {
  if (ok) passes++
  else failures++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok || !detail ? '' : `\n     ${detail}`}`)
}

const npm = (args, cwd, env = process.env) =>
  execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

function pack(dir) {
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', work], dir))
  return { file: join(work, info.filename), files: info.files.map((f) => f.path).sort() }
}

// PATH without any directory that provides cargo or rustc.
const toolFree = process.env.PATH.split(delimiter)
  .filter((d) => !['cargo', 'rustc'].some((tool) => existsSync(join(d, tool))))
  .join(delimiter)
const userEnv = { ...process.env, PATH: toolFree, NAPI_RS_ENFORCE_VERSION_CHECK: '1' }
check('no cargo or rustc on the install PATH', spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env: userEnv }).status !== 0)

// ---- tarballs -------------------------------------------------------------------------
copyFileSync(join(root, 'dist', binary), join(platformDir, binary))
const rootPack = pack(root)
const distFiles = readdirSync(join(root, 'dist'))
  .filter((f) => /\.(js|mjs|cjs|d\.ts|d\.mts|d\.cts)$/.test(f))
  .map((f) => `dist/${f}`)
const expectedRoot = ['LICENSE', 'README.md', 'package.json', ...distFiles].sort()
check('root tarball holds no .node file', !rootPack.files.some((f) => f.endsWith('.node')), rootPack.files.join(', '))
check(
  'root tarball holds exactly the built JS, types, README, LICENSE and package.json',
  JSON.stringify(rootPack.files) === JSON.stringify(expectedRoot),
  `got ${rootPack.files.join(', ')}\n     want ${expectedRoot.join(', ')}`,
)
const platformPack = pack(platformDir)
check(
  'platform tarball holds the binary and its package.json only',
  JSON.stringify(platformPack.files) === JSON.stringify([binary, 'package.json'].sort()),
  platformPack.files.join(', '),
)

// ---- install as a user ----------------------------------------------------------------
function project(name, tarballs) {
  const dir = join(work, name)
  execFileSync('mkdir', ['-p', dir])
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  npm(['install', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], dir, userEnv)
  return dir
}
const run = (dir, file, source) => {
  writeFileSync(join(dir, file), source)
  return spawnSync(process.execPath, [file], { cwd: dir, env: userEnv, encoding: 'utf8' })
}

const app = project('app', [rootPack.file, platformPack.file])
const smoke = `
const { Worker } = require('node:worker_threads')
const ta = require('tensor-arena')
const a = new ta.Arena({ maxBytes: 64 << 20 })
const buf = a.alloc(1000); new Uint8Array(buf).fill(7); a.free(buf)
if (buf.byteLength !== 0) throw new Error('not detached')
const arr = a.array('float32', 256); arr.fill(1); a.free(arr)
const v = a.view('float64', 16); v[0] = 3; a.free(v)
const t = ta.view('uint8', 10); ta.free(t)
const s = a.stats()
if (s.liveBytes !== 0 || s.allocationsTotal !== 3) throw new Error('stats ' + JSON.stringify(s))
const w = new Worker("const ta = require('tensor-arena'); const x = ta.array('float32', 1024); x.fill(2); require('node:worker_threads').parentPort.postMessage(ta.stats().liveBytes)", { eval: true })
w.once('message', (live) => { if (live < 4096) throw new Error('worker live ' + live) })
w.once('exit', (code) => { if (code !== 0) throw new Error('worker exit ' + code); console.log('cjs smoke ok') })
`
let r = run(app, 'smoke.cjs', smoke)
check('require("tensor-arena"): alloc/array/view/free, stats, a worker', r.status === 0 && r.stdout.includes('cjs smoke ok'), r.stderr)
r = run(
  app,
  'smoke.mjs',
  `import { Arena, alloc, free, SizeClass, sizeClassOf, AllocatorError } from 'tensor-arena'
   import * as cjs from 'tensor-arena'
   const b = alloc(64); free(b)
   try { free(b) } catch (e) { if (!(e instanceof AllocatorError) || e.code !== 'ERR_DOUBLE_FREE') throw e }
   if (sizeClassOf(4097) !== SizeClass.B5120) throw new Error('size class')
   if (typeof Arena !== 'function' || cjs.Arena !== Arena) throw new Error('esm')
   console.log('esm smoke ok')`,
)
check('import("tensor-arena") (ESM entry)', r.status === 0 && r.stdout.includes('esm smoke ok'), r.stderr)

// ---- loader errors --------------------------------------------------------------------
const missing = project('missing', [rootPack.file])
r = run(missing, 'load.cjs', "require('tensor-arena')")
check(
  'missing platform package: the loader says it cannot find the native binding',
  r.status !== 0 && r.stderr.includes('Cannot find native binding'),
  r.stderr.slice(0, 400),
)

const skewDir = join(work, 'skew-src')
execFileSync('cp', ['-r', platformDir, skewDir])
const skewManifest = JSON.parse(readFileSync(join(skewDir, 'package.json'), 'utf8'))
writeFileSync(join(skewDir, 'package.json'), JSON.stringify({ ...skewManifest, version: '0.0.1-skew' }))
const skewed = project('skewed', [rootPack.file, pack(skewDir).file])
r = run(
  skewed,
  'load.cjs',
  "try { require('tensor-arena') } catch (e) { for (let c = e; c; c = c.cause) console.error(String(c)); process.exit(3) }",
)
check(
  'mismatched platform package version: the loader reports the mismatch',
  r.status === 3 && r.stderr.includes('version mismatch'),
  r.stderr.slice(0, 400),
)

rmSync(join(platformDir, binary))
rmSync(work, { recursive: true, force: true })
console.log(`${passes} passed, ${failures} failed`)
process.exit(failures === 0 ? 0 : 1)

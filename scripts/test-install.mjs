// Installs the package the way the README tells users to (Building from source, "Packing
// it for another project"): runs the README's pack commands in this clone and its install
// command in a fresh project with no Rust toolchain on PATH and
// NAPI_RS_ENFORCE_VERSION_CHECK=1, then smoke-tests through require() and import(). Also
// checks both tarballs' file lists and manifests, and the loader's errors: the root
// tarball alone (ERR_NATIVE_PACKAGE_MISSING, with the message the README quotes) and a
// platform package of another version. Linux x64 (glibc) only, as the README's commands.
// Run after `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const platform = 'linux-x64-gnu'
const binary = `tensor-arena.${platform}.node`
const platformDir = join(root, 'npm', platform)
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const REPOSITORY = 'https://github.com/tensor-arena/tensor-arena'
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
  return join(work, info.filename)
}

// The README's blocks: `<!-- test-install: NAME ... -->` right before a fenced block.
const readme = readFileSync(join(root, 'README.md'), 'utf8')
function readmeBlock(name) {
  const match = new RegExp(`<!-- test-install: ${name}\\b[^>]*-->\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\``).exec(readme)
  if (match === null) throw new Error(`README.md has no block marked <!-- test-install: ${name} -->`)
  return match[1]
}
/** Runs a README block as written (sh -e), in `cwd`. */
function runBlock(name, block, cwd, env) {
  const r = spawnSync('sh', ['-ec', block], { cwd, env, encoding: 'utf8' })
  check(`README's ${name} commands run`, r.status === 0, `${block}\n     ${r.stderr.slice(-600)}`)
  return r.status === 0
}

// PATH without any directory that provides cargo or rustc.
const toolFree = process.env.PATH.split(delimiter)
  .filter((d) => !['cargo', 'rustc'].some((tool) => existsSync(join(d, tool))))
  .join(delimiter)
const userEnv = { ...process.env, PATH: toolFree, NAPI_RS_ENFORCE_VERSION_CHECK: '1' }
check('no cargo or rustc on the install PATH', spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env: userEnv }).status !== 0)

// ---- tarballs, made by the README's pack commands --------------------------------------
const rootTarball = join(root, `tensor-arena-${version}.tgz`)
const platformTarball = join(root, `tensor-arena-${platform}-${version}.tgz`)
const made = [rootTarball, platformTarball, join(platformDir, binary)]
for (const file of made) rmSync(file, { force: true })
process.on('exit', () => {
  for (const file of made) rmSync(file, { force: true })
  rmSync(work, { recursive: true, force: true })
})
if (!runBlock('pack', readmeBlock('pack'), root, process.env)) process.exit(1)
check('the pack commands make the two tarballs the install command names', existsSync(rootTarball) && existsSync(platformTarball))
const listing = (tarball) =>
  execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''))
    .sort()
const packedManifest = (tarball) => JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }))

const rootFiles = listing(rootTarball)
const distFiles = readdirSync(join(root, 'dist'))
  .filter((f) => /\.(js|mjs|cjs|d\.ts|d\.mts|d\.cts)$/.test(f))
  .map((f) => `dist/${f}`)
const expectedRoot = ['LICENSE', 'README.md', 'package.json', ...distFiles].sort()
check('root tarball holds no .node file', !rootFiles.some((f) => f.endsWith('.node')), rootFiles.join(', '))
check(
  'root tarball holds exactly the built JS, types, README, LICENSE and package.json',
  JSON.stringify(rootFiles) === JSON.stringify(expectedRoot),
  `got ${rootFiles.join(', ')}\n     want ${expectedRoot.join(', ')}`,
)
const platformFiles = listing(platformTarball)
check(
  'platform tarball holds the binary and its package.json only',
  JSON.stringify(platformFiles) === JSON.stringify([binary, 'package.json'].sort()),
  platformFiles.join(', '),
)
for (const tarball of [rootTarball, platformTarball]) {
  const m = packedManifest(tarball)
  check(
    `${m.name}'s packed manifest names the repository (npm provenance), homepage and issue tracker`,
    m.repository?.url === `git+${REPOSITORY}.git` && m.homepage === `${REPOSITORY}#readme` && m.bugs?.url === `${REPOSITORY}/issues`,
    JSON.stringify({ repository: m.repository, homepage: m.homepage, bugs: m.bugs }),
  )
}

// ---- install as a user ----------------------------------------------------------------
function project(name) {
  const dir = join(work, name)
  execFileSync('mkdir', ['-p', dir])
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  return dir
}
function install(name, tarballs) {
  const dir = project(name)
  npm(['install', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], dir, userEnv)
  return dir
}
const run = (dir, file, source) => {
  writeFileSync(join(dir, file), source)
  return spawnSync(process.execPath, [file], { cwd: dir, env: userEnv, encoding: 'utf8' })
}

// The README's install command, as written but for the clone's path.
const app = project('app')
if (!runBlock('install', readmeBlock('install').replaceAll('/path/to/tensor-arena', root), app, userEnv)) process.exit(1)
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
// The root tarball alone: the error names the platform package, the version and both fixes,
// word for word as the README quotes it, through require() and import().
const missing = install('missing', [rootTarball])
const report = "console.log(JSON.stringify({ code: e.code, packageName: e.packageName, version: e.version, message: e.message }))"
const quoted = readmeBlock('missing-message')
for (const [file, source] of [
  ['load.cjs', `try { require('tensor-arena') } catch (e) { ${report} }`],
  ['load.mjs', `try { await import('tensor-arena') } catch (e) { ${report} }`],
]) {
  r = run(missing, file, source)
  let e = {}
  try {
    e = JSON.parse(r.stdout)
  } catch {
    // e stays empty: the checks below fail and print what ran.
  }
  const detail = `${r.stdout}${r.stderr}`.slice(0, 1200)
  check(
    `missing platform package (${file}): ERR_NATIVE_PACKAGE_MISSING naming tensor-arena-${platform} and tensor-arena ${version}`,
    e.code === 'ERR_NATIVE_PACKAGE_MISSING' && e.packageName === `tensor-arena-${platform}` && e.version === version,
    detail,
  )
  check(
    `missing platform package (${file}): the message gives both fixes, is the README's, and names no WASI package`,
    e.message?.includes(`npm install tensor-arena-${platform}@${version}`) &&
      e.message.includes('build the addon from source') &&
      !/wasi/i.test(e.message) &&
      e.message === quoted,
    `${e.message}\n     README: ${quoted}`,
  )
}

const skewDir = join(work, 'skew-src')
execFileSync('cp', ['-r', platformDir, skewDir])
const skewManifest = JSON.parse(readFileSync(join(skewDir, 'package.json'), 'utf8'))
writeFileSync(join(skewDir, 'package.json'), JSON.stringify({ ...skewManifest, version: '0.0.1-skew' }))
const skewed = install('skewed', [rootTarball, pack(skewDir)])
r = run(
  skewed,
  'load.cjs',
  "try { require('tensor-arena') } catch (e) { console.error(e.code); for (let c = e; c; c = c.cause) console.error(String(c)); process.exit(3) }",
)
check(
  'mismatched platform package version: ERR_NATIVE_LOAD_FAILED reporting the mismatch',
  r.status === 3 &&
    r.stderr.startsWith('ERR_NATIVE_LOAD_FAILED') &&
    r.stderr.includes(`version mismatch: tensor-arena-${platform} is 0.0.1-skew, tensor-arena is ${version}`),
  r.stderr.slice(0, 600),
)

console.log(`${passes} passed, ${failures} failed`)
process.exit(failures === 0 ? 0 : 1)

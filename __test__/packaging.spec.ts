// Package metadata (root and npm/<platform>) and the error a missing or broken native
// binary gives (src/ts/load-native.ts). scripts/test-install.mjs checks the same error
// end to end, from a real install without the platform package.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import test from 'ava'

import type * as LoadNative from '../src/ts/load-native'
import { repoRoot } from './helpers'

const { PREBUILT_PLATFORMS, currentPlatform, describeLoadFailure, platformName } = require(
  path.join(repoRoot, 'dist', 'load-native.js'),
) as typeof LoadNative

const REPOSITORY = 'https://github.com/tensor-arena/tensor-arena'
interface Manifest {
  name: string
  version: string
  os?: string[]
  cpu?: string[]
  libc?: string[]
  repository?: { type?: string; url?: string; directory?: string }
  homepage?: string
  bugs?: { url?: string }
  napi?: { targets: string[] }
}
const manifest = (dir: string): Manifest => JSON.parse(readFileSync(path.join(repoRoot, dir, 'package.json'), 'utf8'))
const platformDirs = readdirSync(path.join(repoRoot, 'npm')).sort()
const root = manifest('.')

test('every package.json names the repository (as npm provenance checks it), the homepage and the issue tracker', (t) => {
  for (const dir of ['.', ...platformDirs.map((d) => `npm/${d}`)]) {
    const m = manifest(dir)
    t.is(m.repository?.type, 'git', dir)
    t.is(m.repository?.url, `git+${REPOSITORY}.git`, dir)
    t.is(m.repository?.directory, dir === '.' ? undefined : dir, dir)
    t.is(m.homepage, `${REPOSITORY}#readme`, dir)
    t.is(m.bugs?.url, `${REPOSITORY}/issues`, dir)
  }
})

test("the loader's list of prebuilt platforms is exactly the npm/<platform> packages, one per napi target", (t) => {
  t.deepEqual([...PREBUILT_PLATFORMS].sort(), platformDirs)
  t.is(root.napi?.targets.length, platformDirs.length)
  for (const dir of platformDirs) {
    const m = manifest(`npm/${dir}`)
    t.is(m.name, `tensor-arena-${dir}`)
    t.is(m.version, root.version, `${dir} has the root version`)
    t.is(platformName(m.os?.[0] ?? '', m.cpu?.[0] ?? '', m.libc?.[0] === 'musl'), dir, 'its os/cpu/libc name it')
  }
})

test("this process's platform, as the loader detects it (musl or glibc on Linux), is the one the addon was built for", (t) => {
  t.true(existsSync(path.join(repoRoot, 'dist', `tensor-arena.${currentPlatform()}.node`)), currentPlatform())
})

test('platform names follow napi-rs: gnu or musl on Linux, msvc on Windows, none on macOS', (t) => {
  t.is(platformName('linux', 'x64', false), 'linux-x64-gnu')
  t.is(platformName('linux', 'x64', true), 'linux-x64-musl')
  t.is(platformName('linux', 'arm64', true), 'linux-arm64-musl')
  t.is(platformName('darwin', 'arm64', false), 'darwin-arm64')
  t.is(platformName('win32', 'x64', false), 'win32-x64-msvc')
})

const facts = (over: Partial<LoadNative.LoadFacts>): LoadNative.LoadFacts => ({
  version: '0.1.0',
  platform: 'linux-x64-gnu',
  installedPackageVersion: undefined,
  localBinary: false,
  versionCheck: false,
  reasons: [],
  ...over,
})

test('a missing platform package is named exactly, with the installed version and both fixes', (t) => {
  for (const platform of ['linux-x64-gnu', 'linux-x64-musl', 'darwin-arm64']) {
    const failure = describeLoadFailure(facts({ platform }))
    t.is(failure.code, 'ERR_NATIVE_PACKAGE_MISSING')
    t.is(failure.packageName, `tensor-arena-${platform}`)
    t.true(failure.message.startsWith(`tensor-arena 0.1.0 cannot load its native addon: the package tensor-arena-${platform},`), failure.message)
    t.true(failure.message.includes(`npm install tensor-arena-${platform}@0.1.0`), failure.message)
    t.true(failure.message.includes(`build the addon from source (needs Rust; see ${REPOSITORY}#building-from-source)`), failure.message)
    t.false(/wasi/i.test(failure.message), failure.message)
  }
})

test('a platform without a prebuilt binary gets ERR_PLATFORM_UNSUPPORTED: build from source, nothing to install', (t) => {
  const failure = describeLoadFailure(facts({ platform: 'linux-riscv64-gnu' }))
  t.is(failure.code, 'ERR_PLATFORM_UNSUPPORTED')
  t.true(failure.message.includes('no prebuilt binary for this platform (linux-riscv64-gnu)'), failure.message)
  t.true(failure.message.includes('linux-x64-gnu, linux-arm64-gnu'), failure.message)
  t.true(failure.message.includes('build the addon from source'), failure.message)
  t.false(failure.message.includes('npm install'), failure.message)
})

test('an installed platform package of another version is a version mismatch when the version check is on', (t) => {
  const failure = describeLoadFailure(
    facts({ installedPackageVersion: '0.0.1-skew', versionCheck: true, reasons: ['Native binding package version mismatch'] }),
  )
  t.is(failure.code, 'ERR_NATIVE_LOAD_FAILED')
  t.true(
    failure.message.startsWith(
      'tensor-arena 0.1.0 cannot load its native addon from tensor-arena-linux-x64-gnu@0.0.1-skew: version mismatch: ' +
        'tensor-arena-linux-x64-gnu is 0.0.1-skew, tensor-arena is 0.1.0',
    ),
    failure.message,
  )
  t.true(failure.message.includes('npm install tensor-arena-linux-x64-gnu@0.1.0'), failure.message)
})

test('a binary that is there but does not load is reported with the reasons napi-rs gave', (t) => {
  const reason = '/x/tensor-arena.linux-x64-gnu.node: invalid ELF header'
  const installed = describeLoadFailure(facts({ installedPackageVersion: '0.1.0', reasons: [reason] }))
  t.is(installed.code, 'ERR_NATIVE_LOAD_FAILED')
  t.true(installed.message.includes(`from tensor-arena-linux-x64-gnu@0.1.0: ${reason}.`), installed.message)
  const local = describeLoadFailure(facts({ localBinary: true, reasons: [reason] }))
  t.is(local.code, 'ERR_NATIVE_LOAD_FAILED')
  t.true(local.message.includes(`from dist/tensor-arena.linux-x64-gnu.node: ${reason}.`), local.message)
})

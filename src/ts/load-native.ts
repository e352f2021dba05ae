// Loads the native addon through napi-rs's generated loader (dist/binding.cjs, left as
// napi-rs writes it). When that loader finds no binary it throws "Cannot find native
// binding", whose cause chain ends in a WASI package this project does not publish; this
// module throws instead an error that names the package this platform needs, the installed
// version of tensor-arena and the two fixes (install it, or build from source).
import { execSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Codes of a {@link NativeLoadError}. */
export type NativeLoadErrorCode = 'ERR_NATIVE_PACKAGE_MISSING' | 'ERR_NATIVE_LOAD_FAILED' | 'ERR_PLATFORM_UNSUPPORTED'

/**
 * The error `require('tensor-arena')` / `import 'tensor-arena'` throws when the native
 * addon cannot be loaded: `ERR_NATIVE_PACKAGE_MISSING` (the platform package, e.g.
 * `tensor-arena-linux-x64-gnu`, is not installed), `ERR_NATIVE_LOAD_FAILED` (it is, but
 * its binary did not load, or its version differs while `NAPI_RS_ENFORCE_VERSION_CHECK`
 * is set) or `ERR_PLATFORM_UNSUPPORTED` (no prebuilt binary for this platform). Its
 * `cause` is napi-rs's loader error, which lists every path it tried.
 */
export interface NativeLoadError extends Error {
  /** Which failure. */
  readonly code: NativeLoadErrorCode
  /** The platform package this platform needs (`tensor-arena-<platform>`). */
  readonly packageName: string
  /** The installed version of tensor-arena (the platform package must have the same). */
  readonly version: string
}

/**
 * The platforms with a prebuilt binary package `tensor-arena-<platform>` (npm/<platform>/,
 * package.json's `napi.targets`). @internal
 */
export const PREBUILT_PLATFORMS: readonly string[] = Object.freeze([
  'linux-x64-gnu',
  'linux-arm64-gnu',
  'linux-x64-musl',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
])

/** Where the README explains a source build. */
const FROM_SOURCE = 'https://github.com/tensor-arena/tensor-arena#building-from-source'

/**
 * napi-rs's name for a platform (the `<platform>` of `tensor-arena-<platform>` and of
 * `tensor-arena.<platform>.node`), as its loader picks it. @internal
 */
export function platformName(platform: string, arch: string, musl: boolean): string {
  if (platform === 'linux') return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** What is known about a failed load. @internal */
export interface LoadFacts {
  /** The installed version of tensor-arena. */
  version: string
  /** {@link platformName} of this process. */
  platform: string
  /** The platform package's version, if it is installed. */
  installedPackageVersion: string | undefined
  /** Whether `dist/tensor-arena.<platform>.node` (a source build) exists. */
  localBinary: boolean
  /** Whether `NAPI_RS_ENFORCE_VERSION_CHECK` asks the loader to refuse a different version. */
  versionCheck: boolean
  /** napi-rs's reasons for this platform (its WASI fallback's left out). */
  reasons: string[]
}

/** The code and message of a failed load. @internal */
export function describeLoadFailure(facts: LoadFacts): { code: NativeLoadErrorCode; packageName: string; message: string } {
  const { version, platform } = facts
  const packageName = `tensor-arena-${platform}`
  const install = `npm install ${packageName}@${version}`
  const build = `build the addon from source (needs Rust; see ${FROM_SOURCE})`
  if (!facts.localBinary && facts.installedPackageVersion === undefined) {
    if (!PREBUILT_PLATFORMS.includes(platform)) {
      const message =
        `tensor-arena ${version} has no prebuilt binary for this platform (${platform}); the prebuilt ones are ` +
        `${PREBUILT_PLATFORMS.join(', ')}. To use it here, ${build}`
      return { code: 'ERR_PLATFORM_UNSUPPORTED', packageName, message }
    }
    const message =
      `tensor-arena ${version} cannot load its native addon: the package ${packageName}, which holds the ` +
      `prebuilt binary for this platform (${platform}), is not installed (npm leaves optional dependencies out ` +
      `with --omit=optional, and a lockfile written on another platform may lack it). To fix it, either:\n` +
      `  - install it: ${install} (the same version as tensor-arena), or\n` +
      `  - ${build}`
    return { code: 'ERR_NATIVE_PACKAGE_MISSING', packageName, message }
  }
  const from =
    facts.installedPackageVersion === undefined
      ? `dist/tensor-arena.${platform}.node`
      : `${packageName}@${facts.installedPackageVersion}`
  const skewed = facts.installedPackageVersion !== undefined && facts.installedPackageVersion !== version
  const why =
    skewed && facts.versionCheck
      ? `version mismatch: ${packageName} is ${facts.installedPackageVersion}, tensor-arena is ${version} ` +
        '(NAPI_RS_ENFORCE_VERSION_CHECK is set)'
      : facts.reasons.join('; ') || 'the loader gave no reason'
  const message =
    `tensor-arena ${version} cannot load its native addon from ${from}: ${why}. To fix it, either:\n` +
    `  - reinstall the platform package: ${install}, or\n` +
    `  - ${build}`
  return { code: 'ERR_NATIVE_LOAD_FAILED', packageName, message }
}

/** Whether this Linux uses musl, decided the way napi-rs's loader decides it. */
function isMusl(): boolean {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // No /usr/bin/ldd: ask the process report, then `ldd --version`, as napi-rs does.
  }
  const report = process.report?.getReport() as
    | { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] }
    | undefined
  if (report !== undefined) {
    if (report.header?.glibcVersionRuntime) return false
    return (report.sharedObjects ?? []).some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'))
  }
  try {
    return execSync('ldd --version', { encoding: 'utf8' }).includes('musl')
  } catch {
    return false
  }
}

/** {@link platformName} of this process. @internal */
export function currentPlatform(): string {
  return platformName(process.platform, process.arch, process.platform === 'linux' && isMusl())
}

/** The messages of an error and its causes, outermost first. */
function causeMessages(error: unknown): string[] {
  const messages: string[] = []
  for (let e = error; e instanceof Error && messages.length < 50; e = e.cause) messages.push(e.message)
  return messages
}

/** The error for napi-rs's loader failing with `error`. */
function loadError(error: unknown): Error {
  const dist = __dirname
  let version = 'unknown'
  try {
    version = String((JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version?: unknown }).version)
  } catch {
    // Leave "unknown": the message still names the package and the fixes.
  }
  const platform = currentPlatform()
  let installedPackageVersion: string | undefined
  try {
    installedPackageVersion = String((require(`tensor-arena-${platform}/package.json`) as { version?: unknown }).version)
  } catch {
    installedPackageVersion = undefined
  }
  const check = process.env.NAPI_RS_ENFORCE_VERSION_CHECK
  const facts: LoadFacts = {
    version,
    platform,
    installedPackageVersion,
    localBinary: existsSync(join(dist, `tensor-arena.${platform}.node`)),
    versionCheck: check !== undefined && check !== '' && check !== '0',
    // napi-rs's chain without its top line, its WASI fallback's reasons and the missing
    // source build; the first line of each (not the require stacks).
    reasons: causeMessages(error)
      .slice(1)
      .map((m) => m.split('\n', 1)[0] ?? m)
      .filter((m) => !/wasi/i.test(m) && !m.includes(`'./tensor-arena.${platform}.node'`)),
  }
  const { code, packageName, message } = describeLoadFailure(facts)
  return Object.assign(new Error(message, { cause: error }), { code, packageName, version })
}

/**
 * The addon, loaded by napi-rs's loader (`./binding.cjs`).
 * @throws {NativeLoadError} when no binary loads (unless a `NAPI_RS_*` override chose the
 *   binary: then napi-rs's own error).
 * @internal
 */
export function loadNative(): unknown {
  try {
    return require('./binding.cjs')
  } catch (error) {
    const env = process.env
    if (env.NAPI_RS_NATIVE_LIBRARY_PATH || env.NAPI_RS_FORCE_WASI || env.NAPI_RS_WASI_FLAVOR) throw error
    throw loadError(error)
  }
}

// The release workflow's pre-publish check (scripts/check-publish-metadata.mjs): run on
// fixture repositories, it passes only when the root and every napi target's
// npm/<platform>/package.json name the workflow's repository in repository.url and the
// platform packages have the root's version.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import test from 'ava'
import { repoRoot } from './helpers'

const SCRIPT = path.join(repoRoot, 'scripts', 'check-publish-metadata.mjs')
const REPO = 'acme/tensor-arena'
const EXPECTED_URL = `git+https://github.com/${REPO}.git`
const TARGETS: Record<string, string> = { 'x86_64-unknown-linux-gnu': 'linux-x64-gnu', 'aarch64-unknown-linux-musl': 'linux-arm64-musl' }

type Manifest = Record<string, unknown>

/** A fixture repository: the root package.json and npm/<platform>/package.json, each changed by `edit`. */
function fixture(edit: (where: string, manifest: Manifest) => Manifest | undefined = (_, m) => m): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'publish-metadata-'))
  const write = (where: string, manifest: Manifest): void => {
    const changed = edit(where, manifest)
    if (changed === undefined) return
    mkdirSync(path.dirname(path.join(dir, where)), { recursive: true })
    writeFileSync(path.join(dir, where), JSON.stringify(changed))
  }
  const repository = { type: 'git', url: EXPECTED_URL }
  write('package.json', { name: 'tensor-arena', version: '1.2.3', repository, napi: { targets: Object.keys(TARGETS) } })
  for (const platform of Object.values(TARGETS)) {
    write(`npm/${platform}/package.json`, { name: `tensor-arena-${platform}`, version: '1.2.3', repository })
  }
  return dir
}

function check(dir: string, args = ['--repo', REPO], env: NodeJS.ProcessEnv = { ...process.env, GITHUB_REPOSITORY: '' }) {
  const run = spawnSync(process.execPath, [SCRIPT, '--root', dir, ...args], { encoding: 'utf8', env, timeout: 30_000 })
  rmSync(dir, { recursive: true, force: true })
  return { status: run.status, stdout: run.stdout, stderr: run.stderr }
}

test('passes when every package names the repository and has the root version', (t) => {
  const run = check(fixture())
  t.is(run.status, 0, run.stderr)
  t.regex(run.stdout, /ok {3}npm\/linux-arm64-musl\/package\.json \(tensor-arena-linux-arm64-musl@1\.2\.3\)/)
  t.regex(run.stdout, /every package to publish names git\+https:\/\/github\.com\/acme\/tensor-arena\.git and has version 1\.2\.3/)
})

test('accepts the https form without git+ and .git, and takes the repository from GITHUB_REPOSITORY', (t) => {
  const dir = fixture((where, m) => (where === 'package.json' ? { ...m, repository: { type: 'git', url: `https://github.com/${REPO}` } } : m))
  const run = check(dir, [], { ...process.env, GITHUB_REPOSITORY: REPO })
  t.is(run.status, 0, run.stderr)
})

test("fails naming the package and the expected url when a platform package's repository.url is another repository", (t) => {
  const fork = 'git+https://github.com/someone/tensor-arena.git'
  const dir = fixture((where, m) => (where.includes('linux-x64-gnu') ? { ...m, repository: { type: 'git', url: fork } } : m))
  const run = check(dir)
  t.is(run.status, 1)
  t.regex(run.stdout, /FAIL npm\/linux-x64-gnu\/package\.json/)
  t.true(
    run.stderr.includes(`npm/linux-x64-gnu/package.json: repository.url is "${fork}", but this workflow runs in ${REPO}: provenance needs "${EXPECTED_URL}"`),
    run.stderr,
  )
  t.regex(run.stderr, /^1 problem for publishing from acme\/tensor-arena with provenance:/m)
})

test('fails when the root package.json has no repository, or has it as a string', (t) => {
  const missing = check(fixture((where, m) => (where === 'package.json' ? { ...m, repository: undefined } : m)))
  t.is(missing.status, 1)
  t.regex(missing.stderr, /package\.json: no "repository"; provenance needs \{ "type": "git", "url": "git\+https:\/\/github\.com\/acme\/tensor-arena\.git" \}/)
  const shorthand = check(fixture((where, m) => (where === 'package.json' ? { ...m, repository: 'github:acme/tensor-arena' } : m)))
  t.is(shorthand.status, 1)
  t.regex(shorthand.stderr, /package\.json: "repository" must be \{ "type": "git", "url": .* got "github:acme\/tensor-arena"/)
})

test("fails when a platform package's version is not the root's", (t) => {
  const run = check(fixture((where, m) => (where.includes('linux-arm64-musl') ? { ...m, version: '1.2.2' } : m)))
  t.is(run.status, 1)
  t.regex(run.stderr, /npm\/linux-arm64-musl\/package\.json: version is "1\.2\.2", the root's is "1\.2\.3"/)
})

test('fails when a napi target has no npm/<platform>/package.json', (t) => {
  const run = check(fixture((where, m) => (where.includes('linux-arm64-musl') ? undefined : m)))
  t.is(run.status, 1)
  t.regex(run.stderr, /npm\/linux-arm64-musl\/package\.json: missing \(napi\.targets has aarch64-unknown-linux-musl\)/)
})

test('refuses to run without a repository to compare with (exit 2)', (t) => {
  const run = check(fixture(), [])
  t.is(run.status, 2)
  t.regex(run.stderr, /no repository: pass --repo <owner>\/<name> or set GITHUB_REPOSITORY/)
})

// Checks what `npm publish --provenance` needs of every package.json the release workflow
// publishes, before anything is published (a dry run publishes nothing, so npm never gets to
// check it): the root package.json and npm/<platform>/package.json of each napi target must
// have `repository.url` naming the repository the workflow runs in
// (`git+https://github.com/<owner>/<name>.git`, or the same without `git+` or `.git`; the
// registry refuses a provenance statement whose source repository differs), and every
// platform package must have the root's version.
// Usage: node scripts/check-publish-metadata.mjs [--repo <owner>/<name>] [--root <dir>]
//   --repo defaults to $GITHUB_REPOSITORY (set by GitHub Actions), --root to this repository.
// Prints one line per package; exits 1 listing every problem, 2 on bad usage.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseTriple } from '@napi-rs/cli'

function usage(message) {
  console.error(`check-publish-metadata: ${message}`)
  console.error('usage: node scripts/check-publish-metadata.mjs [--repo <owner>/<name>] [--root <dir>]')
  process.exit(2)
}

let values
try {
  ;({ values } = parseArgs({ options: { repo: { type: 'string' }, root: { type: 'string' } } }))
} catch (error) {
  usage(error.message)
}
const repo = values.repo ?? process.env.GITHUB_REPOSITORY
if (!repo) usage('no repository: pass --repo <owner>/<name> or set GITHUB_REPOSITORY')
if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repo)) usage(`"${repo}" is not <owner>/<name>`)
const root = values.root ?? join(dirname(fileURLToPath(import.meta.url)), '..')
const expectedUrl = `git+https://github.com/${repo}.git`
// npm and the registry read these as the same repository.
const accepted = new Set([`https://github.com/${repo}`, `https://github.com/${repo}.git`, `git+https://github.com/${repo}`, expectedUrl])

const problems = []
function readManifest(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    problems.push(`${relative(root, file) || file}: cannot read it (${error.message})`)
    return undefined
  }
}

/** Problems of one manifest's `repository` field (none when its url names the repository). */
function checkRepository(where, manifest) {
  const { repository } = manifest
  if (repository === undefined) return [`${where}: no "repository"; provenance needs { "type": "git", "url": "${expectedUrl}" }`]
  if (typeof repository !== 'object' || repository === null || typeof repository.url !== 'string') {
    return [`${where}: "repository" must be { "type": "git", "url": "${expectedUrl}" }, got ${JSON.stringify(repository)}`]
  }
  if (!accepted.has(repository.url)) {
    return [`${where}: repository.url is "${repository.url}", but this workflow runs in ${repo}: provenance needs "${expectedUrl}"`]
  }
  return []
}

const rootFile = join(root, 'package.json')
const rootManifest = readManifest(rootFile)
if (rootManifest !== undefined) {
  const rootProblems = checkRepository('package.json', rootManifest)
  if (typeof rootManifest.version !== 'string' || rootManifest.version === '') rootProblems.push('package.json: no "version"')
  const targets = rootManifest.napi?.targets
  if (!Array.isArray(targets) || targets.length === 0) rootProblems.push('package.json: no napi.targets, so no platform packages to check')
  problems.push(...rootProblems)
  console.log(`${rootProblems.length === 0 ? 'ok  ' : 'FAIL'} package.json (${rootManifest.name}@${rootManifest.version})`)

  for (const triple of Array.isArray(targets) ? targets : []) {
    const where = `npm/${parseTriple(triple).platformArchABI}/package.json`
    const file = join(root, where)
    if (!existsSync(file)) {
      problems.push(`${where}: missing (napi.targets has ${triple})`)
      console.log(`FAIL ${where}`)
      continue
    }
    const manifest = readManifest(file)
    if (manifest === undefined) continue
    const found = checkRepository(where, manifest)
    if (manifest.version !== rootManifest.version) {
      found.push(`${where}: version is ${JSON.stringify(manifest.version)}, the root's is ${JSON.stringify(rootManifest.version)}`)
    }
    problems.push(...found)
    console.log(`${found.length === 0 ? 'ok  ' : 'FAIL'} ${where} (${manifest.name}@${manifest.version})`)
  }
}

if (problems.length > 0) {
  console.error(`\n${problems.length} problem${problems.length === 1 ? '' : 's'} for publishing from ${repo} with provenance:`)
  for (const problem of problems) console.error(`  ${problem}`)
  process.exit(1)
}
console.log(`every package to publish names ${expectedUrl} and has version ${rootManifest.version}`)

// The published declarations type-check in a strict consumer project that has nothing but
// them: no @types/node, no esnext lib, skipLibCheck off, module nodenext, as ESM (.mts) and
// as CommonJS (.cts), with TypeScript 5 (typescript) and 7 (typescript-7); and again with
// @types/node and/or the esnext.disposable lib, whose Symbol.dispose must merge with the
// package's own declaration. The consumer is __test__/types-consumer/. Needs `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import test from 'ava'

import { repoRoot } from './helpers'

const COMPILERS = [
  { name: 'TypeScript 5', tsc: path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc') },
  { name: 'TypeScript 7', tsc: path.join(repoRoot, 'node_modules', 'typescript-7', 'bin', 'tsc') },
]
const ENVIRONMENTS = [
  { name: 'no @types/node, lib es2022 only', lib: ['es2022'], types: [] },
  { name: 'lib es2022 + esnext.disposable', lib: ['es2022', 'esnext.disposable'], types: [] },
  { name: '@types/node, lib es2022', lib: ['es2022'], types: ['node'] },
  { name: '@types/node + esnext.disposable', lib: ['es2022', 'esnext.disposable'], types: ['node'] },
]

/** A consumer project with the package as `npm pack` would publish it (declarations only). */
const project = mkdtempSync(path.join(tmpdir(), 'tensor-arena-types-'))
test.after.always(() => rmSync(project, { recursive: true, force: true }))

function setUp(): string[] {
  const packed = JSON.parse(
    // npm is npm.cmd on Windows (the release workflow runs ava there): only a shell finds it.
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: repoRoot,
      encoding: 'utf8',
      shell: process.platform === 'win32',
    }),
  ) as { files: { path: string }[] }[]
  const published = packed[0]?.files.map((f) => f.path) ?? []
  const declarations = published.filter((f) => /\.d\.(ts|mts|cts)$/.test(f) || f === 'package.json')
  const installed = path.join(project, 'node_modules', 'tensor-arena')
  for (const file of declarations) {
    mkdirSync(path.dirname(path.join(installed, file)), { recursive: true })
    copyFileSync(path.join(repoRoot, file), path.join(installed, file))
  }
  const fixtures = path.join(repoRoot, '__test__', 'types-consumer')
  copyFileSync(path.join(fixtures, 'consumer.ts'), path.join(project, 'consumer.mts'))
  copyFileSync(path.join(fixtures, 'consumer.ts'), path.join(project, 'consumer.cts'))
  copyFileSync(path.join(fixtures, 'using.ts'), path.join(project, 'using.mts'))
  // One deliberate error: proof that the compiler really checked this project.
  writeFileSync(path.join(project, 'control.mts'), "export const control: number = 'not a number'\n")
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  return declarations
}
const declarations = setUp()

test('the packed package publishes ESM and CommonJS entry declarations and the thread cache declaration', (t) => {
  for (const file of ['package.json', 'dist/index.d.ts', 'dist/index.d.mts', 'dist/thread-cache.d.ts', 'dist/errors.d.ts']) {
    t.true(declarations.includes(file), `${file} in ${declarations.join(', ')}`)
  }
})

for (const environment of ENVIRONMENTS) {
  for (const compiler of COMPILERS) {
    test.serial(`the published types check in a strict consumer (ESM and CJS) with ${compiler.name}, ${environment.name}`, (t) => {
      // `using` needs the global Disposable type: esnext.disposable or @types/node has it.
      const usesUsing = environment.lib.includes('esnext.disposable') || environment.types.includes('node')
      const config = `tsconfig.${ENVIRONMENTS.indexOf(environment)}.json`
      const compilerOptions = {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
        skipLibCheck: false,
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        lib: environment.lib,
        types: environment.types,
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
      }
      const files = ['consumer.mts', 'consumer.cts', 'control.mts', ...(usesUsing ? ['using.mts'] : [])]
      writeFileSync(path.join(project, config), JSON.stringify({ compilerOptions, files }, null, 2))
      const run = spawnSync(process.execPath, [compiler.tsc, '-p', config, '--pretty', 'false'], {
        cwd: project,
        encoding: 'utf8',
      })
      const output = `${run.stdout}${run.stderr}`
      const errors = output.split('\n').filter((line) => /error TS\d+/.test(line))
      t.deepEqual(
        errors.map((line) => line.replace(/\(\d+,\d+\)/, '')),
        ["control.mts: error TS2322: Type 'string' is not assignable to type 'number'."],
        output,
      )
      t.not(run.status, 0)
    })
  }
}

// The stress run's checks (scripts/stress/run.mjs, `npm run stress`): each fails the run
// (status 1, seed printed) when `--inject` plants the fault it is for. (The full run itself
// is a .ci/run step.)
import { execFile } from 'node:child_process'
import * as path from 'node:path'
import test from 'ava'
import { repoRoot } from './helpers'

const SCRIPT = path.join(repoRoot, 'scripts', 'stress', 'run.mjs')

function stress(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, ...args], { timeout: 90_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

const FAULTS: [string, RegExp][] = [
  ['overlap', /range handed out twice/],
  ['cookie', /block \d+ starts with/],
  ['leak', /stats not back at the baseline: liveAllocations 0 -> 1/],
]

for (const [fault, message] of FAULTS) {
  test(`the stress run fails with its seed when --inject ${fault} plants that fault`, async (t) => {
    const { code, stderr } = await stress(['--seconds', '1', '--churn', '1', '--seed', '777', '--inject', fault])
    t.is(code, 1)
    t.regex(stderr, /stress FAILED \(seed 777\)/)
    t.regex(stderr, message)
    t.regex(stderr, /npm run stress -- --seconds 1 --seed 777/)
  })
}

// Where the runtime refuses external ArrayBuffers (V8 sandbox, e.g. Electron), every
// allocation fails loudly with AllocatorError ERR_EXTERNAL_BUFFERS_UNSUPPORTED: never a
// silent copy. Forced here with the addon's test hook in a child `node` process.
import { spawnSync } from 'node:child_process'
import test from 'ava'
import { repoRoot } from './helpers'

// Runs in the child (plain CommonJS, the package by its own name from the repo root).
const CHILD_SOURCE = `
const ta = require('tensor-arena')
const describe = (fn) => {
  try {
    const value = fn()
    return { threw: false, type: Object.prototype.toString.call(value), byteLength: value && value.byteLength }
  } catch (error) {
    return {
      threw: true,
      isAllocatorError: error instanceof ta.AllocatorError,
      name: error && error.name,
      code: error && error.code,
      message: String(error && error.message),
    }
  }
}
const arena = new ta.Arena({ maxBytes: 16 * 1024 * 1024 })
const calls = {
  alloc: [ta.defaultArena, () => ta.alloc(16)],
  view: [ta.defaultArena, () => ta.view('float32', 4)],
  array: [ta.defaultArena, () => ta.array('uint8', 4)],
  arenaAlloc: [arena, () => arena.alloc(16)],
  arenaView: [arena, () => arena.view('uint8', 16)],
  allocAgain: [ta.defaultArena, () => ta.alloc(16)],
  viewAgain: [ta.defaultArena, () => ta.view('float32', 4)],
}
const results = {}
// Live allocations each call left behind in its arena.
const stranded = {}
for (const [name, [owner, call]] of Object.entries(calls)) {
  const before = owner.stats()
  results[name] = describe(call)
  const after = owner.stats()
  stranded[name] = { allocations: after.liveAllocations - before.liveAllocations, bytes: after.liveBytes - before.liveBytes }
}
const s = ta.stats()
const a = arena.stats()
process.stdout.write(JSON.stringify({
  results,
  stranded,
  live: { defaultLive: s.liveAllocations, defaultBytes: s.liveBytes, arenaLive: a.liveAllocations },
  trim: typeof arena.trim(),
  cache: describe(() => { arena.threadCache().flush(); return arena.threadCache().stats() }),
}))
`

interface Outcome {
  threw: boolean
  isAllocatorError?: boolean
  name?: string
  code?: string
  message?: string
  type?: string
}

interface ChildReport {
  results: Record<string, Outcome>
  stranded: Record<string, { allocations: number; bytes: number }>
  live: { defaultLive: number; defaultBytes: number; arenaLive: number }
  trim: string
  cache: Outcome
}

function runChild(): { status: number | null; signal: NodeJS.Signals | null; stderr: string; report?: ChildReport } {
  const child = spawnSync(process.execPath, ['-e', CHILD_SOURCE], {
    cwd: repoRoot,
    env: { ...process.env, TENSOR_ARENA_TEST_REFUSE_EXTERNAL: '1', NODE_OPTIONS: '' },
    encoding: 'utf8',
    timeout: 30_000,
  })
  let report: ChildReport | undefined
  try {
    report = JSON.parse(child.stdout) as ChildReport
  } catch {
    report = undefined
  }
  return { status: child.status, signal: child.signal, stderr: child.stderr, report }
}

const child = runChild()

test('the child process runs to completion without crashing', (t) => {
  t.is(child.signal, null, child.stderr)
  t.is(child.status, 0, child.stderr)
  t.truthy(child.report, child.stderr)
})

function assertRefused(t: import('ava').ExecutionContext, name: string): void {
  const outcome = child.report?.results[name]
  t.truthy(outcome, child.stderr)
  if (!outcome) return
  t.true(outcome.threw, `${name} must throw, got ${JSON.stringify(outcome)}`)
  t.is(outcome.code, 'ERR_EXTERNAL_BUFFERS_UNSUPPORTED', name)
  t.true(outcome.isAllocatorError, `${name} must throw an AllocatorError, got ${outcome.name}: ${outcome.message}`)
  t.is(outcome.name, 'AllocatorError', name)
  t.regex(outcome.message ?? '', /external ArrayBuffer/i, name)
}

test('alloc(16) throws AllocatorError ERR_EXTERNAL_BUFFERS_UNSUPPORTED with a clear message', (t) => {
  assertRefused(t, 'alloc')
})

test("view('float32', 4) throws AllocatorError ERR_EXTERNAL_BUFFERS_UNSUPPORTED with a clear message", (t) => {
  assertRefused(t, 'view')
})

test('array, an own Arena and repeated calls are refused the same way', (t) => {
  for (const name of ['array', 'arenaAlloc', 'arenaView', 'allocAgain', 'viewAgain']) assertRefused(t, name)
})

test('refused allocations (alloc, array, view: a refused view gives its block back) strand nothing and the cold APIs keep working', (t) => {
  const report = child.report
  t.truthy(report, child.stderr)
  if (!report) return
  for (const name of ['alloc', 'view', 'array', 'arenaAlloc', 'arenaView', 'allocAgain', 'viewAgain']) {
    t.deepEqual(report.stranded[name], { allocations: 0, bytes: 0 }, name)
  }
  t.is(report.trim, 'number')
  t.false(report.cache.threw, JSON.stringify(report.cache))
})

// Seeded stress of the Node package: `npm run stress -- --seconds N --seed S [--churn M]`.
//
// The main thread and 4 workers share one arena (`Arena.shared`) and run random
// alloc / array / view / free / transfer / receive / reclaim, handing blocks to each other by
// postMessage. Every block carries an id cookie (its first and last 4 bytes; small blocks are
// filled whole) checked on free and on receive, and a SharedArrayBuffer owner map (one Int32
// per 64-byte granule of the arena) is marked by compare-and-exchange on every hand-out and
// receive, so a range handed out twice while live is caught. Meanwhile churn workers (two at
// a time) are started and terminated mid-work (at least --churn of them, 200 by default), and
// what they left in flight is reclaimed through `orphanedTransfers()`. At the end stats
// (live and in-flight allocations and bytes) must be back at the baseline and the owner map
// empty. Thread interleavings are not reproducible; each thread's choices are (seeded).
// A failure prints the seed and exits with status 1.
import { Worker } from 'node:worker_threads'
import { CHURN_SLOTS, GRANULE, JOURNAL, OwnerMap, StressFailure, expectCode, pkg, rng } from './common.mjs'
import { Participant } from './participant.mjs'

/**
 * Faults `--inject` plants in the main thread, to show each check catches what it is for:
 * `overlap` adopts a live block as if the arena had handed it out again (owner map),
 * `cookie` writes over a live block's first bytes (id cookie), `leak` drops a hand-off's
 * handle (stats back at the baseline).
 */
const INJECTIONS = ['overlap', 'cookie', 'leak']

function parseArgs(argv) {
  const args = { seconds: 10, seed: undefined, churn: 200, workers: 4, inject: undefined }
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '')
    if (key === 'inject') {
      args.inject = argv[++i]
      if (!INJECTIONS.includes(args.inject)) throw new Error(`--inject takes one of ${INJECTIONS.join(', ')}`)
      continue
    }
    if (!(key in args)) throw new Error(`unknown option ${argv[i]} (--seconds N, --seed S, --churn M, --workers W)`)
    const value = Number(argv[++i])
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${key} needs a whole number, got ${argv[i]}`)
    args[key] = value
  }
  if (args.seed === undefined) args.seed = (Math.random() * 0x100000000) >>> 0
  return args
}

const args = parseArgs(process.argv.slice(2))
const { seed } = args
console.log(`stress: seed ${seed}, ${args.seconds} s, ${args.workers} workers, at least ${args.churn} churn workers`)
console.log(`  rerun: npm run stress -- --seconds ${args.seconds} --seed ${seed}`)

const MAX_BYTES = 1024 * 1024 * 1024
const CHURN_AT_ONCE = 4
const name = `stress-${process.pid}`
const arena = pkg.Arena.shared(name, { maxBytes: MAX_BYTES })
const baseline = arena.stats()
const shared = {
  map: new SharedArrayBuffer((MAX_BYTES / GRANULE) * 4),
  dying: new SharedArrayBuffer(64 * 4),
  counter: new SharedArrayBuffer(4 * 4),
  journal: new SharedArrayBuffer(CHURN_SLOTS * JOURNAL * 3 * 4),
}
const owners = new OwnerMap(shared)
const counter = new Int32Array(shared.counter)
const workerUrl = new URL('./worker.mjs', import.meta.url)
const started = Date.now()
const deadline = started + args.seconds * 1000

let failed = false
function die(message) {
  if (failed) return
  failed = true
  console.error(`stress FAILED (seed ${seed}): ${message}`)
  // A churn worker's mark (EPHEMERAL | slot << 24 | sequence) in the message: what that slot's worker did.
  for (const [, id] of message.matchAll(/block (\d+)'s/g)) {
    const v = Number(id)
    if (v >= 0x40000000) console.error(`  block ${v}: churn slot ${(v >>> 24) & 0x3f}, its #${v & 0xffffff} mark; that slot's last worker: ${JSON.stringify(slotLog[(v >>> 24) & 0x3f])} (now ${Date.now() - started} ms)`)
  }
  console.error(`  rerun: npm run stress -- --seconds ${args.seconds} --seed ${seed}`)
  process.exit(1)
}
function guarded(fn) {
  try {
    fn()
    return true
  } catch (e) {
    die(e instanceof StressFailure ? `main: ${e.message}` : `main: ${e?.code ?? ''} ${e?.stack ?? e}`)
    return false
  }
}

const workers = []
const churnStats = { started: 0, terminated: 0, exitedEarly: 0, swept: 0, orphansReclaimed: 0 }
const churnMs = { toReady: 0, toExit: 0, sweep: 0 }
const toChurn = { sent: 0, receivedThere: 0, reclaimedHere: 0 }
const fromChurn = { received: 0, alreadyReclaimed: 0 }
/** Tokens of the orphans main reclaimed: a churn worker's late message for one must find it spent. */
const reclaimedTokens = new Set()

const me = new Participant(arena, owners, rng(seed), () => Atomics.add(counter, 0, 1) + 1, (h, id) => {
  const to = 1 + me.r.below(args.workers)
  workers[to - 1].postMessage({ type: 'handle', h, id })
})

function onStableMessage(m) {
  if (m.type === 'fail') die(m.message)
  else if (m.type === 'send') {
    if (m.to === 0) guarded(() => me.receive(m.h, m.id))
    else workers[m.to - 1].postMessage({ type: 'handle', h: m.h, id: m.id })
  }
}

for (let i = 1; i <= args.workers; i++) {
  const w = new Worker(workerUrl, { workerData: { name, shared, seed: (seed ^ Math.imul(i, 0x9e3779b1)) >>> 0, role: 'stable', index: i } })
  w.on('message', onStableMessage)
  w.on('error', (e) => die(`worker ${i}: ${e?.stack ?? e}`))
  workers.push(w)
}

// Churn: workers of a small pool of slots, terminated mid-work.
const churnRng = rng(seed ^ 0x51ed270b)
const freeSlots = Array.from({ length: CHURN_SLOTS }, (_, s) => s)
/** Per slot, the last churn worker's life: for failure reports. */
const slotLog = []
let churnRunning = 0

function reclaimOrphans() {
  for (const h of arena.orphanedTransfers()) {
    try {
      arena.reclaim(h)
      reclaimedTokens.add(h.token)
      churnStats.orphansReclaimed++
    } catch (e) {
      if (e?.code !== 'ERR_ALREADY_RECEIVED') throw e
    }
  }
}

function startChurn() {
  const slot = freeSlots.shift()
  const life = { worker: churnStats.started + 1, events: [`started ${Date.now() - started} ms`] }
  slotLog[slot] = life
  churnRunning++
  churnStats.started++
  const handed = []
  let killing = false
  const t0 = performance.now()
  let tKill = 0
  const w = new Worker(workerUrl, {
    workerData: { name, shared, seed: (seed ^ Math.imul(0x10000 + churnStats.started, 0x85ebca6b)) >>> 0, role: 'churn', slot },
  })
  const kill = () => {
    if (killing) return
    killing = true
    tKill = performance.now()
    Atomics.store(owners.dying, slot, 1)
    life.events.push(`killed ${Date.now() - started} ms`)
    churnStats.terminated++
    void w.terminate()
  }
  w.on('message', (m) => {
    if (m.type === 'fail') die(m.message)
    else if (m.type === 'ready') {
      churnMs.toReady += performance.now() - t0
      // Hand it a few blocks of main's, then terminate it 0-40 ms later, mid-work.
      guarded(() => {
        const n = churnRng.below(3)
        for (let k = 0; k < n && me.held.length > 0; k++) {
          const { h, cookie } = me.handOff(churnRng.below(me.held.length))
          handed.push(h)
          toChurn.sent++
          w.postMessage({ type: 'handle', h, id: cookie })
        }
      })
      setTimeout(kill, 5 + churnRng.below(56))
    } else if (m.type === 'send') {
      guarded(() => {
        if (reclaimedTokens.has(m.h.token)) {
          expectCode(() => arena.receive(m.h), 'ERR_ALREADY_RECEIVED', 'receive of a reclaimed orphan')
          fromChurn.alreadyReclaimed++
        } else {
          me.receive(m.h, m.id)
          fromChurn.received++
        }
      })
    }
  })
  w.on('error', (e) => die(`churn worker (slot ${slot}): ${e?.stack ?? e}`))
  w.on('exit', () => {
    if (!killing) churnStats.exitedEarly++
    churnMs.toExit += performance.now() - tKill
    const tSweep = performance.now()
    guarded(() => {
      const swept = owners.sweep(slot)
      churnStats.swept += swept
      life.events.push(`exited, ${swept} granules swept ${Date.now() - started} ms`)
      // What main handed it: received there (returned at its teardown) or still in flight.
      for (const h of handed) {
        try {
          arena.reclaim(h)
          toChurn.reclaimedHere++
        } catch (e) {
          if (e?.code !== 'ERR_ALREADY_RECEIVED') throw e
          toChurn.receivedThere++
        }
      }
      reclaimOrphans()
    })
    churnMs.sweep += performance.now() - tSweep
    Atomics.store(owners.dying, slot, 0)
    freeSlots.push(slot)
    churnRunning--
  })
}

function churnDone() {
  return churnStats.terminated + churnStats.exitedEarly >= args.churn
}

function inject(kind) {
  const b = me.held.find((h) => h.byteLength >= 8)
  if (b === undefined) return false
  if (kind === 'overlap') me.adopt(b.x, me.nextId(), me.nextId(), 'injected overlap')
  else if (kind === 'cookie') new Uint8Array(b.x instanceof ArrayBuffer ? b.x : b.x.buffer, b.x.byteOffset ?? 0, 4).fill(0xee)
  else me.handOff(me.held.indexOf(b)) // the handle is dropped: in flight for ever
  console.log(`  injected fault: ${kind}`)
  return true
}

// Main's own loop: random operations, and the churn pool kept full.
let injected = args.inject === undefined
function loop() {
  if (failed) return
  if (!injected) {
    guarded(() => {
      injected = inject(args.inject)
    })
  }
  if (!guarded(() => {
    for (let i = 0; i < 32; i++) me.step()
  })) return
  const running = Date.now() < deadline || !churnDone()
  if (running && churnRunning < CHURN_AT_ONCE && !churnDone()) startChurn()
  else if (running && churnRunning < 1 && Date.now() < deadline) startChurn()
  if (running) setImmediate(loop)
  else void finish()
}

function waitFor(type) {
  return Promise.all(
    workers.map((w) => new Promise((resolve) => {
      const on = (m) => {
        if (m.type === type) {
          w.off('message', on)
          resolve(m)
        }
      }
      w.on('message', on)
    })),
  )
}

async function finish() {
  while (churnRunning > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  // Stop the workers' new hand-offs; after every 'quiet', main forwarded all they sent.
  const quiet = waitFor('quiet')
  for (const w of workers) w.postMessage({ type: 'quiesce' })
  await quiet
  const done = waitFor('done')
  for (const w of workers) w.postMessage({ type: 'drain' })
  const reports = await done
  await Promise.all(workers.map((w) => new Promise((resolve) => (w.threadId < 0 ? resolve() : w.once('exit', resolve)))))
  guarded(() => {
    me.freeAll()
    reclaimOrphans()
  })
  if (failed) return
  const end = arena.stats()
  const ops = { ...me.ops }
  for (const rep of reports) for (const [k, v] of Object.entries(rep.ops)) ops[k] += v
  const total = me.total() + reports.reduce((s, rep) => s + rep.total, 0)
  const seconds = (Date.now() - started) / 1000
  console.log(`  ${total} operations in ${seconds.toFixed(1)} s over main + ${args.workers} workers: ${JSON.stringify(ops)}`)
  console.log(`  churn workers: ${JSON.stringify(churnStats)}, total ms from start to ready, kill to exit, sweeping: ${Object.values(churnMs).map(Math.round).join(', ')}`)
  console.log(`  main -> churn hand-offs: ${JSON.stringify(toChurn)}; churn -> main: ${JSON.stringify(fromChurn)}`)
  const fields = ['liveAllocations', 'liveBytes', 'inFlightCount', 'inFlightBytes']
  const drift = fields.filter((f) => end[f] !== baseline[f]).map((f) => `${f} ${baseline[f]} -> ${end[f]}`)
  let marked = 0
  for (let g = 0; g < owners.map.length; g++) if (owners.map[g] !== 0) marked++
  if (drift.length > 0) die(`stats not back at the baseline: ${drift.join(', ')}`)
  else if (marked > 0) die(`${marked} granules of the owner map still marked`)
  else if (!churnDone()) die(`only ${churnStats.terminated} churn workers terminated`)
  else if (arena.orphanedTransfers().length !== 0) die('orphaned hand-offs left')
  else {
    console.log(`  stats back at the baseline (${fields.map((f) => `${f} ${end[f]}`).join(', ')})`)
    console.log(`stress passed (seed ${seed})`)
  }
}

loop()

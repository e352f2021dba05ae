// Cost of one hand-off round trip in one thread: transfer + receive + free, per kind
// (array: exclusive typed array; view: window view), against alloc + free alone. Reports the
// fastest of `rounds` rounds (the least disturbed by other load on the machine) and the median.
// Usage: node benchmark/node/handoff-cost.cjs [rounds]   (TA_ROOT=<package dir> to measure another build)
'use strict'
const { Arena } = require(process.env.TA_ROOT ?? 'tensor-arena')

const arena = Arena.shared('handoff-cost', { maxBytes: 256 * 1024 * 1024 })
const rounds = Number(process.argv[2] ?? 31)
const N = 20_000

function loop(kind) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    const t = kind === 'array' ? arena.array('float32', 1024) : arena.view('float32', 1024)
    const h = arena.transfer(t)
    arena.free(arena.receive(h))
  }
  return Number(process.hrtime.bigint() - start) / N
}

function allocFree(kind) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    arena.free(kind === 'array' ? arena.array('float32', 1024) : arena.view('float32', 1024))
  }
  return Number(process.hrtime.bigint() - start) / N
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]
for (const kind of ['array', 'view']) {
  loop(kind) // warm-up
  allocFree(kind)
  const full = []
  const base = []
  for (let r = 0; r < rounds; r++) {
    full.push(loop(kind))
    base.push(allocFree(kind))
  }
  const [f, b] = [Math.min(...full), Math.min(...base)]
  console.log(
    `${kind}: transfer+receive+free ${f.toFixed(0)} ns (median ${median(full).toFixed(0)}),` +
      ` alloc+free ${b.toFixed(0)} ns (median ${median(base).toFixed(0)}), hand-off share ${(f - b).toFixed(0)} ns`,
  )
}

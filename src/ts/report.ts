// The readable memory report (`arena.report()`) and the one-line `util.inspect(arena)`
// summary, both built from one `stats()` snapshot.
import { SizeClass } from './size-class.js'
import type { ArenaStats, ClassStats } from './stats.js'

/**
 * Node's `util.inspect.custom` (a registered symbol, so no `node:util` import is needed and
 * the published declarations do not mention Node's types). @internal
 */
export const INSPECT: unique symbol = Symbol.for('nodejs.util.inspect.custom') as never

/** One size class that holds memory (has at least one slab), in {@link ArenaReport.classes}. */
export interface ClassReport {
  /** The class index: a {@link SizeClass} value, the index into `stats().classes`. */
  readonly index: number
  /** The {@link SizeClass} key: `B` and the largest request the class serves, in bytes. */
  readonly name: string
  /** Bytes one block occupies (the class payload rounded up to the alignment). */
  readonly blockBytes: number
  /** Slabs the class owns. */
  readonly slabs: number
  /** Blocks handed out and not yet freed, in-flight hand-offs included. */
  readonly liveBlocks: number
  /** Free blocks held by thread caches (every thread's), freed views kept for reuse included. */
  readonly cachedBlocks: number
  /** Free blocks in the shared central pool, blocks freed by other threads included. */
  readonly freeBlocks: number
  /** Block bytes of `liveBlocks` (the requested bytes in them are at most this). */
  readonly liveBytes: number
  /** Block bytes of `cachedBlocks`. */
  readonly cachedBytes: number
  /** Block bytes of `freeBlocks`. */
  readonly freeBytes: number
  /** Bytes of the class's slabs: its share of the arena's carved bytes. */
  readonly carvedBytes: number
  /**
   * Bytes carved for the class that hold no live block: `carvedBytes - liveBytes`, i.e. its
   * cached and free blocks plus the tail of each slab too small for a whole block.
   */
  readonly wasteBytes: number
}

/** Arena-wide totals of an {@link ArenaReport}. */
export interface ReportTotals {
  /** Live allocations, small and large (`stats().liveAllocations`). */
  readonly liveAllocations: number
  /** Requested bytes of the live allocations (`stats().liveBytes`). */
  readonly liveBytes: number
  /** Block bytes of the live small allocations: the sum of the classes' `liveBytes`. */
  readonly liveBlockBytes: number
  /**
   * Internal waste of the live small allocations: `liveBlockBytes` minus their requested
   * bytes (each request rounded up to its class's block).
   */
  readonly roundingWasteBytes: number
  /** Free blocks in thread caches (`stats().threadCacheBlocks`). */
  readonly cachedBlocks: number
  /** Block bytes of `cachedBlocks`. */
  readonly cachedBytes: number
  /** Thread caches bound to the arena, one per thread that used it. */
  readonly threadCaches: number
  /** Free blocks in the central pool (`stats().centralBlocks`). */
  readonly freeBlocks: number
  /** Block bytes of `freeBlocks`. */
  readonly freeBytes: number
  /** Slabs of all classes. */
  readonly slabs: number
  /** Slabs whose blocks are all free in the central pool (returned to the span heap when idle). */
  readonly emptySlabs: number
  /** Bytes of all slabs: the sum of the classes' `carvedBytes`. */
  readonly slabBytes: number
  /** Sum of the classes' `wasteBytes`. */
  readonly slabWasteBytes: number
  /** Live allocations above 16 MiB (the large path, one page span each). */
  readonly largeAllocations: number
  /** Requested bytes of `largeAllocations`. */
  readonly largeBytes: number
  /** Bytes of their page spans: `carvedBytes - slabBytes - freeSpanBytes`. */
  readonly largeSpanBytes: number
  /** Bytes in free spans, reusable by any class or the large path. */
  readonly freeSpanBytes: number
  /** Free span bytes possibly still committed (not yet returned to the OS). */
  readonly retainedBytes: number
  /** Bytes returned to the OS so far (a counter). */
  readonly releasedBytesTotal: number
  /** Bytes carved from the arena's reservation: slabs, large spans and free spans. */
  readonly carvedBytes: number
  /**
   * Carved bytes not returned to the OS: slabs, large spans and retained free spans. The
   * most the arena's user memory adds to the process's RSS (untouched pages are not resident).
   */
  readonly heldBytes: number
  /** `heldBytes - liveBytes`: held bytes that hold no requested data. */
  readonly overheadBytes: number
  /** Hand-offs transferred and not yet received (their blocks count as live). */
  readonly inFlightCount: number
  /** Requested bytes of `inFlightCount`. */
  readonly inFlightBytes: number
  /** Out-of-band metadata (block tables, slab map): memory outside the arena's user memory. */
  readonly metadataBytes: number
  /** Address space reserved (all regions). */
  readonly reservedBytes: number
  /** The cap on carved bytes, or `undefined` for an arena without one. */
  readonly maxBytes: number | undefined
}

/**
 * A memory report of an arena at one moment (`arena.report()`): one row per size class
 * that holds memory, and the totals. `String(report)` (and `console.log(report)`) renders
 * an aligned text table with human units.
 */
export interface ArenaReport {
  /** Classes that own at least one slab, by class index. */
  readonly classes: readonly ClassReport[]
  /** Arena-wide totals. */
  readonly totals: ReportTotals
  /** The `stats()` snapshot the report was built from. */
  readonly stats: ArenaStats
  /** The report as an aligned text table, like jemalloc's `malloc_stats_print`. */
  toString(): string
}

const CLASS_NAMES: readonly string[] = Object.keys(SizeClass)
const UNITS = ['KiB', 'MiB', 'GiB', 'TiB']

/** `bytes` in B below 1 KiB, else in KiB/MiB/GiB/TiB with one decimal. @internal */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function classRow(index: number, c: ClassStats): ClassReport {
  return Object.freeze({
    index,
    name: CLASS_NAMES[index] ?? `class ${index}`,
    blockBytes: c.block,
    slabs: c.slabs,
    liveBlocks: c.liveBlocks,
    cachedBlocks: c.cachedBlocks,
    freeBlocks: c.centralBlocks,
    liveBytes: c.liveBlockBytes,
    cachedBytes: c.cachedBytes,
    freeBytes: c.centralBytes,
    carvedBytes: c.carvedBytes,
    wasteBytes: Math.max(0, c.carvedBytes - c.liveBlockBytes),
  })
}

function totalsOf(s: ArenaStats, classes: readonly ClassReport[]): ReportTotals {
  const sum = (f: (c: ClassReport) => number): number => classes.reduce((n, c) => n + f(c), 0)
  const liveBlockBytes = sum((c) => c.liveBytes)
  const slabBytes = sum((c) => c.carvedBytes)
  const heldBytes = s.carvedBytes - (s.freeSpanBytes - s.retainedBytes)
  return Object.freeze({
    liveAllocations: s.liveAllocations,
    liveBytes: s.liveBytes,
    liveBlockBytes,
    // Counters and pools are read one after the other while other threads work: clamp skew.
    roundingWasteBytes: Math.max(0, liveBlockBytes - (s.liveBytes - s.largeLiveBytes)),
    cachedBlocks: s.threadCacheBlocks,
    cachedBytes: s.threadCacheBytes,
    threadCaches: s.threadCaches,
    freeBlocks: s.centralBlocks,
    freeBytes: s.centralBytes,
    slabs: s.slabs,
    emptySlabs: s.emptySlabs,
    slabBytes,
    slabWasteBytes: sum((c) => c.wasteBytes),
    largeAllocations: s.largeLiveAllocations,
    largeBytes: s.largeLiveBytes,
    largeSpanBytes: Math.max(0, s.carvedBytes - slabBytes - s.freeSpanBytes),
    freeSpanBytes: s.freeSpanBytes,
    retainedBytes: s.retainedBytes,
    releasedBytesTotal: s.releasedBytesTotal,
    carvedBytes: s.carvedBytes,
    heldBytes,
    overheadBytes: Math.max(0, heldBytes - s.liveBytes),
    inFlightCount: s.inFlightCount,
    inFlightBytes: s.inFlightBytes,
    metadataBytes: s.metadataBytes,
    reservedBytes: s.reservedBytes,
    maxBytes: s.maxBytes === 0 ? undefined : s.maxBytes,
  })
}

/**
 * Lines of `rows` with each column padded to its widest cell: the first column left-aligned,
 * the others right-aligned (numbers) unless `left`.
 */
function align(rows: readonly (readonly string[])[], left = false): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const pad = (cell: string, i: number): string => (i === 0 || left ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
  return rows.map((r) => r.map(pad).join('  ').trimEnd())
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`
}

/** Renders a report as text (what `String(report)` returns). */
function formatReport(report: ArenaReport): string {
  const t = report.totals
  const header = ['class', 'block', 'slabs', 'live', 'cached', 'free', 'live bytes', 'carved', 'waste', 'used']
  const row = (c: ClassReport): string[] => [
    c.name,
    String(c.blockBytes),
    String(c.slabs),
    String(c.liveBlocks),
    String(c.cachedBlocks),
    String(c.freeBlocks),
    formatBytes(c.liveBytes),
    formatBytes(c.carvedBytes),
    formatBytes(c.wasteBytes),
    percent(c.liveBytes, c.carvedBytes),
  ]
  const sum = (f: (c: ClassReport) => number): string => String(report.classes.reduce((n, c) => n + f(c), 0))
  const all = ['all', '', String(t.slabs), sum((c) => c.liveBlocks), String(t.cachedBlocks), String(t.freeBlocks)]
  all.push(formatBytes(t.liveBlockBytes), formatBytes(t.slabBytes), formatBytes(t.slabWasteBytes))
  all.push(percent(t.liveBlockBytes, t.slabBytes))
  const table = report.classes.length === 0 ? ['(no size class holds memory)'] : align([header, ...report.classes.map(row), all])
  const cap = t.maxBytes === undefined ? 'no cap' : `cap ${formatBytes(t.maxBytes)}`
  const smallLive = t.liveAllocations - t.largeAllocations
  const totals = align(
    [
      ['live', `${plural(t.liveAllocations, 'allocation')}, ${formatBytes(t.liveBytes)} requested`],
      ['  small', `${plural(smallLive, 'block')}, ${formatBytes(t.liveBlockBytes)}; ${formatBytes(t.roundingWasteBytes)} of it rounding to blocks`],
      ['  large', `${plural(t.largeAllocations, 'allocation')}, ${formatBytes(t.largeBytes)} in ${formatBytes(t.largeSpanBytes)} of page spans`],
      ['  in flight', `${plural(t.inFlightCount, 'hand-off')}, ${formatBytes(t.inFlightBytes)}`],
      ['cached', `${plural(t.cachedBlocks, 'block')}, ${formatBytes(t.cachedBytes)}, in ${plural(t.threadCaches, 'thread cache')}`],
      ['free', `${plural(t.freeBlocks, 'block')}, ${formatBytes(t.freeBytes)}, in the central pool; ${plural(t.emptySlabs, 'empty slab')}`],
      ['slabs', `${plural(t.slabs, 'slab')}, ${formatBytes(t.slabBytes)}; ${formatBytes(t.slabWasteBytes)} of it holds no live block`],
      ['free spans', `${formatBytes(t.freeSpanBytes)} (${formatBytes(t.retainedBytes)} of it retained); ${formatBytes(t.releasedBytesTotal)} released to the OS so far`],
      ['carved', `${formatBytes(t.carvedBytes)} of ${formatBytes(t.reservedBytes)} reserved (${cap})`],
      ['held', `${formatBytes(t.heldBytes)} (carved minus released free spans); ${formatBytes(t.overheadBytes)} more than the live bytes`],
      ['metadata', `${formatBytes(t.metadataBytes)}, outside the arena`],
    ],
    true,
  )
  return ['tensor-arena memory report', ...table, '', ...totals].join('\n')
}

/** The report of one `stats()` snapshot. @internal */
export function arenaReport(stats: ArenaStats): ArenaReport {
  const classes = Object.freeze(stats.classes.flatMap((c, i) => (c.slabs > 0 ? [classRow(i, c)] : [])))
  const report: ArenaReport = {
    classes,
    totals: totalsOf(stats, classes),
    stats,
    toString() {
      return formatReport(report)
    },
  }
  // `console.log(report)` prints the table; the property is not enumerable (JSON unaffected).
  Object.defineProperty(report, INSPECT, { value: () => formatReport(report) })
  return Object.freeze(report)
}

/**
 * `util.inspect(arena)`: one line from a snapshot, or, for the default arena before its
 * first use (`undefined`), a line saying so (inspecting does not create it). @internal
 */
export function inspectArena(stats: ArenaStats | undefined): string {
  if (stats === undefined) return 'Arena { default arena, not created yet }'
  const inUse = stats.classes.reduce((n, c) => n + (c.slabs > 0 ? 1 : 0), 0)
  const parts = [
    `live: ${plural(stats.liveAllocations, 'allocation')} / ${formatBytes(stats.liveBytes)}`,
    `cached: ${plural(stats.threadCacheBlocks, 'block')} / ${formatBytes(stats.threadCacheBytes)}`,
    `carved: ${formatBytes(stats.carvedBytes)}`,
    `classes in use: ${inUse}`,
  ]
  if (stats.inFlightCount > 0) parts.push(`in flight: ${plural(stats.inFlightCount, 'hand-off')}`)
  return `Arena { ${parts.join(', ')} }`
}

// The ratio chart (benchmark/node-ratios.svg), written as SVG text: one panel per scenario,
// one group of bars per size, log-scale ratio to Buffer.alloc (same process, same run), the
// line at 1 = Buffer.alloc, black dashes = the goals (on the alloc + free panel).

import { SCENARIOS, SIZES } from './cases.mjs'
import { sizeLabel } from './suites.mjs'

export const CHART_SERIES = [
  { id: 'buffer-unsafe', label: 'Buffer.allocUnsafe', color: '#bbbbbb' },
  { id: 'float32array', label: 'new Float32Array', color: '#888888' },
  { id: 'typedarray-pool', label: 'typedarray-pool', color: '#e6a23c' },
  { id: 'thing-mempool', label: '@thi.ng/malloc MemPool', color: '#c0504d' },
  { id: 'array', label: 'ours: array', color: '#4f81bd' },
  { id: 'view', label: 'ours: view', color: '#1f4e79' },
  { id: 'view-zero', label: 'ours: view { zero: true }', color: '#2ca58d' },
]

/** The goals (ratio = Buffer.alloc time ÷ ours) drawn on the chart and checked in the report. */
export const RATIO_GOALS = [
  { variant: 'view', size: 64, min: 1 },
  { variant: 'view', size: 4096, min: 10 },
  { variant: 'view', size: 1 << 20, min: 100 },
  { variant: 'view', size: 16 << 20, min: 1000 },
  { variant: 'array', size: 64 << 10, min: 5 },
  { variant: 'array', size: 1 << 20, min: 50 },
  { variant: 'array', size: 16 << 20, min: 500 },
]

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const axisLabel = (e) => (e < 0 ? (10 ** e).toFixed(-e) : e < 3 ? String(10 ** e) : e < 6 ? `${10 ** (e - 3)}k` : e < 9 ? `${10 ** (e - 6)}M` : `${10 ** (e - 9)}G`)
const fmtRatio = (r) => (r >= 1e4 ? `${(r / 1000).toFixed(0)}k` : r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toPrecision(2))

/**
 * @param summary - summarize() output (`sizes[scenario][size][variant].ratio`)
 * @param subtitle - one line under the title (machine, Node version)
 */
export function ratioChart(summary, subtitle) {
  const W = 1000
  const panelH = 330
  const top = 70
  const left = 70
  const right = 20
  const legendH = 50
  const H = top + SCENARIOS.length * (panelH + 40) + legendH
  const ratios = []
  for (const sc of SCENARIOS) for (const size of SIZES) for (const s of CHART_SERIES) ratios.push(summary.sizes[sc.id]?.[size]?.[s.id]?.ratio)
  const finite = ratios.filter((r) => Number.isFinite(r) && r > 0)
  const lo = Math.floor(Math.log10(Math.min(0.1, ...finite)))
  const hi = Math.ceil(Math.log10(Math.max(1000, ...finite, ...RATIO_GOALS.map((g) => g.min))))
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold">tensor-arena vs Buffer.alloc: speed ratio (Buffer.alloc time ÷ time; higher is better, log scale)</text>`)
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#444">${esc(subtitle)}</text>`)
  SCENARIOS.forEach((sc, p) => {
    const y0 = top + p * (panelH + 40)
    const plotTop = y0 + 22
    const plotH = panelH - 50
    const plotW = W - left - right
    const y = (r) => plotTop + plotH - ((Math.log10(r) - lo) / (hi - lo)) * plotH
    out.push(`<text x="${left}" y="${y0 + 12}" font-size="14" font-weight="bold">${esc(sc.label)}</text>`)
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e).toFixed(1)
      out.push(`<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`)
      out.push(`<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${axisLabel(e)}</text>`)
    }
    out.push(`<text x="${left + 4}" y="${(y(1) - 4).toFixed(1)}" fill="#000" font-size="11">Buffer.alloc = 1</text>`)
    const groupW = plotW / SIZES.length
    const barW = (groupW * 0.8) / CHART_SERIES.length
    SIZES.forEach((size, g) => {
      const gx = left + g * groupW + groupW * 0.1
      out.push(`<text x="${(left + (g + 0.5) * groupW).toFixed(1)}" y="${plotTop + plotH + 18}" text-anchor="middle" font-size="13">${sizeLabel(size)}</text>`)
      CHART_SERIES.forEach((s, i) => {
        const r = summary.sizes[sc.id]?.[size]?.[s.id]?.ratio
        const x = gx + i * barW
        if (!Number.isFinite(r) || r <= 0) {
          out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${plotTop + plotH - 4}" text-anchor="middle" font-size="9" fill="#c00">n/a</text>`)
          return
        }
        const yr = y(Math.max(r, 10 ** lo))
        const yb = y(1)
        const [ya, yb2] = yr < yb ? [yr, yb] : [yb, yr]
        out.push(
          `<rect x="${x.toFixed(1)}" y="${ya.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${Math.max(1, yb2 - ya).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.label}, ${sizeLabel(size)}: ${fmtRatio(r)}×`)}</title></rect>`,
        )
        if (s.id === 'view' || s.id === 'array') {
          out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(yr < yb ? ya - 3 : yb2 + 10).toFixed(1)}" text-anchor="middle" font-size="9" fill="${s.color}">${fmtRatio(r)}</text>`)
        }
        for (const goal of RATIO_GOALS) {
          // The goals are judged on alloc + free (see report.mjs): drawn on that panel only.
          if (sc.id !== 'free' || goal.variant !== s.id || goal.size !== size) continue
          const yg = y(goal.min).toFixed(1)
          out.push(`<line x1="${(x - 2).toFixed(1)}" x2="${(x + barW + 1).toFixed(1)}" y1="${yg}" y2="${yg}" stroke="#000" stroke-width="2.5"/>`)
        }
      })
    })
  })
  const ly = H - legendH + 10
  const items = [...CHART_SERIES, { label: 'goal (ours ≥)', goal: true }]
  const itemW = (W - 2 * left) / 4
  items.forEach((s, i) => {
    const x = left + (i % 4) * itemW
    const yy = ly + Math.floor(i / 4) * 20
    out.push(s.goal ? `<line x1="${x}" x2="${x + 14}" y1="${yy + 6}" y2="${yy + 6}" stroke="#000" stroke-width="2.5"/>` : `<rect x="${x}" y="${yy}" width="14" height="12" fill="${s.color}"/>`)
    out.push(`<text x="${x + 20}" y="${yy + 10}">${esc(s.label)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

//! The SVG chart of the time ratios, drawn by hand (no plotting dependency).

use std::fmt::Write as _;

use crate::report::{Report, fmt_ratio};
use crate::workloads::Workload;
use crate::{BenchError, SubjectKind};

const COLORS: [(&str, &str); 4] =
    [("orthotope", "#d62728"), ("mimalloc", "#1f77b4"), ("jemalloc", "#2ca02c"), ("System", "#7f7f7f")];

fn color(sub: SubjectKind) -> &'static str {
    COLORS.iter().find(|(n, _)| *n == sub.name()).map_or("#000000", |(_, c)| c)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Renders the ratio chart: one group of horizontal bars per workload, one bar per
/// competitor, log-scale x axis centred on 1 (bars to the left = tensor-arena faster).
#[must_use]
pub fn svg(r: &Report) -> String {
    let comps = r.competitors();
    let ratios: Vec<(&Workload, Vec<Option<f64>>)> =
        r.workloads.iter().map(|w| (w, comps.iter().map(|&c| r.ratio(&w.name, c)).collect())).collect();
    let all: Vec<f64> = ratios.iter().flat_map(|(_, v)| v.iter().flatten().copied()).collect();
    let lo = all.iter().copied().fold(0.5f64, f64::min).log10().floor();
    let hi = all.iter().copied().fold(2.0f64, f64::max).log10().ceil();
    let (left, plot_w, bar_h, gap, top) = (250.0, 620.0, 11.0, 12.0, 90.0);
    let group_h = bar_h * comps.len().max(1) as f64 + gap;
    let height = top + group_h * ratios.len() as f64 + 50.0;
    let width = left + plot_w + 90.0;
    let x = |ratio: f64| left + (ratio.log10() - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="20" font-size="14" font-weight="bold" text-anchor="middle">tensor-arena time ÷ competitor time (log scale; left of 1 = tensor-arena faster)</text>"#,
        width / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.0}" y="37" text-anchor="middle" fill="#444">{} · median of {} repeats × {} runs · {}</text>"##,
        width / 2.0,
        escape(&r.machine.first().map(|m| m.1.clone()).unwrap_or_default()),
        r.plan.repeats,
        r.plan.samples,
        r.date
    );
    for (i, &c) in comps.iter().enumerate() {
        let lx = left + i as f64 * 130.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="48" width="12" height="12" fill="{}"/><text x="{:.0}" y="58">vs {}</text>"#,
            color(c),
            lx + 16.0,
            c.name()
        );
    }
    let plot_bottom = top + group_h * ratios.len() as f64;
    let mut exp = lo;
    while exp <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(exp) * m;
            if v.log10() > hi + 1e-9 {
                continue;
            }
            let gx = x(v);
            let stroke = if (v - 1.0).abs() < 1e-9 { "#000000\" stroke-width=\"1.5" } else { "#dddddd" };
            let _ = writeln!(
                s,
                r#"<line x1="{gx:.1}" y1="{top:.0}" x2="{gx:.1}" y2="{plot_bottom:.0}" stroke="{stroke}"/>"#
            );
            let label = if v < 1.0 { format!("{v}") } else { format!("{v:.0}") };
            let _ = writeln!(
                s,
                r##"<text x="{gx:.1}" y="{:.0}" text-anchor="middle" fill="#444">{label}×</text>"##,
                plot_bottom + 14.0
            );
        }
        exp += 1.0;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#444">ratio (time per operation, tensor-arena / competitor)</text>"##,
        left + plot_w / 2.0,
        plot_bottom + 32.0
    );
    let one = x(1.0);
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.0}" text-anchor="end" fill="#2a7a2a" font-weight="bold">◀ tensor-arena faster</text><text x="{:.1}" y="{:.0}" fill="#b22222" font-weight="bold">tensor-arena slower ▶</text>"##,
        one - 6.0,
        top - 4.0,
        one + 6.0,
        top - 4.0
    );
    for (gi, (w, values)) in ratios.iter().enumerate() {
        let gy = top + gi as f64 * group_h + gap / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            gy + group_h / 2.0 - 3.0,
            escape(&w.name)
        );
        for (bi, (&c, value)) in comps.iter().zip(values).enumerate() {
            let by = gy + bi as f64 * bar_h;
            match value {
                Some(v) => {
                    let bx = x(*v);
                    let (x0, bw) = if bx < one { (bx, one - bx) } else { (one, bx - one) };
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x0:.1}" y="{by:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} vs {}: {}</title></rect>"#,
                        bw.max(0.5),
                        bar_h - 2.0,
                        color(c),
                        escape(&w.name),
                        c.name(),
                        fmt_ratio(*v)
                    );
                    let (tx, anchor) = if bx < one { (bx - 3.0, "end") } else { (bx + 3.0, "start") };
                    let _ = writeln!(
                        s,
                        r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" font-size="9">{}</text>"#,
                        by + bar_h - 3.0,
                        fmt_ratio(*v)
                    );
                }
                None => {
                    let why = match r.cell(&w.name, c).and_then(|cell| cell.failure.as_ref()) {
                        Some(BenchError::OutOfMemory(_)) => format!("{} OOM", c.name()),
                        _ => match r.cell(&w.name, SubjectKind::Ours).and_then(|cell| cell.failure.as_ref()) {
                            Some(BenchError::OutOfMemory(_)) => "tensor-arena OOM".into(),
                            _ => "n/a".into(),
                        },
                    };
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" font-size="9" fill="{}">{why}</text>"#,
                        one + 3.0,
                        by + bar_h - 3.0,
                        color(c)
                    );
                }
            }
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

//! A small hand-written SVG writer for one chart kind: grouped vertical bars on a
//! logarithmic axis (throughputs of different queries span orders of magnitude).

use std::fmt::Write;

const COLORS: [&str; 6] = ["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
const WIDTH_PER_BAR: f64 = 26.0;
const GROUP_GAP: f64 = 24.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const PLOT_HEIGHT: f64 = 300.0;
const BOTTOM: f64 = 60.0;

/// One group of bars (a query): its label and one value per series (`None`: not measured).
pub struct Group {
    /// Label under the group.
    pub label: String,
    /// Value of each series, in series order.
    pub values: Vec<Option<f64>>,
}

/// `12.3M`-style short form of `v`.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Grouped bars of positive values on a log10 axis labelled `unit`, one colour per series.
pub fn grouped_bars(title: &str, unit: &str, series: &[String], groups: &[Group]) -> String {
    let values = groups.iter().flat_map(|g| g.values.iter().flatten().copied());
    let positive: Vec<f64> = values.filter(|v| *v > 0.0).collect();
    let lo = positive
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = positive.iter().copied().fold(0.0, f64::max).log10().ceil();
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let y = |v: f64| TOP + PLOT_HEIGHT * (1.0 - (v.log10() - lo) / (hi - lo));
    let group_width = WIDTH_PER_BAR * series.len() as f64 + GROUP_GAP;
    let width = LEFT + group_width * groups.len() as f64 + 20.0;
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for decade in (lo as i32)..=(hi as i32) {
        let v = 10f64.powi(decade);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - 10.0,
            LEFT - 6.0,
            yy + 4.0,
            short(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_HEIGHT / 2.0,
        esc(unit)
    );
    for (gi, g) in groups.iter().enumerate() {
        let x0 = LEFT + GROUP_GAP / 2.0 + group_width * gi as f64;
        for (si, v) in g.values.iter().enumerate() {
            let Some(v) = v.filter(|v| *v > 0.0) else { continue };
            let (x, top) = (x0 + WIDTH_PER_BAR * si as f64, y(v));
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                WIDTH_PER_BAR - 3.0,
                TOP + PLOT_HEIGHT - top,
                COLORS[si % COLORS.len()],
                esc(&series[si]),
                short(v)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                x + (WIDTH_PER_BAR - 3.0) / 2.0,
                top - 3.0,
                short(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"#,
            x0 + WIDTH_PER_BAR * series.len() as f64 / 2.0,
            TOP + PLOT_HEIGHT + 18.0,
            esc(&g.label)
        );
    }
    for (si, name) in series.iter().enumerate() {
        let x = LEFT + 150.0 * si as f64;
        let yy = TOP + PLOT_HEIGHT + 38.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            yy - 10.0,
            COLORS[si % COLORS.len()],
            x + 16.0,
            yy,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

//! SVG charts (plotters, SVG backend only): throughput bars with min–max whiskers, and the
//! latency percentile spectrum (x = "nines", log-scaled: 90% → 1, 99% → 2, 99.9% → 3) with one
//! line per target.

use std::path::Path;

use plotters::prelude::*;

use crate::results::Results;

const COLORS: [RGBColor; 6] = [
    RGBColor(90, 90, 90),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("chart: {e}")
}

/// Bars of `metric` (median) per target with min–max whiskers.
pub fn bars(
    r: &Results,
    scenario: &str,
    variant: &str,
    metric: &str,
    path: &Path,
) -> anyhow::Result<bool> {
    let info = r
        .scenarios
        .iter()
        .find(|i| i.name == scenario)
        .ok_or_else(|| err("no scenario"))?;
    let rows: Vec<(String, crate::stats::Spread)> = info
        .targets
        .iter()
        .filter_map(|t| {
            r.spread(scenario, variant, t, metric)
                .map(|s| (t.clone(), s))
        })
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let (heading, unit, _) = crate::results::metric_info(metric);
    let top = rows.iter().map(|(_, s)| s.max).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = rows.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{scenario} ({variant}): {heading}, median with min–max"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..top.max(1.0))
        .map_err(err)?;
    let names: Vec<String> = rows.iter().map(|(t, _)| t.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(unit)
        .draw()
        .map_err(err)?;
    for (i, (_, s)) in rows.iter().enumerate() {
        let i = i as i32;
        let color = COLORS[i as usize % COLORS.len()];
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), s.median),
            ],
            color.mix(0.7).filled(),
        );
        bar.set_margin(0, 0, 18, 18);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), s.min),
                    (SegmentValue::CenterOf(i), s.max),
                ],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

const SPECTRUM: [(&str, f64); 6] = [
    ("p50_us", 0.5),
    ("p75_us", 0.75),
    ("p90_us", 0.9),
    ("p99_us", 0.99),
    ("p999_us", 0.999),
    ("p9999_us", 0.9999),
];

/// Latency (median over repetitions) at each percentile, one line per target.
pub fn spectrum(r: &Results, scenario: &str, variant: &str, path: &Path) -> anyhow::Result<bool> {
    let info = r
        .scenarios
        .iter()
        .find(|i| i.name == scenario)
        .ok_or_else(|| err("no scenario"))?;
    let lines: Vec<(String, Vec<(f64, f64)>)> = info
        .targets
        .iter()
        .map(|t| {
            let pts = SPECTRUM
                .iter()
                .filter_map(|(m, q)| {
                    r.spread(scenario, variant, t, m)
                        .map(|s| (-(1.0 - q).log10(), s.median))
                })
                .collect();
            (t.clone(), pts)
        })
        .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    if lines.is_empty() {
        return Ok(false);
    }
    let ymax = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0, f64::max);
    let ymin = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(ymax, f64::min);
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{scenario} ({variant}): latency by percentile"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..4.0, ((ymin / 2.0).max(1.0)..ymax * 1.5).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            let pct = 100.0 * (1.0 - 10f64.powf(-x));
            let s = format!("{pct:.2}");
            format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
        })
        .x_desc("percentile")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("µs")
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in lines.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

//! `--plot FILE.svg`: latency percentile curves (one line per target, x in "nines") on the left,
//! throughput bars on the right.

use std::path::Path;

use plotters::prelude::*;

use crate::report::TargetResult;

const COLORS: &[RGBColor] = &[BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// x position of a percentile: 0 for p0..p90 → "nines" (90 → 1, 99 → 2, 99.9 → 3 ...).
fn nines(percentile: f64) -> f64 {
    let rest = (100.0 - percentile).max(0.0001) / 100.0;
    -rest.log10()
}

/// "p0", "p90", "p99", "p99.9" ... at whole nines (ticks fall on whole numbers of nines).
fn nines_label(x: f64) -> String {
    match x.round() as usize {
        0 => "p0".into(),
        1 => "p90".into(),
        n => format!("p99{}{}", if n > 2 { "." } else { "" }, "9".repeat(n - 2)),
    }
}

pub fn draw(path: &Path, results: &[TargetResult]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(760);
    let title = results
        .first()
        .map(|r| format!("{} latency by percentile", r.workload))
        .unwrap_or_default();
    let y_max = results
        .iter()
        .flat_map(|r| r.latency_curve_us.iter().map(|p| p[1]))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4.2f64, (0.5f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_labels(5)
        .x_label_formatter(&|x| nines_label(*x))
        .draw()?;
    for (i, r) in results.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = r
            .latency_curve_us
            .iter()
            .map(|p| (nines(p[0]).min(4.2), p[1].max(0.5)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(r.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    draw_throughput(&right, results)?;
    root.present()?;
    Ok(())
}

fn draw_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    results: &[TargetResult],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let ops_max = results.iter().map(|r| r.ops_per_sec).fold(1.0, f64::max) * 1.15;
    let n = results.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput (ops/s)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n, 0f64..ops_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (i, r) in results.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, 0.0), (x + 0.85, r.ops_per_sec)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            r.label.clone(),
            (x + 0.15, r.ops_per_sec + ops_max * 0.02),
            ("sans-serif", 13),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nines_labels() {
        let labels: Vec<String> = (0..5).map(|n| super::nines_label(n as f64)).collect();
        assert_eq!(labels, ["p0", "p90", "p99", "p99.9", "p99.99"]);
        assert!((super::nines(99.9) - 3.0).abs() < 1e-9);
    }
}

//! A benchmark table as a chart: one panel per kernel (and element type),
//! throughput against problem size on log axes, one line per unit in the
//! same colour on every panel, so units compare at a glance.

use std::collections::BTreeMap;

use plotters::prelude::*;

use crate::bench::BenchRow;
use crate::error::{Error, Result};

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("drawing the benchmark chart: {e}"))
}

/// `rows` (from [`measure`](crate::bench::measure)) drawn as an SVG document.
pub fn bench_chart_svg(rows: &[BenchRow]) -> Result<String> {
    if rows.is_empty() {
        return Err(Error::Config("no benchmark rows to draw".into()));
    }
    // Panels in the order the kernels were measured.
    let mut panels: Vec<(String, crate::DType)> = Vec::new();
    for r in rows {
        if !panels.contains(&(r.kernel.clone(), r.dtype)) {
            panels.push((r.kernel.clone(), r.dtype));
        }
    }
    let mut units: BTreeMap<usize, String> = BTreeMap::new();
    for r in rows {
        units.entry(r.unit).or_insert_with(|| {
            format!(
                "unit {} {}{}",
                r.unit,
                r.kind,
                if r.emulated { " (emulated)" } else { "" }
            )
        });
    }
    let colour = |unit: usize| {
        let i = units.keys().position(|u| *u == unit).unwrap_or(0);
        Palette99::pick(i).to_rgba()
    };
    let columns = panels.len().min(2);
    let lines = panels.len().div_ceil(columns);
    let (width, panel_height, legend) = (560 * columns as u32, 360u32, 40u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, panel_height * lines as u32 + legend))
            .into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (area, legend_area) = root.split_vertically(panel_height * lines as u32);
        let cells = area.split_evenly((lines, columns));
        for ((kernel, dtype), cell) in panels.iter().zip(cells) {
            let mine: Vec<&BenchRow> = rows
                .iter()
                .filter(|r| &r.kernel == kernel && r.dtype == *dtype)
                .collect();
            let memory_bound = mine.iter().any(|r| r.memory_bound);
            let figure = |r: &BenchRow| if memory_bound { r.gbps } else { r.gflops };
            let (lo, hi) = mine.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
                (lo.min(r.size as f64), hi.max(r.size as f64))
            });
            let top = mine.iter().map(|r| figure(r)).fold(0.0, f64::max).max(1e-9) * 1.15;
            // Ticks at the measured sizes.
            let mut sizes: Vec<f64> = mine.iter().map(|r| r.size as f64).collect();
            sizes.sort_by(f64::total_cmp);
            sizes.dedup();
            let mut chart = ChartBuilder::on(&cell)
                .caption(format!("{kernel} ({dtype})"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(
                    (lo * 0.9..hi * 1.1).log_scale().with_key_points(sizes),
                    0.0..top,
                )
                .map_err(draw_error)?;
            chart
                .configure_mesh()
                .x_desc("size n (n x n)")
                .y_desc(if memory_bound { "GB/s" } else { "GFLOP/s" })
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(draw_error)?;
            for &unit in units.keys() {
                let mut points: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|r| r.unit == unit)
                    .map(|r| (r.size as f64, figure(r)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let c = colour(unit);
                chart
                    .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                    .map_err(draw_error)?;
                chart
                    .draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                    .map_err(draw_error)?;
            }
        }
        for (i, (&unit, label)) in units.iter().enumerate() {
            let x = 20 + i as i32 * 240;
            legend_area
                .draw(&Rectangle::new(
                    [(x, 12), (x + 16, 28)],
                    colour(unit).filled(),
                ))
                .map_err(draw_error)?;
            legend_area
                .draw(&Text::new(label.clone(), (x + 22, 14), ("sans-serif", 14)))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

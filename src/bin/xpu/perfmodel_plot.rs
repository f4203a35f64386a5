//! `xpu perfmodel plot`: one kernel's models drawn as SVG — each unit's
//! measured footprints (bytes against mean seconds, log-log) as points, and
//! its fitted law as a line over the measured range.

use std::path::Path;

use plotters::prelude::*;
use xpu::perfmodel::{FootprintRow, Law};

fn draw_error(e: impl std::fmt::Display) -> xpu::Error {
    xpu::Error::Io(format!("drawing the performance model chart: {e}"))
}

/// Draws `kernel`'s rows (every unit's) with each unit's law to `out`.
pub fn write(
    kernel: &str,
    rows: &[FootprintRow],
    laws: &[(String, Option<Law>)],
    out: &Path,
) -> xpu::Result<()> {
    let mine: Vec<&FootprintRow> = rows.iter().filter(|r| r.kernel == kernel).collect();
    if mine.is_empty() {
        return Err(xpu::Error::Config(format!(
            "no model of kernel `{kernel}` in the history (run it under --policy dmda, or `xpu calibrate`)"
        )));
    }
    let (lo_x, hi_x, lo_y, hi_y) = mine
        .iter()
        .fold((f64::MAX, 0.0f64, f64::MAX, 0.0f64), |(a, b, c, d), r| {
            (a.min(r.size), b.max(r.size), c.min(r.mean), d.max(r.mean))
        });
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{kernel}: measured means and fitted laws t = a*n^b + c"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (lo_x * 0.8..hi_x * 1.25).log_scale(),
                (lo_y * 0.5..hi_y * 2.0).log_scale(),
            )
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("footprint n (bytes)")
            .y_desc("seconds")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw_error)?;
        let units: Vec<&(String, Option<Law>)> = laws
            .iter()
            .filter(|(u, _)| mine.iter().any(|r| r.unit == *u))
            .collect();
        for (i, (unit, law)) in units.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = mine
                .iter()
                .filter(|r| r.unit == *unit)
                .map(|r| (r.size, r.mean))
                .collect();
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                .map_err(draw_error)?
                .label(unit.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
            if let Some(law) = law {
                let (a, b) = points
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
                let curve = (0..=48).map(|k| {
                    let n = a * (b / a).powf(k as f64 / 48.0);
                    (n, law.eval(n).max(lo_y * 0.5))
                });
                chart
                    .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
                    .map_err(draw_error)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    std::fs::write(out, svg)?;
    Ok(())
}

//! A Gantt chart of a profile as SVG: one row per unit with its tasks
//! coloured by kernel and a marker where its power state changed (named
//! with the new state) and a pale bar while it was gated, one row per
//! direction of transfers between memory
//! nodes, a time axis in milliseconds and a legend of kernels.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::trace::Profile;

const ROW_HEIGHT: u32 = 34;
const TRANSFER_COLOUR: RGBColor = RGBColor(90, 90, 90);
const POWER_COLOUR: RGBColor = RGBColor(200, 0, 0);
const GATED_COLOUR: RGBColor = RGBColor(215, 215, 215);

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("drawing the Gantt chart: {e}"))
}

impl Profile {
    /// The Gantt chart as an SVG document.
    pub fn gantt_svg(&self) -> Result<String> {
        let mut lanes: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for t in &self.transfers {
            let next = lanes.len();
            lanes.entry((t.from, t.to)).or_insert(next);
        }
        let mut rows: Vec<String> = self.units.iter().map(|u| u.label()).collect();
        let mut lane_names: Vec<(usize, String)> = lanes
            .iter()
            .map(|(&(from, to), &lane)| {
                (
                    lane,
                    format!("copy {} -> {}", self.node_name(from), self.node_name(to)),
                )
            })
            .collect();
        lane_names.sort();
        rows.extend(lane_names.into_iter().map(|(_, name)| name));
        let rows_n = rows.len().max(1) as i32;
        let kernels: Vec<&str> = {
            let mut k: Vec<&str> = self.tasks.iter().map(|t| t.kernel.as_str()).collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        let colour = |kernel: &str| {
            let i = kernels.iter().position(|k| *k == kernel).unwrap_or(0);
            Palette99::pick(i).to_rgba()
        };
        let end = self
            .tasks
            .iter()
            .map(|t| t.end)
            .chain(self.transfers.iter().map(|t| t.at + t.seconds))
            .fold(0.0, f64::max)
            * 1e3;
        // Start the axis where the work starts, not at start-up.
        let begin = self
            .tasks
            .iter()
            .map(|t| t.start)
            .chain(self.transfers.iter().map(|t| t.at))
            .fold(f64::INFINITY, f64::min)
            * 1e3;
        let begin = if begin.is_finite() { begin } else { 0.0 };
        let margin = ((end - begin) * 0.01).max(1e-3);
        let (begin, end) = ((begin - margin).max(0.0), end + margin);

        let legend_rows = kernels.len().div_ceil(4) as u32 + 1;
        let height = 110 + ROW_HEIGHT * rows_n as u32 + 24 * legend_rows;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1200, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            let (chart_area, legend_area) = root.split_vertically(height - 24 * legend_rows);
            let mut chart = ChartBuilder::on(&chart_area)
                .caption(
                    format!(
                        "xpu{}: {} tasks on {} units, {} transfers",
                        if self.simulated { " (simulated)" } else { "" },
                        self.tasks.len(),
                        self.units.len(),
                        self.transfers.len()
                    ),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(260)
                .build_cartesian_2d(begin..end, (0..rows_n - 1).into_segmented())
                .map_err(draw_error)?;
            // Row 0 (the first unit) at the top.
            let row = |r: usize| rows_n - 1 - r as i32;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .x_desc("time since the runtime started (ms)")
                .y_labels(rows_n as usize)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) if *i >= 0 && *i < rows_n => {
                        rows[(rows_n - 1 - i) as usize].clone()
                    }
                    _ => String::new(),
                })
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(draw_error)?;
            let bar = |r: i32, from: f64, to: f64, style: ShapeStyle| {
                let mut rect = Rectangle::new(
                    [
                        (from * 1e3, SegmentValue::Exact(r)),
                        (
                            (to * 1e3).max(from * 1e3 + end * 1e-4),
                            SegmentValue::Exact(r + 1),
                        ),
                    ],
                    style,
                );
                // A gap between rows.
                rect.set_margin(3, 3, 0, 0);
                rect
            };
            chart
                .draw_series(self.gating.iter().filter_map(|g| {
                    let r = self.units.iter().position(|u| u.id == g.unit)?;
                    let to = g.woke.unwrap_or(end * 1e-3);
                    Some(bar(row(r), g.at, to, GATED_COLOUR.filled()))
                }))
                .map_err(draw_error)?;
            chart
                .draw_series(self.tasks.iter().filter_map(|t| {
                    let r = self.units.iter().position(|u| u.id == t.unit)?;
                    Some(bar(row(r), t.start, t.end, colour(&t.kernel).filled()))
                }))
                .map_err(draw_error)?;
            chart
                .draw_series(self.transfers.iter().filter_map(|t| {
                    let lane = *lanes.get(&(t.from, t.to))?;
                    let r = row(self.units.len() + lane);
                    Some(bar(r, t.at, t.at + t.seconds, TRANSFER_COLOUR.filled()))
                }))
                .map_err(draw_error)?;
            for c in &self.power {
                let Some(r) = self.units.iter().position(|u| u.id == c.unit) else {
                    continue;
                };
                let (x, r) = (c.at * 1e3, row(r));
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        [(x, SegmentValue::Exact(r)), (x, SegmentValue::Exact(r + 1))],
                        POWER_COLOUR.stroke_width(2),
                    )))
                    .map_err(draw_error)?;
                let label = if c.to == c.from {
                    format!("{} refused", c.effect.split(' ').next().unwrap_or_default())
                } else {
                    c.to.to_string()
                };
                chart
                    .draw_series(std::iter::once(Text::new(
                        label,
                        (x, SegmentValue::Exact(r + 1)),
                        ("sans-serif", 11).into_font().color(&POWER_COLOUR),
                    )))
                    .map_err(draw_error)?;
            }
            let mut entries: Vec<(String, RGBAColor)> =
                kernels.iter().map(|k| (k.to_string(), colour(k))).collect();
            if !self.transfers.is_empty() {
                entries.push(("transfer".into(), TRANSFER_COLOUR.to_rgba()));
            }
            if !self.power.is_empty() {
                entries.push(("power state change".into(), POWER_COLOUR.to_rgba()));
            }
            if !self.gating.is_empty() {
                entries.push(("gated".into(), GATED_COLOUR.to_rgba()));
            }
            for (i, (name, c)) in entries.iter().enumerate() {
                let (x, y) = (280 + (i % 4) as i32 * 220, 4 + (i / 4) as i32 * 24);
                legend_area
                    .draw(&Rectangle::new([(x, y), (x + 16, y + 16)], c.filled()))
                    .map_err(draw_error)?;
                legend_area
                    .draw(&Text::new(
                        name.clone(),
                        (x + 22, y + 2),
                        ("sans-serif", 14),
                    ))
                    .map_err(draw_error)?;
            }
            root.present().map_err(draw_error)?;
        }
        Ok(svg)
    }
}

//! PNG plots of the evaluation: line charts (perplexity vs context, recall vs distance, the
//! fidelity curves) and heatmaps (the pass-key and multi-key grids). Text is drawn with a font
//! compiled into the binary (Hack Regular, MIT / Bitstream Vera licence, from the
//! `epaint_default_fonts` crate), so plotting needs no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::TrainError;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 600);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is a valid TrueType file; a failure here would show as missing text.
        let _ = register_font(FONT, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR);
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Format {
        path: path.to_path_buf(),
        message: format!("plotting: {e}"),
    }
}

/// One named line: (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart of `series` with a log2 x axis when `log_x` (x must then be positive).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[Series],
) -> Result<(), TrainError> {
    fonts();
    let points = || series.iter().flat_map(|s| s.points.iter());
    let tx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points().filter(|p| p.1.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(tx(x)), x1.max(tx(x)), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let (x0, x1) = if x1 - x0 < 1e-9 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| plot_error(path, e))?;
    let x_format = |x: &f64| {
        if log_x {
            // Powers of two only: 1, 2, 4, ..., 1k, ...
            if (x - x.round()).abs() < 1e-6 {
                compact(2f64.powf(x.round()))
            } else {
                String::new()
            }
        } else {
            compact(*x)
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_format)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| (tx(x), y))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| plot_error(path, e))?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// A heatmap of accuracies in [0, 1] (`None`: not measured), one row per `rows` label (drawn
/// top to bottom) and one column per `columns` label, each cell labelled with its value.
pub fn heatmap(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    columns: &[String],
    rows: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), TrainError> {
    fonts();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (nx, ny) = (columns.len().max(1), rows.len().max(1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
        .map_err(|e| plot_error(path, e))?;
    let column_name = |x: &f64| label_at(columns, *x);
    // Row r is drawn from y = ny - 1 - r, its centre at ny - r - 0.5.
    let row_name = |y: &f64| label_at(rows, ny as f64 - *y);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(nx * 2 + 1)
        .y_labels(ny * 2 + 1)
        .x_label_formatter(&column_name)
        .y_label_formatter(&row_name)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (r, line) in values.iter().enumerate() {
        let y = (ny - 1 - r) as f64;
        for (c, value) in line.iter().enumerate() {
            let x = c as f64;
            let (fill, text) = match value {
                Some(v) => (accuracy_color(*v), format!("{:.0}%", v * 100.0)),
                None => (RGBColor(230, 230, 230), "-".to_string()),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))
                .map_err(|e| plot_error(path, e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x + 0.4, y + 0.55),
                    (FONT, 16).into_font().color(&BLACK),
                )))
                .map_err(|e| plot_error(path, e))?;
        }
    }
    root.present().map_err(|e| plot_error(path, e))
}

/// The label of the cell whose centre is at `at` (labels sit at cell centres only).
fn label_at(labels: &[String], at: f64) -> String {
    let centre = at - 0.5;
    if (centre - centre.round()).abs() > 1e-6 || centre < 0.0 {
        return String::new();
    }
    labels
        .get(centre.round() as usize)
        .cloned()
        .unwrap_or_default()
}

/// White (0) to green (1) through yellow.
fn accuracy_color(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if v < 0.5 {
        let t = v * 2.0;
        RGBColor(
            mix(250.0, 253.0, t),
            mix(250.0, 220.0, t),
            mix(250.0, 90.0, t),
        )
    } else {
        let t = (v - 0.5) * 2.0;
        RGBColor(
            mix(253.0, 40.0, t),
            mix(220.0, 160.0, t),
            mix(90.0, 70.0, t),
        )
    }
}

/// 1024 -> "1k", 1048576 -> "1M", 0.25 -> "0.25".
pub fn compact(x: f64) -> String {
    let r = x.round();
    if (x - r).abs() > 1e-6 {
        return format!("{x:.2}");
    }
    let n = r as i64;
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{}k", n >> 10)
    } else {
        format!("{n}")
    }
}

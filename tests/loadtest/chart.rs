//! SVG line charts for the report (plotters, no fonts needed).

use std::path::Path;

use plotters::prelude::*;

/// A named line.
pub(crate) struct Line {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
}

impl Line {
    pub(crate) fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        }
    }
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// Draws `lines` into an SVG file at `path`; `log_y` for latencies that
/// span orders of magnitude.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    log_y: bool,
) -> anyhow::Result<()> {
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    // The same drawing on either kind of y axis (their types differ).
    macro_rules! draw {
        ($chart:expr, $floor:expr, $position:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()?;
            for (i, line) in lines.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(
                        line.points.iter().map(|&(x, y)| (x, y.max($floor))),
                        colour.stroke_width(2),
                    ))?
                    .label(line.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position($position)
                .draw()?;
        }};
    }
    if log_y {
        let y_min = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|y| *y > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(y_max / 10.0)
            .max(0.001)
            * 0.8;
        draw!(
            builder.build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?,
            y_min,
            SeriesLabelPosition::UpperRight
        );
    } else {
        draw!(
            builder.build_cartesian_2d(0f64..x_max, 0f64..y_max)?,
            0.0,
            SeriesLabelPosition::LowerRight
        );
    }
    root.present()?;
    Ok(())
}

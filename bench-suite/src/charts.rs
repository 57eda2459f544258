//! SVG charts of the report, drawn with plotters' SVG backend.

use plotters::prelude::*;

/// Colours of the series (layer kinds), in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Stacked bars: for each of `bars` (label, values per series), the values stacked in series order.
/// Returns the SVG text.
pub fn stacked_bars(
    title: &str,
    y_label: &str,
    series: &[&str],
    bars: &[(String, Vec<f64>)],
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let ymax = bars
            .iter()
            .map(|(_, v)| v.iter().sum::<f64>())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let n = bars.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..ymax)
            .map_err(err)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                bars.get(i as usize)
                    .map(|b| b.0.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        for (si, name) in series.iter().enumerate() {
            let c = colour(si);
            let rects: Vec<Rectangle<(f64, f64)>> = bars
                .iter()
                .enumerate()
                .map(|(bi, (_, v))| {
                    let base: f64 = v[..si.min(v.len())].iter().sum();
                    let h = v.get(si).copied().unwrap_or(0.0);
                    Rectangle::new(
                        [(bi as f64 - 0.35, base), (bi as f64 + 0.35, base + h)],
                        c.filled(),
                    )
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One bar per layer (in execution order) of achieved GFLOP/s, coloured by series (`kinds[i]`
/// indexes `series`), with a horizontal line at `peak`.
pub fn bars_against_peak(
    title: &str,
    series: &[&str],
    values: &[(usize, f64)],
    peak: f64,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let ymax = values.iter().map(|v| v.1).fold(peak, f64::max).max(1e-9) * 1.15;
        let n = values.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer (execution order)")
            .y_desc("GFLOP/s")
            .draw()
            .map_err(err)?;
        for (si, name) in series.iter().enumerate() {
            let c = colour(si);
            let rects: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.0 == si)
                .map(|(i, v)| {
                    Rectangle::new([(i as f64 - 0.4, 0.0), (i as f64 + 0.4, v.1)], c.filled())
                })
                .collect();
            if rects.is_empty() {
                continue;
            }
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        chart
            .draw_series(LineSeries::new(
                [(-0.5, peak), (n as f64 - 0.5, peak)],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("measured FMA peak {peak:.1} GFLOP/s"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_the_labels() {
        let s = stacked_bars(
            "t",
            "ms",
            &["dwconv", "pointwise"],
            &[
                ("m1_0".into(), vec![1.0, 2.0]),
                ("m2_3".into(), vec![2.0, 5.0]),
            ],
        )
        .unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("m2_3") && s.contains("pointwise"));
        let s = bars_against_peak("g", &["a", "b"], &[(0, 10.0), (1, 50.0)], 100.0).unwrap();
        assert!(s.contains("measured FMA peak 100.0"));
        assert!(s.matches("<rect").count() >= 3);
    }
}

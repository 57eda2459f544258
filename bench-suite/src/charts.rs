//! SVG charts of the report, drawn with plotters' SVG backend.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
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

/// Height of the plotting area of a chart `height` pixels tall (caption, margins, x labels out).
fn plot_height(height: u32) -> f64 {
    f64::from(height.saturating_sub(2 * 12 + 40 + 30)).max(1.0)
}

/// The top of the y axis for data up to `top`, leaving an empty band above the data tall enough for
/// a legend of `entries` lines (about 20 pixels each, plus its frame), so the legend never covers a
/// bar.
fn y_top_with_legend(top: f64, entries: usize, height: u32) -> f64 {
    let legend = (20 * entries + 16) as f64;
    let free = (1.0 - legend / plot_height(height)).clamp(0.2, 0.95);
    top.max(1e-9) * 1.05 / free
}

/// The label of an x position on an axis of items `0..n`: the text of item `i` at `x == i`, nothing
/// between items (plotters places ticks at round fractions too).
fn item_label(x: f64, n: usize, text: impl Fn(usize) -> String) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
        text(i as usize)
    } else {
        String::new()
    }
}

/// A chart on `root` of `n` items along x (item `i` centred at `x = i`) and `0..ymax` along y,
/// with the caption and margins of every chart of the report.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The [`Chart`] of `n` items up to `ymax`, captioned `title`.
fn item_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    n: usize,
    ymax: f64,
) -> Result<Chart<'a, 'b>, String> {
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..ymax)
        .map_err(err)
}

/// Draws the mesh of a chart of `items` items: no vertical lines, item `i` labelled `text(i)`, the
/// y axis titled `y_label`.
fn draw_item_mesh<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    items: usize,
    text: impl Fn(usize) -> String,
    y_label: &str,
) -> Result<(), String> {
    let label = |x: &f64| item_label(*x, items, &text);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(items.max(1))
        .x_label_formatter(&label)
        .y_desc(y_label)
        .draw()
        .map_err(err)
}

/// Draws the bars of series `si`, in its colour, with a swatch labelled `name` in the legend.
fn draw_bars(
    chart: &mut Chart<'_, '_>,
    rects: Vec<Rectangle<(f64, f64)>>,
    name: &str,
    si: usize,
) -> Result<(), String> {
    let c = colour(si);
    chart
        .draw_series(rects)
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    Ok(())
}

/// Draws the legend of the labelled series at `position`, on a translucent white frame, and
/// renders `root` (the chart's drawing area) to its SVG string.
fn finish<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    root: &DrawingArea<SVGBackend<'b>, Shift>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Renders a chart `width` x 520 pixels: `draw` draws on the white drawing area (and presents
/// it); returns the SVG text.
fn svg_chart(
    width: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
    }
    Ok(svg)
}

/// Stacked bars: for each of `bars` (label, values per series), the values stacked in series order.
/// Returns the SVG text.
pub fn stacked_bars(
    title: &str,
    y_label: &str,
    series: &[&str],
    bars: &[(String, Vec<f64>)],
) -> Result<String, String> {
    svg_chart(900, |root| {
        let top = bars
            .iter()
            .map(|(_, v)| v.iter().sum::<f64>())
            .fold(0.0f64, f64::max);
        let ymax = y_top_with_legend(top, series.len(), 520);
        let n = bars.len().max(1);
        let mut chart = item_chart(root, title, n, ymax)?;
        draw_item_mesh(&mut chart, bars.len(), |i| bars[i].0.clone(), y_label)?;
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
            draw_bars(&mut chart, rects, name, si)?;
        }
        finish(&mut chart, root, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

/// One bar per layer (in execution order) of achieved GFLOP/s, coloured by series (`kinds[i]`
/// indexes `series`), with a horizontal line at `peak`.
pub fn bars_against_peak(
    title: &str,
    series: &[&str],
    values: &[(usize, f64)],
    peak: f64,
) -> Result<String, String> {
    svg_chart(1100, |root| {
        let top = values.iter().map(|v| v.1).fold(peak, f64::max);
        // One legend line per kind present, plus the peak line.
        let kinds = (0..series.len())
            .filter(|&s| values.iter().any(|v| v.0 == s))
            .count();
        let ymax = y_top_with_legend(top, kinds + 1, 520);
        let n = values.len().max(1);
        let mut chart = item_chart(root, title, n, ymax)?;
        // Layer indices are integers: ticks between layers get no label.
        let label = |x: &f64| item_label(*x, n, |i| i.to_string());
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(20))
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{y:.0}"))
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
            draw_bars(&mut chart, rects, name, si)?;
        }
        chart
            .draw_series(LineSeries::new(
                [(-0.5, peak), (n as f64 - 0.5, peak)],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("measured FMA peak {peak:.1} GFLOP/s"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        finish(&mut chart, root, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Grouped bars: for each of `groups` (x axis), one bar per series side by side; `values[g][s]` is
/// series `s` in group `g` (`None`: not measured, no bar). Returns the SVG text.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<String, String> {
    svg_chart(1000, |root| {
        let top = values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0f64, f64::max);
        let ymax = y_top_with_legend(top, series.len(), 520);
        let n = groups.len().max(1);
        let mut chart = item_chart(root, title, n, ymax)?;
        draw_item_mesh(&mut chart, groups.len(), |i| groups[i].clone(), y_label)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (si, name) in series.iter().enumerate() {
            let c = colour(si);
            let x0 = -0.4 + si as f64 * width;
            let rects: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .enumerate()
                .filter_map(|(gi, v)| {
                    let h = v.get(si).copied().flatten()?;
                    let x = gi as f64 + x0;
                    Some(Rectangle::new(
                        [(x + 0.05 * width, 0.0), (x + 0.95 * width, h)],
                        c.filled(),
                    ))
                })
                .collect();
            draw_bars(&mut chart, rects, name, si)?;
        }
        finish(&mut chart, root, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
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

    /// The x labels of the per-layer chart are whole layer indices, never fractions.
    #[test]
    fn layer_axis_labels_are_integers() {
        let values: Vec<(usize, f64)> = (0..7).map(|i| (i % 2, 10.0 + i as f64)).collect();
        let s = bars_against_peak("g", &["a", "b"], &values, 100.0).unwrap();
        let texts: Vec<&str> = s
            .split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split('>').nth(1)?.split('<').next()?.trim()))
            .collect();
        assert!(texts.contains(&"6"), "{texts:?}");
        // No axis label is written as a fraction ("2.5" or "5.0"): layers and GFLOP/s are whole.
        assert!(
            !texts
                .iter()
                .any(|t| t.contains('.') && t.parse::<f64>().is_ok()),
            "a fractional label among {texts:?}"
        );
    }

    /// The legend sits in an empty band above the tallest bar: the axis reaches well past the data.
    #[test]
    fn legend_band_is_above_the_bars() {
        let top = y_top_with_legend(100.0, 8, 520);
        let legend_px = (20 * 8 + 16) as f64;
        // The tallest bar ends below the legend's lower edge.
        assert!(100.0 / top < 1.0 - legend_px / plot_height(520), "{top}");
        let s = grouped_bars(
            "peers",
            "ms",
            &["m1_0".into(), "m2_3".into()],
            &["repvit-rs".into(), "onnxruntime".into()],
            &[vec![Some(10.0), Some(12.0)], vec![Some(40.0), None]],
        )
        .unwrap();
        assert!(s.contains("m2_3") && s.contains("onnxruntime"));
        // Three bars and two legend swatches besides the background and the frame.
        assert!(s.matches("<rect").count() >= 5);
    }
}

//! The bar chart the Charts page draws: SVG rendered on the server (no script), with a
//! y axis of round ticks and gridlines, both axes titled with their unit, each day named
//! under its bars, and each bar's value written above it and in its tooltip.
//!
//! Written by hand rather than with a plotting crate: the crates that draw SVG render to
//! files or strings with their own styling and no `data-` attributes, and a few dozen lines
//! of maud keep the chart inside the page's style, print and security rules (no script, no
//! outside resource).

use maud::{Markup, html};

/// What the y axis counts: its title (with the unit) and how values are written.
pub(crate) struct Axis<'a> {
    /// The axis title, unit included ("promotions per day", "hours").
    pub(crate) title: &'a str,
    /// Appended to a value in its tooltip (" h"; empty for counts).
    pub(crate) unit: &'a str,
    /// Decimals a value is written with (0 for counts).
    pub(crate) decimals: usize,
}

/// A series: its name, its colour and one value per day.
pub(crate) type Series<'a> = (&'a str, &'a str, Vec<f64>);

/// Plot geometry, in SVG pixels.
const LEFT: f64 = 56.0;
const TOP: f64 = 34.0;
const HEIGHT: f64 = 180.0;
const BAR: f64 = 14.0;
const GAP: f64 = 16.0;
/// Room under the plot for the day labels and the x axis title.
const BOTTOM: f64 = 46.0;
/// The plot is at least this wide, however few the days: a chart of two days is still
/// a chart a person reads, and its axis title is never wider than its axis.
const MIN_PLOT: f64 = 640.0;

/// Round tick values from 0 to at least `peak`: 1, 2 or 5 times a power of ten apart,
/// about five of them (whole numbers when `whole`, so counts never get 2.5 ticks).
pub(crate) fn ticks(peak: f64, whole: bool) -> Vec<f64> {
    let peak = if peak.is_finite() && peak > 0.0 {
        peak
    } else {
        1.0
    };
    let rough = peak / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(magnitude * 10.0);
    if whole {
        step = step.max(1.0).round();
    }
    let n = (peak / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// `value` with `decimals` decimals.
fn written(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// Bars per day for each series, drawn to a common scale. Each bar carries its value
/// (`data-value`, with the axis's decimals) for tests, in its tooltip and, when not zero
/// as written, above it.
pub(crate) fn bar_chart(
    id: &str,
    label: &str,
    days: &[String],
    series: &[Series<'_>],
    axis: &Axis<'_>,
) -> Markup {
    let peak = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let ticks = ticks(peak, axis.decimals == 0);
    let top = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let y = |v: f64| TOP + HEIGHT - (v / top * HEIGHT);
    // Wide enough for the day's label under it, and for the plot's least width.
    let bars = BAR * series.len() as f64;
    let group = (bars + GAP)
        .max(48.0)
        .max(MIN_PLOT / days.len().max(1) as f64);
    let plot = group * days.len().max(1) as f64;
    let (width, height) = (LEFT + plot + 16.0, TOP + HEIGHT + BOTTOM);
    // Ticks of a fractional step (0.5 h) need a decimal; whole steps need none.
    let tick_decimals = if ticks.iter().all(|t| t.fract() == 0.0) {
        0
    } else {
        axis.decimals.max(1)
    };
    let zero = written(0.0, axis.decimals);
    html! {
        p.legend {
            @for (name, color, _) in series {
                span style={ "color:" (color) } { "■ " } (name) "   "
            }
        }
        // Drawn at its own size, shrunk to fit a narrower page (30 days of 4 series).
        svg id=(id) xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } style="max-width:100%;height:auto"
            role="img" aria-label=(label) font-family="system-ui,sans-serif" {
            title { (label) }
            g.y-axis {
                @for t in &ticks {
                    line.grid x1=(LEFT) x2=(LEFT + plot) y1=(y(*t)) y2=(y(*t))
                        stroke=(if *t == 0.0 { "#667" } else { "#e1e4ea" }) {}
                    text x=(LEFT - 6.0) y=(y(*t) + 4.0) font-size="11" text-anchor="end" fill="#445" {
                        (written(*t, tick_decimals))
                    }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + HEIGHT) stroke="#667" {}
                text.axis-title x="14" y=(TOP + HEIGHT / 2.0) font-size="12" fill="#223"
                    text-anchor="middle" transform={ "rotate(-90 14 " (TOP + HEIGHT / 2.0) ")" } {
                    (axis.title)
                }
            }
            @for (i, day) in days.iter().enumerate() {
                // The day's bars side by side, centred in its share of the axis.
                @let centre = LEFT + group * (i as f64 + 0.5);
                @let x0 = centre - bars / 2.0;
                @for (j, (name, color, values)) in series.iter().enumerate() {
                    @let value = values.get(i).copied().unwrap_or(0.0);
                    @let shown = written(value, axis.decimals);
                    // A value too small to show with the axis's decimals is not nothing.
                    @let told = if value > 0.0 && shown == zero {
                        format!("under {}", written(0.1f64.powi(axis.decimals as i32), axis.decimals))
                    } else {
                        shown.clone()
                    };
                    @let x = x0 + BAR * j as f64;
                    rect.bar x=(x) y=(y(value).round()) width=(BAR - 2.0)
                        height=((TOP + HEIGHT - y(value)).round())
                        fill=(color) data-day=(day) data-series=(name) data-value=(shown) {
                        title { (day) ": " (told) (axis.unit) " " (name) }
                    }
                    // Written when it is not zero as written (0.004 h is "0.0": no label).
                    @if shown != zero {
                        // Upright, just above the bar: a bar is too narrow for the text
                        // across it.
                        @let (tx, ty) = (x + BAR / 2.0 + 3.0, y(value) - 3.0);
                        text.value x=(tx) y=(ty) font-size="10" fill="#223"
                            transform={ "rotate(-90 " (tx) " " (ty) ")" } data-series=(name) data-day=(day) {
                            (shown)
                        }
                    }
                }
                text.day x=(centre) y=(TOP + HEIGHT + 16.0) font-size="11" fill="#445" text-anchor="middle" { (day.get(5..).unwrap_or(day)) }
            }
            text.axis-title x=(LEFT + plot / 2.0) y=(height - 8.0) font-size="12" fill="#223" text-anchor="middle" {
                "day (UTC, month-day)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_reach_the_peak() {
        assert_eq!(ticks(7.0, true), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(3.0, true), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(ticks(0.0, true), [0.0, 1.0]);
        assert_eq!(ticks(2.4, false), [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(ticks(130.0, true), [0.0, 50.0, 100.0, 150.0]);
        // Counts never step by a fraction.
        assert_eq!(ticks(1.0, true), [0.0, 1.0]);
    }

    #[test]
    fn a_chart_titles_both_axes_and_writes_each_nonzero_value() {
        let days = ["2026-11-29".to_owned(), "2026-11-30".to_owned()];
        let series = [("requested", "#4a6fa5", vec![3.0, 0.2])];
        let axis = Axis {
            title: "promotions per day",
            unit: "",
            decimals: 0,
        };
        let svg = bar_chart("c", "test", &days, &series, &axis).into_string();
        assert!(svg.contains(">promotions per day</text>"), "{svg}");
        assert!(svg.contains(">day (UTC, month-day)</text>"), "{svg}");
        assert!(svg.contains(">11-29</text>") && svg.contains(">11-30</text>"));
        // Ticks 0..3, and the one nonzero value written above its bar.
        for t in ["0", "1", "2", "3"] {
            assert!(svg.contains(&format!(">{t}</text>")), "tick {t}: {svg}");
        }
        // 0.2 is 0 as a count: no label.
        assert_eq!(svg.matches("class=\"value\"").count(), 1, "{svg}");
        assert!(svg.contains("<title>2026-11-29: 3 requested</title>"));
        assert!(
            svg.contains("<title>2026-11-30: under 1 requested</title>"),
            "{svg}"
        );
        // Hours: a few minutes is under 0.1 h, not 0.0 h; nothing is 0.0 h.
        let hours = Axis {
            title: "mean hours from request",
            unit: " h",
            decimals: 1,
        };
        let series = [("approval", "#4a6fa5", vec![0.04, 0.0])];
        let svg = bar_chart("h", "test", &days, &series, &hours).into_string();
        assert!(
            svg.contains("<title>2026-11-29: under 0.1 h approval</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>2026-11-30: 0.0 h approval</title>"),
            "{svg}"
        );
    }
}

//! A line chart in SVG over epochs: axes with ticks, one polyline per series, a legend — what
//! the training page draws its loss, mAP and learning-rate curves with (readable without
//! developer tools, printable, no chart library in the download).

use leptos::prelude::*;

/// Plot size in SVG units; the page scales it.
const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;
const LEGEND: f64 = 96.0;

/// One named curve: its colour and a value per epoch (epoch 1 first).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub color: &'static str,
    pub values: Vec<f64>,
}

/// Curves over `epochs` epochs; the y axis runs from 0 to `y_max`, or to the largest value.
#[component]
pub fn EpochChart(
    title: &'static str,
    epochs: u32,
    series: Vec<Series>,
    #[prop(optional)] y_max: Option<f64>,
) -> impl IntoView {
    let largest = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = y_max.unwrap_or_else(|| nice_ceiling(largest));
    let last = f64::from(epochs.max(2) - 1);
    let x = move |epoch_index: f64| LEFT + epoch_index / last * WIDTH;
    let y = move |value: f64| TOP + (1.0 - (value / top).clamp(0.0, 1.0)) * HEIGHT;
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    let epoch_ticks: Vec<u32> = {
        let step = (epochs / 5).max(1);
        (1..=epochs).filter(|e| (e - 1) % step == 0 || *e == epochs).collect()
    };
    view! {
        <figure class="epoch-chart" data-chart=title>
            <figcaption>{title}</figcaption>
            <svg viewBox=format!("0 0 {} {}", LEFT + WIDTH + LEGEND, TOP + HEIGHT + BOTTOM) role="img" aria-label=title>
                <rect class="plot-area" x=LEFT y=TOP width=WIDTH height=HEIGHT />
                {ticks.into_iter().map(|t| view! {
                    <line class="grid" x1=LEFT y1=y(t * top) x2=LEFT + WIDTH y2=y(t * top) />
                    <text class="tick" x=LEFT - 5.0 y=y(t * top) + 4.0 text-anchor="end">{short(t * top)}</text>
                }).collect_view()}
                {epoch_ticks.into_iter().map(|e| view! {
                    <text class="tick" x=x(f64::from(e - 1)) y=TOP + HEIGHT + 14.0 text-anchor="middle">{e.to_string()}</text>
                }).collect_view()}
                <text class="axis" x=LEFT + WIDTH / 2.0 y=TOP + HEIGHT + 28.0 text-anchor="middle">"Epoch"</text>
                {series.into_iter().enumerate().map(|(i, s)| {
                    let points: Vec<String> = s.values.iter().enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(k, v)| format!("{:.1},{:.1}", x(k as f64), y(*v)))
                        .collect();
                    let legend_y = TOP + 12.0 + i as f64 * 16.0;
                    let latest = s.values.last().copied().map(short).unwrap_or_default();
                    view! {
                        <polyline class="curve" data-series=s.name points=points.join(" ") stroke=s.color fill="none" />
                        <line x1=LEFT + WIDTH + 8.0 y1=legend_y - 4.0 x2=LEFT + WIDTH + 20.0 y2=legend_y - 4.0 stroke=s.color stroke-width="3" />
                        <text class="legend" x=LEFT + WIDTH + 24.0 y=legend_y>{format!("{} {latest}", s.name)}</text>
                    }
                }).collect_view()}
            </svg>
        </figure>
    }
}

/// A round axis top at or above `value` (1, 2 or 5 times a power of ten).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= value)
        .unwrap_or(10.0 * power)
}

/// A tick label: three significant digits, scientific for tiny rates.
fn short(value: f64) -> String {
    if value != 0.0 && value.abs() < 0.01 {
        format!("{value:.1e}")
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

//! The throughput chart, drawn here as SVG so the page needs no charting
//! script: per minute, a bar of attempts that succeeded with the failed
//! ones stacked on top. Only numbers go into the markup.

use std::fmt::Write as _;

use kassa_common::store::admin::console::MinuteFigures;

const WIDTH: i64 = 600;
const HEIGHT: i64 = 160;
const MARGIN_LEFT: i64 = 40;
const MARGIN_BOTTOM: i64 = 20;

/// The chart of `minutes` (oldest first) as an `<svg>` element.
pub fn throughput_svg(minutes: &[MinuteFigures]) -> String {
    let peak = minutes.iter().map(|m| m.succeeded + m.failed).max().unwrap_or(0).max(1);
    let plot_height = HEIGHT - MARGIN_BOTTOM - 10;
    let slots = i64::try_from(minutes.len()).unwrap_or(1).max(1);
    let slot_width = (WIDTH - MARGIN_LEFT) / slots;
    let bar_width = (slot_width - 4).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"throughput-chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"Job attempts per minute, last {slots} minutes\">"
    );
    let baseline = HEIGHT - MARGIN_BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{MARGIN_LEFT}\" y1=\"{baseline}\" x2=\"{WIDTH}\" y2=\"{baseline}\" stroke=\"#888\" stroke-width=\"1\"/>\
         <text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{peak}/min</text>\
         <text x=\"{}\" y=\"{baseline}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">0</text>",
        MARGIN_LEFT - 4,
        MARGIN_LEFT - 4,
    );
    for (index, minute) in minutes.iter().enumerate() {
        let x = MARGIN_LEFT + i64::try_from(index).unwrap_or(0) * slot_width + 2;
        let ok_height = minute.succeeded * plot_height / peak;
        let failed_height = minute.failed * plot_height / peak;
        let ok_top = baseline - ok_height;
        let failed_top = ok_top - failed_height;
        let _ = write!(
            svg,
            "<g class=\"minute\" data-succeeded=\"{}\" data-failed=\"{}\"><title>{} succeeded, {} failed</title>\
             <rect x=\"{x}\" y=\"{ok_top}\" width=\"{bar_width}\" height=\"{ok_height}\" fill=\"#2e7d32\"/>\
             <rect x=\"{x}\" y=\"{failed_top}\" width=\"{bar_width}\" height=\"{failed_height}\" fill=\"#c62828\"/></g>",
            minute.succeeded, minute.failed, minute.succeeded, minute.failed,
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{MARGIN_LEFT}\" y=\"{}\" font-size=\"11\" fill=\"#555\">-{slots} min</text>\
         <text x=\"{WIDTH}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">now</text></svg>",
        HEIGHT - 4,
        HEIGHT - 4,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_minute() {
        let minutes = [
            MinuteFigures { minute_start_ms: 0, succeeded: 10, failed: 0 },
            MinuteFigures { minute_start_ms: 60_000, succeeded: 3, failed: 2 },
        ];
        let svg = throughput_svg(&minutes);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"minute\"").count(), 2);
        assert!(svg.contains("10/min"), "{svg}");
        assert!(svg.contains("data-succeeded=\"3\" data-failed=\"2\""), "{svg}");
    }
}

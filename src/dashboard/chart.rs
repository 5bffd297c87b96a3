//! The shift's chart, drawn on the server as inline SVG: one stacked bar per
//! hour (passed green, failed and interrupted red), the yield of each hour
//! in the bar's tooltip and under the busiest hours. No script, no image
//! request: it is part of the page.

use maud::{Markup, html};

use crate::store::queries::Shift;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 18.0;

/// The chart of `shift`'s hours.
pub fn yield_chart(shift: &Shift) -> Markup {
    let most = shift.hours.iter().map(|hour| hour.counts.passed + hour.counts.failed + hour.counts.interrupted).max();
    let most = most.unwrap_or(0).max(1) as f64;
    let slot = WIDTH / shift.hours.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let plot = HEIGHT - AXIS;
    let label_every = (shift.hours.len() / 12).max(1);
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label="units per hour: passed and failed, with the yield of each hour" {
            line x1="0" y1=(plot) x2=(WIDTH) y2=(plot) class="axis" {}
            @for (index, hour) in shift.hours.iter().enumerate() {
                @let counts = hour.counts;
                @let bad = counts.failed + counts.interrupted;
                @let x = index as f64 * slot + (slot - bar) / 2.0;
                @let good_height = counts.passed as f64 / most * (plot - 4.0);
                @let bad_height = bad as f64 / most * (plot - 4.0);
                @let clock = &crate::store::queries::when::format_time(hour.start_ms)[11..16];
                @let yield_text = counts.yield_ratio().map_or("no finished units".to_string(), |y| format!("yield {:.0}%", y * 100.0));
                g {
                    title { (clock) " UTC: " (counts.passed) " passed, " (bad) " failed, " (yield_text) }
                    rect class="passed" x=(fmt(x)) y=(fmt(plot - good_height)) width=(fmt(bar)) height=(fmt(good_height)) {}
                    rect class="failed" x=(fmt(x)) y=(fmt(plot - good_height - bad_height)) width=(fmt(bar)) height=(fmt(bad_height)) {}
                }
                @if index % label_every == 0 {
                    text x=(fmt(x + bar / 2.0)) y=(HEIGHT - 4.0) text-anchor="middle" { (clock) }
                }
            }
        }
    }
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::{Counts, Hour};

    #[test]
    fn one_bar_pair_per_hour_scaled_to_the_busiest() {
        let hour = |start_ms, passed, failed| Hour { start_ms, counts: Counts { passed, failed, ..Counts::default() } };
        let shift = Shift {
            since_ms: 0,
            until_ms: 2 * 3_600_000,
            total: Counts::default(),
            hours: vec![hour(0, 3, 1), hour(3_600_000, 0, 0)],
        };
        let svg = yield_chart(&shift).into_string();
        assert_eq!(svg.matches("<rect class=\"passed\"").count(), 2);
        assert!(svg.contains("00:00 UTC: 3 passed, 1 failed, yield 75%"), "{svg}");
        assert!(svg.contains("01:00 UTC: 0 passed, 0 failed, no finished units"), "{svg}");
        // The busiest hour fills the plot: 3 + 1 of 4 units, 138 px of bars.
        assert!(svg.contains("height=\"103.5\"") && svg.contains("height=\"34.5\""), "{svg}");
    }
}

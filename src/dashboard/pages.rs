//! The HTML pages, compiled templates (maud): the line, the units table, one
//! unit's history, the login form. Every value is escaped by maud, so what a
//! device said (a serial number, an error text, a step's detail) shows as
//! text, `<script>` included. Pure: data in, markup out.

use maud::{DOCTYPE, Markup, html};

use super::chart::yield_chart;
use crate::store::queries::when::{format_duration, format_time};
use crate::store::queries::{OUTCOMES, RunPage, RunSummary, Shift, StationView, UnitHistory};

/// How often a page without scripts reloads itself.
pub const NOSCRIPT_REFRESH_S: u32 = 5;

/// The frame of every page. `live`: the page follows the database (events
/// with a script, a periodic refresh without).
pub fn layout(title: &str, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flashline" }
                link rel="stylesheet" href="/static/style.css";
                @if live {
                    noscript { meta http-equiv="refresh" content=(NOSCRIPT_REFRESH_S); }
                    script src="/static/live.js" defer {}
                }
            }
            body {
                header {
                    strong { "flashline" }
                    a href="/" { "Line" }
                    a href="/units" { "Units" }
                    a href="/api/v1" { "API" }
                    a href="/metrics" { "Metrics" }
                }
                @if live { main data-live { (body) } } @else { main { (body) } }
            }
        }
    }
}

/// What `/` shows.
pub struct LineView<'a> {
    pub stations: &'a [StationView],
    pub shift: &'a Shift,
    pub latest: &'a [RunSummary],
    pub failures: &'a [RunSummary],
    pub now_ms: i64,
}

/// `/`: stations and fixtures, the shift, the latest runs and failures.
pub fn line(view: &LineView) -> Markup {
    let total = view.shift.total;
    let yield_text = total.yield_ratio().map_or("-".to_string(), |y| format!("{:.1}%", y * 100.0));
    layout(
        "Line",
        true,
        html! {
            p class="note" { "As of " (format_time(view.now_ms)) " (UTC)." }
            h2 { "Stations" }
            @if view.stations.is_empty() { p class="note" { "No station has reported yet." } }
            div class="stations" {
                @for station in view.stations {
                    section class="station" id=(format!("station-{}", station.name)) {
                        h3 { (station.name) " " span class=(format!("badge {}", station.status)) { (station.status) } }
                        div class="note" {
                            "heartbeat " (format_duration(station.heartbeat_age_ms)) " ago · " (station.host)
                            " · profile " (station.profile_name)
                            @if let Some(operator) = &station.operator { " · " (operator) }
                        }
                        table {
                            tr { th { "fixture" } th { "state" } th { "unit" } th { "step" } }
                            @for fixture in &station.fixtures {
                                tr {
                                    td { (fixture.name) }
                                    td { span class=(format!("badge {}", fixture.state)) { (fixture.state) } }
                                    td class="mono" {
                                        @if let Some(mac) = &fixture.unit_mac { (unit_link(mac)) } @else { "-" }
                                    }
                                    td {
                                        @if let Some(step) = &fixture.step { (step) " " }
                                        @if let Some(pct) = fixture.progress_pct {
                                            progress max="100" value=(pct.clamp(0, 100)) { (pct) "%" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Shift since " (format_time(view.shift.since_ms)) }
            p class="counts" {
                span { "passed " strong { (total.passed) } }
                span { "failed " strong { (total.failed) } }
                span { "interrupted " strong { (total.interrupted) } }
                span { "running " strong { (total.running) } }
                span { "yield " strong { (yield_text) } }
            }
            (yield_chart(view.shift))
            section id="latest-runs" { h2 { "Latest runs" } (runs_table(view.latest)) }
            section id="latest-failures" { h2 { "Latest failures" } (runs_table(view.failures)) }
        },
    )
}

fn unit_link(mac: &str) -> Markup {
    html! { a href=(format!("/units/{mac}")) { (mac) } }
}

fn outcome_badge(outcome: &str) -> Markup {
    html! { span class=(format!("badge {outcome}")) { (outcome) } }
}

fn runs_table(runs: &[RunSummary]) -> Markup {
    html! {
        @if runs.is_empty() { p class="note" { "None." } } @else {
            table {
                tr {
                    th { "unit" } th { "serial number" } th { "station" } th { "fixture" } th { "outcome" }
                    th { "started" } th { "took" } th { "finding" } th { "error" }
                }
                @for run in runs {
                    tr {
                        td class="mono" { (unit_link(&run.mac)) }
                        td { (run.serial_number.as_deref().unwrap_or("-")) }
                        td { (run.station) }
                        td { (run.fixture) }
                        td { (outcome_badge(&run.outcome)) }
                        td { (format_time(run.started_ms)) }
                        td { (run.ended_ms.map_or("-".to_string(), |end| format_duration(end - run.started_ms))) }
                        td { @if let Some(finding) = &run.finding { code { (finding) } } }
                        td { (run.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// The search form's values, as typed (shown back in the form).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Search {
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub station: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub page: Option<i64>,
}

impl Search {
    /// The query string for the same search on another page (or the CSV).
    pub fn query(&self, page: Option<i64>) -> String {
        let mut pairs = Vec::new();
        let fields = [
            ("mac", &self.mac),
            ("serial", &self.serial),
            ("station", &self.station),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (name, value) in fields {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                pairs.push(format!("{name}={}", percent_encode(value)));
            }
        }
        if let Some(page) = page {
            pairs.push(format!("page={page}"));
        }
        pairs.join("&")
    }
}

/// `/units`: the search form and one page of runs. `problem` names a
/// field the search could not use.
pub fn units(search: &Search, page: &RunPage, page_number: i64, problem: Option<&str>) -> Markup {
    let value = |field: &Option<String>| field.clone().unwrap_or_default();
    layout(
        "Units",
        false,
        html! {
            form class="search" method="get" action="/units" {
                label { "MAC" input name="mac" value=(value(&search.mac)) placeholder="00:40:9D:..." size="17"; }
                label { "serial number" input name="serial" value=(value(&search.serial)) size="14"; }
                label { "station" input name="station" value=(value(&search.station)) size="10"; }
                label { "outcome"
                    select name="outcome" {
                        option value="" { "any" }
                        @for outcome in OUTCOMES {
                            option value=(outcome) selected[search.outcome.as_deref() == Some(outcome)] { (outcome) }
                        }
                    }
                }
                label { "since" input name="since" value=(value(&search.since)) placeholder="8h or 2026-11-29" size="16"; }
                label { "until" input name="until" value=(value(&search.until)) placeholder="YYYY-MM-DDTHH:MMZ" size="16"; }
                button type="submit" { "Search" }
                a href=(format!("/units.csv?{}", search.query(None))) download="units.csv" { "CSV" }
            }
            @if let Some(problem) = problem { p class="badge failed" { (problem) } }
            (runs_table(&page.runs))
            div class="pager" {
                @if page_number > 1 { a href=(format!("/units?{}", search.query(Some(page_number - 1)))) { "← newer" } }
                span class="note" { "page " (page_number) }
                @if page.more { a href=(format!("/units?{}", search.query(Some(page_number + 1)))) { "older →" } }
            }
        },
    )
}

/// `/units/MAC`: every run of a unit, its steps, images and their SHA-256.
pub fn unit(history: &UnitHistory) -> Markup {
    layout(
        &history.mac,
        true,
        html! {
            h2 { "Unit " span class="mono" { (history.mac) } }
            p {
                "serial number " strong { (history.serial_number.as_deref().unwrap_or("-")) }
                " · first seen " (format_time(history.first_seen_ms)) " · " (history.runs.len()) " run(s)"
            }
            @for detail in history.runs.iter().rev() {
                @let run = &detail.run;
                section class="run" id=(format!("run-{}", run.run_id)) {
                    h2 {
                        (outcome_badge(&run.outcome)) " " (format_time(run.started_ms))
                        " at " (run.station) " / " (run.fixture)
                        @if let Some(end) = run.ended_ms { " · took " (format_duration(end - run.started_ms)) }
                    }
                    p class="note" {
                        "run " code { (run.run_id) } " · profile " (run.profile_name) " "
                        code { (detail.profile_sha256) }
                        @if let Some(operator) = &run.operator { " · operator " (operator) }
                        @if let Some(ip) = &run.ip { " · ip " (ip) }
                    }
                    @if let Some(finding) = &run.finding { p { "finding " code { (finding) } } }
                    @if let Some(error) = &run.error {
                        p { "error" @if let Some(class) = &run.failure_class { " (" (class) ")" } ": " (error) }
                    }
                    table {
                        tr { th { "image" } th { "bytes" } th { "SHA-256" } }
                        @for image in &detail.images {
                            tr {
                                td { (image.file) }
                                td { (image.bytes.map_or("-".to_string(), |b| b.to_string())) }
                                td class="mono" { (image.sha256) }
                            }
                        }
                        @if let Some(raw) = &detail.images_raw { tr { td colspan="3" { pre { (raw) } } } }
                    }
                    table {
                        tr { th { "#" } th { "step" } th { "outcome" } th { "started" } th { "took" } th { "retries" } th { "detail" } }
                        @for step in &detail.steps {
                            tr {
                                td { (step.idx) }
                                td { (step.kind) }
                                td { (outcome_badge(&step.outcome)) }
                                td { (format_time(step.started_ms)) }
                                td { (format_duration(step.duration_ms)) }
                                td { (step.retries) }
                                td { pre { (step.detail) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A page that says what went wrong (not found, bad input, database away).
pub fn message(title: &str, text: &str) -> Markup {
    layout(title, false, html! { h2 { (title) } p { (text) } })
}

/// The login form, shown with 401 to a browser without the token.
pub fn login(wrong: bool) -> Markup {
    layout(
        "Sign in",
        false,
        html! {
            h2 { "This dashboard needs its access token" }
            @if wrong { p class="badge failed" { "That is not the token." } }
            form method="post" action="/login" {
                label { "token " input type="password" name="token" autocomplete="current-password" autofocus; }
                " "
                button type="submit" { "Sign in" }
            }
            p class="note" { "Machines send it as " code { "Authorization: Bearer TOKEN" } "." }
        },
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(serial: &str, error: &str) -> RunSummary {
        RunSummary {
            run_id: "r1".into(),
            mac: "00:40:9D:00:00:01".into(),
            serial_number: Some(serial.into()),
            station: "st-a".into(),
            fixture: "f1".into(),
            operator: None,
            profile_name: "p".into(),
            ip: None,
            started_ms: 0,
            ended_ms: Some(5000),
            outcome: "failed".into(),
            failure_class: Some("device".into()),
            finding: Some("x".into()),
            error: Some(error.into()),
        }
    }

    #[test]
    fn what_a_device_said_is_text_never_markup() {
        let page = units(
            &Search::default(),
            &RunPage { runs: vec![run("<script>alert(1)</script>", "<img src=x onerror=alert(2)>")], more: false },
            1,
            None,
        )
        .into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"), "{page}");
    }

    #[test]
    fn a_search_keeps_its_fields_across_pages() {
        let search = Search {
            mac: Some("00:40".into()),
            outcome: Some("failed".into()),
            serial: Some("a b&c".into()),
            ..Search::default()
        };
        assert_eq!(search.query(Some(3)), "mac=00:40&serial=a%20b%26c&outcome=failed&page=3");
    }
}

//! `flashline units`: traceability from the unit database. `list` shows runs
//! (newest first, filtered), `show MAC` every run of one unit with its steps
//! and images, `export` every matching run as CSV or JSON for the quality
//! department.
//!
//! Text that came from a device (serial numbers, error texts, step details)
//! is printed with its control characters shown as `\u{..}`, so a unit cannot
//! move the cursor or recolour the terminal of whoever reads its history.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::terminal_safe as shown;
use super::{CommandResult, Context, Outcome};
use crate::mac::Mac;
use crate::store::queries::export::{CSV_HEADER, csv_record};
use crate::store::queries::when::{format_duration, format_time, parse_time};
use crate::store::queries::{MAX_PAGE, RunFilter, RunSummary, UnitHistory};

#[derive(Debug, Subcommand)]
pub enum UnitsCommand {
    /// List runs, newest first: unit MAC, serial number, station, outcome, times, finding.
    List(ListArgs),
    /// Every run of one unit (by MAC) with its steps, timings, images and their SHA-256.
    Show(ShowArgs),
    /// Write every matching run as CSV or JSON (to stdout, or --output).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// The unit database: `sqlite:PATH` or `postgres://USER@HOST[:PORT]/DB` (its password is never printed).
    #[arg(long, value_name = "URL", default_value = "sqlite:flashline.db", env = "FLASHLINE_DB")]
    db: String,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Runs started at or after T: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z (UTC), or an age such as 8h, 2d.
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Runs started before T (same forms as --since).
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only this station's runs.
    #[arg(long, value_name = "NAME")]
    station: Option<String>,
    /// Only runs that ended so: running, passed, failed or interrupted.
    #[arg(long, value_name = "O")]
    outcome: Option<String>,
    /// Units whose MAC holds these hex digits (a full MAC in any spelling finds one unit).
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Units whose serial number holds this text.
    #[arg(long, value_name = "TEXT")]
    serial: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// How many runs to show (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=MAX_PAGE))]
    limit: i64,
    /// Skip this many runs first (the next page).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    offset: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The unit's MAC, any spelling (00:40:9D:3A:00:01, 00409d3a0001).
    mac: String,
    #[command(flatten)]
    db: DbArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// CSV with a header row.
    #[arg(long, conflicts_with = "json", required_unless_present = "json")]
    csv: bool,
    /// A JSON array of runs.
    #[arg(long)]
    json: bool,
    /// Write to this file (replaced atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(command: UnitsCommand, context: &Context) -> CommandResult {
    let runtime = context.runtime()?;
    runtime.block_on(async {
        match command {
            UnitsCommand::List(args) => list(args, context).await,
            UnitsCommand::Show(args) => show(args, context).await,
            UnitsCommand::Export(args) => export(args, context).await,
        }
    })
}

fn filter(args: &FilterArgs, context: &Context) -> Result<RunFilter, Outcome> {
    let now = crate::store::now_ms();
    let time = |text: &Option<String>| match text {
        Some(text) => parse_time(text, now).map(Some).map_err(|error| context.fail_with(&error)),
        None => Ok(None),
    };
    let filter = RunFilter {
        since_ms: time(&args.since)?,
        until_ms: time(&args.until)?,
        station: args.station.clone(),
        outcome: args.outcome.clone(),
        mac: args.mac.clone(),
        serial: args.serial.clone(),
    };
    filter.check().map_err(|error| context.fail_with(&error))?;
    Ok(filter)
}

async fn list(args: ListArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let filter = filter(&args.filter, context)?;
    let store = context.open_db(&args.db.db).await?;
    let page = store.runs(&filter, args.limit, args.offset).await.map_err(|error| context.fail_with(&error))?;
    if args.json {
        context.print_json(&page);
        return Ok(Outcome::Success);
    }
    if page.runs.is_empty() {
        eprintln!("no runs match");
        return Ok(Outcome::Success);
    }
    let header = ["MAC", "SERIAL", "STATION", "FIXTURE", "OUTCOME", "STARTED", "TOOK", "FINDING"];
    let rows: Vec<[String; 8]> = page
        .runs
        .iter()
        .map(|run| {
            [
                run.mac.clone(),
                shown(run.serial_number.as_deref().unwrap_or("-")),
                shown(&run.station),
                shown(&run.fixture),
                run.outcome.clone(),
                format_time(run.started_ms),
                run.ended_ms.map_or("-".to_string(), |end| format_duration(end - run.started_ms)),
                shown(run.finding.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    print_table(&header, &rows);
    if page.more {
        eprintln!("more runs follow: --offset {}", args.offset + args.limit);
    }
    Ok(Outcome::Success)
}

async fn show(args: ShowArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let Some(mac) = Mac::parse_any_spelling(&args.mac) else {
        let shown_mac: String = shown(&args.mac).chars().take(64).collect();
        return Err(context.fail(
            format!("`{shown_mac}` is not a MAC: give six hex pairs, e.g. 00:40:9D:3A:00:01"),
            Outcome::BadInput,
        ));
    };
    let store = context.open_db(&args.db.db).await?;
    let Some(unit) = store.unit(&mac.to_string()).await.map_err(|error| context.fail_with(&error))? else {
        return Err(context.fail(format!("unit {mac} is not in the database"), Outcome::BadInput));
    };
    if args.json {
        context.print_json(&unit);
    } else {
        print_unit(&unit, context);
    }
    Ok(Outcome::Success)
}

fn print_unit(unit: &UnitHistory, context: &Context) {
    let out = &context.out;
    println!(
        "{} {}  serial {}  first seen {}  {} run(s)",
        out.field("unit"),
        unit.mac,
        shown(unit.serial_number.as_deref().unwrap_or("-")),
        format_time(unit.first_seen_ms),
        unit.runs.len()
    );
    for detail in &unit.runs {
        let run = &detail.run;
        let outcome = match run.outcome.as_str() {
            "passed" => out.good(&run.outcome),
            "running" => run.outcome.clone(),
            _ => out.error(&run.outcome),
        };
        println!();
        println!(
            "run {}  {}  station {} fixture {}  started {}{}",
            run.run_id,
            outcome,
            shown(&run.station),
            shown(&run.fixture),
            format_time(run.started_ms),
            run.ended_ms.map_or(String::new(), |end| format!("  took {}", format_duration(end - run.started_ms)))
        );
        println!(
            "  profile {} sha256 {}  operator {}  ip {}",
            shown(&run.profile_name),
            shown(&detail.profile_sha256),
            shown(run.operator.as_deref().unwrap_or("-")),
            shown(run.ip.as_deref().unwrap_or("-"))
        );
        for image in &detail.images {
            let size = image.bytes.map_or(String::new(), |bytes| format!(" ({bytes} bytes)"));
            println!("  image {}{size} sha256 {}", shown(&image.file), shown(&image.sha256));
        }
        if let Some(raw) = &detail.images_raw {
            println!("  images (unreadable list): {}", shown(raw));
        }
        for step in &detail.steps {
            let retries = if step.retries > 0 { format!(", {} retries", step.retries) } else { String::new() };
            println!(
                "  {:>2}. {:<20} {:<12} {}{retries}  {}",
                step.idx,
                shown(&step.kind),
                shown(&step.outcome),
                format_duration(step.duration_ms),
                shown(&step.detail)
            );
        }
        if let Some(finding) = &run.finding {
            println!("  {} {}", out.field("finding"), shown(finding));
        }
        if let Some(error) = &run.error {
            let class = run.failure_class.as_deref().map_or(String::new(), |class| format!(" ({})", shown(class)));
            println!("  {}{class} {}", out.error("error"), shown(error));
        }
    }
}

async fn export(args: ExportArgs, context: &Context) -> CommandResult {
    let filter = filter(&args.filter, context)?;
    let store = context.open_db(&args.db.db).await?;
    let mut writer = if args.csv { Some(csv::Writer::from_writer(Vec::new())) } else { None };
    // CSV to a terminal is read by a person: a unit's serial number or a
    // finding holding escape codes must not drive the screen. A file or a
    // pipe gets the data unchanged (JSON escapes control characters itself).
    let on_terminal = args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    if let Some(writer) = &mut writer {
        let _ = writer.write_record(CSV_HEADER);
    }
    let mut json_runs: Vec<RunSummary> = Vec::new();
    // Page through: each page is bounded, and the loop ends at the last page
    // (or after a billion runs, far past any line's history).
    for page_index in 0..1_000_000 {
        let page =
            store.runs(&filter, MAX_PAGE, page_index * MAX_PAGE).await.map_err(|error| context.fail_with(&error))?;
        match &mut writer {
            Some(writer) => {
                for run in &page.runs {
                    let mut record = csv_record(run);
                    if on_terminal {
                        record = record.map(|field| shown(&field));
                    }
                    if let Err(error) = writer.write_record(record) {
                        return Err(context.fail(format!("cannot write CSV: {error}"), Outcome::Environment));
                    }
                }
            }
            None => json_runs.extend(page.runs),
        }
        if !page.more {
            break;
        }
    }
    let text = match writer {
        Some(writer) => match writer.into_inner() {
            Ok(text) => text,
            Err(error) => return Err(context.fail(format!("cannot write CSV: {error}"), Outcome::Environment)),
        },
        None => {
            let mut text = serde_json::to_vec_pretty(&json_runs).unwrap_or_default();
            text.push(b'\n');
            text
        }
    };
    store.close().await;
    write_out(args.output.as_deref(), &text, context)
}

fn write_out(path: Option<&std::path::Path>, text: &[u8], context: &Context) -> CommandResult {
    let Some(path) = path else {
        let mut stdout = std::io::stdout().lock();
        return match stdout.write_all(text).and_then(|()| stdout.flush()) {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => Err(context.fail(format!("cannot write to stdout: {error}"), Outcome::Environment)),
        };
    };
    // CSV and JSON are UTF-8: the reports' atomic writer serves.
    match crate::pipeline::report::write_atomically(path, &String::from_utf8_lossy(text)) {
        Ok(()) => Ok(Outcome::Success),
        Err(error) => Err(context.fail(format!("cannot write {}: {error}", path.display()), Outcome::Environment)),
    }
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_text_cannot_drive_the_terminal() {
        assert_eq!(shown("ok\u{1b}[2J"), "ok\\u{1b}[2J");
        assert_eq!(shown("line\nnext"), "line\\u{a}next");
    }
}

//! `flashline profile check | schema | show`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::device_values::DeviceValueArgs;
use super::{CommandResult, Context, Outcome};
use crate::profile::{self, CheckOptions, Problem, ResolveMode, Severity};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Validate profiles; every problem with file:line:column and field path.
    ///
    /// Exit code 0 when all are valid, 2 when one is not, 3 when one cannot be read.
    Check(CheckArgs),
    /// Print the JSON Schema of the profile format (for editor completion).
    Schema,
    /// Print a profile with its variables filled in for one device; secrets as ***.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Profile files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Treat warnings (such as a clear-text password) as errors.
    #[arg(long)]
    strict: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The profile file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    device: DeviceValueArgs,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
    /// Print JSON instead of YAML.
    #[arg(long)]
    json: bool,
}

pub fn run(command: ProfileCommand, context: &Context) -> CommandResult {
    match command {
        ProfileCommand::Check(args) => check(args, context),
        ProfileCommand::Schema => {
            let schema = profile::schema();
            context.print_json(&schema);
            Ok(Outcome::Success)
        }
        ProfileCommand::Show(args) => show(args, context),
    }
}

#[derive(Serialize)]
struct FileReport {
    file: PathBuf,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_error: Option<String>,
    problems: Vec<Problem>,
}

fn check(args: CheckArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let mut outcome = Outcome::Success;
    let mut reports = Vec::new();
    for file in &args.files {
        let report = match profile::check_file(file) {
            Ok(problems) => {
                let valid = !problems.iter().any(|p| p.is_error() || (args.strict && p.severity == Severity::Warning));
                if !valid {
                    outcome = outcome.worst(Outcome::BadInput);
                }
                FileReport { file: file.clone(), valid, read_error: None, problems }
            }
            Err(error) => {
                // Unreadable: the environment; a FIFO or a folder: bad input.
                outcome = outcome.worst(Outcome::from(crate::failure::Classify::class(&error)));
                FileReport {
                    file: file.clone(),
                    valid: false,
                    read_error: Some(error.to_string()),
                    problems: Vec::new(),
                }
            }
        };
        reports.push(report);
    }
    if args.json {
        context.print_json(&reports);
        return Ok(outcome);
    }
    for report in &reports {
        if let Some(error) = &report.read_error {
            context.fail(error, Outcome::Environment);
            continue;
        }
        for problem in &report.problems {
            if context.quiet && !problem.is_error() && !args.strict {
                continue;
            }
            let mut problem = problem.clone();
            if args.strict {
                problem.severity = Severity::Error;
            }
            eprintln!("{}", context.err.problem(&problem));
        }
        let errors = report.problems.iter().filter(|p| p.is_error()).count();
        let warnings = report.problems.len() - errors;
        if !context.quiet {
            let counts = match (errors, warnings) {
                (0, 0) => String::new(),
                (e, w) => format!(" ({})", plural_counts(e, w)),
            };
            if report.valid {
                println!("{}: {}{counts}", report.file.display(), context.out.good("ok"));
            } else {
                println!("{}: {}{counts}", report.file.display(), context.out.error("invalid"));
            }
        }
    }
    Ok(outcome)
}

fn plural_counts(errors: usize, warnings: usize) -> String {
    let mut parts = Vec::new();
    if errors > 0 {
        parts.push(format!("{errors} error{}", if errors == 1 { "" } else { "s" }));
    }
    if warnings > 0 {
        parts.push(format!("{warnings} warning{}", if warnings == 1 { "" } else { "s" }));
    }
    parts.join(", ")
}

fn show(args: ShowArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    let loaded = context.load_profile(&args.file, CheckOptions { strict: args.strict })?;
    if !context.quiet {
        context.print_problems(&loaded.warnings);
    }
    let (found, values) = args.device.resolve(context)?;
    if let Some(named) = found.as_ref().and_then(|d| d.profile.as_ref())
        && !same_file(named, &args.file)
    {
        context.warn(format!(
            "device `{}` names profile {}, not {}",
            found.as_ref().map_or("", |d| d.name.as_str()),
            named.display(),
            args.file.display()
        ));
    }
    let resolved = match profile::resolve(&loaded, &values, ResolveMode::Display) {
        Ok(resolved) => resolved,
        Err(problems) => {
            context.print_problems(&problems);
            return Err(Outcome::BadInput);
        }
    };
    if args.json {
        context.print_json(&resolved);
    } else {
        match serde_saphyr::to_string(&resolved) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                return Err(context.fail(format!("cannot print the profile as YAML: {error}"), Outcome::Environment));
            }
        }
    }
    Ok(Outcome::Success)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

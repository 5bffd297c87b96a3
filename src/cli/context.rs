//! The chores every command shares, done once: printing an error (its line,
//! its `help:` hint and, with `--json`, the one error object on stdout) or a
//! profile's problems, building the async runtime without a panic, loading a
//! profile, and turning a classified error into the command's outcome.
//! Commands take a [`Context`] and never format these lines themselves.

use std::fmt::Display;
use std::path::Path;

use serde::Serialize;

use super::{Outcome, Painter};
use crate::failure::{Classify, FailureClass};
use crate::net::diagnose::Finding;
use crate::profile::{self, CheckOptions, LoadedProfile, Problem, ProfileError};

/// What every subcommand gets: how to print, and how much.
#[derive(Clone)]
pub struct Context {
    pub out: Painter,
    pub err: Painter,
    pub quiet: bool,
    /// `-v` was given at least once: simulators' own logs are shown.
    pub verbose: u8,
    /// The command was given `--json`: a failure is also printed as one
    /// [`ErrorObject`] on stdout, where a script reads the report.
    pub json: bool,
}

/// The one shape of a failed command's `--json` output, whichever command
/// it is (documented in README.md, under "Exit codes"). Fields without a
/// value are left out. The field names are the ones `ftp put --json` and
/// `exs ... --json` printed before there was one shape.
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    /// Always `false`: tells an error from a command's report.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FailureClass>,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<&'a Finding>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("quiet", &self.quiet)
            .field("verbose", &self.verbose)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The same context for a command given `--json` (or not).
    pub fn for_json(&self, json: bool) -> Context {
        Context { json, ..self.clone() }
    }

    /// Prints `error: MESSAGE` on stderr and returns `outcome`.
    pub fn fail(&self, message: impl Display, outcome: Outcome) -> Outcome {
        self.print_error(ErrorObject {
            ok: false,
            class: outcome.class(),
            error: message.to_string(),
            help: None,
            finding: None,
        });
        outcome
    }

    /// Prints a module's error, with its help when it has one, and returns
    /// the outcome its class gives.
    pub fn fail_with<E: Classify + Display + ?Sized>(&self, error: &E) -> Outcome {
        self.fail_with_finding(error, None)
    }

    /// [`fail_with`](Self::fail_with) for an error that comes with a network
    /// finding (a refused FTP connection): its code and advice follow.
    pub fn fail_with_finding<E: Classify + Display + ?Sized>(&self, error: &E, finding: Option<&Finding>) -> Outcome {
        let class = error.class();
        self.print_error(ErrorObject {
            ok: false,
            class: Some(class),
            error: error.to_string(),
            help: error.help(),
            finding,
        });
        Outcome::from(class)
    }

    /// The one rendering of a failure. The human lines go to stderr even
    /// with `--json`, whose object goes to stdout, so a person watching a
    /// script still sees why it stopped.
    fn print_error(&self, error: ErrorObject<'_>) {
        eprintln!("{}: {}", self.err.error("error"), error.error);
        if let Some(help) = error.help {
            self.help(help);
        }
        if let Some(finding) = error.finding {
            eprintln!("  finding: {}", finding.code.as_str());
            for advice in &finding.advice {
                eprintln!("  - {advice}");
            }
        }
        if self.json {
            match serde_json::to_string(&error) {
                Ok(text) => println!("{text}"),
                Err(problem) => eprintln!("{}: cannot print JSON: {problem}", self.err.error("error")),
            }
        }
    }

    /// Prints the indented `help: TEXT` line that follows an error.
    pub fn help(&self, text: &str) {
        eprintln!("  {} {text}", self.err.dim("help:"));
    }

    /// Prints `warning: MESSAGE` on stderr.
    pub fn warn(&self, message: impl Display) {
        eprintln!("{}: {message}", self.err.warning("warning"));
    }

    /// Prints each problem on its own line, `file:line:col: error: ...`.
    pub fn print_problems(&self, problems: &[Problem]) {
        for problem in problems {
            eprintln!("{}", self.err.problem(problem));
        }
    }

    /// Prints a profile or inventory error (every problem of an invalid
    /// file, then the summary line) and classifies it.
    pub fn fail_profile(&self, error: &ProfileError) -> Outcome {
        if let ProfileError::Invalid { problems, .. } = error {
            self.print_problems(problems);
        }
        self.fail_with(error)
    }

    /// Loads and validates a profile; on failure prints why.
    pub fn load_profile(&self, path: &Path, options: CheckOptions) -> Result<LoadedProfile, Outcome> {
        profile::load(path, options).map_err(|error| self.fail_profile(&error))
    }

    /// The tokio runtime a command runs on. Failing to build one (no threads
    /// left, a locked-down container) is reported, never a panic.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, Outcome> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|error| self.fail(format!("cannot start the async runtime: {error}"), Outcome::Environment))
    }

    /// A runtime on this one thread, for a server whose latency is one
    /// packet in flight at a time (`tftp serve`): the socket's readiness and
    /// the task that waits for it meet on the same thread, with no hand-over
    /// between workers per packet.
    pub fn runtime_one_thread(&self) -> Result<tokio::runtime::Runtime, Outcome> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| self.fail(format!("cannot start the async runtime: {error}"), Outcome::Environment))
    }

    /// Opens the unit database `--db` names to read it (relative SQLite
    /// paths from the current directory); on failure prints why, with the
    /// URL's password hidden.
    pub async fn open_db(&self, text: &str) -> Result<crate::store::Store, Outcome> {
        let here = std::env::current_dir().unwrap_or_default();
        let url = crate::store::DbUrl::parse(text, &here).map_err(|error| self.fail_with(&error))?;
        crate::store::Store::open_existing(&url).await.map_err(|error| self.fail_with(&error))
    }

    /// Pretty JSON on stdout, for `--json`.
    pub fn print_json(&self, value: &impl serde::Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            // Only a map with non-string keys fails; none of ours has one.
            Err(error) => eprintln!("{}: cannot print JSON: {error}", self.err.error("error")),
        }
    }
}

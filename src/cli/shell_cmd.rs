//! `flashline completions SHELL` and `flashline manpage DIR`: what a shell
//! and `man` need to know about flashline, generated from the same clap
//! definitions the parser uses, so they cannot drift from the real options.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, CommandResult, Context, Outcome};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Folder to write `flashline.1` and one page per subcommand into (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Prints the completion script on stdout.
pub fn completions(args: CompletionsArgs) -> CommandResult {
    let mut command = Cli::command();
    // Into a buffer first: clap_complete panics when its writer fails, and
    // `flashline completions bash | head` closes the pipe early.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "flashline", &mut script);
    let _ = std::io::stdout().write_all(&script);
    Ok(Outcome::Success)
}

/// Writes the man pages.
pub fn manpage(args: ManpageArgs, context: &Context) -> CommandResult {
    let written = std::fs::create_dir_all(&args.dir).and_then(|()| clap_mangen::generate_to(Cli::command(), &args.dir));
    match written {
        Ok(()) => {
            if !context.quiet {
                println!("man pages written to {}", args.dir.display());
            }
            Ok(Outcome::Success)
        }
        Err(error) => {
            Err(context
                .fail(format!("cannot write man pages to {}: {error}", args.dir.display()), Outcome::Environment))
        }
    }
}

//! `flashline dashboard`: the line dashboard on the unit database, until
//! Ctrl-C. Prints where it listens; the server itself never prints.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{CommandResult, Context, Outcome};
use crate::dashboard::{self, Config, Token};

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The unit database: `sqlite:PATH` or `postgres://USER@HOST[:PORT]/DB` (its password is never shown).
    #[arg(long, value_name = "URL", default_value = "sqlite:flashline.db", env = "FLASHLINE_DB")]
    db: String,
    /// Address and TCP port to serve on; anything but loopback needs --token-file (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A file holding the access token (16 characters or more) every request must present.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The shift shown on the line page: this many hours back from now.
    #[arg(long, value_name = "HOURS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=168))]
    shift_hours: u32,
}

pub fn run(args: DashboardArgs, context: &Context) -> CommandResult {
    let token = match args.token_file.as_deref().map(Token::from_file).transpose() {
        Ok(token) => token,
        Err(error) => return Err(context.fail_with(&error)),
    };
    let config = Config { token, shift_hours: args.shift_hours };
    let runtime = context.runtime()?;
    runtime.block_on(async {
        let listener = match dashboard::bind(args.listen, &config).await {
            Ok(listener) => listener,
            Err(error) => return Err(context.fail_with(&error)),
        };
        let store = context.open_db(&args.db).await?;
        let address = listener.local_addr().unwrap_or(args.listen);
        if !context.quiet {
            let guard = if config.token.is_some() { " (token required)" } else { "" };
            eprintln!("dashboard of {} on http://{address}/{guard}; Ctrl-C stops", store.url());
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = dashboard::serve(listener, store.clone(), config, shutdown).await;
        // Closing waits for the pool's connections; a database that went
        // away must not keep the process after Ctrl-C.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), store.close()).await;
        match served {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => Err(context.fail_with(&error)),
        }
    })
}

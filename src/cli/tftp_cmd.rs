//! `flashline tftp serve`: the built-in TFTP server on a folder, until
//! Ctrl-C, with a line per transfer on stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::profile::HumanDuration;
use crate::tftp::{self, Root, ServeError, ServerConfig};

#[derive(Debug, Subcommand)]
pub enum TftpCommand {
    /// Serve a folder over TFTP (RFC 1350 with blksize, tsize and timeout), read-only unless --allow-write.
    ///
    /// Names that leave the folder (`..`, absolute paths, symlinks pointing
    /// out of it) are refused with a TFTP error. Stops on Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The folder to serve.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Address and UDP port to listen on (port 69 needs root or CAP_NET_BIND_SERVICE; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:69")]
    listen: SocketAddr,
    /// Accept write requests (files are created or overwritten inside the folder).
    #[arg(long)]
    allow_write: bool,
    /// How long a block waits for its acknowledgment before it is sent again (a client may ask for another).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    timeout: HumanDuration,
    /// How many times a block is sent again before the transfer is given up.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// The largest block size agreed to (8 to 65464).
    #[arg(long, default_value_t = 65464, value_parser = clap::value_parser!(u16).range(8..=65464))]
    max_blksize: u16,
}

pub fn run(command: TftpCommand, context: &Context) -> CommandResult {
    match command {
        TftpCommand::Serve(args) => serve(args, context),
    }
}

fn serve(args: ServeArgs, context: &Context) -> CommandResult {
    let root = match Root::new(&args.root) {
        Ok(root) => root,
        Err(source) => return Err(context.fail_with(&ServeError::Root { path: args.root, source })),
    };
    let mut config = ServerConfig::new(root);
    config.allow_write = args.allow_write;
    config.timeout = args.timeout.0;
    config.retries = args.retries;
    config.max_blksize = usize::from(args.max_blksize);
    // Each transfer is a line on stderr; the command keeps no records.
    config.max_records = 0;
    let runtime = context.runtime_one_thread()?;
    runtime.block_on(async {
        let socket = match tftp::bind(args.listen).await {
            Ok(socket) => socket,
            Err(error) => return Err(context.fail_with(&error)),
        };
        let address = socket.local_addr().unwrap_or(args.listen);
        if !context.quiet {
            let access = if config.allow_write { "read-write" } else { "read-only" };
            eprintln!("serving {} on udp {address} ({access}); Ctrl-C stops", config.root.path().display());
        }
        let view = Arc::new(TaskView::new(context.quiet));
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match tftp::serve(socket, config, view, shutdown).await {
            Ok(_) => Ok(Outcome::Success),
            Err(error) => Err(context.fail_with(&error)),
        }
    })
}

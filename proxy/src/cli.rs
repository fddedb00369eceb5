//! Command line: `shardcar [--config FILE] [--shards N]` runs the proxy; `shardcar validate FILE`
//! checks a config and exits non-zero with the field path and line of the first problem.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shardcar",
    version,
    about = "A thread-per-core io_uring sidecar proxy"
)]
pub struct Cli {
    /// Config file (YAML). Without it the embedded default runs (15001 outbound, 15006 inbound).
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
    /// Number of shards (threads, one per CPU). Default: every CPU this process may use.
    #[arg(long)]
    pub shards: Option<usize>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config file without starting anything.
    Validate {
        /// The file to check.
        file: PathBuf,
    },
}

//! The pushgateway's library target: the command-line flag definitions, shared by the binary
//! (`src/main.rs`) and by the generator of the man page and shell completions
//! (`cargo run -p xtask -- dist-assets DIR`), so `--help`, `pushgateway.1` and the
//! completions come from the same definitions.

#![forbid(unsafe_code)]

pub mod flags;
pub mod logging;

/// The clap command of the pushgateway binary, as `--help` shows it.
pub fn command() -> clap::Command {
    <flags::Flags as clap::CommandFactory>::command()
}

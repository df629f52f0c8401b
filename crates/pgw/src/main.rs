//! The `pgw` binary: parses the command line, runs the subcommand from the library, and
//! turns its result into the process exit code.

use clap::{CommandFactory, FromArgMatches};
use pgw::app::{self, AppError};
use pgw::cli::{Cli, Command};

fn main() {
    let long_version: &'static str = Box::leak(long_version().into_boxed_str());
    let cli = Cli::from_arg_matches(&Cli::command().long_version(long_version).get_matches())
        .unwrap_or_else(|e| e.exit());
    let result: Result<i32, AppError> = match cli.command {
        Command::Run(args) => app::run(args),
        Command::Push(args) => app::push(args),
        Command::Delete(args) => app::delete(args),
        Command::Groups(args) => app::groups(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("pgw: {e}");
            code
        }
    };
    std::process::exit(code);
}

/// `pgw --version` in the style of the Prometheus tools (build information from `build.rs`).
fn long_version() -> String {
    format!(
        "{} (branch: {}, revision: {})\n  build user:       {}\n  build date:       {}\n  rustc version:    {}\n  platform:         {}/{}",
        env!("CARGO_PKG_VERSION"),
        env!("PGW_BRANCH"),
        env!("PGW_REVISION"),
        env!("PGW_BUILD_USER"),
        env!("PGW_BUILD_DATE"),
        env!("PGW_RUSTC"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

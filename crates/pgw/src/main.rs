//! The `pgw` binary: parses the command line, runs the subcommand from the library, and
//! turns its result into the process exit code.

use clap::Parser;
use pgw::app::{self, AppError};
use pgw::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
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

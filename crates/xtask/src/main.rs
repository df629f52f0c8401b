//! Project tasks, run with `cargo run -p xtask -- TASK`.
//!
//! `dist-assets DIR` writes what the Debian package ships besides the binaries, generated from
//! the same clap definitions as `--help`:
//!
//! * `DIR/man/pushgateway.1`, `DIR/man/pgw.1` and one page per pgw subcommand
//!   (`pgw-run.1`, ...), each also gzipped (`.1.gz`, reproducible) for the package;
//! * `DIR/completions/{pgw.bash,_pgw,pgw.fish}` and the same for `pushgateway`.

#![forbid(unsafe_code)]

use clap::Command;
use clap_complete::Shell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo run -p xtask -- dist-assets OUT_DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dist-assets", out] => match dist_assets(Path::new(out)) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn dist_assets(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let version = env!("CARGO_PKG_VERSION");
    let mut written = Vec::new();
    let man = out.join("man");
    let comp = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&comp)?;

    let gateway = pushgateway::command().version(version);
    let pgw = <pgw::cli::Cli as clap::CommandFactory>::command().version(version);

    written.extend(man_pages(&gateway, &man)?);
    written.extend(man_pages(&pgw, &man)?);
    for cmd in [&gateway, &pgw] {
        for (shell, file) in [
            (Shell::Bash, format!("{}.bash", cmd.get_name())),
            (Shell::Zsh, format!("_{}", cmd.get_name())),
            (Shell::Fish, format!("{}.fish", cmd.get_name())),
        ] {
            let mut c = cmd.clone();
            let name = c.get_name().to_string();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut c, name, &mut buf);
            let path = comp.join(file);
            fs::write(&path, buf)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The page of `cmd` and one per (non-hidden) subcommand, named `cmd-sub.1` as git does.
fn man_pages(cmd: &Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, cmd.get_name(), dir, &mut written)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let name: &'static str =
            Box::leak(format!("{}-{}", cmd.get_name(), sub.get_name()).into_boxed_str());
        let sub = sub.clone().name(name).display_name(name);
        write_page(&sub, name, dir, &mut written)?;
    }
    Ok(written)
}

fn write_page(
    cmd: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .source(format!("{name} {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands")
        .render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, &buf)?;
    written.push(path);
    // Debian policy wants compressed man pages; mtime 0 keeps the package reproducible.
    let gz_path = dir.join(format!("{name}.1.gz"));
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(fs::File::create(&gz_path)?, flate2::Compression::best());
    gz.write_all(&buf)?;
    gz.finish()?;
    written.push(gz_path);
    Ok(())
}

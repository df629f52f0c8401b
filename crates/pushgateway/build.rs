// Build information for `--version`, `pushgateway_build_info` and `/api/v1/status`:
// version (CARGO_PKG_VERSION), git revision and branch, build user, build date and the
// rustc version, passed to the crate as `PGW_*` environment variables.
//
// Every value can be set from outside (packagers building from a tarball without `.git`):
// `PGW_REVISION`, `PGW_BRANCH`, `PGW_BUILD_USER`, `PGW_BUILD_DATE`; `SOURCE_DATE_EPOCH`
// fixes the build date for reproducible builds. Without `git` or `.git`, revision and branch
// are "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "PGW_REVISION",
        "PGW_BRANCH",
        "PGW_BUILD_USER",
        "PGW_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let git_dir = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from);
    if let Some(dir) = &git_dir {
        watch_git(dir);
    }
    let (revision, branch) = if git_dir.is_some() {
        (
            git(&["rev-parse", "HEAD"]),
            git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        )
    } else {
        (None, None)
    };
    let revision = env_or("PGW_REVISION", revision);
    let branch = env_or("PGW_BRANCH", branch);
    let user = env_or("PGW_BUILD_USER", build_user());
    let date = env_or("PGW_BUILD_DATE", build_date());
    let rustc = rustc_version().unwrap_or_else(|| "rustc unknown".into());

    println!("cargo:rustc-env=PGW_REVISION={revision}");
    println!("cargo:rustc-env=PGW_BRANCH={branch}");
    println!("cargo:rustc-env=PGW_BUILD_USER={user}");
    println!("cargo:rustc-env=PGW_BUILD_DATE={date}");
    println!("cargo:rustc-env=PGW_RUSTC={rustc}");
}

fn env_or(var: &str, fallback: Option<String>) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or(fallback)
        .map(|v| v.trim().replace('\n', " "))
        .unwrap_or_else(|| "unknown".into())
}

/// Output of `git ARGS` run in the crate directory, if git exists and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Rebuild when HEAD moves (checkout, commit). Only existing files are watched: a missing
/// path would make cargo rerun this script on every build.
fn watch_git(dir: &Path) {
    let mut watch = vec![dir.join("HEAD"), dir.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(dir.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            watch.push(dir.join(r));
            // A linked worktree keeps its refs in the common directory.
            if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                let common = Path::new(&common);
                let common = if common.is_absolute() {
                    common.to_path_buf()
                } else {
                    dir.join(common)
                };
                watch.push(common.join(r));
                watch.push(common.join("packed-refs"));
            }
        }
    }
    for p in watch {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

fn build_user() -> Option<String> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let out = Command::new("id").arg("-un").output().ok()?;
            let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (!s.is_empty()).then_some(s)
        })?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    Some(match host {
        Some(h) => format!("{user}@{h}"),
        None => user,
    })
}

/// The build date in the official format, `20230409-10:14:32` (UTC).
fn build_date() -> Option<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse::<i64>().ok()?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64,
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}{m:02}{d:02}-{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `rustc --version` of the compiler cargo uses (`RUSTC`), e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

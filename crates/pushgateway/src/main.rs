//! The `pushgateway` binary: parses the official flags, sets up logging, opens the store
//! (restoring from `--persistence.file`), binds the listeners and serves until SIGTERM,
//! SIGINT or `/-/quit`. The flags become configurations in [`config`]; `run` only wires.

use pushgateway::flags;
mod config;
mod import;
mod rules;
// unsafe: taking over the descriptors systemd passed (SAFETY comment at the call).
#[allow(unsafe_code)]
mod systemd;

use anyhow::{Context, Result};
use clap::{ArgMatches, FromArgMatches};
use flags::{format_go_duration, Flags};
use server::{App, BuildInfo};
use std::sync::Arc;
use store::Store;

/// mimalloc: pushes allocate many small, short-lived objects; glibc's malloc showed up as a
/// quarter of the push profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Build information from `build.rs` (git revision and branch, build user and date, rustc).
fn build_info() -> BuildInfo {
    BuildInfo {
        version: VERSION.to_string(),
        revision: env!("PGW_REVISION").to_string(),
        branch: env!("PGW_BRANCH").to_string(),
        build_user: env!("PGW_BUILD_USER").to_string(),
        build_date: env!("PGW_BUILD_DATE").to_string(),
        // The `goVersion` field and `goversion` label carry the rustc version.
        go_version: env!("PGW_RUSTC").to_string(),
    }
}

/// `--version`, in the official layout.
fn print_version() {
    let b = build_info();
    println!(
        "pushgateway, version {} (branch: {}, revision: {})",
        b.version, b.branch, b.revision
    );
    println!("  build user:       {}", b.build_user);
    println!("  build date:       {}", b.build_date);
    println!("  rustc version:    {}", b.go_version);
    println!(
        "  platform:         {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!("  tags:             unknown");
}

fn init_logging(flags: &Flags) {
    use pushgateway::logging::{Format, GoKitFormat};
    let level = match flags.log_level.as_str() {
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let format = if flags.log_format == "json" {
        Format::Json
    } else {
        Format::Logfmt
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(GoKitFormat(format))
        .init();
}

/// One log line with the whole chain of causes, as the official gateway logs a fatal error.
fn log_fatal(e: &anyhow::Error) {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    tracing::error!(err = %text, "pushgateway could not start or stopped with an error");
}

fn main() -> Result<()> {
    let parsed = pushgateway::command()
        .try_get_matches()
        .and_then(|m| Flags::from_arg_matches(&m).map(|f| (f, m)));
    let (flags, matches) = match parsed {
        Ok(p) => p,
        Err(e) => {
            // --help prints and exits 0; a bad flag exits 1, as kingpin does.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if flags.help_man {
        let man = clap_mangen::Man::new(pushgateway::command());
        let mut out = std::io::stdout().lock();
        man.render(&mut out).context("writing the man page")?;
        return Ok(());
    }
    if flags.version {
        print_version();
        return Ok(());
    }
    // Read the local offset before any thread exists (the time crate requires it).
    let utc_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    init_logging(&flags);
    // As Go's runtime does: the soft descriptor limit (often 1,024) up to the hard one.
    if let Some((old, new)) = server::conns::raise_fd_limit() {
        tracing::debug!(old, new, "raised the open files soft limit (RLIMIT_NOFILE)");
    }
    if !flags.max_ttl.is_zero() && flags.default_ttl > flags.max_ttl {
        tracing::warn!(default_ttl = %format_go_duration(flags.default_ttl),
            max_ttl = %format_go_duration(flags.max_ttl),
            "--push.default-ttl exceeds --push.max-ttl: groups get the maximum");
    }
    // Taken before any thread exists: it clears the LISTEN_* variables.
    let activated = flags.systemd_socket.then(systemd::listeners).transpose();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| {
            let activated = activated.map_err(anyhow::Error::msg)?;
            rt.block_on(run(flags, matches, utc_offset, activated))
        });
    if let Err(e) = result {
        // Exit code 1; no backtrace.
        log_fatal(&e);
        std::process::exit(1);
    }
    Ok(())
}

fn log_start(build: &BuildInfo) {
    tracing::info!(
        version = %format!("(version={}, branch={}, revision={})", build.version, build.branch, build.revision),
        "starting pushgateway"
    );
    tracing::info!(
        build_context = %format!("(rustc={}, platform={}/{}, user={}, date={})", build.go_version,
            std::env::consts::OS, std::env::consts::ARCH, build.build_user, build.build_date),
        "Build context"
    );
}

/// The listeners: the systemd-activated sockets, which replace `--web.listen-address` as in
/// the official gateway, else one bound per `--web.listen-address`.
async fn listeners(
    flags: &Flags,
    activated: Option<Vec<std::net::TcpListener>>,
    tls_on: bool,
) -> Result<Vec<tokio::net::TcpListener>> {
    let log_listening = |addr: &str| {
        tracing::info!(address = %addr, "Listening on");
        if tls_on {
            tracing::info!(http2 = false, address = %addr, "TLS is enabled.");
        } else {
            tracing::info!(http2 = false, address = %addr, "TLS is disabled.");
        }
    };
    let mut listeners = Vec::new();
    for l in activated.into_iter().flatten() {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        listeners.push(tokio::net::TcpListener::from_std(l).context("using the systemd socket")?);
        log_listening(&addr);
    }
    for a in flags
        .listen_address
        .iter()
        .filter(|_| !flags.systemd_socket)
    {
        let addr = config::listen_addr(a)?;
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        log_listening(&addr);
        listeners.push(l);
    }
    Ok(listeners)
}

/// SIGTERM or SIGINT asks the server to drain and stop.
fn spawn_signal_handler(app: Arc<App>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGINT/SIGTERM; exiting gracefully..."),
            _ = int.recv() => tracing::info!("received SIGINT/SIGTERM; exiting gracefully..."),
        }
        app.request_shutdown();
    });
}

/// The writer behind the server: the store itself, or (with `--cluster.nats-url`) the NATS
/// bucket, after an optional `--cluster.import-file`.
async fn app(flags: &Flags, cfg: server::Config, store: Arc<Store>) -> Result<Arc<App>> {
    if flags.cluster_nats_url.is_empty() {
        return Ok(App::new(cfg, store));
    }
    // Replicated mode: the NATS bucket is the durable store; a --persistence.file only
    // keeps a local copy of the mirror, so a restarted replica has data before it catches up.
    let cluster = cluster::Cluster::start(config::cluster_config(flags)?, store.clone())
        .await
        .context("--cluster.nats-url")?;
    tracing::info!(urls = %flags.cluster_nats_url.join(","), bucket = %flags.cluster_bucket,
        "replicated mode: changes go through the NATS bucket");
    if !flags.cluster_import_file.is_empty() {
        import::import_into_cluster(&cluster, &flags.cluster_import_file).await?;
    }
    Ok(App::with_writer(cfg, store, cluster))
}

/// Wiring: the official file taken over, the store opened (restored), the server configured,
/// the writer (store or cluster), the listeners bound; then signals and the compaction timer
/// beside the server until it stops, and the store closed (flushed).
async fn run(
    flags: Flags,
    matches: ArgMatches,
    utc_offset: time::UtcOffset,
    activated: Option<Vec<std::net::TcpListener>>,
) -> Result<()> {
    let build = build_info();
    log_start(&build);
    let store_cfg = config::store_config(&flags);
    if let Some(p) = &store_cfg.persistence {
        // The official gateway's (gob) file is imported into our format before the log opens.
        import::take_over_official_file(&p.path, p.sync.clone())?;
    }
    // The error names the file.
    let store = Arc::new(Store::open(store_cfg)?);
    store.allow_utf8_label_names(flags.enable_utf8_names);
    let status = config::status_flags(&pushgateway::command(), &matches);
    let cfg = config::server_config(&flags, status, build, utc_offset)?;
    let tls_on = cfg
        .web
        .as_ref()
        .is_some_and(|w| w.current().tls().is_some());
    let app = app(&flags, cfg, store.clone()).await?;
    let listeners = listeners(&flags, activated, tls_on).await?;
    spawn_signal_handler(app.clone());
    store::compaction::spawn(store.clone(), flags.persistence_interval);

    server::serve(app, listeners).await;
    tracing::info!("HTTP server stopped");
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.close())
        .await
        .context("closing the store")?
        .context("flushing the persistence file")?;
    tracing::info!("stopped");
    // Everything is durable; freeing a large store piece by piece would only delay the exit.
    std::mem::forget(store);
    Ok(())
}

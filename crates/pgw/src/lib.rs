//! `pgw`: a command-line companion for batch jobs that push to a Prometheus Pushgateway.
//!
//! The binary (`src/main.rs`) only parses the command line and maps errors to exit codes;
//! everything else lives here so that it can be unit-tested:
//!
//! * [`cli`]: the clap command line and help texts.
//! * [`app`]: what each subcommand does (`run`, `push`, `delete`, `groups`).
//! * [`runner`]: running the wrapped command, forwarding signals, exit codes.
//! * [`metrics`]: the `pgw_job_*` metric names and text, local validation, the push body.
//! * [`grouping`]: grouping keys and their URL encoding (`@base64`).
//! * [`client`]: HTTP (timeouts, retries with backoff, basic auth, TLS, gzip).
//! * [`groups`]: reading `/api/v1/metrics`, the `pgw groups` table and JSON.
//! * [`duration`]: Go duration syntax (`25h`), human-readable ages.

pub mod app;
pub mod cli;
pub mod client;
pub mod duration;
pub mod grouping;
pub mod groups;
pub mod metrics;
// unsafe: kill(2) forwarding signals to the child (SAFETY comment at the call).
#[allow(unsafe_code)]
pub mod runner;

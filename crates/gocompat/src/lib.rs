//! The Go standard library behaviours the gateway must reproduce byte for byte.
//!
//! The official Pushgateway is a Go program: its error messages quote tokens with `%q`, its
//! exposition prints floats with `strconv.FormatFloat`, its flags take `time.ParseDuration`
//! syntax and print `time.Duration.String()`, its API prints `time.RFC3339Nano`. Whatever a
//! client, a test or a log reader can observe of those is reimplemented here, once, and every
//! crate that must match Go (`exposition`, `store`, `server`, `pgw`, the binary, `fuzz`) uses
//! this crate instead of its own copy. Each function names the Go function it mirrors.
//!
//! * [`float`]: `strconv.FormatFloat(f, 'g', -1, 64)` (and expfmt's `0` for `-0`).
//! * [`strconv`]: `strconv.ParseFloat` as expfmt calls it, `strconv.ParseInt`, amd64 `uint64(f)`.
//! * [`quote`]: `%q` / `strconv.Quote` with Go's `IsPrint` tables.
//! * [`duration`]: `time.ParseDuration` (and the gateway's variant with `d`, `w`, `y`),
//!   `time.Duration.String()`.
//! * [`time`](crate::time): Go's `Time.Format(time.RFC3339Nano)`.
//!
//! Nothing here knows about metrics: this crate sits below `exposition`.

#![forbid(unsafe_code)]

pub mod duration;
pub mod float;
pub mod quote;
pub mod strconv;
pub mod time;

//! Prometheus exposition formats, with no I/O.
//!
//! This crate owns everything that turns bytes into metric families and back:
//!
//! * [`pb`]: the `io.prometheus.client` protobuf messages (`MetricFamily`, `Metric`, ...).
//! * [`text_parse`]: our own parser for the text format 0.0.4. It accepts and rejects exactly what
//!   the Go `expfmt.TextParser` used by Pushgateway 1.5.1 does, with the same error messages
//!   (`text format parsing error in line N: ...`).
//! * [`delimited`]: varint-length-delimited protobuf streams of `MetricFamily` messages.
//! * [`limits`]: labels-per-series and label-value-length limits applied while parsing.
//! * [`float`]: Go's shortest `'g'` float formatting, re-exported from `gocompat::float`.
//! * [`names`]: legacy and UTF-8 names, the escaping schemes a scraper negotiates.
//! * [`native`]: native histogram buckets, as Prometheus' `model/histogram` iterates them.
//! * [`openmetrics`]: OpenMetrics 1.0 writer and parser (both behind flags).
//! * [`text_encode`]: the text format writer, used to pre-encode a family's samples once, at
//!   push time, so that a scrape only concatenates bytes.
//!
//! Architecture invariant: nothing here knows about groups, HTTP or time.

#![forbid(unsafe_code)]

pub mod delimited;
mod fast_float;
pub mod float;
pub mod limits;
pub mod names;
pub mod native;
mod native_bounds;
pub mod openmetrics;
pub mod pb;
pub mod text_encode;
pub mod text_parse;

pub use pb::{LabelPair, Metric, MetricFamily, MetricType};

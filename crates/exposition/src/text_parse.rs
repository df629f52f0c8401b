//! Parser for the Prometheus text exposition format 0.0.4 (stub; being written).

use crate::pb::MetricFamily;

/// A parse failure, displayed exactly as Go's expfmt does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text format parsing error in line {line}: {msg}")]
pub struct TextParseError {
    pub line: usize,
    pub msg: String,
}

/// Parses a whole text-format body into metric families (order unspecified).
pub fn parse_text(_body: &[u8]) -> Result<Vec<MetricFamily>, TextParseError> {
    unimplemented!()
}

//! OTLP metrics in, Prometheus semantics out. No I/O.
//!
//! * [`decode`]: an OTLP/HTTP `ExportMetricsServiceRequest` body (binary protobuf or OTLP/JSON)
//!   into the `opentelemetry-proto` crate's prost types.
//! * [`translate()`]: the request into one group per resource (`job`, `instance` and promoted
//!   resource attributes as the grouping key) holding `io.prometheus.client` metric families,
//!   named and shaped exactly as Prometheus 3's OTLP receiver does
//!   (`storage/remote/otlptranslator` with `github.com/prometheus/otlptranslator`), with
//!   cumulative points (which replace) apart from delta points (which accumulate).
//! * [`names`]: the metric, unit and label name rules.
//! * [`encode_response`], [`encode_status`]: the OTLP/HTTP success (with partial success) and
//!   failure bodies, in the request's encoding.
//!
//! Architecture invariant: nothing here knows about HTTP, groups in the store, or time.

#![forbid(unsafe_code)]

pub mod names;
mod translate;

pub use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1 as common;
pub use opentelemetry_proto::tonic::metrics::v1 as proto;
pub use opentelemetry_proto::tonic::resource::v1 as resource;
pub use translate::{translate, Group, Translation};

use prost::Message;
use std::fmt;

/// `--otlp.translation-strategy`: how OTLP names become Prometheus names (the values and
/// meaning of Prometheus' `otlp.translation_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Prometheus 3's default: names escaped to legacy characters, unit and type suffixes.
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Names escaped, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept as they are, with suffixes.
    NoUTF8EscapingWithSuffixes,
    /// UTF-8 names kept as they are, no suffixes.
    NoTranslation,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::UnderscoreEscapingWithSuffixes,
        Strategy::UnderscoreEscapingWithoutSuffixes,
        Strategy::NoUTF8EscapingWithSuffixes,
        Strategy::NoTranslation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::UnderscoreEscapingWithSuffixes => "UnderscoreEscapingWithSuffixes",
            Strategy::UnderscoreEscapingWithoutSuffixes => "UnderscoreEscapingWithoutSuffixes",
            Strategy::NoUTF8EscapingWithSuffixes => "NoUTF8EscapingWithSuffixes",
            Strategy::NoTranslation => "NoTranslation",
        }
    }

    /// `ShouldEscape`: names are escaped to `[a-zA-Z0-9_:]` (labels to `[a-zA-Z0-9_]`).
    pub fn escapes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::UnderscoreEscapingWithoutSuffixes
        )
    }

    /// `ShouldAddSuffixes`: unit, `_total` and `_ratio` suffixes.
    pub fn adds_suffixes(self) -> bool {
        matches!(
            self,
            Strategy::UnderscoreEscapingWithSuffixes | Strategy::NoUTF8EscapingWithSuffixes
        )
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Strategy::ALL.iter().map(|v| v.as_str()).collect();
                format!(
                    "unknown OTLP translation strategy {s:?}; one of: {}",
                    all.join(", ")
                )
            })
    }
}

/// How requests are translated (the receiver's part of Prometheus' `otlp` configuration).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub strategy: Strategy,
    /// `promote_resource_attributes`: resource attributes that become labels; here they join
    /// `job` and `instance` in the grouping key.
    pub promote_resource_attributes: Vec<String>,
    /// `keep_identifying_resource_attributes`: keep `service.name`, `service.namespace` and
    /// `service.instance.id` on `target_info` too.
    pub keep_identifying_resource_attributes: bool,
    /// `promote_scope_metadata`: `otel_scope_name`, `otel_scope_version`,
    /// `otel_scope_schema_url` and `otel_scope_<attribute>` labels on every series.
    pub promote_scope_metadata: bool,
}

impl Settings {
    /// The label namer of the strategy, with Prometheus' defaults for the rest.
    pub fn label_namer(&self) -> names::LabelNamer {
        names::LabelNamer {
            utf8: !self.strategy.escapes(),
            ..names::LabelNamer::default()
        }
    }
}

/// The two OTLP/HTTP payload encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json` (OTLP/JSON)
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (media type case-insensitive, parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// A body that is not an `ExportMetricsServiceRequest` in the given encoding.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid OTLP protobuf payload: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP JSON payload: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a (decompressed) request body.
pub fn decode(body: &[u8], enc: Encoding) -> Result<ExportMetricsServiceRequest, DecodeError> {
    match enc {
        Encoding::Protobuf => Ok(ExportMetricsServiceRequest::decode(body)?),
        Encoding::Json => Ok(serde_json::from_slice(body)?),
    }
}

/// The 200 answer: `ExportMetricsServiceResponse`, with `partial_success` set when points
/// were rejected or there is something to say.
pub fn encode_response(rejected: u64, message: &str, enc: Encoding) -> Vec<u8> {
    let partial = (rejected > 0 || !message.is_empty()).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected.min(i64::MAX as u64) as i64,
        error_message: message.to_string(),
    });
    match enc {
        Encoding::Protobuf => ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        // proto3 JSON: int64 as a decimal string, lowerCamelCase keys.
        Encoding::Json => match partial {
            None => b"{}".to_vec(),
            Some(p) => serde_json::json!({
                "partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }
            })
            .to_string()
            .into_bytes(),
        },
    }
}

/// `google.rpc.Status`, the body of every OTLP/HTTP 4xx and 5xx answer (the OTLP crate does
/// not carry the googleapis messages; `details` is left out, which the spec allows).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC code matching an HTTP status, for `Status.code` (informational only).
fn grpc_code(http_status: u16) -> i32 {
    match http_status {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        408 | 504 => 4,       // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

/// A failure body (`google.rpc.Status`) for an HTTP error status.
pub fn encode_status(http_status: u16, message: &str, enc: Encoding) -> Vec<u8> {
    let code = grpc_code(http_status);
    match enc {
        Encoding::Protobuf => Status {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_print() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert!("underscoreescapingwithsuffixes"
            .parse::<Strategy>()
            .is_err());
        assert_eq!(
            Strategy::default(),
            Strategy::UnderscoreEscapingWithSuffixes
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(Encoding::from_content_type(""), None);
    }

    #[test]
    fn responses() {
        assert!(encode_response(0, "", Encoding::Protobuf).is_empty());
        assert_eq!(encode_response(0, "", Encoding::Json), b"{}");
        let r = ExportMetricsServiceResponse::decode(
            &encode_response(3, "bad", Encoding::Protobuf)[..],
        )
        .unwrap();
        let p = r.partial_success.unwrap();
        assert_eq!(
            (p.rejected_data_points, p.error_message.as_str()),
            (3, "bad")
        );
        let j: serde_json::Value =
            serde_json::from_slice(&encode_response(3, "bad", Encoding::Json)).unwrap();
        assert_eq!(j["partialSuccess"]["rejectedDataPoints"], "3");
        let s = Status::decode(&encode_status(400, "nope", Encoding::Protobuf)[..]).unwrap();
        assert_eq!((s.code, s.message.as_str()), (3, "nope"));
    }

    #[test]
    fn decode_errors() {
        assert!(decode(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode(b"{\"resourceMetrics\": 5}", Encoding::Json).is_err());
        assert!(decode(b"", Encoding::Protobuf)
            .unwrap()
            .resource_metrics
            .is_empty());
        assert!(decode(b"{\"unknown\": 1}", Encoding::Json)
            .unwrap()
            .resource_metrics
            .is_empty());
    }
}

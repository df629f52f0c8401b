//! Varint-length-delimited protobuf streams of `MetricFamily` messages
//! (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`).

use crate::pb::MetricFamily;
use prost::Message;

/// The media type of a delimited protobuf stream, as served on a scrape.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelimitedError {
    #[error("unexpected EOF")]
    UnexpectedEof,
    #[error("proto: cannot parse invalid wire-format data: {0}")]
    Invalid(String),
}

/// Reads families until the end of `body`. A later family with the same name replaces an
/// earlier one (the official gateway keeps them in a map by name).
pub fn parse_delimited(mut body: &[u8]) -> Result<Vec<MetricFamily>, DelimitedError> {
    let mut out: Vec<MetricFamily> = Vec::new();
    let mut by_name = std::collections::HashMap::new();
    while !body.is_empty() {
        let len =
            prost::encoding::decode_varint(&mut body).map_err(|_| DelimitedError::UnexpectedEof)?;
        let len = usize::try_from(len).map_err(|_| DelimitedError::UnexpectedEof)?;
        if body.len() < len {
            return Err(DelimitedError::UnexpectedEof);
        }
        let (msg, rest) = body.split_at(len);
        body = rest;
        let mf = MetricFamily::decode(msg).map_err(|e| DelimitedError::Invalid(e.to_string()))?;
        match by_name.get(mf.name()) {
            Some(&i) => out[i] = mf,
            None => {
                by_name.insert(mf.name().to_string(), out.len());
                out.push(mf);
            }
        }
    }
    Ok(out)
}

/// Appends `n` as a protobuf varint.
pub fn write_varint(out: &mut Vec<u8>, n: u64) {
    prost::encoding::encode_varint(n, out);
}

/// Number of bytes [`write_varint`] writes for `n`.
pub fn varint_len(n: u64) -> usize {
    prost::encoding::encoded_len_varint(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::*;

    fn fam(name: &str, v: f64) -> MetricFamily {
        MetricFamily {
            name: Some(name.into()),
            r#type: Some(MetricType::Untyped as i32),
            metric: vec![Metric {
                untyped: Some(Untyped { value: Some(v) }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn later_family_with_same_name_wins() {
        let mut buf = Vec::new();
        for f in [fam("a", 1.0), fam("b", 2.0), fam("a", 3.0)] {
            f.encode_length_delimited(&mut buf).unwrap();
        }
        let got = parse_delimited(&buf).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].metric[0].untyped.unwrap().value, Some(3.0));
        assert_eq!(got[1].name(), "b");
    }

    #[test]
    fn truncated_stream_is_unexpected_eof() {
        let mut buf = Vec::new();
        fam("a", 1.0).encode_length_delimited(&mut buf).unwrap();
        buf.pop();
        assert_eq!(parse_delimited(&buf), Err(DelimitedError::UnexpectedEof));
        assert_eq!(parse_delimited(&[]), Ok(vec![]));
    }
}

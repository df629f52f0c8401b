//! Per-series limits enforced while a push body is parsed (`--limits.max-labels-per-series`,
//! `--limits.max-label-value-length`), so a hostile body is refused as soon as it crosses a
//! limit instead of being parsed (and checked) in full first.

use crate::pb::MetricFamily;

/// Limits applied while parsing (0 disables each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseLimits {
    pub max_labels_per_series: usize,
    pub max_label_value_bytes: usize,
}

/// The first limit a body crossed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    /// A series of `family` has more than `max` labels.
    LabelsPerSeries { family: String, max: usize },
    /// The value of label `label` is `len` bytes long, more than `max`.
    LabelValueLength {
        label: String,
        len: usize,
        max: usize,
    },
}

impl ParseLimits {
    /// Whether a series with `labels` labels is over the limit.
    pub fn too_many_labels(&self, labels: usize) -> bool {
        self.max_labels_per_series != 0 && labels > self.max_labels_per_series
    }

    /// Whether a label value of `len` bytes is over the limit.
    pub fn value_too_long(&self, len: usize) -> bool {
        self.max_label_value_bytes != 0 && len > self.max_label_value_bytes
    }

    /// Checks decoded families (protobuf bodies): one linear pass.
    pub fn check(&self, families: &[MetricFamily]) -> Result<(), LimitExceeded> {
        for f in families {
            for m in &f.metric {
                if self.too_many_labels(m.label.len()) {
                    return Err(LimitExceeded::LabelsPerSeries {
                        family: f.name().to_string(),
                        max: self.max_labels_per_series,
                    });
                }
                if let Some(l) = m
                    .label
                    .iter()
                    .find(|l| self.value_too_long(l.value().len()))
                {
                    return Err(LimitExceeded::LabelValueLength {
                        label: l.name().to_string(),
                        len: l.value().len(),
                        max: self.max_label_value_bytes,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text_parse::{parse_text_limited, LimitedParseError};

    const LIMITS: ParseLimits = ParseLimits {
        max_labels_per_series: 3,
        max_label_value_bytes: 5,
    };

    fn series(labels: usize) -> String {
        let inner: Vec<String> = (0..labels).map(|i| format!("l{i}=\"v\"")).collect();
        format!("m{{{}}} 1\n", inner.join(","))
    }

    #[test]
    fn text_limits_stop_the_parse_at_the_first_crossing() {
        assert!(parse_text_limited(series(3).as_bytes(), LIMITS).is_ok());
        assert_eq!(
            parse_text_limited(series(4).as_bytes(), LIMITS),
            Err(LimitedParseError::Limit(LimitExceeded::LabelsPerSeries {
                family: "m".into(),
                max: 3
            }))
        );
        // The limit is met before the syntax error further on.
        let body = format!("{}garbage{{\n", series(4));
        assert!(matches!(
            parse_text_limited(body.as_bytes(), LIMITS),
            Err(LimitedParseError::Limit(_))
        ));
        assert_eq!(
            parse_text_limited(b"m{a=\"123456\"} 1\n", LIMITS),
            Err(LimitedParseError::Limit(LimitExceeded::LabelValueLength {
                label: "a".into(),
                len: 6,
                max: 5
            }))
        );
        assert!(matches!(
            parse_text_limited(b"m{a=\"1\"} x\n", LIMITS),
            Err(LimitedParseError::Syntax(_))
        ));
        let off = ParseLimits::default();
        assert_eq!(
            parse_text_limited(series(200).as_bytes(), off).unwrap()[0].metric[0]
                .label
                .len(),
            200
        );
    }

    #[test]
    fn duplicate_label_check_is_linear_for_huge_label_sets() {
        // 100,000 labels: a quadratic duplicate check would take seconds here.
        let n = 100_000;
        let t = std::time::Instant::now();
        let fams = crate::text_parse::parse_text(series(n).as_bytes()).unwrap();
        assert_eq!(fams[0].metric[0].label.len(), n);
        let mut dup = series(n);
        dup.insert_str(2, "l99999=\"x\",");
        let e = crate::text_parse::parse_text(dup.as_bytes()).unwrap_err();
        assert!(e.msg.contains("duplicate label names"), "{e}");
        // A hang detector (debug builds included), not a speed assertion.
        assert!(t.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn decoded_families_are_checked_too() {
        let fams = crate::text_parse::parse_text(series(4).as_bytes()).unwrap();
        assert!(matches!(
            LIMITS.check(&fams),
            Err(LimitExceeded::LabelsPerSeries { .. })
        ));
        let fams = crate::text_parse::parse_text(b"m{a=\"123456\"} 1\n").unwrap();
        assert!(matches!(
            LIMITS.check(&fams),
            Err(LimitExceeded::LabelValueLength { len: 6, .. })
        ));
        assert!(ParseLimits::default().check(&fams).is_ok());
    }
}

//! The one rule for a classic histogram's counts that the JSON API and the web UI share: a
//! float histogram carries its counts in the `_float` fields, used when positive; otherwise
//! the integer fields are the counts.

use exposition::pb::{Bucket, Histogram};

/// A histogram count as it is shown: the integer, or the float of a float histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Count {
    Int(u64),
    Float(f64),
}

impl Count {
    /// The float count if it is set and positive, else the integer count (0 if unset).
    pub fn of(int: Option<u64>, float: Option<f64>) -> Count {
        match float.filter(|f| *f > 0.0) {
            Some(f) => Count::Float(f),
            None => Count::Int(int.unwrap_or(0)),
        }
    }

    /// The histogram's total sample count.
    pub fn samples(h: &Histogram) -> Count {
        Count::of(h.sample_count, h.sample_count_float)
    }

    /// A bucket's cumulative count.
    pub fn cumulative(b: &Bucket) -> Count {
        Count::of(b.cumulative_count, b.cumulative_count_float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_count_wins_only_when_positive() {
        assert_eq!(Count::of(Some(3), None), Count::Int(3));
        assert_eq!(Count::of(None, None), Count::Int(0));
        assert_eq!(Count::of(Some(3), Some(2.5)), Count::Float(2.5));
        assert_eq!(Count::of(Some(3), Some(0.0)), Count::Int(3));
        assert_eq!(Count::of(Some(3), Some(-1.0)), Count::Int(3));
    }
}

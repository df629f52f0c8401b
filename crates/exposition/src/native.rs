//! Native (sparse, exponential) histograms: their buckets with bounds, as Prometheus'
//! `model/histogram` iterates them, for the API (pushgateway `histogram/prometheus_model.go`:
//! `[boundary_rule, lower, upper, count]`) and the web UI (`Histogram.String()`:
//! `{count:6, sum:12.5, [-1,-0.7071067811865475):1, [-0.001,0.001]:2, (0.5,1]:3}`).

use crate::float::write_go_float;
use crate::pb::{BucketSpan, Histogram};

/// One non-empty bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeBucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl NativeBucket {
    /// The API's boundary rule: 0 `(]`, 1 `[)`, 2 `()`, 3 `[]`.
    pub fn boundary_rule(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (true, true) => 3,
            (true, false) => 1,
            (false, true) => 0,
            (false, false) => 2,
        }
    }
}

/// A native histogram's view: whether its counts are floats, its count, and its non-empty
/// buckets from the most negative to the most positive.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeView {
    pub float: bool,
    pub count: f64,
    pub sum: f64,
    pub buckets: Vec<NativeBucket>,
}

/// Whether a protobuf histogram carries a native part (upstream's test: any span, which
/// client_golang also sends, as one empty span, for a native histogram without observations).
pub fn is_native(h: &Histogram) -> bool {
    !h.positive_span.is_empty() || !h.negative_span.is_empty()
}

/// Whether a histogram's counts are floats (`NewModelHistogram`'s test).
pub fn is_float(h: &Histogram) -> bool {
    h.sample_count_float.unwrap_or(0.0) > 0.0 || h.zero_count_float.unwrap_or(0.0) > 0.0
}

/// The upper bound of bucket `idx` in `schema` (Prometheus' `getBoundExponential`).
pub fn bucket_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let shift = (-schema).min(30) as u32;
        let exp = i64::from(idx) << shift;
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let schema = schema.min(8) as u32;
    let n = 1i64 << schema;
    let frac_idx = i64::from(idx) & (n - 1);
    let frac = crate::native_bounds::EXPONENTIAL_BOUNDS[schema as usize][frac_idx as usize];
    let exp = (i64::from(idx) >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

fn ldexp(frac: f64, exp: i64) -> f64 {
    // Scale in steps so that subnormal and huge results are exact, as math.Ldexp is.
    let mut v = frac;
    let mut e = exp;
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v * 2f64.powi(e as i32)
}

/// Absolute bucket counts with their indexes, following the spans.
fn indexed(spans: &[BucketSpan], deltas: &[i64], counts: &[f64], float: bool) -> Vec<(i32, f64)> {
    let mut out = Vec::new();
    let mut idx: i32 = 0;
    let mut bi = 0usize;
    let mut current: i64 = 0;
    for (si, span) in spans.iter().enumerate() {
        let offset = span.offset.unwrap_or(0);
        idx = if si == 0 {
            offset
        } else {
            idx.saturating_add(offset)
        };
        for _ in 0..span.length.unwrap_or(0) {
            let count = if float {
                counts.get(bi).copied().unwrap_or(0.0)
            } else {
                current = current.wrapping_add(deltas.get(bi).copied().unwrap_or(0));
                current as u64 as f64
            };
            out.push((idx, count));
            bi += 1;
            idx = idx.saturating_add(1);
        }
    }
    out
}

/// The native view of a histogram, or `None` when it has no native part.
pub fn view(h: &Histogram) -> Option<NativeView> {
    if !is_native(h) {
        return None;
    }
    let float = is_float(h);
    let schema = h.schema.unwrap_or(0);
    let threshold = h.zero_threshold.unwrap_or(0.0);
    let mut buckets = Vec::new();
    let neg = indexed(
        &h.negative_span,
        &h.negative_delta,
        &h.negative_count,
        float,
    );
    for (idx, count) in neg.into_iter().rev() {
        if count != 0.0 {
            buckets.push(NativeBucket {
                lower: -bucket_bound(idx, schema),
                upper: -bucket_bound(idx.saturating_sub(1), schema),
                lower_inclusive: true,
                upper_inclusive: false,
                count,
            });
        }
    }
    let zero = if float {
        h.zero_count_float.unwrap_or(0.0)
    } else {
        h.zero_count.unwrap_or(0) as f64
    };
    if zero != 0.0 {
        buckets.push(NativeBucket {
            lower: -threshold,
            upper: threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: zero,
        });
    }
    for (idx, count) in indexed(
        &h.positive_span,
        &h.positive_delta,
        &h.positive_count,
        float,
    ) {
        if count != 0.0 {
            buckets.push(NativeBucket {
                lower: bucket_bound(idx.saturating_sub(1), schema),
                upper: bucket_bound(idx, schema),
                lower_inclusive: false,
                upper_inclusive: true,
                count,
            });
        }
    }
    let count = if float {
        h.sample_count_float.unwrap_or(0.0)
    } else {
        h.sample_count.unwrap_or(0) as f64
    };
    Some(NativeView {
        float,
        count,
        sum: h.sample_sum.unwrap_or(0.0),
        buckets,
    })
}

/// Appends a count: integers without a fraction (`%d`), floats as Go's `%g`.
pub fn write_count(out: &mut String, v: f64, float: bool) {
    if float {
        write_go_float(out, v);
    } else {
        out.push_str(itoa::Buffer::new().format(v as u64));
    }
}

/// Appends Prometheus' `String()` notation of a native histogram.
pub fn write_string(out: &mut String, v: &NativeView) {
    out.push_str("{count:");
    write_count(out, v.count, v.float);
    out.push_str(", sum:");
    write_go_float(out, v.sum);
    for b in &v.buckets {
        out.push_str(", ");
        out.push(if b.lower_inclusive { '[' } else { '(' });
        write_go_float(out, b.lower);
        out.push(',');
        write_go_float(out, b.upper);
        out.push(if b.upper_inclusive { ']' } else { ')' });
        out.push(':');
        write_count(out, b.count, v.float);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan {
            offset: Some(offset),
            length: Some(length),
        }
    }

    #[test]
    fn bounds_match_the_exponential_table() {
        // Values from prometheus/prometheus model/histogram/generic.go (exponentialBounds).
        assert_eq!(bucket_bound(0, 0), 1.0);
        assert_eq!(bucket_bound(1, 0), 2.0);
        assert_eq!(bucket_bound(-1, 1), 0.7071067811865475);
        assert_eq!(bucket_bound(-3, 2), 0.5946035575013605);
        assert_eq!(bucket_bound(-1, 2), 0.8408964152537144);
        assert_eq!(bucket_bound(-1, 5), 0.9785720620876999);
        assert_eq!(bucket_bound(-31, 5), 0.5109485743270583);
        assert_eq!(bucket_bound(1, -1), 4.0);
        assert_eq!(bucket_bound(256, -2), f64::MAX);
        assert_eq!(bucket_bound(1024 * 8, 3), f64::MAX);
    }

    #[test]
    fn string_notation_of_integer_histogram() {
        // client_golang, schema 1, observations -0.8, 0, 0, 0.6, 0.9, 1.5 (sum 2.2).
        let h = Histogram {
            sample_count: Some(6),
            sample_sum: Some(2.2),
            schema: Some(1),
            zero_threshold: Some(0.001),
            zero_count: Some(2),
            negative_span: vec![span(0, 1)],
            negative_delta: vec![1],
            positive_span: vec![span(-1, 2), span(1, 1)],
            positive_delta: vec![1, 0, 0],
            ..Default::default()
        };
        let v = view(&h).unwrap();
        let mut s = String::new();
        write_string(&mut s, &v);
        assert_eq!(
            s,
            "{count:6, sum:2.2, [-1,-0.7071067811865475):1, [-0.001,0.001]:2, \
             (0.5,0.7071067811865475]:1, (0.7071067811865475,1]:1, (1.414213562373095,2]:1}"
        );
        assert_eq!(v.buckets[0].boundary_rule(), 1);
        assert_eq!(v.buckets[1].boundary_rule(), 3);
        assert_eq!(v.buckets[2].boundary_rule(), 0);
        assert_eq!(v.buckets.len(), 5);
    }

    #[test]
    fn float_and_empty_histograms() {
        let h = Histogram {
            sample_count_float: Some(2.5),
            sample_sum: Some(1.0),
            schema: Some(0),
            positive_span: vec![span(0, 2), span(1, 1)],
            positive_count: vec![1.5, 0.0, 1.0],
            ..Default::default()
        };
        let v = view(&h).unwrap();
        let mut s = String::new();
        write_string(&mut s, &v);
        assert_eq!(s, "{count:2.5, sum:1, (0.5,1]:1.5, (4,8]:1}");
        let empty = Histogram {
            schema: Some(3),
            positive_span: vec![span(0, 0)],
            ..Default::default()
        };
        let v = view(&empty).unwrap();
        assert!(v.buckets.is_empty() && v.count == 0.0);
        assert!(view(&Histogram::default()).is_none());
    }
}

//! Metric, unit and label names, translated as `github.com/prometheus/otlptranslator` v1.0.0
//! does for Prometheus 3 (`MetricNamer`, `UnitNamer`, `LabelNamer`). Each function names the Go
//! function it follows; the tests pin the upstream test cases.

use crate::Strategy;

/// What kind of Prometheus series an OTLP metric becomes, for naming (otlptranslator
/// `MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameType {
    /// A non-monotonic sum (no `_total`).
    NonMonotonicCounter,
    /// A monotonic sum: gets `_total`.
    MonotonicCounter,
    /// A gauge: gets `_ratio` when its unit is `1`.
    Gauge,
    Histogram,
    ExponentialHistogram,
    Summary,
}

/// `unitMap`: OTLP (UCSUM) units to Prometheus base-unit words.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// `perUnitMap`: the unit after `/`, singular.
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// `isValidCompliantMetricChar`: `[a-zA-Z0-9:]`.
fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// `isValidCompliantLabelChar`: `[a-zA-Z0-9]`.
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Go's `strings.FieldsFunc`: the non-empty runs of characters for which `sep` is false.
fn fields(s: &str, sep: impl Fn(char) -> bool) -> Vec<&str> {
    s.split(sep).filter(|f| !f.is_empty()).collect()
}

/// `buildUnitSuffixes`: the main and `per_` unit words, before any character clean-up.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut tokens = unit.splitn(2, '/');
    let mut main = String::new();
    let mut per = String::new();
    if let Some(m) = tokens.next() {
        let m = m.trim();
        if !m.is_empty() && !m.contains(['{', '}']) {
            main = unit_word(m).to_string();
        }
    }
    if let Some(p) = tokens.next().filter(|p| !p.is_empty()) {
        let p = p.trim();
        if !p.is_empty() && !p.contains(['{', '}']) {
            per = per_unit_word(p).to_string();
        }
        if !per.is_empty() {
            per = format!("per_{per}");
        }
    }
    (main, per)
}

/// `collapseMultipleUnderscores`.
fn collapse_underscores(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = false;
    for c in s.chars() {
        if c == '_' {
            if !prev {
                out.push('_');
            }
            prev = true;
        } else {
            out.push(c);
            prev = false;
        }
    }
    out
}

/// `cleanUpUnit`: invalid characters to `_`, runs of `_` collapsed, one leading `_` dropped.
fn clean_up_unit(unit: &str) -> String {
    let mapped: String = unit
        .chars()
        .map(|c| if is_metric_char(c) { c } else { '_' })
        .collect();
    let collapsed = collapse_underscores(&mapped);
    match collapsed.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => collapsed,
    }
}

/// `UnitNamer.Build` (escaping): the unit as the metadata's unit (`By/s` → `bytes_per_second`).
pub fn unit_name(unit: &str, utf8: bool) -> String {
    let (mut main, mut per) = unit_suffixes(unit);
    if !utf8 {
        main = clean_up_unit(&main);
        per = clean_up_unit(&per);
    }
    let mut u = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    if u.starts_with('_') {
        u.remove(0);
    }
    if u.ends_with('_') {
        u.pop();
    }
    u
}

/// `addUnitTokens`.
fn add_unit_tokens(tokens: &mut Vec<String>, main: String, per: String) {
    let mut main = main;
    let mut per = per;
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
}

/// `normalizeName`: tokens of valid characters, unit and type suffixes, `_` joined.
fn normalize_name(name: &str, unit: &str, t: NameType) -> String {
    let mut tokens: Vec<String> = fields(name, |c| !is_metric_char(c))
        .into_iter()
        .map(str::to_string)
        .collect();
    let (main, per) = unit_suffixes(unit);
    add_unit_tokens(&mut tokens, clean_up_unit(&main), clean_up_unit(&per));
    if t == NameType::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && t == NameType::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `buildCompliantMetricName` (escaping strategies).
fn compliant_metric_name(
    name: &str,
    unit: &str,
    t: NameType,
    suffixes: bool,
) -> Result<String, String> {
    let out = if suffixes {
        normalize_name(name, unit, t)
    } else {
        let mut n = fields(name, |c| !is_metric_char(c) && c != '_').join("_");
        if n.starts_with(|c: char| c.is_ascii_digit()) {
            n.insert(0, '_');
        }
        n
    };
    if out.is_empty() {
        return Err(format!(
            "normalization for metric {name:?} resulted in empty name"
        ));
    }
    if out != name && out.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for metric {name:?} resulted in invalid name {out:?}"
        ));
    }
    Ok(out)
}

/// `trimSuffixAndDelimiter`.
fn trim_suffix_and_delimiter<'a>(name: &'a str, suffix: &str) -> &'a str {
    if name.ends_with(suffix) && name.len() > suffix.len() + 1 {
        &name[..name.len() - suffix.len() - 1]
    } else {
        name
    }
}

/// `buildMetricName` (UTF-8 strategies): the name as is, with suffixes if asked for.
fn utf8_metric_name(name: &str, unit: &str, t: NameType, suffixes: bool) -> String {
    if !suffixes {
        return name.to_string();
    }
    let mut name = name.to_string();
    let mut tail: Vec<&str> = Vec::new();
    if unit == "1" && t == NameType::Gauge {
        name = trim_suffix_and_delimiter(&name, "ratio").to_string();
        tail.push("ratio");
    }
    if t == NameType::MonotonicCounter {
        name = trim_suffix_and_delimiter(&name, "total").to_string();
        tail.push("total");
    }
    let (main, per) = unit_suffixes(unit);
    if !per.is_empty() {
        name = trim_suffix_and_delimiter(&name, &per).to_string();
    }
    if !main.is_empty() && !name.ends_with(&main) {
        name.push('_');
        name.push_str(&main);
    }
    // Go's deferred appends run last-registered first: per unit, then `_total`, then `_ratio`.
    if !per.is_empty() {
        name.push('_');
        name.push_str(&per);
    }
    for s in tail.iter().rev() {
        name.push('_');
        name.push_str(s);
    }
    name
}

/// `MetricNamer.Build`: the Prometheus name of an OTLP metric under `strategy`.
pub fn metric_name(
    name: &str,
    unit: &str,
    t: NameType,
    strategy: Strategy,
) -> Result<String, String> {
    if strategy.escapes() {
        compliant_metric_name(name, unit, t, strategy.adds_suffixes())
    } else {
        Ok(utf8_metric_name(name, unit, t, strategy.adds_suffixes()))
    }
}

/// How attribute keys become label names (`LabelNamer`; Prometheus' defaults are both `true`).
#[derive(Clone, Copy, Debug)]
pub struct LabelNamer {
    pub utf8: bool,
    /// `label_name_underscore_sanitization`: `_foo` becomes `key_foo`.
    pub underscore_sanitization: bool,
    /// `label_name_preserve_multiple_underscores`: `a..b` becomes `a__b`, not `a_b`.
    pub preserve_multiple_underscores: bool,
}

impl Default for LabelNamer {
    /// Prometheus 3's defaults (`config.DefaultOTLPConfig`).
    fn default() -> Self {
        LabelNamer {
            utf8: false,
            underscore_sanitization: true,
            preserve_multiple_underscores: true,
        }
    }
}

/// `sanitizeLabelName`.
fn sanitize_label_name(name: &str, preserve: bool) -> String {
    if preserve {
        return name
            .chars()
            .map(|c| if is_label_char(c) { c } else { '_' })
            .collect();
    }
    let reserved = name.len() >= 4 && name.starts_with("__") && name.ends_with("__");
    let inner = if reserved {
        &name[2..name.len() - 2]
    } else {
        name
    };
    let mut out = String::with_capacity(name.len());
    if reserved {
        out.push_str("__");
    }
    let mut prev = false;
    for c in inner.chars() {
        if is_label_char(c) {
            out.push(c);
            prev = false;
        } else if !prev {
            out.push('_');
            prev = true;
        }
    }
    if reserved {
        out.push_str("__");
    }
    out
}

impl LabelNamer {
    /// `LabelNamer.Build`.
    pub fn build(&self, label: &str) -> Result<String, String> {
        if label.is_empty() {
            return Err("label name is empty".into());
        }
        let only_underscores = |s: &str| s.chars().all(|c| c == '_');
        if self.utf8 {
            if only_underscores(label) {
                return Err(format!("label name {label:?} contains only underscores"));
            }
            return Ok(label.to_string());
        }
        let mut out = sanitize_label_name(label, self.preserve_multiple_underscores);
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert_str(0, "key_");
        } else if self.underscore_sanitization && out.starts_with('_') && !out.starts_with("__") {
            out.insert_str(0, "key");
        }
        if only_underscores(&out) {
            return Err(format!(
                "normalization for label name {label:?} resulted in invalid name {out:?}"
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameType::*;

    const ESC: Strategy = Strategy::UnderscoreEscapingWithSuffixes;

    fn n(name: &str, unit: &str, t: NameType) -> String {
        metric_name(name, unit, t, ESC).unwrap()
    }

    // The cases of otlptranslator's metric_namer_test.go (TestMetricNamer_Build and the
    // normalizeName tests inherited from collector-contrib).
    #[test]
    fn escaping_with_suffixes() {
        assert_eq!(
            n("system.filesystem.usage", "By", Gauge),
            "system_filesystem_usage_bytes"
        );
        assert_eq!(
            n("system.network.io", "By", MonotonicCounter),
            "system_network_io_bytes_total"
        );
        assert_eq!(
            n("http.server.duration", "s", Histogram),
            "http_server_duration_seconds"
        );
        assert_eq!(
            n("requests.count", "1", MonotonicCounter),
            "requests_count_total"
        );
        assert_eq!(n("memory.usage", "By", Gauge), "memory_usage_bytes");
        assert_eq!(n("cpu.utilization", "1", Gauge), "cpu_utilization_ratio");
        assert_eq!(n("disk.ratio", "1", Gauge), "disk_ratio");
        assert_eq!(
            n("requests", "{request}", MonotonicCounter),
            "requests_total"
        );
        assert_eq!(n("requests_total", "", MonotonicCounter), "requests_total");
        assert_eq!(n("total_requests", "", MonotonicCounter), "requests_total");
        assert_eq!(
            n("throughput", "By/s", Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(n("speed", "m/s", Gauge), "speed_meters_per_second");
        assert_eq!(n("rate", "1/s", Gauge), "rate_per_second");
        assert_eq!(n("foo", "{x}/s", Gauge), "foo_per_second");
        assert_eq!(n("foo", "x/{y}", Gauge), "foo_x");
        assert_eq!(n("foo", "By/mo", Gauge), "foo_bytes_per_month");
        assert_eq!(n("temp", "Cel", Gauge), "temp_celsius");
        assert_eq!(n("usage", "%", Gauge), "usage_percent");
        assert_eq!(n("duration_seconds", "s", Histogram), "duration_seconds");
        assert_eq!(n("x", "s", NonMonotonicCounter), "x_seconds");
        assert_eq!(n("x", "1", NonMonotonicCounter), "x");
        assert_eq!(n("2xx.responses", "", Gauge), "_2xx_responses");
        assert_eq!(n("foo__bar", "", Gauge), "foo_bar");
        assert_eq!(n("foo:bar", "", Gauge), "foo:bar");
        assert!(metric_name("очередь.длина", "", Gauge, ESC).is_err());
        assert_eq!(n("unit.odd", "a b", Gauge), "unit_odd_a_b");
        assert_eq!(n("x", "_s_", Gauge), "x_s_");
        assert!(metric_name("...", "", Gauge, ESC).is_err());
        assert!(metric_name("", "", Gauge, ESC).is_err());
    }

    #[test]
    fn escaping_without_suffixes() {
        let s = Strategy::UnderscoreEscapingWithoutSuffixes;
        assert_eq!(
            metric_name("http.server.duration", "s", Histogram, s).unwrap(),
            "http_server_duration"
        );
        assert_eq!(
            metric_name("a..b__c", "", MonotonicCounter, s).unwrap(),
            "a_b__c"
        );
        assert_eq!(metric_name("1a", "", Gauge, s).unwrap(), "_1a");
        assert_eq!(metric_name("___", "", Gauge, s).unwrap(), "___");
        assert_eq!(
            metric_name("___", "", Gauge, ESC).unwrap_err(),
            "normalization for metric \"___\" resulted in empty name"
        );
    }

    #[test]
    fn utf8_with_suffixes() {
        let s = Strategy::NoUTF8EscapingWithSuffixes;
        let u = |name, unit, t| metric_name(name, unit, t, s).unwrap();
        assert_eq!(
            u("http.server.duration", "s", Histogram),
            "http.server.duration_seconds"
        );
        assert_eq!(
            u("requests.count", "1", MonotonicCounter),
            "requests.count_total"
        );
        assert_eq!(u("requests.total", "", MonotonicCounter), "requests_total");
        assert_eq!(u("cpu.utilization", "1", Gauge), "cpu.utilization_ratio");
        assert_eq!(
            u("io", "By/s", MonotonicCounter),
            "io_bytes_per_second_total"
        );
        assert_eq!(u("io_per_second", "By/s", Gauge), "io_bytes_per_second");
        assert_eq!(u("x_seconds", "s", Gauge), "x_seconds");
        let none = Strategy::NoTranslation;
        assert_eq!(
            metric_name("a.b", "s", MonotonicCounter, none).unwrap(),
            "a.b"
        );
    }

    #[test]
    fn units() {
        assert_eq!(unit_name("By/s", false), "bytes_per_second");
        assert_eq!(unit_name("s", false), "seconds");
        assert_eq!(unit_name("1", false), "");
        assert_eq!(unit_name("{request}", false), "");
        assert_eq!(unit_name("{req}/s", false), "per_second");
    }

    // label_namer_test.go, with Prometheus' defaults (underscore sanitization and multiple
    // underscores preserved), and the collapsing variant.
    #[test]
    fn labels() {
        let l = LabelNamer::default();
        assert_eq!(l.build("http.method").unwrap(), "http_method");
        assert_eq!(l.build("label:with:colons").unwrap(), "label_with_colons");
        assert_eq!(l.build("123invalid").unwrap(), "key_123invalid");
        assert_eq!(l.build("_private").unwrap(), "key_private");
        assert_eq!(l.build("__reserved__").unwrap(), "__reserved__");
        assert_eq!(l.build("a..b").unwrap(), "a__b");
        assert_eq!(
            l.build("service.instance.id").unwrap(),
            "service_instance_id"
        );
        assert_eq!(l.build("ünicode").unwrap(), "key_nicode");
        assert!(l.build("").is_err());
        assert!(l.build("...").is_err());
        let c = LabelNamer {
            underscore_sanitization: false,
            preserve_multiple_underscores: false,
            ..l
        };
        assert_eq!(c.build("a..b").unwrap(), "a_b");
        assert_eq!(c.build("_private").unwrap(), "_private");
        assert_eq!(c.build("__a..b__").unwrap(), "__a_b__");
        assert_eq!(c.build("1x").unwrap(), "key_1x");
        let u = LabelNamer { utf8: true, ..l };
        assert_eq!(u.build("http.method").unwrap(), "http.method");
        assert!(u.build("__").is_err());
    }
}

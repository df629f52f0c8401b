//! The `--push.ttl-rules` file (also `--push.rules`): TTL rules and accumulation rules, each
//! kind looked up first-match-wins on its own.

/// One entry of the rules file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    #[serde(rename = "match")]
    selector: String,
    ttl: Option<String>,
    accumulate: Option<bool>,
    gauges: Option<String>,
}

pub type Rules = (
    Vec<store::ttl::TtlRule>,
    Vec<store::accumulate::AccumulateRule>,
);

/// The rules file: a YAML list of `{match, ttl, accumulate, gauges}` (or the same list under
/// a `rules:` key). Entries with a `ttl` are TTL rules; entries with `accumulate` or `gauges`
/// are accumulation rules; each kind is looked up first-match-wins on its own.
pub fn parse_ttl_rules(text: &str) -> Result<Rules, String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Doc {
        List(Vec<RuleEntry>),
        Keyed { rules: Vec<RuleEntry> },
    }
    let doc: Option<Doc> = serde_norway::from_str(text).map_err(|e| {
        format!(
            "{e} (want a list of entries like `- match: '{{job=~\"backup-.*\"}}'` and `ttl: 25h`)"
        )
    })?;
    let entries = match doc {
        None => Vec::new(),
        Some(Doc::List(l)) | Some(Doc::Keyed { rules: l }) => l,
    };
    let mut ttls = Vec::new();
    let mut acc = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let n = i + 1;
        if e.ttl.is_none() && e.accumulate.is_none() && e.gauges.is_none() {
            return Err(format!(
                "rule {n}: needs at least one of `ttl`, `accumulate`, `gauges`"
            ));
        }
        if let Some(ttl) = &e.ttl {
            let mut r = store::ttl::rules_from_entries(&[(e.selector.clone(), ttl.clone())])
                .map_err(|e| e.replacen("rule 1:", &format!("rule {n}:"), 1))?;
            ttls.append(&mut r);
        }
        if e.accumulate.is_some() || e.gauges.is_some() {
            let selector = store::matcher::Selector::parse(&e.selector)
                .map_err(|err| format!("rule {n}: {err}"))?;
            let gauges = match &e.gauges {
                Some(g) => store::GaugeMode::parse(g).map_err(|err| format!("rule {n}: {err}"))?,
                None => store::GaugeMode::Last,
            };
            acc.push(store::accumulate::AccumulateRule {
                selector,
                accumulate: e.accumulate.unwrap_or(false),
                gauges,
            });
        }
    }
    Ok((ttls, acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rules_file_formats_and_errors() {
        let text = "- match: '{job=~\"backup-.*\"}'\n  ttl: 25h\n- match: '{}'\n  ttl: 1h\n";
        let (r, acc) = parse_ttl_rules(text).unwrap();
        assert_eq!(r.len(), 2);
        assert!(acc.is_empty());
        assert_eq!(r[0].ttl, Duration::from_secs(25 * 3600));
        let keyed = "rules:\n  - match: '{env=\"dev\"}'\n    ttl: 2d\n";
        assert_eq!(parse_ttl_rules(keyed).unwrap().0.len(), 1);
        assert!(parse_ttl_rules("").unwrap().0.is_empty());
        assert!(parse_ttl_rules("- match: '{job='\n  ttl: 1h\n")
            .unwrap_err()
            .contains("rule 1"));
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: 1h\n  extra: 1\n").is_err());
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: soon\n")
            .unwrap_err()
            .contains("invalid duration"));
    }

    #[test]
    fn rules_file_accumulate_entries() {
        let text =
            "- match: '{job=~\"lambda-.*\"}'\n  accumulate: true\n  ttl: 25h\n  gauges: max\n\
                    - match: '{job=\"w\"}'\n  gauges: sum\n- match: '{}'\n  ttl: 1h\n";
        let (ttls, acc) = parse_ttl_rules(text).unwrap();
        assert_eq!(ttls.len(), 2);
        assert_eq!(acc.len(), 2);
        assert!(acc[0].accumulate);
        assert_eq!(acc[0].gauges, store::GaugeMode::Max);
        assert!(!acc[1].accumulate);
        assert_eq!(acc[1].gauges, store::GaugeMode::Sum);
        assert!(parse_ttl_rules("- match: '{}'\n  gauges: avg\n")
            .unwrap_err()
            .contains("rule 1: invalid gauges mode"));
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: 1h\n- match: '{}'\n")
            .unwrap_err()
            .contains("rule 2: needs"));
        assert!(
            parse_ttl_rules("- match: '{}'\n  ttl: 1h\n- match: '{}'\n  ttl: 1q\n")
                .unwrap_err()
                .starts_with("rule 2:")
        );
    }
}

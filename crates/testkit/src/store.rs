//! Store builders for tests: a [`StoreBuilder`] over `store::StoreConfig` (checked, in memory,
//! no quotas unless told), pushes built from text or protobuf bodies ([`push`]), and the
//! store's view rendered as scrape text ([`scrape_text`]) without the server.

use exposition::pb::{MetricFamily, MetricType};
use std::path::PathBuf;
use std::time::SystemTime;
use store::{GroupKey, PersistConfig, Push, Quotas, Snapshot, Store, StoreConfig, SyncMode};

/// Builds a [`Store`]: checked, in memory, no own families, no quotas, legacy label names
/// only, unless told otherwise.
pub struct StoreBuilder {
    checked: bool,
    own_families: Vec<(String, MetricType)>,
    persistence: Option<PersistConfig>,
    quotas: Quotas,
    utf8_label_names: bool,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            checked: true,
            own_families: Vec::new(),
            persistence: None,
            quotas: Quotas::default(),
            utf8_label_names: false,
        }
    }
}

impl StoreBuilder {
    pub fn new() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// `--push.disable-consistency-check` when false.
    pub fn checked(mut self, on: bool) -> StoreBuilder {
        self.checked = on;
        self
    }

    /// One of the gateway's own families, which pushed families must match in type.
    pub fn own_family(mut self, name: &str, t: MetricType) -> StoreBuilder {
        self.own_families.push((name.to_string(), t));
        self
    }

    /// All of the gateway's own families at once.
    pub fn own_families(mut self, families: Vec<(String, MetricType)>) -> StoreBuilder {
        self.own_families = families;
        self
    }

    /// A persistence file, fsynced before every acknowledgement.
    pub fn persist(self, path: impl Into<PathBuf>) -> StoreBuilder {
        self.persist_with(path, SyncMode::Always)
    }

    /// A persistence file with this sync mode.
    pub fn persist_with(mut self, path: impl Into<PathBuf>, sync: SyncMode) -> StoreBuilder {
        self.persistence = Some(PersistConfig {
            path: path.into(),
            sync,
        });
        self
    }

    pub fn quotas(mut self, q: Quotas) -> StoreBuilder {
        self.quotas = q;
        self
    }

    /// `--push.enable-utf8-names`.
    pub fn utf8_label_names(mut self, on: bool) -> StoreBuilder {
        self.utf8_label_names = on;
        self
    }

    /// The `StoreConfig` (persistence, check, quotas, own families).
    pub fn config(self) -> StoreConfig {
        StoreConfig {
            checked: self.checked,
            own_families: self.own_families,
            persistence: self.persistence,
            quotas: self.quotas,
        }
    }

    /// Opens the store (panics if its persistence file cannot be opened).
    pub fn build(self) -> Store {
        let utf8 = self.utf8_label_names;
        let s = Store::open(self.config()).expect("store opens");
        if utf8 {
            s.allow_utf8_label_names(true);
        }
        s
    }
}

/// A group key from label pairs.
pub fn key(labels: &[(&str, &str)]) -> GroupKey {
    GroupKey::new(labels.iter().map(|(n, v)| (*n, *v)))
}

/// A PUT (`replace`) or POST of these families at `time`, no TTL, not accumulating.
pub fn push(key: GroupKey, families: Vec<MetricFamily>, replace: bool, time: SystemTime) -> Push {
    Push {
        key,
        families,
        replace,
        time,
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    }
}

/// Parses a text-format body (panics on a parse error: bodies in tests are valid).
pub fn text(body: &str) -> Vec<MetricFamily> {
    exposition::text_parse::parse_text(body.as_bytes()).expect("test body parses")
}

/// The store's view as a scrape renders it in the text format, without the gateway's own
/// families: per family name (sorted) one `# HELP` (the first group's, in group order) and
/// `# TYPE` header, then each group's stored text.
pub fn scrape_text(snap: &Snapshot) -> String {
    let mut out = String::new();
    for (name, groups) in snap.families.iter() {
        let Some(first) = groups.values().next() else {
            continue;
        };
        exposition::text_encode::write_header(&mut out, name, first.help.as_deref(), first.mtype);
        let mut bytes = Vec::new();
        for e in groups.values() {
            e.write_text(&mut bytes);
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[tokio::test]
    async fn scrape_text_shows_the_first_groups_header_then_every_group() {
        let s = StoreBuilder::new().build();
        let t = UNIX_EPOCH + Duration::from_secs(5);
        for (job, body) in [("b", "# HELP m two\nm 2\n"), ("a", "# HELP m one\nm 1\n")] {
            s.push(push(key(&[("job", job)]), text(body), true, t))
                .await
                .unwrap();
        }
        let got = scrape_text(&s.snapshot());
        let m = got.lines().take(4).collect::<Vec<_>>().join("\n");
        assert_eq!(
            m,
            "# HELP m one\n# TYPE m untyped\nm{instance=\"\",job=\"a\"} 1\nm{instance=\"\",job=\"b\"} 2"
        );
        assert!(
            got.contains("push_time_seconds{instance=\"\",job=\"a\"} 5\n"),
            "{got}"
        );
    }
}

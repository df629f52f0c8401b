//! Shared by the store and server benches: fills a store with `groups` groups of pgwbench's
//! 20-series preload body.

use exposition::text_parse::parse_text;
use std::time::SystemTime;
use store::{GroupKey, Push, Store};

pub fn fill(store: &Store, groups: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for g in 0..groups {
            let families =
                parse_text(super::common::preload_push_body(g).as_bytes()).expect("parses");
            store
                .push(Push {
                    key: GroupKey::new([
                        ("job", format!("pgwb_pre_{}", g / 10)),
                        ("instance", format!("i{}", g % 10)),
                    ]),
                    families,
                    replace: true,
                    time: SystemTime::now(),
                    ttl_ms: 0,
                    accumulate: None,
                    idempotency_key: None,
                })
                .await
                .expect("push accepted");
        }
    });
}

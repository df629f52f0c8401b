//! Persistence files from elsewhere: the official gateway's file taken over at start-up, and
//! `--cluster.import-file` (a single-node file copied into the NATS bucket).

use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use store::wal::SyncMode;
use store::{PersistConfig, Store, StoreConfig};

/// Imports the official Pushgateway's persistence file at `path` (if it is one) into our
/// format, keeping the original as `PATH.official-<ts>`; refuses a file of neither format.
pub fn take_over_official_file(path: &std::path::Path, sync: SyncMode) -> Result<()> {
    let started = std::time::Instant::now();
    if let Some(t) = store::official::take_over(path, sync)? {
        tracing::info!(file = %path.display(), groups = t.groups, original_kept_at = %t.kept_at.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "imported the official Pushgateway's persistence file into this gateway's format; \
             the original is kept unchanged (to go back to the official gateway, move it back)");
    }
    Ok(())
}

/// `--cluster.import-file`: copies a single-node persistence file's groups (ours, or the
/// official gateway's) into the bucket.
pub async fn import_into_cluster(cluster: &cluster::Cluster, path: &str) -> Result<()> {
    use store::official::FileKind;
    let p = std::path::Path::new(path);
    match store::official::classify(p)? {
        FileKind::Official => {
            let groups = store::official::read_groups(p)?;
            let groups = groups.into_iter().map(Arc::new).collect();
            return import_groups_into_cluster(cluster, path, groups).await;
        }
        // Refused with the reason, the file untouched.
        FileKind::Unrecognized => drop(store::official::take_over(p, SyncMode::Always)?),
        FileKind::Ours | FileKind::Missing => {}
    }
    let old = Store::open(StoreConfig {
        checked: false,
        own_families: Vec::new(),
        persistence: Some(PersistConfig {
            path: path.into(),
            sync: SyncMode::Always,
        }),
        quotas: Default::default(),
    })
    .with_context(|| format!("--cluster.import-file {path:?}"))?;
    let groups: Vec<_> = old.snapshot().groups.values().cloned().collect();
    old.close()
        .context("closing the imported persistence file")?;
    import_groups_into_cluster(cluster, path, groups).await
}

async fn import_groups_into_cluster(
    cluster: &cluster::Cluster,
    path: &str,
    groups: Vec<Arc<store::Group>>,
) -> Result<()> {
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("--cluster.import-file: NATS not ready: {e}"))?;
    let (imported, present) = cluster
        .import(groups)
        .await
        .map_err(|e| anyhow::anyhow!("--cluster.import-file {path:?}: {e}"))?;
    tracing::info!(file = %path, imported, already_present = present,
        "imported single-node groups into the NATS bucket");
    Ok(())
}

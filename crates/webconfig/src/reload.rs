//! Re-reading the web config file (and the files it references) when they change.

use crate::{WebConfig, WebConfigError};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the background thread looks for changes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A [`WebConfig`] that follows its file: a background thread checks the config file and the
/// certificate, key and CA files it names every second (reading and hashing them: they are
/// small) and re-loads on a change. An invalid new version is logged and the last good
/// configuration stays in force. A reload that would switch TLS on or off is refused (the
/// listeners are already plain or TLS). Each [`WebConfig`] has its own bcrypt cache, so a reload
/// also empties the cache.
pub struct ReloadingWebConfig {
    path: PathBuf,
    current: ArcSwap<WebConfig>,
    state: Mutex<State>,
    stop: AtomicBool,
}

struct State {
    /// Fingerprint of the files of the configuration in force.
    loaded: [u8; 32],
    /// Fingerprint of the last version that failed to load (logged once).
    failed: Option<[u8; 32]>,
}

impl std::fmt::Debug for ReloadingWebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingWebConfig")
            .field("path", &self.path)
            .field("current", &self.current.load())
            .finish()
    }
}

/// Hash of the contents (or absence) of `files`.
fn fingerprint(files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in files {
        h.update((f.as_os_str().len() as u64).to_le_bytes());
        h.update(f.as_os_str().as_encoded_bytes());
        match std::fs::read(f) {
            Ok(data) => {
                h.update([1]);
                h.update((data.len() as u64).to_le_bytes());
                h.update(&data);
            }
            Err(e) => {
                h.update([0]);
                h.update(e.kind().to_string().as_bytes());
            }
        }
    }
    h.finalize().into()
}

impl ReloadingWebConfig {
    /// Loads `path` (an error here is a start-up error) and starts the watcher thread, which
    /// ends when the returned `Arc` is dropped or [`stop`](Self::stop) is called.
    pub fn start(path: impl Into<PathBuf>) -> Result<Arc<ReloadingWebConfig>, WebConfigError> {
        let this = Self::without_watcher(path)?;
        let weak = Arc::downgrade(&this);
        std::thread::Builder::new()
            .name("web-config-reload".into())
            .spawn(move || watch(weak))
            .map_err(|e| WebConfigError::Read {
                path: this.path.clone(),
                source: e,
            })?;
        Ok(this)
    }

    /// Loads `path` without a watcher thread; call [`reload_now`](Self::reload_now) to reload.
    pub fn without_watcher(
        path: impl Into<PathBuf>,
    ) -> Result<Arc<ReloadingWebConfig>, WebConfigError> {
        let path = path.into();
        let config = WebConfig::load(&path)?;
        let loaded = fingerprint(config.files());
        Ok(Arc::new(ReloadingWebConfig {
            path,
            current: ArcSwap::from_pointee(config),
            state: Mutex::new(State {
                loaded,
                failed: None,
            }),
            stop: AtomicBool::new(false),
        }))
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        self.current.load_full()
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the files now: `Ok(true)` if they changed and the new configuration is in force,
    /// `Ok(false)` if nothing changed, `Err` if they changed but the new version is invalid
    /// (the previous configuration stays in force).
    pub fn reload_now(&self) -> Result<bool, WebConfigError> {
        let mut state = self.state.lock();
        let old = self.current.load_full();
        if fingerprint(old.files()) == state.loaded {
            // Back to the version in force: a later failure is news again.
            state.failed = None;
            return Ok(false);
        }
        let new = WebConfig::load(&self.path)?;
        if new.tls().is_some() != old.tls().is_some() {
            return Err(WebConfigError::TlsToggled);
        }
        state.loaded = fingerprint(new.files());
        state.failed = None;
        self.current.store(Arc::new(new));
        Ok(true)
    }

    /// Stops the watcher thread (within a poll interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// One watcher step: reload and log the outcome (an error once per failing version).
    fn poll(&self) {
        match self.reload_now() {
            Ok(true) => tracing::info!(path = %self.path.display(), "web config reloaded"),
            Ok(false) => {}
            Err(e) => {
                // What failed: the current contents of the files in force.
                let fp = fingerprint(self.current.load().files());
                let mut state = self.state.lock();
                if state.failed != Some(fp) {
                    state.failed = Some(fp);
                    tracing::error!(
                        path = %self.path.display(),
                        error = %e,
                        "web config reload failed; keeping the previous configuration"
                    );
                }
            }
        }
    }
}

fn watch(weak: Weak<ReloadingWebConfig>) {
    loop {
        std::thread::sleep(POLL_INTERVAL);
        let Some(this) = weak.upgrade() else { return };
        if this.stop.load(Ordering::Relaxed) {
            return;
        }
        this.poll();
    }
}

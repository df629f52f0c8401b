//! Open connections and what to do when file descriptors run out.
//!
//! Every accepted connection is registered with the time it last finished a request and
//! whether one is in flight. When `accept` fails because the process is out of file
//! descriptors (or the open connections come close to the `RLIMIT_NOFILE` soft limit), the
//! oldest connections without a request in flight (idle keep-alive ones, and ones that never
//! sent a complete request head) are closed, so that a flood of idle or half-sent connections
//! cannot lock every client out. The "accept failed" log line is rate-limited.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

struct Entry {
    state: Arc<ConnState>,
    shed: Arc<Shed>,
}

/// What a connection's requests update without taking the registry's lock.
struct ConnState {
    /// Requests in flight.
    busy: AtomicUsize,
    /// When the connection was opened or last finished a request: nanoseconds since the
    /// registry's `epoch`.
    idle_since: AtomicU64,
}

/// The registry of open connections.
pub struct Conns {
    open: Mutex<HashMap<u64, Entry>>,
    /// The origin of the connections' `idle_since` times.
    epoch: Instant,
    next_id: AtomicU64,
    /// Open connections above which idle ones are shed before accepting more.
    high_water: usize,
    log: Mutex<LogLimiter>,
}

/// One registered connection; dropping it unregisters it.
pub struct ConnHandle {
    id: u64,
    conns: Arc<Conns>,
    state: Arc<ConnState>,
    /// Set when the connection is to be closed to free its descriptor.
    pub shed: Arc<Shed>,
}

/// The request to close one connection: set once, and seen by the connection's task (the one
/// task that waits for it) without taking a lock, as it is polled with every wake-up of the
/// connection.
#[derive(Default)]
pub struct Shed {
    set: AtomicBool,
    waker: atomic_waker::AtomicWaker,
}

impl Shed {
    /// Asks the connection to close; kept, so a later [`Shed::notified`] completes at once.
    pub fn notify(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Completes once the connection is to be closed. One task at a time waits on it.
    pub fn notified(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.set.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.set.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// Marks a request in flight on its connection until dropped (atomics only: no lock is
/// taken per request).
pub struct InFlight {
    epoch: Instant,
    state: Arc<ConnState>,
}

/// The soft `RLIMIT_NOFILE` of this process (`None` if unlimited or unknown).
pub fn fd_soft_limit() -> Option<usize> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0
        || rl.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    usize::try_from(rl.rlim_cur).ok()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (as Go's runtime does at start-up);
/// returns `(old, new)` soft limits when it changed.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 || rl.rlim_cur >= rl.rlim_max {
            return None;
        }
        let old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
            return None;
        }
        Some((old, rl.rlim_cur))
    }
}

impl Conns {
    /// A registry for a process whose descriptor limit is `fd_limit` (`None`: unlimited).
    pub fn new(fd_limit: Option<usize>) -> Arc<Conns> {
        // Keep some descriptors for files, NATS and the listeners.
        let high_water = fd_limit.map_or(usize::MAX, |l| l.saturating_sub((l / 32).max(16)));
        Arc::new(Conns {
            open: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            high_water,
            log: Mutex::new(LogLimiter::default()),
        })
    }

    pub fn register(self: &Arc<Self>) -> ConnHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(nanos_since(self.epoch, Instant::now())),
        });
        let shed = Arc::new(Shed::default());
        self.open.lock().insert(
            id,
            Entry {
                state: state.clone(),
                shed: shed.clone(),
            },
        );
        ConnHandle {
            id,
            conns: self.clone(),
            state,
            shed,
        }
    }

    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Before accepting: sheds idle connections if the open ones are close to the limit.
    pub fn make_room(&self) {
        let open = self.len();
        if open >= self.high_water {
            self.shed_idle(open + 1 - self.high_water);
        }
    }

    /// Closes up to `n` of the connections without a request in flight, oldest idle first;
    /// returns how many were asked to close.
    pub fn shed_idle(&self, n: usize) -> usize {
        let open = self.open.lock();
        let mut idle: Vec<(u64, u64)> = open
            .iter()
            .filter(|(_, e)| e.state.busy.load(Ordering::Acquire) == 0)
            .map(|(id, e)| (e.state.idle_since.load(Ordering::Relaxed), *id))
            .collect();
        let n = n.min(idle.len());
        if n == 0 {
            return 0;
        }
        idle.select_nth_unstable(n - 1);
        for (_, id) in &idle[..n] {
            if let Some(e) = open.get(id) {
                // Kept: the connection's task sees it even if not waiting yet.
                e.shed.notify();
            }
        }
        n
    }

    /// Reacts to a failed `accept`: on running out of descriptors, sheds idle connections
    /// (returns true if any were). Logs at most once per 10 s, with the count suppressed.
    pub fn accept_failed(&self, e: &std::io::Error) -> bool {
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        let shed = if out_of_fds {
            self.shed_idle((self.len() / 64).max(4))
        } else {
            0
        };
        if let Some(suppressed) = self.log.lock().allow(Instant::now()) {
            tracing::warn!(err = %e, open = self.len(), shed, suppressed,
                "accept failed (further failures are logged at most every 10s)");
        }
        shed > 0
    }
}

impl ConnHandle {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn request(&self) -> InFlight {
        self.state.busy.fetch_add(1, Ordering::AcqRel);
        InFlight {
            epoch: self.conns.epoch,
            state: self.state.clone(),
        }
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        self.conns.open.lock().remove(&self.id);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Idle from now on: the time first, so a shed that sees the connection idle also
        // sees when it became so.
        let now = nanos_since(self.epoch, Instant::now());
        self.state.idle_since.store(now, Ordering::Relaxed);
        self.state.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `t` as nanoseconds since `epoch` (saturating; 584 years fit).
fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// At most one log line per period; counts the ones left out.
#[derive(Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

const LOG_PERIOD: Duration = Duration::from_secs(10);

impl LogLimiter {
    /// `Some(suppressed since the last line)` if a line may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < LOG_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shed` was signalled to close; `kept` was not.
    fn assert_shed_not(shed: &ConnHandle, kept: &ConnHandle, why_shed: &str, why_kept: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), shed.shed.notified())
                .await
                .expect(why_shed);
            assert!(
                tokio::time::timeout(Duration::from_millis(50), kept.shed.notified())
                    .await
                    .is_err(),
                "{why_kept}"
            );
        });
    }

    #[test]
    fn sheds_oldest_idle_connections_only() {
        let c = Conns::new(Some(1000));
        let a = c.register();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.register();
        std::thread::sleep(Duration::from_millis(2));
        let busy = c.register();
        let _req = busy.request();
        assert_eq!(c.shed_idle(1), 1);
        // `a` (oldest idle) got the permit: its notified() completes at once.
        assert_shed_not(
            &a,
            &b,
            "oldest idle connection is shed",
            "only one was shed",
        );
        assert_eq!(c.shed_idle(10), 2, "the busy connection is never shed");
        drop((a, b));
        assert_eq!(c.len(), 1);
    }

    /// A finished request makes its connection the most recently idle one (its idle time is
    /// kept in the connection's atomics, not under the registry's lock).
    #[test]
    fn finished_request_refreshes_idle_time() {
        let c = Conns::new(Some(1000));
        let a = c.register();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.register();
        std::thread::sleep(Duration::from_millis(2));
        drop(a.request());
        assert_eq!(c.shed_idle(1), 1);
        assert_shed_not(
            &b,
            &a,
            "b, idle longer than a since a's request, is shed first",
            "a finished a request after b opened",
        );
    }

    /// A connection waiting to be shed is woken when it is (the signal takes no lock).
    #[test]
    fn shed_wakes_the_waiting_connection() {
        let c = Conns::new(Some(1000));
        let a = c.register();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let shed = a.shed.clone();
        let waiter = rt.spawn(async move { shed.notified().await });
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        assert_eq!(c.shed_idle(1), 1);
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken when shed")
                .unwrap();
        });
    }

    #[test]
    fn log_line_is_rate_limited_with_a_count() {
        let mut l = LogLimiter::default();
        let t = Instant::now();
        assert_eq!(l.allow(t), Some(0));
        for i in 1..100 {
            assert_eq!(l.allow(t + Duration::from_millis(i)), None);
        }
        assert_eq!(l.allow(t + LOG_PERIOD), Some(99));
    }
}

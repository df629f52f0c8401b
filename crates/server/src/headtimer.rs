//! The `--web.read-header-timeout` timer hyper runs for every request head, made cheap.
//!
//! hyper asks its timer for a new sleep each time it starts reading a request head (keep-alive
//! idle time included) and drops it once the head is parsed. With tokio's timer that is a
//! timer-wheel registration and a cancellation, each under the wheel's lock, for every request.
//! [`HeadTimer`] instead keeps one tokio sleep per connection that is re-armed lazily: a new
//! head's deadline only moves it when that deadline is earlier; when it fires before the
//! current head's deadline (a later head of the same connection), it is re-armed to that
//! deadline. A head that takes longer than the timeout still ends its connection at its own
//! deadline; what changes is at most one early wake-up per timeout period.

use hyper::rt::{Sleep, Timer};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One connection's timer for hyper (`http1::Builder::timer`).
#[derive(Clone, Default)]
pub struct HeadTimer {
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl HeadTimer {
    pub fn new() -> HeadTimer {
        HeadTimer::default()
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    /// tokio's clock (the same as `Instant::now()` unless a test pauses it).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeadSleep {
            deadline: deadline.into(),
            shared: self.shared.clone(),
        })
    }
}

/// One head's deadline on the connection's shared sleep.
struct HeadSleep {
    deadline: tokio::time::Instant,
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Sleep for HeadSleep {}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let mut shared = self.shared.lock();
        let sleep = shared.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // The shared sleep must not fire after this deadline.
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        loop {
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // It fired at or after this deadline: this head is late.
                Poll::Ready(()) if sleep.deadline() >= deadline => return Poll::Ready(()),
                // It fired for an earlier head: wait on for this one.
                Poll::Ready(()) => sleep.as_mut().reset(deadline),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls a sleep once (in the test's task).
    async fn ready(s: &mut Pin<Box<dyn Sleep>>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx).is_ready())).await
    }

    /// A head that does not arrive in time ends at its own deadline, whatever earlier heads
    /// of the connection armed the shared sleep with.
    #[tokio::test(start_paused = true)]
    async fn late_head_times_out_at_its_own_deadline() {
        let t = HeadTimer::new();
        let timeout = Duration::from_secs(120);
        // A first head arms the shared sleep, and arrives.
        let mut first = t.sleep_until(t.now() + timeout);
        assert!(!ready(&mut first).await);
        drop(first);
        // The next head starts 30 s later and never arrives.
        tokio::time::advance(Duration::from_secs(30)).await;
        let mut second = t.sleep_until(t.now() + timeout);
        assert!(!ready(&mut second).await);
        // The first head's deadline passes: not this one's.
        tokio::time::advance(Duration::from_secs(95)).await;
        assert!(
            !ready(&mut second).await,
            "fired at an earlier head's deadline"
        );
        tokio::time::advance(Duration::from_secs(24)).await;
        assert!(!ready(&mut second).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(ready(&mut second).await, "late head not timed out");
    }

    /// The task is woken when its head's deadline passes (hyper relies on the wake-up).
    #[tokio::test(start_paused = true)]
    async fn waits_until_the_deadline_and_wakes() {
        let t = HeadTimer::new();
        let start = tokio::time::Instant::now();
        drop(t.sleep_until(t.now() + Duration::from_secs(100)));
        t.sleep_until(t.now() + Duration::from_secs(5)).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
        // A later head on the same connection waits its own whole timeout.
        let start = tokio::time::Instant::now();
        t.sleep(Duration::from_secs(7)).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
    }
}

//! The completion ticket of one append, and the batch signal behind it.
//!
//! Invariant: every [`Signal`] is completed exactly once (the first `complete` wins, later calls
//! are ignored), and every signal handed to a [`Ticket`] is eventually completed: the writer
//! takes the current signal together with the pending ops it covers and completes it through a
//! [`Completer`], whose `Drop` fails the batch with [`WalError::Closed`] if the writer thread
//! dies or returns before completing it; appends after the writer has exited are refused
//! before they get a signal (`WriterExit` sets `shutdown` and completes the last one). So a
//! ticket never waits forever, and a ticket completes `Ok` only once the write (and, in
//! [`SyncMode::Always`](super::SyncMode::Always), the fsync) of its ops and of every op
//! appended before them has succeeded.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use super::WalError;

/// Completion of one group-commit batch, shared by all tickets of the batch.
pub(super) struct Signal {
    /// The result once completed, and the async waiters to wake then.
    state: Mutex<SignalState>,
    /// Wakes blocking waiters ([`Ticket::wait_blocking`]).
    cond: Condvar,
}

#[derive(Default)]
struct SignalState {
    /// `Some` once completed; never changes after that.
    result: Option<Result<(), WalError>>,
    /// Async waiters registered before completion.
    wakers: Vec<Waker>,
}

impl Signal {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Signal {
            state: Mutex::new(SignalState::default()),
            cond: Condvar::new(),
        })
    }

    pub(super) fn complete(&self, result: Result<(), WalError>) {
        let wakers = {
            let mut st = self.state.lock();
            if st.result.is_some() {
                return;
            }
            st.result = Some(result);
            std::mem::take(&mut st.wakers)
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    fn wait_blocking(&self) -> Result<(), WalError> {
        let mut st = self.state.lock();
        loop {
            if let Some(r) = &st.result {
                return r.clone();
            }
            self.cond.wait(&mut st);
        }
    }
}

/// Completes a batch signal; if dropped uncompleted (writer thread died), the
/// batch fails with [`WalError::Closed`] instead of hanging forever.
pub(super) struct Completer {
    /// The batch's signal, taken when completed.
    pub(super) signal: Option<Arc<Signal>>,
    /// The log file, for the [`WalError::Closed`] of an uncompleted batch.
    pub(super) path: PathBuf,
}

impl Completer {
    pub(super) fn complete(mut self, result: Result<(), WalError>) {
        if let Some(s) = self.signal.take() {
            s.complete(result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(s) = self.signal.take() {
            s.complete(Err(WalError::Closed {
                path: self.path.clone(),
            }));
        }
    }
}

/// Completes when the ops of one [`Wal::append`] call are durable (or, in
/// [`SyncMode::Interval`], immediately).
#[must_use = "a mutation is only durable once its ticket has completed"]
pub struct Ticket(pub(super) TicketState);

pub(super) enum TicketState {
    /// Decided at append time: refused, or [`SyncMode::Interval`](super::SyncMode::Interval).
    Ready(Result<(), WalError>),
    /// Waits for the group-commit batch the append went into.
    Pending(Arc<Signal>),
}

impl Ticket {
    pub(super) fn ready(result: Result<(), WalError>) -> Self {
        Ticket(TicketState::Ready(result))
    }

    /// Wait asynchronously. Never blocks the executor thread.
    pub async fn wait(self) -> Result<(), WalError> {
        match self.0 {
            TicketState::Ready(r) => r,
            TicketState::Pending(signal) => WaitFuture { signal, slot: None }.await,
        }
    }

    /// Wait by blocking the current thread (usable inside and outside a runtime,
    /// but blocks an executor thread if used in async code).
    pub fn wait_blocking(self) -> Result<(), WalError> {
        match self.0 {
            TicketState::Ready(r) => r,
            TicketState::Pending(signal) => signal.wait_blocking(),
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TicketState::Ready(r) => f.debug_tuple("Ticket::Ready").field(r).finish(),
            TicketState::Pending(_) => f.write_str("Ticket::Pending"),
        }
    }
}

struct WaitFuture {
    /// The batch signal the ticket waits for.
    signal: Arc<Signal>,
    /// Index of our waker in the signal's waker list once registered.
    slot: Option<usize>,
}

impl Future for WaitFuture {
    type Output = Result<(), WalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut st = this.signal.state.lock();
        if let Some(r) = &st.result {
            return Poll::Ready(r.clone());
        }
        match this.slot {
            Some(i) => {
                if !st.wakers[i].will_wake(cx.waker()) {
                    st.wakers[i] = cx.waker().clone();
                }
            }
            None => {
                this.slot = Some(st.wakers.len());
                st.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

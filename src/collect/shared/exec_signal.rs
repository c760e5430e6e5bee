//! The exec signal: "an exec just happened somewhere in the task", raised by procscan's inotify
//! triggers and by the tracer after each exec, and waited on by the sockets collector, which
//! then polls the socket tables soon after the exec (a connection made right after an exec is
//! seen while it is open, with its process).
//!
//! Raising is an atomic increment, and a lock and a wake-up only while some thread waits: the
//! tracer raises it on every exec, and the sockets collector, already polling every few
//! milliseconds after the previous one, does not wait on it then.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A counter of trigger bursts that other threads can wait on. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ExecSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    count: AtomicU64,
    /// Threads in [`ExecSignal::wait_past`].
    waiters: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl ExecSignal {
    /// A new signal, never raised.
    pub(crate) fn new() -> ExecSignal {
        ExecSignal::default()
    }

    /// Counts one more trigger burst and wakes every waiter.
    pub(crate) fn raise(&self) {
        let inner = &*self.inner;
        inner.count.fetch_add(1, Ordering::SeqCst);
        // Either a waiter registered before this load (and is woken, under the lock it holds
        // from its check of the count to its sleep), or it registered after the increment
        // above and sees the new count before it sleeps.
        if inner.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = inner.lock.lock().unwrap_or_else(PoisonError::into_inner);
            inner.wake.notify_all();
        }
    }

    /// How many times the signal was raised.
    pub(crate) fn count(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Waits until the count differs from `seen` or `timeout` has passed, and returns the
    /// count then (equal to `seen` on a timeout).
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let inner = &*self.inner;
        let current = inner.count.load(Ordering::SeqCst);
        if current != seen {
            return current;
        }
        let deadline = Instant::now() + timeout;
        inner.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = inner.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut current = inner.count.load(Ordering::SeqCst);
        while current == seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            guard = inner
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            current = inner.count.load(Ordering::SeqCst);
        }
        drop(guard);
        inner.waiters.fetch_sub(1, Ordering::SeqCst);
        current
    }
}

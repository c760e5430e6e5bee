//! The exec signal: "an exec just happened somewhere in the task", raised by procscan's inotify
//! triggers and by the tracer after each exec, and waited on by the sockets collector, which
//! then polls the socket tables soon after the exec (a connection made right after an exec is
//! seen while it is open, with its process).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A counter of trigger bursts that other threads can wait on. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct ExecSignal {
    inner: Arc<(Mutex<u64>, Condvar)>,
}

impl ExecSignal {
    /// A new signal, never raised.
    pub(crate) fn new() -> ExecSignal {
        ExecSignal::default()
    }

    /// Counts one more trigger burst and wakes every waiter.
    pub(crate) fn raise(&self) {
        let (count, wake) = &*self.inner;
        *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        wake.notify_all();
    }

    /// How many times the signal was raised.
    pub(crate) fn count(&self) -> u64 {
        *self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the count differs from `seen` or `timeout` has passed, and returns the
    /// count then (equal to `seen` on a timeout).
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let (count, wake) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut current = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *current == seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            current = wake
                .wait_timeout(current, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *current
    }
}

//! The link between procscan and the tracer (trace mode): seize requests one way, "which pids
//! does the tracer hold" the other, so that procscan hands the tracer every new process and
//! drops its own `execve`/`procexit` events for the pids the tracer reports.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an exited pid stays known as "handled by the tracer", so that procscan, which may
/// notice the exit up to a scan interval later, does not report it again.
pub(crate) const EXITED_GRACE: Duration = Duration::from_secs(10);

/// What the tracer says about one pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// Traced now.
    Live,
    /// Was traced, exited at this time (its `procexit` was reported by the tracer).
    Exited(Instant),
    /// Could not be seized (traced by someone else, or not permitted): procscan covers it.
    Refused,
}

#[derive(Debug)]
struct LinkInner {
    /// The monitor's pid as seen in the proc root (the `TracerPid` of its tracees).
    tracer_pid: AtomicI32,
    held: Mutex<HashMap<i32, Held>>,
    requests: Mutex<Vec<(i32, ScannedImage)>>,
    wake: OwnedFd,
}

/// The image procscan saw a process run when it asked for it to be seized: if the process
/// runs another one once seized, it exec'd in between, unseen by the tracer and too late for
/// procscan's report, and the tracer reports that exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScannedImage {
    /// `comm`.
    pub name: String,
    /// `(device, inode)` of the executable, when known.
    pub(crate) exe_id: Option<(u64, u64)>,
}

impl ScannedImage {
    /// Whether a process read as `name` running `exe_id` runs another image than this one.
    pub(crate) fn differs(&self, name: &str, exe_id: Option<(u64, u64)>) -> bool {
        self.name != name || (self.exe_id.is_some() && exe_id.is_some() && self.exe_id != exe_id)
    }
}

/// The link between procscan and the tracer: seize requests one way, "which pids does the
/// tracer hold" the other. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TracerLink {
    inner: Arc<LinkInner>,
}

impl TracerLink {
    /// A new link (creates the wake-up `eventfd`).
    pub(crate) fn new() -> io::Result<TracerLink> {
        // SAFETY: `eventfd` takes no pointers; a non-negative return is a new descriptor that
        // nothing else owns, so `OwnedFd` may take it.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is a fresh, valid descriptor owned by nobody else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TracerLink {
            inner: Arc::new(LinkInner {
                tracer_pid: AtomicI32::new(0),
                held: Mutex::new(HashMap::new()),
                requests: Mutex::new(Vec::new()),
                wake,
            }),
        })
    }

    /// The descriptor [`TracerLink::request_seize`] makes readable.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.inner.wake.as_fd()
    }

    /// Records the tracing thread's id as the proc root shows it (the `TracerPid` of its
    /// tracees).
    pub(crate) fn set_tracer_pid(&self, pid: i32) {
        self.inner.tracer_pid.store(pid, Ordering::Relaxed);
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Held>> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the tracer to seize `pid` (all of its threads), unless it already holds it or
    /// could not seize it before.
    pub(crate) fn request_seize(&self, pid: i32, seen: ScannedImage) {
        if self.held().contains_key(&pid) {
            return;
        }
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((pid, seen));
        let one: u64 = 1;
        // A full counter (impossible in practice) or any other error only delays the seize to
        // the tracer's next periodic wake-up.
        let _ = nix::unistd::write(self.inner.wake.as_fd(), &one.to_ne_bytes());
    }

    /// Whether the tracer reports exec and exit events of `pid` (it holds it now, or held it
    /// until it exited moments ago), so that procscan must not report them too.
    pub(crate) fn covers(&self, pid: i32) -> bool {
        matches!(
            self.held().get(&pid),
            Some(Held::Live) | Some(Held::Exited(_))
        )
    }

    /// Procscan saw `pid` go: the tracer's record of it is no longer needed (unless it is
    /// traced now, which means the pid was already reused by a traced process).
    pub(crate) fn forget(&self, pid: i32) {
        let mut held = self.held();
        if held.get(&pid).is_some_and(|h| *h != Held::Live) {
            held.remove(&pid);
        }
    }

    /// Whether the tracer holds `pid` right now.
    pub(crate) fn holds(&self, pid: i32) -> bool {
        self.held().get(&pid) == Some(&Held::Live)
    }

    /// Whether a process with this `TracerPid` is traced by the monitor: a child of a held
    /// process that the tracer has not registered yet (its fork event is still queued).
    pub(crate) fn is_tracer(&self, tracer_pid: i32) -> bool {
        tracer_pid != 0 && tracer_pid == self.inner.tracer_pid.load(Ordering::Relaxed)
    }

    /// Records what the tracer says about `pid` (the tracer thread does this).
    pub(crate) fn set(&self, pid: i32, state: Held) {
        self.held().insert(pid, state);
    }

    /// Withdraws a "held" mark made for a thread taken for a process.
    pub(crate) fn unset(&self, pid: i32) {
        let mut held = self.held();
        if held.get(&pid) == Some(&Held::Live) {
            held.remove(&pid);
        }
    }

    /// The seize requests made since the last call (clears the wake-up descriptor).
    pub(crate) fn take_requests(&self) -> Vec<(i32, ScannedImage)> {
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(self.inner.wake.as_fd(), &mut buf);
        std::mem::take(
            &mut *self
                .inner
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Forgets pids that exited longer than [`EXITED_GRACE`] ago.
    pub(crate) fn purge(&self, now: Instant) {
        self.held().retain(|_, h| match h {
            Held::Exited(at) => now.saturating_duration_since(*at) < EXITED_GRACE,
            _ => true,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_seized_process_runs_another_image_when_its_name_or_executable_changed() {
        let seen = ScannedImage {
            name: "nsenter".into(),
            exe_id: Some((8, 100)),
        };
        assert!(!seen.differs("nsenter", Some((8, 100))));
        assert!(
            !seen.differs("nsenter", None),
            "an unreadable exe is no evidence"
        );
        assert!(seen.differs("sleeper", Some((8, 100))));
        assert!(
            seen.differs("nsenter", Some((8, 101))),
            "same name, other file"
        );
        let unknown = ScannedImage {
            name: "sh".into(),
            exe_id: None,
        };
        assert!(!unknown.differs("sh", Some((8, 5))));
    }

    #[test]
    fn link_tracks_requests_and_coverage() {
        let link = TracerLink::new().unwrap();
        link.request_seize(42, ScannedImage::default());
        assert_eq!(link.take_requests(), vec![(42, ScannedImage::default())]);
        assert!(!link.covers(42));
        link.set(42, Held::Live);
        link.request_seize(42, ScannedImage::default());
        assert!(
            link.take_requests().is_empty(),
            "held pids are not requested"
        );
        assert!(link.covers(42));
        link.set(42, Held::Exited(Instant::now()));
        assert!(link.covers(42), "a just-exited pid stays covered");
        link.forget(42);
        assert!(!link.covers(42));
        link.set(7, Held::Refused);
        assert!(!link.covers(7), "refused pids are procscan's");
    }
}

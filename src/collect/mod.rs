//! Collectors: turn observations of `/proc`, sockets and files into events.
//!
//! The `procscan` collector lives in [`procscan`]: it polls `/proc` (plus inotify triggers) and
//! maintains the shared [`table::ProcessTable`] and [`table::ContainerTable`] that the other
//! collectors use for attribution. [`proc`] reads one process, [`cgroup`] recognises
//! containers, [`users`] resolves names from a container's own `/etc/passwd`. The opt-in
//! [`tracer`] (`--mode trace`) sees every exec, fork and exit of the processes procscan hands
//! it, through event-only ptrace.

pub mod access;
pub mod cgroup;
pub mod fswatch;
pub mod own_sockets;
pub mod proc;
pub mod procscan;
mod sender;
pub mod sockets;
pub mod table;
pub mod tracer;
pub mod triggers;
pub mod users;
pub mod visibility;

use std::path::PathBuf;

pub use fswatch::{DriftRegistry, FsWatchConfig, FsWatcher, spawn_fswatch};
pub use procscan::{ProcScanConfig, ProcScanner, spawn_procscan, spawn_procscan_shared};
pub use sockets::{SocketTracker, SocketsConfig, refine_socket_fd, spawn_sockets};
pub use table::{ContainerTable, ProcKey, ProcessTable, SharedTables, Tables};
pub use tracer::{TracerConfig, TracerLink, block_sigchld, spawn_tracer, trace_possible};
pub use triggers::ExecSignal;

/// Errors starting a collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The proc root cannot be listed.
    #[error("cannot read the proc root {path}: {source}")]
    ProcRoot {
        /// The proc root.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No inotify instance could be created.
    #[error("cannot create an inotify instance for exec triggers: {source}")]
    Inotify {
        /// The underlying error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests_fixture;
#[cfg(test)]
mod tests_real;

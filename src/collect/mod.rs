//! Collectors: turn observations of `/proc`, sockets and files into events.
//!
//! - `procscan/` polls `/proc` (plus inotify triggers) and maintains the process and
//!   container tables (`shared/table.rs`) that the other collectors use for attribution;
//! - [`sockets`] diffs the task's socket tables into connections, listeners and raw sockets;
//! - [`fswatch`] places inotify watches in every container root;
//! - `tracer/` (opt-in, `--mode trace`) sees every exec, fork and exit of the processes
//!   procscan hands it, through event-only ptrace;
//! - `imagescan.rs` reads each running image once in the background (packages, vulnerable
//!   packages in use, credentials), at the lowest priority and a bounded rate.
//!
//! What they share is in `shared/` (the tables, the tracer's exec-image overlay, the drift
//! registry, the exec signal, the procscan-tracer link, the monitor's own sockets, container
//! user databases); [`proc`] reads one process (the files are parsed by [`crate::procfs`]),
//! [`access`] reads other users' private `/proc` entries with the capabilities Fargate gives,
//! [`visibility`] reports what the kernel refused, and every collector hands its events to
//! the engine through one non-blocking, drop-counting sender (`sender.rs`).

pub mod access;
pub mod fswatch;
pub(crate) mod imagescan;
pub mod proc;
pub(crate) mod procscan;
mod sender;
pub(crate) mod shared;
pub mod sockets;
pub(crate) mod tracer;
pub mod visibility;

use std::path::PathBuf;

pub(crate) use fswatch::spawn_fswatch;
pub use fswatch::{FsWatchConfig, FsWatcher};
pub(crate) use procscan::spawn_procscan_shared;
pub use procscan::{ProcScanConfig, ProcScanner, spawn_procscan};
pub use shared::{DriftRegistry, Tables};
pub(crate) use shared::{ExecSignal, SharedTables, TracerLink};
pub(crate) use sockets::spawn_sockets;
pub use sockets::{SocketTracker, SocketsConfig};
pub(crate) use tracer::{TracerConfig, block_sigchld, spawn_tracer, trace_possible};

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

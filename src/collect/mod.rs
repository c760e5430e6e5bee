//! Collectors: turn observations of `/proc`, sockets and files into events.
//!
//! The `procscan` collector lives in [`procscan`]: it polls `/proc` (plus inotify triggers) and
//! maintains the shared [`table::ProcessTable`] and [`table::ContainerTable`] that the other
//! collectors use for attribution. [`proc`] reads one process, [`cgroup`] recognises
//! containers, [`users`] resolves names from a container's own `/etc/passwd`.

pub mod cgroup;
pub mod proc;
pub mod users;

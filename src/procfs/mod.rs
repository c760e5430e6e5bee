//! Parsing `/proc` files, without I/O: their text or bytes in, typed values out.
//!
//! The monitored workload controls process names, arguments and environment, and its
//! container's `/etc/passwd`: every parser here takes hostile input (newlines, invalid UTF-8,
//! huge fields, garbage), never panics on it (the `proc_files`, `socket_tables` and
//! `ecs_metadata` fuzz targets check that) and skips what does not parse. Strings are decoded
//! lossily. Reading the files, with the caps, the access switching and the checks against
//! recycled pids, is the collectors' job (`collect::proc`).
//!
//! - [`stat`]: `/proc/<pid>/stat` (and the boot time in `/proc/stat`);
//! - [`status`]: `/proc/<pid>/status` and `loginuid`;
//! - [`cmdline`]: `cmdline` and `environ`;
//! - [`links`]: the `exe`, `ns/*` and `fd/*` link targets;
//! - [`cgroup`]: the one container-id parser, for the collectors and the ECS enrichment;
//! - [`users`]: a container's `/etc/passwd` and `/etc/group`;
//! - [`net`]: the `/proc/net` socket tables.

pub mod cgroup;
pub mod cmdline;
pub mod exec_stack;
pub mod links;
pub mod net;
pub mod stat;
pub mod status;
pub mod users;

pub(crate) use cgroup::HOST_ID;
pub use cgroup::{CgroupInfo, ecs_container_id, parse_cgroup};
pub(crate) use cmdline::DEFAULT_ENV_ALLOWLIST;
pub use cmdline::{Cmdline, parse_cmdline, parse_environ};
pub use exec_stack::{ExecStack, exec_comm, parse_exec_stack, stack_slice};
pub(crate) use links::{classify_fd, classify_fd_mode, socket_inode};
pub use links::{parse_exe_link, parse_ns_link};
pub use stat::{Stat, parse_stat};
pub(crate) use stat::{parse_boot_time, parse_stat_areas};
pub use status::{Status, parse_loginuid, parse_status};

/// Captured `/proc/<pid>` files of real processes (`fixtures/<dir>/<file>`), for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn fixture(dir: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixture_path(dir, file)).unwrap()
}

/// The path of a captured `/proc/<pid>` file (see [`fixture`]).
#[cfg(test)]
pub(crate) fn fixture_path(dir: &str, file: &str) -> String {
    format!(
        "{}/src/procfs/fixtures/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

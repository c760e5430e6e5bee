//! What TaskSentry's integration tests and benchmarks share, one module per concern:
//!
//! - the emulated Fargate task, from Linux namespaces and cgroups: [`EmulatedTask`] (`task`),
//!   its containers ([`Container`], `container`), the monitor sidecar run from the real binary
//!   ([`Monitor`], `monitor`), Fargate-like cgroups (`cgroup`), capability sets and the shipped
//!   task definitions' ([`caps`]), and the static C programs the tests run ([`programs`]);
//! - reaching into the task's network namespace from the host ([`netns`]: a relay to a host
//!   address, a small HTTP server);
//! - CloudWatch Logs ([`cloudwatch`]: a real moto server, a fault-injecting proxy, reading a
//!   stream back) and the monitor set up as on Fargate, shipping to it and reading its task
//!   from an ECS metadata endpoint ([`sidecar`]);
//! - the consumers' rules, re-implemented as oracles: falcosidekick's input check ([`falco`])
//!   and CloudWatch Logs filter patterns ([`filter`]); CloudFormation templates ([`cfn`]);
//! - in-process fixtures: event builders ([`events`]) and rule loading ([`rules`]).
//!
//! A library crate of the workspace, taken by the root package as the dev-dependency
//! `support`: every test binary, bench and bench program uses it the same way
//! (`use support::...`), it is compiled once, and what one binary leaves unused is not dead
//! code.

// Test support: a failure to set up is a test failure, and panicking with the cause is the
// clearest report.
#![allow(clippy::unwrap_used)]

pub mod caps;
pub mod cfn;
mod cgroup;
pub mod cloudwatch;
mod container;
pub mod events;
pub mod falco;
pub mod filter;
mod monitor;
pub mod netns;
pub mod profile;
pub mod programs;
pub mod rules;
pub mod sidecar;
mod task;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

pub use caps::{CapSet, ProcCaps, TaskDefinition};
pub use container::{Container, ContainerProcess, ContainerSpec, User};
pub use monitor::{Monitor, MonitorSpec, WaitError};
pub use task::{
    EmulatedTask, KillOnDrop, PATH, TASK_ADDRESSES, children_of, ns_pid_of, spawn_ready, tracer_pid,
};

/// The repository's root directory (where `Cargo.toml`, `rules/` and `docs/` are).
pub(crate) fn repo_root() -> PathBuf {
    // This crate is `tests/support` of the repository.
    let support = Path::new(env!("CARGO_MANIFEST_DIR"));
    support
        .parent()
        .and_then(Path::parent)
        .unwrap_or(support)
        .to_path_buf()
}

/// A path below the repository's root.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// The directory of the Cargo profile the running program was built in (`target/debug`,
/// `target/release`): test and bench executables live in its `deps/`, bench programs
/// (examples) in its `examples/`, and the crate's binaries in it.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .with_context(|| format!("{} is not in a Cargo profile directory", exe.display()))
}

/// The CPU time (user + system) the calling thread has used: what a benchmark charges to the
/// work it runs on this thread, however busy the shared machine is.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Without /dev/urandom, fall back to something unique enough for test ids.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A unique marker for command lines: `<prefix>-<16 hex>`.
pub fn marker(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(8))
}

/// `<seconds>.<8 random digits>`: a `sleep` argument that names one process (its events can
/// be told apart by it) and lasts about `seconds`.
pub fn unique_duration(seconds: u32) -> String {
    let digits: String = random_hex(8)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("{seconds}.{digits}")
}

/// `proc.args` of an event or alert line as strings (empty when it has none).
pub fn proc_args(event: &Value) -> Vec<String> {
    event["proc"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `evt.arg.NAME` value of an event line.
pub fn evt_arg<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event["evt"]["args"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

/// The lines of a `--record` file that parse as JSON (none when it cannot be read yet).
pub fn recorded_events(recording: &Path) -> Vec<Value> {
    std::fs::read_to_string(recording)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

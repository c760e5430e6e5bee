//! What reading as a process's owner costs (`collect::access`): the price of seeing non-root
//! apps with Fargate's default capabilities, where the monitor has no `CAP_SYS_PTRACE` and
//! switches its thread's filesystem ids around each process's private reads.
//!
//! `cargo bench --bench access` starts 200 `sleep` processes as uid 1000 and measures, side by
//! side in one run:
//! - `read_process/direct`: a full read of each process ([`read_process`]) as the monitor (what
//!   a sidecar with `SYS_PTRACE` and `DAC_OVERRIDE` does);
//! - `read_process/as_owner`: the same read with the switch forced (what a sidecar with
//!   Docker's default set does: `setfsgid`/`setfsuid` to the owner and back, plus the `stat`
//!   of `/proc/<pid>` that finds the owner);
//! - `switch_only`: one switch to the owner and back, around nothing.
//! - `first_scan_200/{direct,as_owner}`: procscan's first scan of the 200 processes.
//!
//! Throughput is per process. Run as root (the sleepers get uid 1000).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use tasksentry::collect::access::{Access, Owner, Privileges, cap};
use tasksentry::collect::proc::{Clock, ReadOptions, read_identity, read_process, read_stat};
use tasksentry::collect::{ProcScanConfig, ProcScanner};

const PROCESSES: usize = 200;

fn sleepers() -> Vec<Child> {
    (0..PROCESSES)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .uid(1000)
                .gid(1000)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sleep as uid 1000 (run the bench as root)")
        })
        .collect()
}

/// Every capability but `CAP_SYS_PTRACE`: the switch is taken (the thread keeps its real
/// capabilities, so the reads succeed either way; what differs is the work).
fn switching() -> Access {
    let mut privileges = Privileges::of_self();
    privileges.cap_eff &= !(1u64 << cap::SYS_PTRACE);
    Access::with_privileges(privileges)
}

fn direct() -> Access {
    Access::with_privileges(Privileges::all())
}

fn read_all(pids: &[i32], access: Access) -> usize {
    let proc_root = Path::new("/proc");
    let options = ReadOptions {
        env_allowlist: vec!["PATH".into(), "LD_PRELOAD".into()],
        max_cmdline_bytes: 64 * 1024,
        access,
    };
    let clock = Clock::read(proc_root);
    let mut buf = Vec::with_capacity(8192);
    let mut read = 0;
    for &pid in pids {
        let Some(stat) = read_stat(proc_root, pid, &mut buf) else {
            continue;
        };
        let identity = read_identity(proc_root, stat, &options.access, &mut buf);
        if let Some(process) = read_process(proc_root, identity, &clock, &options, &mut buf) {
            assert!(process.unreadable.is_empty());
            read += 1;
        }
    }
    read
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("access bench: needs root (its sleepers run as uid 1000)");
        return;
    }
    assert!(switching().may_switch() && !direct().may_switch());
    let mut children = sleepers();
    std::thread::sleep(Duration::from_millis(300));
    let pids: Vec<i32> = children
        .iter()
        .map(|c| i32::try_from(c.id()).expect("pid"))
        .collect();
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("access");
        group.throughput(Throughput::Elements(PROCESSES as u64));
        group.bench_function("read_process/direct", |b| {
            b.iter(|| assert_eq!(read_all(&pids, direct()), PROCESSES))
        });
        group.bench_function("read_process/as_owner", |b| {
            b.iter(|| assert_eq!(read_all(&pids, switching()), PROCESSES))
        });
        let access = switching();
        let owner = Some(Owner {
            uid: 1000,
            gid: 1000,
        });
        group.bench_function("switch_only", |b| {
            b.iter(|| {
                for _ in 0..PROCESSES {
                    access.as_owner(owner, || std::hint::black_box(()));
                }
            })
        });
        for (name, access) in [("direct", direct()), ("as_owner", switching())] {
            group.bench_function(format!("first_scan_200/{name}"), |b| {
                b.iter_batched(
                    || {
                        ProcScanner::new(ProcScanConfig {
                            exclude_self: false,
                            triggers: false,
                            access,
                            ..ProcScanConfig::default()
                        })
                        .expect("scanner")
                    },
                    |mut scanner| {
                        let mut out = Vec::new();
                        scanner.scan(&mut out);
                        assert!(out.len() >= PROCESSES);
                        out
                    },
                    BatchSize::PerIteration,
                );
            });
        }
        group.finish();
    }
    c.final_summary();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

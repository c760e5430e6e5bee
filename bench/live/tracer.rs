//! Overhead benchmark of the tracer, run by `bench/tracer`.
//!
//! Two emulated Fargate tasks (the integration tests' harness, `tests/support`) with the same
//! busybox container: task T has `tasksentry run --mode trace` as its sidecar for the whole
//! run, task U has no monitor. Each round runs every workload in three arms, interleaved (the
//! order rotates from round to round), so that the load other processes put on the machine
//! falls on all arms alike:
//!
//! - `untraced`: in task U;
//! - `mintracer`: in task U, seized by `tests/programs/mintracer.c`, a tracer that uses the same
//!   ptrace options as tasksentry but resumes every stop at once and reads nothing: the floor of
//!   any ptrace-based tracer on this machine;
//! - `tasksentry`: in task T, seized by the monitor.
//!
//! A workload is a shell that blocks opening a FIFO (`/gate`, no CPU while it waits) until the
//! benchmark has seen, in `/proc/<pid>/status`, that the arm's tracer holds it; the clock runs
//! from opening the gate to the shell's exit. Measured per run: wall time, CPU time (user+sys)
//! of the workload's process tree (`getrusage(RUSAGE_CHILDREN)` around the wait), and CPU time
//! of the tracer (the monitor's threads from `/proc/<pid>/task/*/schedstat`, of which the
//! `tracer` thread alone; mintracer's own rusage). Printed: per arm the median and the min..max
//! of each figure, and per traced arm the median (and min..max) of the ratio to the untraced run
//! of the same round. Workloads: a fork-exec loop (the static `spawner` running `sleeper 0` N
//! times), a CPU-bound busybox shell loop (no forks), and an I/O-bound run (`dd` to /dev/null,
//! then a file written and read back). Targets: under 15 % on the fork-exec loop, no measurable
//! difference on the others.
//!
//! Needs root, like the integration tests. Example:
//! `bench_tracer --monitor target/release/tasksentry --rounds 5 --forks 1000 --emit events`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use support::{Container, EmulatedTask, MonitorSpec};

/// Overhead of the tracer on three workloads: untraced, a minimal tracer, tasksentry.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// Rounds (each runs every workload in every arm).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Processes in the fork-exec loop.
    #[arg(long, default_value_t = 1000)]
    forks: u32,
    /// What the monitor emits: `events` (every event as a JSON line, the most work) or
    /// `alerts` (rule matches only, as deployed).
    #[arg(long, default_value = "events")]
    emit: String,
    /// Only the fork-exec loop.
    #[arg(long)]
    fork_only: bool,
}

/// The gate every workload script starts with: opening a FIFO for reading blocks until the
/// benchmark opens it for writing.
const GATE: &str = "read _ </gate; ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Untraced,
    Mintracer,
    Tasksentry,
}

const ARMS: [Arm; 3] = [Arm::Untraced, Arm::Mintracer, Arm::Tasksentry];

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Untraced => "untraced",
            Arm::Mintracer => "mintracer",
            Arm::Tasksentry => "tasksentry",
        }
    }
}

/// One run's figures (seconds).
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    wall: f64,
    tree_cpu: f64,
    tracer_cpu: Option<f64>,
    tracer_thread_cpu: Option<f64>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench_tracer: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn tracer_pid(host_pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time of every thread of `pid` (seconds), and of its thread named `thread`.
fn threads_cpu(pid: i32, thread: &str) -> (f64, f64) {
    let mut all = 0u64;
    let mut named = 0u64;
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0.0, 0.0);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let ns: u64 = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        all += ns;
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == thread) {
            named += ns;
        }
    }
    (all as f64 / 1e9, named as f64 / 1e9)
}

fn children_cpu() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn wait_traced(pid: i32, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracer_pid(pid).is_none_or(|t| t == 0) {
        if Instant::now() > deadline {
            bail!("{what} did not seize the workload's shell");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Runs `script` in `app` behind the gate, traced as `arm` says.
fn timed(
    app: &Container,
    script: &str,
    arm: Arm,
    mintracer: &std::path::Path,
    worker: i32,
) -> Result<(Sample, Option<String>)> {
    let gate = app.host_path("gate");
    let _ = std::fs::remove_file(&gate);
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .context("mkfifo /gate")?;
    let mut command = app.command(0, &["sh", "-c", &format!("{GATE}{script}")]);
    command.stdout(Stdio::null()).stderr(Stdio::inherit());
    let mut shell = app.spawn_command(command)?;
    let mut tracer: Option<Child> = None;
    match arm {
        Arm::Untraced => {}
        Arm::Mintracer => {
            tracer = Some(
                Command::new(mintracer)
                    .arg(shell.host_pid().to_string())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("starting mintracer")?,
            );
            wait_traced(shell.host_pid(), "mintracer")?;
        }
        Arm::Tasksentry => wait_traced(shell.host_pid(), "the monitor")?,
    }
    let cpu_before = children_cpu();
    let (mon_before, thread_before) = threads_cpu(worker, "tracer");
    let started = Instant::now();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .and_then(|mut f| f.write_all(b"\n"))
        .context("opening the gate")?;
    let status = shell.wait()?;
    let wall = started.elapsed().as_secs_f64();
    let tree_cpu = children_cpu() - cpu_before;
    let (mon_after, thread_after) = threads_cpu(worker, "tracer");
    if !status.success() {
        bail!("workload failed ({status}): {script}");
    }
    let mut sample = Sample {
        wall,
        tree_cpu,
        ..Sample::default()
    };
    let mut note = None;
    match arm {
        Arm::Untraced => {}
        Arm::Mintracer => {
            let child = tracer.take().context("mintracer")?;
            let before = children_cpu();
            let output = child.wait_with_output()?;
            sample.tracer_cpu = Some(children_cpu() - before);
            note = Some(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Arm::Tasksentry => {
            sample.tracer_cpu = Some(mon_after - mon_before);
            sample.tracer_thread_cpu = Some(thread_after - thread_before);
        }
    }
    Ok((sample, note))
}

/// Median and range.
fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn fmt_ms(values: &[f64]) -> String {
    let (med, min, max) = stats(values);
    format!(
        "{:>8.1} [{:.0}..{:.0}]",
        med * 1000.0,
        min * 1000.0,
        max * 1000.0
    )
}

fn run(args: Args) -> Result<bool> {
    let monitor_bin = std::fs::canonicalize(&args.monitor)
        .with_context(|| format!("monitor binary {}", args.monitor.display()))?;
    let mintracer = support::programs::program("mintracer")?;
    let task_t = EmulatedTask::new()?;
    let task_u = EmulatedTask::new()?;
    let app_t = task_t.add_container("app")?;
    let app_u = task_u.add_container("app")?;
    for app in [&app_t, &app_u] {
        app.install_program("sleeper")?;
        app.install_program("spawner")?;
    }
    let mut spec = MonitorSpec::new(&["run", "--emit", &args.emit, "--mode", "trace"]);
    spec.program = Some(monitor_bin);
    let mut monitor = task_t.start_monitor_with(spec)?;
    // Let the monitor finish starting (rules, first /proc scan) so that its start-up CPU is
    // not billed to the first traced run.
    std::thread::sleep(Duration::from_millis(1500));
    // `tasksentry run` supervises a worker child, which is the process that traces: its
    // threads are the ones whose CPU time is billed.
    let worker = monitor.worker_host_pid();
    let load_before = loadavg();
    let mut workloads: Vec<(&str, String, Option<f64>)> = vec![(
        "fork-exec loop",
        format!("exec spawner {} 0 0 bench >/dev/null", args.forks),
        Some(1.15),
    )];
    if !args.fork_only {
        workloads.push((
            "CPU-bound",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done".to_string(),
            None,
        ));
        workloads.push((
            "I/O-bound",
            "dd if=/dev/zero of=/dev/null bs=512 count=400000 2>/dev/null && \
             dd if=/dev/zero of=/io.bin bs=64k count=1600 2>/dev/null && \
             cat /io.bin >/dev/null && rm /io.bin"
                .to_string(),
            None,
        ));
    }
    // samples[workload][arm][round]
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); ARMS.len()]; workloads.len()];
    let mut mintracer_counts = vec![String::new(); workloads.len()];
    for round in 0..args.rounds {
        for (w, (_, script, _)) in workloads.iter().enumerate() {
            for k in 0..ARMS.len() {
                let a = (round + k) % ARMS.len();
                let arm = ARMS[a];
                let app = if arm == Arm::Tasksentry {
                    &app_t
                } else {
                    &app_u
                };
                let (sample, note) = timed(app, script, arm, &mintracer, worker)?;
                samples[w][a].push(sample);
                if let Some(note) = note {
                    mintracer_counts[w] = note;
                }
            }
        }
        eprintln!(
            "round {} done ({} monitor lines so far)",
            round + 1,
            monitor.line_count()
        );
    }
    let events = monitor.line_count();
    monitor.kill()?;

    let load_after = loadavg();
    println!(
        "{:<15} {:<10} {:>22} {:>22} {:>22} {:>22} {:>22} {:>20}",
        "workload",
        "arm",
        "wall ms med [min..max]",
        "ratio med [min..max]",
        "tree CPU ms med",
        "CPU ratio med [min..max]",
        "tracer CPU ms med",
        "tracer thread CPU ms"
    );
    let mut all_met = true;
    for (w, (name, _, target)) in workloads.iter().enumerate() {
        let base = &samples[w][0];
        for (a, arm) in ARMS.iter().enumerate() {
            let runs = &samples[w][a];
            let walls: Vec<f64> = runs.iter().map(|s| s.wall).collect();
            let trees: Vec<f64> = runs.iter().map(|s| s.tree_cpu).collect();
            let ratio_of = |figure: fn(&Sample) -> f64| {
                if *arm == Arm::Untraced {
                    return String::new();
                }
                let ratios: Vec<f64> = runs
                    .iter()
                    .zip(base)
                    .map(|(t, u)| figure(t) / figure(u))
                    .collect();
                let (med, min, max) = stats(&ratios);
                format!("{med:.3} [{min:.2}..{max:.2}]")
            };
            let ratio = ratio_of(|s| s.wall);
            let cpu_ratio = ratio_of(|s| s.tree_cpu);
            let tracer: Vec<f64> = runs.iter().filter_map(|s| s.tracer_cpu).collect();
            let thread: Vec<f64> = runs.iter().filter_map(|s| s.tracer_thread_cpu).collect();
            println!(
                "{:<15} {:<10} {:>22} {:>22} {:>22} {:>22} {:>22} {:>20}",
                name,
                arm.name(),
                fmt_ms(&walls),
                ratio,
                fmt_ms(&trees),
                cpu_ratio,
                if tracer.is_empty() {
                    String::new()
                } else {
                    fmt_ms(&tracer)
                },
                if thread.is_empty() {
                    String::new()
                } else {
                    fmt_ms(&thread)
                },
            );
        }
        // Summary: the median of the per-round ratios of tasksentry to untraced.
        let ratios: Vec<f64> = samples[w][2]
            .iter()
            .zip(base)
            .map(|(t, u)| t.wall / u.wall)
            .collect();
        let (med, _, _) = stats(&ratios);
        let floor: Vec<f64> = samples[w][1]
            .iter()
            .zip(base)
            .map(|(t, u)| t.wall / u.wall)
            .collect();
        let (floor, _, _) = stats(&floor);
        if let Some(max) = target {
            let met = med < *max;
            all_met &= met;
            println!(
                "{name}: tasksentry/untraced wall ratio {med:.3} (mintracer floor {floor:.3}), \
                 target < {max:.2}: {}",
                if met { "met" } else { "MISSED" }
            );
            if *name == "fork-exec loop" && args.forks > 0 {
                let per = |arm: usize| {
                    let cpu: Vec<f64> = samples[w][arm]
                        .iter()
                        .filter_map(|s| s.tracer_cpu)
                        .collect();
                    stats(&cpu).0 * 1e6 / f64::from(args.forks)
                };
                println!(
                    "{name}: tracer CPU per fork-exec: tasksentry {:.0} us (whole monitor), \
                     mintracer {:.0} us",
                    per(2),
                    per(1)
                );
            }
        }
        if !mintracer_counts[w].is_empty() {
            println!("{name}: stops seen by {}", mintracer_counts[w]);
        }
    }
    println!(
        "({} rounds; arms interleaved, order rotating; monitor with --emit {}, {events} lines; \
         tree CPU = user+sys of the workload's processes; tracer CPU = the whole monitor \
         process, or mintracer; load average {load_before} before, {load_after} after)",
        args.rounds, args.emit
    );
    Ok(all_met)
}

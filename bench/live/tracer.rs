//! Overhead benchmark of the tracer, run by `bench/tracer`.
//!
//! Emulated Fargate tasks (the integration tests' harness, `tests/support`) with the same
//! busybox container: task T has `tasksentry run --mode trace` as its sidecar for the whole
//! run, task U has no monitor (and, with `--before`, task B has another monitor binary, say the
//! one built from `main`). Each round runs every workload in every arm, interleaved (the order
//! rotates from round to round), so that the load other processes put on the machine falls on
//! all arms alike:
//!
//! - `untraced`: in task U;
//! - `mintracer`: in task U, seized by `tests/programs/mintracer.c`, a tracer that uses the same
//!   ptrace options as tasksentry but resumes every stop at once and reads nothing: the floor of
//!   any ptrace-based tracer on this machine;
//! - `tasksentry`: in task T, seized by the monitor;
//! - `before` (with `--before PATH`): in task B, seized by the monitor binary PATH.
//!
//! A workload is a shell that blocks opening a FIFO (`/gate`, no CPU while it waits) until the
//! benchmark has seen, in `/proc/<pid>/status`, that the arm's tracer holds it; the clock runs
//! from opening the gate to the shell's exit. Measured per run: wall time, CPU time (user+sys)
//! of the workload's process tree (`getrusage(RUSAGE_CHILDREN)` around the wait), and CPU time
//! of the tracer: for a monitor, every thread of its worker process (`/proc/<pid>/task/*/
//! schedstat`, nanoseconds), of which the `tracer` thread alone, and a breakdown by thread name
//! (`utime + stime` of `/proc/<pid>/task/<tid>/stat`, clock ticks, threads of the same name
//! summed); for mintracer its own rusage. Printed: per arm the median and the min..max of each
//! figure, per traced arm the median (and min..max) of the ratio to the untraced run of the
//! same round, and per monitor arm the per-thread breakdown. Workloads: a fork-exec loop (the
//! static `spawner` running `sleeper 0` N times), a CPU-bound busybox shell loop (no forks),
//! and an I/O-bound run (`dd` to /dev/null, then a file written and read back).
//!
//! Targets, on the fork-exec loop (exit code 1 when one is missed): tasksentry's median wall
//! ratio at most 0.10 above mintracer's (the ptrace floor on this machine), and at most 120 µs
//! of CPU of the whole monitor per fork-exec (median). No measurable difference on the others.
//!
//! Last, a table of what the tracer's `/proc` reads of one exec cost on this kernel, each read
//! timed alone on freshly exec'd processes and again on the same processes: the floor those
//! reads put under the tracer's CPU per fork-exec, whatever the tracer does around them.
//!
//! Needs root, like the integration tests. Example:
//! `bench_tracer --monitor target/release/tasksentry --rounds 5 --forks 1000 --emit alerts
//! --before /tmp/tasksentry-main`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use support::{Container, EmulatedTask, Monitor, MonitorSpec};

/// Overhead of the tracer on three workloads: untraced, a minimal tracer, tasksentry.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// Another monitor binary measured side by side as the arm `before` (say, a release build
    /// of `main`), in a task of its own.
    #[arg(long)]
    before: Option<PathBuf>,
    /// Rounds (each runs every workload in every arm).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Processes in the fork-exec loop.
    #[arg(long, default_value_t = 1000)]
    forks: u32,
    /// What the monitor emits: `events` (every event as a JSON line, the most work) or
    /// `alerts` (rule matches only, as deployed).
    #[arg(long, default_value = "alerts")]
    emit: String,
    /// Only the fork-exec loop.
    #[arg(long)]
    fork_only: bool,
    /// How long each process of the fork-exec loop lives (ms; `sleeper MS`). With 0 a process
    /// exits microseconds after its exec, so everything the tracer reads about it after
    /// resuming it is on its parent's critical path (the parent waits for it, and a traced
    /// process is reaped by its tracer first); the targets are set on that worst case.
    #[arg(long, default_value_t = 0)]
    lifetime: u32,
    /// An extra flag for the `tasksentry` arm's `run` only (repeatable), to measure what a
    /// setting costs against the `before` arm: say `--flag=--triggers=false`.
    #[arg(long = "flag", allow_hyphen_values = true)]
    flags: Vec<String>,
}

/// The gate every workload script starts with: opening a FIFO for reading blocks until the
/// benchmark opens it for writing.
const GATE: &str = "read _ </gate; ";

/// Target: tasksentry's wall ratio on the fork-exec loop at most this much above mintracer's.
const MAX_RATIO_ABOVE_FLOOR: f64 = 0.10;
/// Target: CPU of the whole monitor per fork-exec (µs).
const MAX_CPU_PER_FORK_US: f64 = 120.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Untraced,
    Mintracer,
    Tasksentry,
    Before,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Untraced => "untraced",
            Arm::Mintracer => "mintracer",
            Arm::Tasksentry => "tasksentry",
            Arm::Before => "before",
        }
    }

    fn is_monitor(self) -> bool {
        matches!(self, Arm::Tasksentry | Arm::Before)
    }
}

/// One run's figures (seconds).
#[derive(Debug, Clone, Default)]
struct Sample {
    wall: f64,
    tree_cpu: f64,
    tracer_cpu: Option<f64>,
    tracer_thread_cpu: Option<f64>,
    /// A monitor's CPU by thread name (utime + stime).
    threads: BTreeMap<String, f64>,
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

/// The threads of a process at one instant.
#[derive(Debug, Default)]
struct ThreadTimes {
    /// Sum of every thread's on-CPU time (`schedstat`, seconds).
    all: f64,
    /// That of the threads named `tracer`.
    tracer: f64,
    /// Per thread id: its name and `utime + stime` (clock ticks).
    ticks: HashMap<i32, (String, u64)>,
}

/// `utime + stime` from a `stat` line (fields 14 and 15, after the parenthesised name).
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of every thread of `pid`.
fn thread_times(pid: i32) -> ThreadTimes {
    let mut out = ThreadTimes::default();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let ns: u64 = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        out.all += ns as f64 / 1e9;
        if comm == "tracer" {
            out.tracer += ns as f64 / 1e9;
        }
        let ticks = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
            .unwrap_or(0);
        out.ticks.insert(tid, (comm, ticks));
    }
    out
}

/// CPU by thread name between two snapshots (seconds); threads gone by `after` are left out,
/// new ones count from zero.
fn threads_delta(before: &ThreadTimes, after: &ThreadTimes) -> BTreeMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = BTreeMap::new();
    for (tid, (name, ticks)) in &after.ticks {
        let was = before
            .ticks
            .get(tid)
            .filter(|(n, _)| n == name)
            .map_or(0, |(_, t)| *t);
        *out.entry(name.clone()).or_insert(0.0) += ticks.saturating_sub(was) as f64 / hz;
    }
    out
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

/// Runs `script` in `app` behind the gate, traced as `arm` says (`worker`: the monitor's
/// worker pid for a monitor arm).
fn timed(
    app: &Container,
    script: &str,
    arm: Arm,
    mintracer: &std::path::Path,
    worker: Option<i32>,
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
        Arm::Tasksentry | Arm::Before => wait_traced(shell.host_pid(), "the monitor")?,
    }
    let cpu_before = children_cpu();
    let mon_before = worker.map(thread_times).unwrap_or_default();
    let started = Instant::now();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .and_then(|mut f| f.write_all(b"\n"))
        .context("opening the gate")?;
    let status = shell.wait()?;
    let wall = started.elapsed().as_secs_f64();
    let tree_cpu = children_cpu() - cpu_before;
    let mon_after = worker.map(thread_times).unwrap_or_default();
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
        Arm::Tasksentry | Arm::Before => {
            sample.tracer_cpu = Some(mon_after.all - mon_before.all);
            sample.tracer_thread_cpu = Some(mon_after.tracer - mon_before.tracer);
            sample.threads = threads_delta(&mon_before, &mon_after);
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

/// One emulated task with a monitor.
struct Monitored {
    _task: EmulatedTask,
    app: Container,
    monitor: Monitor,
    worker: i32,
}

fn monitored(binary: &std::path::Path, emit: &str, flags: &[String]) -> Result<Monitored> {
    let binary = std::fs::canonicalize(binary)
        .with_context(|| format!("monitor binary {}", binary.display()))?;
    let task = EmulatedTask::new()?;
    let app = task.add_container("app")?;
    app.install_program("sleeper")?;
    app.install_program("spawner")?;
    let mut args = vec!["run", "--emit", emit, "--mode", "trace"];
    args.extend(flags.iter().map(String::as_str));
    let mut spec = MonitorSpec::new(&args);
    spec.program = Some(binary);
    let monitor = task.start_monitor_with(spec)?;
    // Let the monitor finish starting (rules, first /proc scan) so that its start-up CPU is
    // not billed to the first traced run.
    std::thread::sleep(Duration::from_millis(1500));
    // `tasksentry run` supervises a worker child, which is the process that traces: its
    // threads are the ones whose CPU time is billed.
    let worker = monitor.worker_host_pid();
    Ok(Monitored {
        _task: task,
        app,
        monitor,
        worker,
    })
}

fn run(args: Args) -> Result<bool> {
    let mintracer = support::programs::program("mintracer")?;
    let task_u = EmulatedTask::new()?;
    let app_u = task_u.add_container("app")?;
    app_u.install_program("sleeper")?;
    app_u.install_program("spawner")?;
    let mut task_t = monitored(&args.monitor, &args.emit, &args.flags)?;
    let mut task_b = match &args.before {
        Some(path) => Some(monitored(path, &args.emit, &[])?),
        None => None,
    };
    let mut arms = vec![Arm::Untraced, Arm::Mintracer, Arm::Tasksentry];
    if task_b.is_some() {
        arms.push(Arm::Before);
    }
    let load_before = loadavg();
    let mut workloads: Vec<(&str, String)> = vec![(
        "fork-exec loop",
        format!(
            "exec spawner {} {} 0 bench >/dev/null",
            args.forks, args.lifetime
        ),
    )];
    if !args.fork_only {
        workloads.push((
            "CPU-bound",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done".to_string(),
        ));
        workloads.push((
            "I/O-bound",
            "dd if=/dev/zero of=/dev/null bs=512 count=400000 2>/dev/null && \
             dd if=/dev/zero of=/io.bin bs=64k count=1600 2>/dev/null && \
             cat /io.bin >/dev/null && rm /io.bin"
                .to_string(),
        ));
    }
    // samples[workload][arm][round]
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); arms.len()]; workloads.len()];
    let mut mintracer_counts = vec![String::new(); workloads.len()];
    for round in 0..args.rounds {
        for (w, (_, script)) in workloads.iter().enumerate() {
            for k in 0..arms.len() {
                let a = (round + k) % arms.len();
                let arm = arms[a];
                let (app, worker) = match arm {
                    Arm::Untraced | Arm::Mintracer => (&app_u, None),
                    Arm::Tasksentry => (&task_t.app, Some(task_t.worker)),
                    Arm::Before => {
                        let b = task_b.as_ref().context("the before arm")?;
                        (&b.app, Some(b.worker))
                    }
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
            task_t.monitor.line_count()
        );
    }
    let events = task_t.monitor.line_count();
    // What the monitors raised (with `--emit alerts`, a handful of lines): the same lines are
    // expected from both monitor arms.
    let mut raised = Vec::new();
    for (arm, m) in std::iter::once((Arm::Tasksentry, &task_t.monitor))
        .chain(task_b.as_ref().map(|b| (Arm::Before, &b.monitor)))
    {
        let lines = m.lines_so_far();
        for line in lines.iter().take(5) {
            let cut: String = line.chars().take(240).collect();
            raised.push(format!("{} raised: {cut}", arm.name()));
        }
        if lines.len() > 5 {
            raised.push(format!(
                "{} raised {} more lines",
                arm.name(),
                lines.len() - 5
            ));
        }
    }
    task_t.monitor.kill()?;
    if let Some(b) = task_b.as_mut() {
        b.monitor.kill()?;
    }

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
    let mut verdicts = Vec::new();
    let mut breakdowns = Vec::new();
    for (w, (name, _)) in workloads.iter().enumerate() {
        let base = &samples[w][0];
        let ratio_med = |a: usize| {
            let ratios: Vec<f64> = samples[w][a]
                .iter()
                .zip(base)
                .map(|(t, u)| t.wall / u.wall)
                .collect();
            stats(&ratios).0
        };
        let per_fork = |a: usize| {
            let cpu: Vec<f64> = samples[w][a].iter().filter_map(|s| s.tracer_cpu).collect();
            stats(&cpu).0 * 1e6 / f64::from(args.forks.max(1))
        };
        for (a, arm) in arms.iter().enumerate() {
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
            if arm.is_monitor() && *name == "fork-exec loop" {
                breakdowns.push(breakdown(name, *arm, runs, args.forks));
            }
        }
        if *name == "fork-exec loop" {
            let floor = ratio_med(1);
            let monitor_arms: Vec<(usize, Arm)> = arms
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, arm)| arm.is_monitor())
                .collect();
            for (a, arm) in monitor_arms {
                let ratio = ratio_med(a);
                let cpu = per_fork(a);
                let ratio_met = ratio - floor <= MAX_RATIO_ABOVE_FLOOR;
                let cpu_met = cpu <= MAX_CPU_PER_FORK_US;
                // Only the monitor under test decides the exit code.
                let (r, c) = if arm == Arm::Tasksentry {
                    all_met &= ratio_met && cpu_met;
                    (
                        if ratio_met { "met" } else { "MISSED" },
                        if cpu_met { "met" } else { "MISSED" },
                    )
                } else {
                    ("for reference", "for reference")
                };
                verdicts.push(format!(
                    "{name}: {} wall ratio {ratio:.3}, mintracer {floor:.3}: {:+.3} above the \
                     floor, target <= +{MAX_RATIO_ABOVE_FLOOR:.2}: {r}",
                    arm.name(),
                    ratio - floor
                ));
                verdicts.push(format!(
                    "{name}: {} CPU per fork-exec {cpu:.0} us (whole monitor; mintracer {:.0} \
                     us), target <= {MAX_CPU_PER_FORK_US:.0} us: {c}",
                    arm.name(),
                    per_fork(1)
                ));
                // The same gap in time: per round, this arm's wall minus mintracer's (the same
                // round, so the same machine weather), per fork-exec.
                let added: Vec<f64> = samples[w][a]
                    .iter()
                    .zip(&samples[w][1])
                    .map(|(t, m)| (t.wall - m.wall) * 1e6 / f64::from(args.forks.max(1)))
                    .collect();
                let (med, min, max) = stats(&added);
                verdicts.push(format!(
                    "{name}: {} wall per fork-exec beyond mintracer's: {med:+.0} us \
                     [{min:+.0}..{max:+.0}] (processes living {} ms)",
                    arm.name(),
                    args.lifetime
                ));
            }
        }
        if !mintracer_counts[w].is_empty() {
            verdicts.push(format!("{name}: stops seen by {}", mintracer_counts[w]));
        }
    }
    for line in breakdowns.iter().flatten().chain(&verdicts).chain(&raised) {
        println!("{line}");
    }
    proc_read_costs(300)?;
    println!(
        "({} rounds; arms interleaved, order rotating; monitors with --emit {}, {events} lines \
         from tasksentry; tree CPU = user+sys of the workload's processes; tracer CPU = every \
         thread of the monitor's worker process (schedstat), or mintracer; per-thread = \
         utime+stime of /proc/<pid>/task/<tid>/stat by thread name; load average \
         {load_before} before, {load_after} after)",
        args.rounds, args.emit
    );
    Ok(all_met)
}

/// The per-thread lines of a monitor arm: median CPU per thread name, and per fork-exec.
fn breakdown(name: &str, arm: Arm, runs: &[Sample], forks: u32) -> Vec<String> {
    let mut names: Vec<&String> = runs.iter().flat_map(|s| s.threads.keys()).collect();
    names.sort();
    names.dedup();
    let mut rows: Vec<(f64, String)> = names
        .into_iter()
        .map(|thread| {
            let values: Vec<f64> = runs
                .iter()
                .map(|s| s.threads.get(thread).copied().unwrap_or(0.0))
                .collect();
            let (med, min, max) = stats(&values);
            (
                med,
                format!(
                    "{name}: {:<10} thread {:<16} {:>7.1} ms [{:.0}..{:.0}] {:>6.0} us/fork-exec",
                    arm.name(),
                    thread,
                    med * 1e3,
                    min * 1e3,
                    max * 1e3,
                    med * 1e6 / f64::from(forks.max(1))
                ),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows.into_iter().map(|(_, line)| line).collect()
}

/// What the tracer's `/proc` reads of one exec cost on this kernel, apart from any tracer: each
/// read of `samples` freshly exec'd processes (`sleep`, never looked at before, as the tracer
/// sees a new image), timed alone, in the tracer's order, then the same reads again (the
/// kernel's entries for that pid now exist). The first column is what the tracer pays per exec;
/// the difference is the kernel creating `/proc/<pid>` entries for a new process.
fn proc_read_costs(samples: usize) -> Result<()> {
    const READS: [(&str, &str); 9] = [
        ("/proc/<pid> lookup", ""),
        ("stat (resumed)", "stat"),
        ("exe link (frozen)", "exe"),
        ("exe identity (frozen)", "exe!"),
        ("fd/0 (resumed)", "fd/0"),
        ("fd/1 (resumed)", "fd/1"),
        ("fd/2 (resumed)", "fd/2"),
        ("cwd (resumed)", "cwd"),
        ("status (resumed)", "status"),
    ];
    let read = |pid: u32, what: &str| -> Duration {
        let path = if what.is_empty() {
            format!("/proc/{pid}")
        } else {
            format!("/proc/{pid}/{}", what.trim_end_matches('!'))
        };
        let started = Instant::now();
        let _ = match what {
            "" => std::fs::symlink_metadata(&path).map(|_| ()),
            "exe!" => std::fs::metadata(&path).map(|_| ()),
            "stat" | "status" => std::fs::read(&path).map(|_| ()),
            _ => std::fs::read_link(&path).map(|_| ()),
        };
        started.elapsed()
    };
    let mut first: Vec<Vec<f64>> = vec![Vec::new(); READS.len()];
    let mut again: Vec<Vec<f64>> = vec![Vec::new(); READS.len()];
    for _ in 0..samples {
        // `spawn` returns once the child has exec'd (std waits for the exec to succeed).
        let mut child = Command::new("sleep")
            .arg("5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sleep")?;
        let pid = child.id();
        for (i, (_, what)) in READS.iter().enumerate() {
            first[i].push(read(pid, what).as_secs_f64() * 1e6);
        }
        for (i, (_, what)) in READS.iter().enumerate() {
            again[i].push(read(pid, what).as_secs_f64() * 1e6);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "\n/proc reads of one exec on this kernel ({samples} fresh processes; median us; \
         std::fs calls by path, so each includes its path walk):"
    );
    println!("{:<24} {:>12} {:>12}", "read", "new process", "again");
    let (mut total_first, mut total_again) = (0.0, 0.0);
    for (i, (name, _)) in READS.iter().enumerate() {
        let (f, a) = (stats(&first[i]).0, stats(&again[i]).0);
        total_first += f;
        total_again += a;
        println!("{name:<24} {f:>12.1} {a:>12.1}");
    }
    println!("{:<24} {total_first:>12.1} {total_again:>12.1}", "sum");
    Ok(())
}

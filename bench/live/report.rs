//! The live part of the benchmark report, run by `bench/report` (which adds the criterion
//! benches and the tracer overhead and writes `docs/benchmarks.md`).
//!
//! Everything runs in one emulated Fargate task (the integration tests' harness,
//! `tests/support`) with the release monitor as the sidecar, and prints markdown sections:
//!
//! - **Capture by lifetime**: the static `spawner` runs `sleeper MS MARKER-i` RUNS times per
//!   lifetime (1, 5, 20, 100 ms) with random pauses, and each observer (TaskSentry in poll
//!   mode, in trace mode, and pspy when `PSPY` names its binary) is scored on how many it
//!   reported with their own command line.
//! - **Capture by spawn rate**: `actor rate R 3` forks and execs `sleeper 1 MARKER-i` R times a
//!   second for 3 s without waiting; same scoring.
//! - **Alert latency**: `actor exec` (a shell started by a non-shell program, living 200 ms) and `actor file`
//!   (a file created below /etc) print a wall-clock timestamp right before each action; the
//!   latency is the time from it to the arrival of the alert line naming that action on the
//!   monitor's stdout (read as soon as it is written). p50 and p99 per action and mode.
//! - **CPU and memory**: with 100 or 1,000 long-lived processes in the app container and 0, 10
//!   or 100 execs a second, the monitor's CPU (utime + stime of its process tree, from /proc,
//!   over the measuring window after a warm-up) and RSS (sum of VmRSS, and the peak VmHWM).
//! - **Idle cost**: 100 sleeping processes, default settings; CPU per thread of the supervisor
//!   and its worker over 30 s after a 25 s start-up, RSS, PSS and anonymous memory; several
//!   binaries (`--idle-binary LABEL=PATH`, repeated) side by side, alternating (`bench/idle`);
//!   with `--idle-caps fargate` or `both`, also (or only) with Fargate's default capabilities
//!   against an app that runs as a non-root `USER`.
//!
//! Needs root, like the integration tests. Example:
//! `bench_report --monitor target/release/tasksentry [--quick]`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::Value;
use support::{Container, EmulatedTask, Monitor, MonitorSpec};

/// The live measurements of the benchmark report, as markdown on stdout.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// pspy's binary, for the comparison column (default: the `PSPY` environment variable).
    #[arg(long, env = "PSPY")]
    pspy: Option<PathBuf>,
    /// Fewer runs and shorter windows (a smoke run of the report, not figures to publish).
    #[arg(long)]
    quick: bool,
    /// Run only these parts (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "capture,latency,resources,idle"
    )]
    only: Vec<String>,
    /// Binaries measured side by side in the idle part, as `LABEL=PATH` (default: the monitor).
    #[arg(long = "idle-binary")]
    idle_binaries: Vec<String>,
    /// Rounds of the idle part; each round measures every idle binary once, in rotating order.
    #[arg(long, default_value_t = 5)]
    idle_rounds: u32,
    /// How each idle binary is in the page cache when it starts: `cold` (dropped from the
    /// cache, so its code comes in as a fresh task's does, by the faults of the exec) or `read`
    /// (dropped, then read whole from start to end, as `cat` or a copy leaves it).
    #[arg(long, default_value = "cold", value_parser = ["cold", "read"])]
    idle_page_cache: String,
    /// Where the idle part runs: `root` (the monitor with every capability, the app's
    /// processes as root), `fargate` (the monitor with Fargate's default capabilities and no
    /// more, the app's processes as its image's non-root `USER`, uid 1000) or `both` (each
    /// binary in both ways, side by side, with the same non-root app).
    #[arg(long, default_value = "root", value_parser = ["root", "fargate", "both"])]
    idle_caps: String,
}

/// Who watches the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observer {
    Poll,
    Trace,
    Pspy,
}

impl Observer {
    fn label(self) -> &'static str {
        match self {
            Observer::Poll => "TaskSentry poll",
            Observer::Trace => "TaskSentry trace",
            Observer::Pspy => "pspy",
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_report: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<()> {
    let monitor = std::fs::canonicalize(&args.monitor)
        .with_context(|| format!("monitor binary {}", args.monitor.display()))?;
    let pspy = match &args.pspy {
        Some(path) => Some(
            std::fs::canonicalize(path).with_context(|| format!("pspy at {}", path.display()))?,
        ),
        None => None,
    };
    let task = EmulatedTask::new()?;
    let app = task.add_container("app")?;
    for program in ["sleeper", "spawner", "actor"] {
        app.install_program(program)?;
    }
    let mut observers = vec![Observer::Poll, Observer::Trace];
    if pspy.is_some() {
        observers.push(Observer::Pspy);
    }
    let runs: u32 = if args.quick { 20 } else { 100 };
    let lifetimes = [1u32, 5, 20, 100];
    let rates = [10u32, 100, 1000];
    let rate_seconds = if args.quick { 1 } else { 3 };

    // Capture rates: one observer at a time, each against the same workload.
    let mut lifetime_rows: Rows = Vec::new();
    let mut rate_rows: Rows = Vec::new();
    let wants = |part: &str| args.only.iter().any(|p| p == part);
    for &observer in observers.iter().filter(|_| wants("capture")) {
        eprintln!("capture: {}", observer.label());
        let mon = start_observer(&task, observer, &monitor, pspy.as_deref(), "events", None)?;
        wait_until_observing(&mon, &app, observer)?;
        let mut rows = Vec::new();
        for &lifetime in &lifetimes {
            let marker = support::marker(&format!("life{lifetime}"));
            let start = mon.line_count();
            app.run_ok(&[
                "sh",
                "-c",
                &format!("{SETTLE} exec spawner {runs} {lifetime} 50 {marker}"),
            ])?;
            let seen = settle_and_count(&mon, &app, observer, start, &marker)?;
            rows.push((lifetime, runs, seen));
        }
        lifetime_rows.push((observer, rows));
        let mut rows = Vec::new();
        for &rate in &rates {
            let marker = support::marker(&format!("rate{rate}"));
            let start = mon.line_count();
            let out = app.run_ok(&[
                "sh",
                "-c",
                &format!("{SETTLE} exec actor rate {rate} {rate_seconds} {marker}"),
            ])?;
            let spawned: u32 = out.trim().parse().context("the actor's spawn count")?;
            let seen = settle_and_count(&mon, &app, observer, start, &marker)?;
            rows.push((rate, spawned, seen));
        }
        rate_rows.push((observer, rows));
        drop(mon);
    }

    if wants("capture") {
        print_capture(
            &lifetime_rows,
            &rate_rows,
            runs,
            rate_seconds,
            pspy.is_some(),
        );
    }
    if wants("latency") {
        latency(&task, &app, &monitor, args.quick)?;
    }
    if wants("resources") {
        resources(&task, &app, &monitor, args.quick)?;
    }
    if wants("idle") {
        let mut binaries = Vec::new();
        for spec in &args.idle_binaries {
            let (label, path) = spec
                .rsplit_once('=')
                .unwrap_or((spec.as_str(), spec.as_str()));
            let path =
                std::fs::canonicalize(path).with_context(|| format!("idle binary {path}"))?;
            binaries.push((label.to_string(), path));
        }
        if binaries.is_empty() {
            binaries.push(("tasksentry".to_string(), monitor.clone()));
        }
        let rounds = if args.quick {
            1
        } else {
            args.idle_rounds.max(1)
        };
        let fargate = support::CapSet::fargate_default();
        let arms: Vec<IdleArm> = binaries
            .into_iter()
            .flat_map(|(label, path)| {
                let root = IdleArm {
                    label: label.clone(),
                    path: path.clone(),
                    caps: None,
                };
                let limited = IdleArm {
                    label: format!("{label}, Fargate caps"),
                    path,
                    caps: Some(fargate),
                };
                match args.idle_caps.as_str() {
                    "root" => vec![root],
                    "fargate" => vec![limited],
                    _ => vec![root, limited],
                }
            })
            .collect();
        if args.idle_caps == "root" {
            idle(
                &task,
                &app,
                None,
                &arms,
                rounds,
                &args.idle_page_cache,
                args.quick,
            )?;
        } else {
            // A task of its own whose app image has `USER app`, as in tests/fargate_caps.rs.
            let user = support::User::new("app", 1000);
            let task_f = EmulatedTask::new()?;
            let app_f = task_f.add_container_with(
                "app",
                support::ContainerSpec::with_users(vec![user.clone()]).with_user(user.clone()),
            )?;
            app_f.install_program("sleeper")?;
            idle(
                &task_f,
                &app_f,
                Some(user.uid),
                &arms,
                rounds,
                &args.idle_page_cache,
                args.quick,
            )?;
        }
    }
    Ok(())
}

type Rows = Vec<(Observer, Vec<(u32, u32, usize)>)>;

/// Each capture workload starts as a shell that waits this long and then execs the workload,
/// so that in trace mode its parent is already held: the workload stands for a container's
/// processes, which descend from its entrypoint (seized once, on discovery), and not for a
/// process entering the container from outside (`docker exec`), whose first scan interval
/// is covered by polling only.
const SETTLE: &str = "sleep 0.3;";

fn print_capture(lifetime_rows: &Rows, rate_rows: &Rows, runs: u32, rate_seconds: u32, pspy: bool) {
    println!("## Exec capture by process lifetime\n");
    println!(
        "The static `spawner` runs `sleeper MS MARKER-i` {runs} times per lifetime, one at a \
         time, with random pauses of 0-50 ms so the runs fall at every phase of the scan \
         interval. A process counts as captured when the observer reported it with its own \
         command line (its `execve`, not only its fork). Each workload is a shell, started \
         in the app container from outside, that sleeps 0.3 s and then execs the workload \
         program: in trace mode the tracer holds it by then (procscan finds and seizes a new \
         process within one 100 ms scan), as it holds a container's entrypoint and so all its \
         descendants. A process that enters a container from outside (`ECS exec`) is only \
         polled until it is seized.\n"
    );
    print!("| lifetime |");
    for (observer, _) in lifetime_rows {
        print!(" {} |", observer.label());
    }
    println!();
    println!("|---|{}", "---|".repeat(lifetime_rows.len()));
    for (i, (lifetime, _, _)) in lifetime_rows[0].1.iter().enumerate() {
        print!("| {lifetime} ms |");
        for (_, rows) in lifetime_rows {
            let (_, spawned, seen) = rows[i];
            print!(" {seen}/{spawned} ({}) |", percent(seen, spawned));
        }
        println!();
    }
    if !pspy {
        println!("\npspy: not available in this run (set `PSPY` to its binary to add the column).");
    }
    println!("\n## Exec capture by spawn rate\n");
    println!(
        "`actor rate R {rate_seconds}` forks and execs `sleeper 1 MARKER-i` R times a second for \
         {rate_seconds} s without waiting for them (each lives about 1 ms). Spawned is what the \
         machine achieved.\n"
    );
    print!("| target rate | spawned |");
    for (observer, _) in rate_rows {
        print!(" {} |", observer.label());
    }
    println!();
    println!("|---|---|{}", "---|".repeat(rate_rows.len()));
    for (i, (rate, spawned, _)) in rate_rows[0].1.iter().enumerate() {
        print!("| {rate}/s | {spawned} |");
        for (_, rows) in rate_rows {
            let (_, spawned, seen) = rows[i];
            print!(" {seen}/{spawned} ({}) |", percent(seen, spawned));
        }
        println!();
    }
}

fn latency(
    task: &EmulatedTask,
    app: &Container,
    monitor: &std::path::Path,
    quick: bool,
) -> Result<()> {
    let samples: u32 = if quick { 10 } else { 50 };
    println!("\n## Alert latency\n");
    println!(
        "From a wall-clock timestamp the workload takes right before the action to the arrival \
         of the alert line naming it on the monitor's stdout ({samples} samples each, 100 ms \
         apart; monitor with default settings and `--emit alerts`).\n"
    );
    println!("| action | rule | mode | p50 (ms) | p99 (ms) | max (ms) | alerts/samples |");
    println!("|---|---|---|---|---|---|---|");
    for observer in [Observer::Poll, Observer::Trace] {
        let mon = start_observer(task, observer, monitor, None, "alerts", None)?;
        std::thread::sleep(Duration::from_millis(1500));
        for (action, label) in [
            ("exec", "shell started by a program"),
            ("file", "file created below /etc"),
        ] {
            let marker = support::marker(&format!("lat{action}"));
            let start = mon.line_count();
            let out = app.run_ok(&["actor", action, &samples.to_string(), "100", &marker])?;
            let mut sent = Vec::new();
            for line in out.lines() {
                let mut parts = line.split_whitespace();
                if let (Some(ns), Some(name)) = (parts.next(), parts.next()) {
                    sent.push((
                        ns.parse::<u128>().context("actor timestamp")?,
                        name.to_string(),
                    ));
                }
            }
            std::thread::sleep(Duration::from_secs(3));
            let lines = mon.lines_with_arrival();
            let mut latencies = Vec::new();
            let mut rule = String::new();
            for (sent_ns, name) in &sent {
                let found = lines[start..].iter().find_map(|(arrived, line)| {
                    let value: Value = serde_json::from_str(line).ok()?;
                    value.get("rule")?;
                    names_sample(line, name).then_some((*arrived, value))
                });
                if let Some((arrived, value)) = found {
                    let arrived_ns = arrived.duration_since(UNIX_EPOCH)?.as_nanos();
                    latencies.push(arrived_ns.saturating_sub(*sent_ns) as f64 / 1e6);
                    if rule.is_empty() {
                        rule = value["rule"].as_str().unwrap_or_default().to_string();
                    }
                }
            }
            latencies.sort_by(f64::total_cmp);
            let (p50, p99, max) = if latencies.is_empty() {
                ("-".into(), "-".into(), "-".into())
            } else {
                (
                    format!("{:.1}", quantile(&latencies, 0.50)),
                    format!("{:.1}", quantile(&latencies, 0.99)),
                    format!("{:.1}", latencies[latencies.len() - 1]),
                )
            };
            println!(
                "| {label} | {} | {} | {p50} | {p99} | {max} | {}/{} |",
                if rule.is_empty() { "(none)" } else { &rule },
                observer.label().trim_start_matches("TaskSentry "),
                latencies.len(),
                sent.len()
            );
        }
        drop(mon);
    }

    Ok(())
}

fn resources(
    task: &EmulatedTask,
    app: &Container,
    monitor: &std::path::Path,
    quick: bool,
) -> Result<()> {
    let window = Duration::from_secs(if quick { 5 } else { 20 });
    println!("\n## Monitor CPU and memory\n");
    println!(
        "The app container holds N long-lived processes and runs `actor rate R` (execs of a \
         1 ms program) during the window. CPU is utime + stime of the monitor's process tree \
         over {} s after a 3 s warm-up, as a share of one core; RSS is the sum of VmRSS at the \
         end, peak is VmHWM. Monitor with default settings and `--emit alerts`.\n",
        window.as_secs()
    );
    println!("| mode | processes | execs/s | CPU (% of one core) | RSS (MiB) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|");
    for processes in [100u32, 1000] {
        let holder = support::marker("idle");
        let mut idle = app.spawn(&[
            "sh",
            "-c",
            &format!(
                "i=0; while [ $i -lt {processes} ]; do sleeper 3600000 {holder} & i=$((i+1)); done; wait"
            ),
        ])?;
        std::thread::sleep(Duration::from_secs(2));
        for observer in [Observer::Poll, Observer::Trace] {
            for rate in [0u32, 10, 100] {
                let mon = start_observer(task, observer, monitor, None, "alerts", None)?;
                std::thread::sleep(Duration::from_secs(3));
                let mut load = if rate > 0 {
                    Some(app.spawn(&[
                        "actor",
                        "rate",
                        &rate.to_string(),
                        &(window.as_secs() + 2).to_string(),
                        &support::marker("load"),
                    ])?)
                } else {
                    None
                };
                let before = tree_cpu_ticks(mon.host_pid());
                let began = Instant::now();
                std::thread::sleep(window);
                let after = tree_cpu_ticks(mon.host_pid());
                let elapsed = began.elapsed().as_secs_f64();
                let (rss, hwm) = tree_memory_kib(mon.host_pid());
                if let Some(load) = load.as_mut() {
                    let _ = load.kill();
                }
                // SAFETY: sysconf only reads a configuration value.
                let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
                let cpu = 100.0 * after.saturating_sub(before) as f64 / hz / elapsed;
                println!(
                    "| {} | {processes} | {rate} | {cpu:.2} | {:.1} | {:.1} |",
                    observer.label().trim_start_matches("TaskSentry "),
                    rss as f64 / 1024.0,
                    hwm as f64 / 1024.0
                );
                drop(mon);
            }
        }
        let _ = idle.kill();
        app.run(&["sh", "-c", &format!("pkill -f {holder}; true")])?;
    }
    Ok(())
}

/// One idle measurement of a monitor: CPU per thread and memory of the supervisor and worker.
struct IdleSample {
    /// % of one core per thread name (the supervisor's threads as `supervisor`).
    threads: std::collections::BTreeMap<String, f64>,
    /// KiB: (VmRSS, RssAnon, Pss, RssFile) of the supervisor and of the worker.
    supervisor: (u64, u64, u64, u64),
    worker: (u64, u64, u64, u64),
}

/// On-CPU time in nanoseconds (`schedstat`'s first field, exact where the tick counts of
/// `stat` are 10 ms grains) per (pid, thread name) of a process tree.
fn thread_cpu_ns(root: i32) -> std::collections::BTreeMap<(i32, String), u64> {
    let mut out = std::collections::BTreeMap::new();
    for pid in tree(root) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(ns) = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            *out.entry((pid, comm.trim().to_string())).or_insert(0) += ns;
        }
    }
    out
}

/// Drops `path`'s clean, unmapped pages from the page cache; with `read`, then reads the file
/// whole from start to end.
fn set_page_cache(path: &std::path::Path, read: bool) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: posix_fadvise only advises the kernel about the page cache of this open file.
    let rc =
        unsafe { nix::libc::posix_fadvise(file.as_raw_fd(), 0, 0, nix::libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise {}: error {rc}", path.display());
    if read {
        std::io::copy(&mut &file, &mut std::io::sink())
            .with_context(|| format!("read {}", path.display()))?;
    }
    Ok(())
}

/// (VmRSS, RssAnon, Pss, RssFile) in KiB of one process.
fn process_memory_kib(pid: i32) -> (u64, u64, u64, u64) {
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (
        field(&status, "VmRSS:"),
        field(&status, "RssAnon:"),
        field(&rollup, "Pss:"),
        field(&status, "RssFile:"),
    )
}

/// One arm of the idle part: a binary, and the capabilities it runs with (`None`: all).
struct IdleArm {
    label: String,
    path: PathBuf,
    caps: Option<support::CapSet>,
}

/// The idle cost of each arm, side by side: the app container holds 100 sleeping processes
/// (run as `app_uid`, else root); each round starts every arm's binary in turn (rotating the
/// order) as the sidecar with default settings and the arm's capabilities, waits out the
/// start-up (25 s: the first memory trims run at 3 s and 20 s) and measures 30 s. Before it
/// starts, each binary is put in the page cache state `page_cache` names (`cold` or `read`,
/// see `--idle-page-cache`): how much of its code stays resident depends on it (on kernels
/// that keep a sequentially read file in large folios and map a faulting folio whole), so
/// every binary of a run starts from the same state.
fn idle(
    task: &EmulatedTask,
    app: &Container,
    app_uid: Option<u32>,
    arms: &[IdleArm],
    rounds: u32,
    page_cache: &str,
    quick: bool,
) -> Result<()> {
    let processes = 100;
    let warmup = Duration::from_secs(if quick { 22 } else { 25 });
    let window = Duration::from_secs(if quick { 5 } else { 30 });
    let holder = support::marker("idle");
    let script = format!(
        "i=0; while [ $i -lt {processes} ]; do sleeper 3600000 {holder} & i=$((i+1)); done; wait"
    );
    let mut sleepers = match app_uid {
        Some(uid) => app.spawn_as(uid, &["sh", "-c", &script])?,
        None => app.spawn(&["sh", "-c", &script])?,
    };
    std::thread::sleep(Duration::from_secs(2));
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut samples: Vec<Vec<IdleSample>> = arms.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds as usize {
        for offset in 0..arms.len() {
            let index = (round + offset) % arms.len();
            let IdleArm { label, path, caps } = &arms[index];
            set_page_cache(path, page_cache == "read")?;
            let mon = start_observer(task, Observer::Poll, path, None, "alerts", *caps)?;
            std::thread::sleep(warmup);
            let supervisor = mon.host_pid();
            let before = thread_cpu_ns(supervisor);
            let began = Instant::now();
            std::thread::sleep(window);
            let after = thread_cpu_ns(supervisor);
            let elapsed = began.elapsed().as_secs_f64();
            let worker = tree(supervisor).into_iter().find(|&p| p != supervisor);
            let mut threads = std::collections::BTreeMap::new();
            for ((pid, comm), ns) in &after {
                let delta =
                    ns.saturating_sub(before.get(&(*pid, comm.clone())).copied().unwrap_or(*ns));
                let name = if *pid == supervisor {
                    "supervisor".to_string()
                } else {
                    comm.clone()
                };
                *threads.entry(name).or_insert(0.0) += 100.0 * delta as f64 / 1e9 / elapsed;
            }
            let sample = IdleSample {
                threads,
                supervisor: process_memory_kib(supervisor),
                worker: worker.map(process_memory_kib).unwrap_or_default(),
            };
            eprintln!(
                "idle round {} {label}: cpu {:.3} % rss {:.1} MiB pss {:.1} MiB",
                round + 1,
                sample.threads.values().sum::<f64>(),
                (sample.supervisor.0 + sample.worker.0) as f64 / 1024.0,
                (sample.supervisor.2 + sample.worker.2) as f64 / 1024.0,
            );
            samples[index].push(sample);
            drop(mon);
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = sleepers.kill();
    app.run(&["sh", "-c", &format!("pkill -f {holder}; true")])?;

    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        quantile(&values, 0.5)
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n## Idle cost\n");
    println!(
        "The app container holds {processes} sleeping processes; the monitor runs with default \
         settings (poll mode, inotify triggers on, `--emit alerts`). CPU is the on-CPU time \
         (`schedstat`) of every thread of the supervisor and its worker over {} s after a {} s \
         start-up, as a share of one core; memory is read at the end of the window. Page cache: \
         `{page_cache}` (each binary {} before it starts). RSS (what `ps` and most dashboards show) \
         counts the pages both processes share twice; PSS splits them and is the two processes' \
         real footprint. {rounds} round(s), binaries alternating in rotating order; medians. \
         Target: at most 0.5 % of a core and 16 MiB RSS for both processes together.{} Load \
         average {} before, {} after.\n",
        window.as_secs(),
        warmup.as_secs(),
        if page_cache == "read" {
            "dropped from the page cache, then read whole"
        } else {
            "dropped from the page cache, so that its code comes in by the exec's faults"
        },
        match app_uid {
            Some(uid) => format!(
                " The app's processes run as uid {uid} (its image's `USER`); the arms marked \
                 \"Fargate caps\" run the monitor as root with exactly Fargate's default \
                 capabilities (Docker's default set: no `SYS_PTRACE`, no `DAC_READ_SEARCH`), \
                 the others with every capability."
            ),
            None => " The app's processes and the monitor run as root.".to_string(),
        },
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "| binary | CPU (% of one core) | RSS supervisor (MiB) | RSS worker (MiB) | RSS both (MiB) | PSS both (MiB) | anonymous (MiB) | file-backed (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (IdleArm { label, .. }, s) in arms.iter().zip(&samples) {
        println!(
            "| {label} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            median(s.iter().map(|x| x.threads.values().sum()).collect()),
            median(s.iter().map(|x| mib(x.supervisor.0)).collect()),
            median(s.iter().map(|x| mib(x.worker.0)).collect()),
            median(s.iter().map(|x| mib(x.supervisor.0 + x.worker.0)).collect()),
            median(s.iter().map(|x| mib(x.supervisor.2 + x.worker.2)).collect()),
            median(s.iter().map(|x| mib(x.supervisor.1 + x.worker.1)).collect()),
            median(s.iter().map(|x| mib(x.supervisor.3 + x.worker.3)).collect()),
        );
    }
    let names: BTreeSet<&String> = samples
        .iter()
        .flatten()
        .flat_map(|x| x.threads.keys())
        .collect();
    println!("\nCPU by thread (% of one core, median):\n");
    println!(
        "| thread | {} |",
        arms.iter()
            .map(|arm| arm.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(arms.len()));
    for name in names {
        let cells: Vec<String> = samples
            .iter()
            .map(|s| {
                format!(
                    "{:.3}",
                    median(
                        s.iter()
                            .map(|x| x.threads.get(name).copied().unwrap_or(0.0))
                            .collect()
                    )
                )
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// Starts an observer as the task's sidecar, with exactly the capabilities `caps` (`None`: all
/// of the caller's).
fn start_observer(
    task: &EmulatedTask,
    observer: Observer,
    monitor: &std::path::Path,
    pspy: Option<&std::path::Path>,
    emit: &str,
    caps: Option<support::CapSet>,
) -> Result<Monitor> {
    let mut spec = match observer {
        Observer::Poll | Observer::Trace => {
            let mode = if observer == Observer::Poll {
                "poll"
            } else {
                "trace"
            };
            let mut spec = MonitorSpec::new(&["run", "--emit", emit, "--mode", mode]);
            spec.program = Some(monitor.to_path_buf());
            spec.env.push(("RUST_LOG".into(), "warn".into()));
            spec
        }
        Observer::Pspy => {
            // pspy's defaults: print commands, scan every 100 ms plus inotify triggers.
            let mut spec = MonitorSpec::new(&["-p", "-i", "100", "-c=false"]);
            spec.program = pspy.map(std::path::Path::to_path_buf);
            spec
        }
    };
    spec.capabilities = caps;
    task.start_monitor_with(spec)
}

/// Whether `line` names the sample `name` (and not a longer one, such as `x-10` for `x-1`).
fn names_sample(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        !line[at + name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The distinct `MARKER-i` sample names an observer reported with their own command line
/// (`sleeper MS MARKER-i`), in lines from `start` on.
fn captured(mon: &Monitor, observer: Observer, start: usize, marker: &str) -> usize {
    let prefix = format!("{marker}-");
    let mut seen = BTreeSet::new();
    for line in &mon.lines_so_far()[start..] {
        match observer {
            Observer::Pspy => {
                // pspy: `... CMD: UID=0 PID=123 | sleeper 5 MARKER-7`.
                if let Some((_, command)) = line.split_once("| ") {
                    let words: Vec<&str> = command.split_whitespace().collect();
                    if words.first().is_some_and(|w| w.ends_with("sleeper")) {
                        if let Some(name) = words.iter().find(|w| w.starts_with(&prefix)) {
                            seen.insert((*name).to_string());
                        }
                    }
                }
            }
            Observer::Poll | Observer::Trace => {
                let Ok(event) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if event["evt"]["type"] != "execve" || event["proc"]["name"] != "sleeper" {
                    continue;
                }
                if let Some(args) = event["proc"]["args"].as_array() {
                    if let Some(name) = args
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|a| a.starts_with(&prefix))
                    {
                        seen.insert(name.to_string());
                    }
                }
            }
        }
    }
    seen.len()
}

/// Waits until a marker process started after the workload is reported (so the observer has
/// looked at everything before it), then counts.
fn settle_and_count(
    mon: &Monitor,
    app: &Container,
    observer: Observer,
    start: usize,
    marker: &str,
) -> Result<usize> {
    let end = support::marker("end");
    let mut end_process = app.spawn(&["sleeper", "3000", &format!("{end}-0")])?;
    // A backlog (a traced burst of 1,000 execs a second on a loaded machine) may take a while
    // to drain; the end marker comes after it.
    let deadline = Instant::now() + Duration::from_secs(90);
    while captured(mon, observer, start, &end) == 0 {
        if Instant::now() > deadline {
            let lines = mon.lines_so_far();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            let stderr = mon.stderr_so_far();
            let stderr_tail: String = stderr
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!(
                "{} did not report the end marker {end} within 90 s ({} lines after the workload)\nlast lines:\n{tail}\nstderr:\n{stderr_tail}",
                observer.label(),
                mon.line_count() - start
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = end_process.kill();
    Ok(captured(mon, observer, start, marker))
}

/// Repeats a probe until the observer reports one (its first scan may take what it finds as
/// already running).
fn wait_until_observing(mon: &Monitor, app: &Container, observer: Observer) -> Result<()> {
    for _ in 0..15 {
        let probe = support::marker("probe");
        let start = mon.line_count();
        let mut process = app.spawn(&["sleeper", "60000", &format!("{probe}-0")])?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = false;
        while Instant::now() < deadline && !seen {
            seen = captured(mon, observer, start, &probe) > 0;
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = process.kill();
        if seen {
            return Ok(());
        }
    }
    bail!("{} reported no probe process within 30 s", observer.label())
}

fn percent(seen: usize, of: u32) -> String {
    if of == 0 {
        return "-".into();
    }
    format!("{:.0} %", 100.0 * seen as f64 / f64::from(of))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The host pids of `root` and all its descendants.
fn tree(root: i32) -> Vec<i32> {
    let mut pids = vec![root];
    let mut next = 0;
    while next < pids.len() {
        let pid = pids[next];
        next += 1;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    pids
}

/// utime + stime (clock ticks) of a process tree.
fn tree_cpu_ticks(root: i32) -> u64 {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 and 15 of stat are utime and stime; `rest` starts at field 3.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// (sum of VmRSS, sum of VmHWM) in KiB of a process tree.
fn tree_memory_kib(root: i32) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for pid in tree(root) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss += value(line);
            } else if line.starts_with("VmHWM:") {
                hwm += value(line);
            }
        }
    }
    (rss, hwm)
}

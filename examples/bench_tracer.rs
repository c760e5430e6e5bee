//! Overhead benchmark of the tracer, run by `scripts/bench-tracer`.
//!
//! In an emulated Fargate task (the integration tests' harness, `tests/support`), each round
//! runs every workload once untraced (no monitor) and once traced (`tasksentry run --mode trace
//! --emit events` as the sidecar, the workload's shell seized before it starts), and prints
//! the median wall time of each and their ratio. Workloads: a fork-exec loop (the static
//! `spawner` running `sleeper 0` N times), a CPU-bound busybox shell loop (no forks), and an
//! I/O-bound run (`dd` through a pipe-free syscall loop to /dev/null, then a file written and
//! read back). Targets: under 15 % on the fork-exec loop, no measurable difference on the others.
//!
//! Needs root, like the integration tests. Example:
//! `bench_tracer --monitor target/release/tasksentry --rounds 5 --forks 1000 --emit events`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use support::{Container, EmulatedTask, MonitorSpec};

/// Overhead of the tracer on three workloads, traced vs untraced.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// Rounds (each runs every workload untraced, then traced).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Processes in the fork-exec loop.
    #[arg(long, default_value_t = 1000)]
    forks: u32,
    /// What the monitor emits: `events` (every event as a JSON line, the most work) or
    /// `alerts` (rule matches only, as deployed).
    #[arg(long, default_value = "events")]
    emit: String,
}

const GATE: &str = "while [ ! -e /go ]; do sleep 0.01; done; rm -f /go; ";

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

/// Runs `script` in `app` and returns the time from the gate opening to its exit. When
/// `traced`, the gate opens only once the tracer holds the shell.
fn timed(app: &Container, script: &str, traced: bool) -> Result<Duration> {
    let _ = std::fs::remove_file(app.host_path("go"));
    let mut shell = app.spawn(&["sh", "-c", &format!("{GATE}{script}")])?;
    if traced {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tracer_pid(shell.host_pid()).is_none_or(|t| t == 0) {
            if Instant::now() > deadline {
                bail!("the tracer did not seize the workload's shell");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::fs::write(app.host_path("go"), b"")?;
    let started = Instant::now();
    let status = shell.wait()?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("workload failed ({status}): {script}");
    }
    Ok(elapsed)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn run(args: Args) -> Result<bool> {
    let monitor = std::fs::canonicalize(&args.monitor)
        .with_context(|| format!("monitor binary {}", args.monitor.display()))?;
    let task = EmulatedTask::new()?;
    let app = task.add_container("app")?;
    app.install_program("sleeper")?;
    app.install_program("spawner")?;
    let workloads: Vec<(&str, String, Option<f64>)> = vec![
        (
            "fork-exec loop",
            format!("exec spawner {} 0 0 bench >/dev/null", args.forks),
            Some(1.15),
        ),
        (
            "CPU-bound",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done".to_string(),
            None,
        ),
        (
            "I/O-bound",
            "dd if=/dev/zero of=/dev/null bs=512 count=400000 2>/dev/null && \
             dd if=/dev/zero of=/io.bin bs=64k count=1600 2>/dev/null && \
             cat /io.bin >/dev/null && rm /io.bin"
                .to_string(),
            None,
        ),
    ];
    let mut untraced: Vec<Vec<Duration>> = vec![Vec::new(); workloads.len()];
    let mut traced: Vec<Vec<Duration>> = vec![Vec::new(); workloads.len()];
    for round in 0..args.rounds {
        for (i, (_, script, _)) in workloads.iter().enumerate() {
            untraced[i].push(timed(&app, script, false)?);
        }
        let mut spec = MonitorSpec::new(&["run", "--emit", &args.emit, "--mode", "trace"]);
        spec.program = Some(monitor.clone());
        let mut mon = task.start_monitor_with(spec)?;
        // Let the monitor finish starting (rules, first /proc scan) so that its start-up CPU
        // is not billed to the first traced workload.
        std::thread::sleep(Duration::from_millis(1500));
        for (i, (_, script, _)) in workloads.iter().enumerate() {
            traced[i].push(timed(&app, script, true)?);
        }
        let events = mon.line_count();
        mon.kill()?;
        eprintln!(
            "round {} done ({events} events from the traced runs)",
            round + 1
        );
    }
    println!(
        "{:<16} {:>14} {:>14} {:>8}",
        "workload", "untraced (ms)", "traced (ms)", "ratio"
    );
    let mut all_met = true;
    for (i, (name, _, target)) in workloads.iter().enumerate() {
        let u = median(&mut untraced[i]);
        let t = median(&mut traced[i]);
        let ratio = t.as_secs_f64() / u.as_secs_f64();
        let verdict = match target {
            Some(max) => {
                let met = ratio < *max;
                all_met &= met;
                format!(
                    "  target < {:.2}: {}",
                    max,
                    if met { "met" } else { "MISSED" }
                )
            }
            None => String::new(),
        };
        println!(
            "{:<16} {:>14.1} {:>14.1} {:>8.3}{verdict}",
            name,
            u.as_secs_f64() * 1000.0,
            t.as_secs_f64() * 1000.0,
            ratio
        );
    }
    println!(
        "(medians of {} rounds, monitor with --emit {}; each round runs every workload untraced, then traced)",
        args.rounds, args.emit
    );
    Ok(all_met)
}

//! Capture-rate benchmark of the procscan collector, run by `bench/capture`.
//!
//! In an emulated Fargate task (the integration tests' harness, `tests/support`), with the
//! monitor running as the sidecar (`tasksentry run --emit events`), a container runs the
//! static `sleeper` program living N ms, RUNS times for each N, spaced by random pauses so
//! that the runs fall at every phase of the scan interval. It then prints, per lifetime, how
//! many processes were spawned, how many were reported with their own command line (an
//! `execve` event for `sleeper N <marker>`), and how many were reported at all (any event for
//! a child of the spawner, even one caught between fork and exec or as a zombie). The
//! targets (at least 95 % at 20 ms, 60 % at 5 ms, counted with their own command line) are
//! checked and the exit code is 1 when one is missed.
//!
//! Needs root, like the integration tests. Example:
//! `bench_capture --monitor target/release/tasksentry --runs 100 --lifetimes 1,5,20,100`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::Value;
use support::{EmulatedTask, MonitorSpec};

/// Capture-rate benchmark of the procscan collector in an emulated Fargate task.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// Runs per lifetime.
    #[arg(long, default_value_t = 100)]
    runs: u32,
    /// Process lifetimes in milliseconds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20,100")]
    lifetimes: Vec<u32>,
    /// Longest random pause between two runs, in milliseconds.
    #[arg(long, default_value_t = 50)]
    max_gap_ms: u32,
    /// Extra arguments for `tasksentry run --emit events` (for example `--interval=50ms`).
    #[arg(long = "monitor-arg", allow_hyphen_values = true)]
    monitor_args: Vec<String>,
    /// Fill the app container's root with this many files (1 KiB each, 1,000 per directory)
    /// before the monitor starts, and print the image collector's pass summaries: with
    /// `--monitor-arg=--image-scan-delay=0s` its pass over them overlaps the runs (issue 19:
    /// capture while a 200,000-file root is inventoried); compare with
    /// `--monitor-arg=--image-scan=false`.
    #[arg(long, default_value_t = 0)]
    image_files: u32,
}

/// Capture targets: (lifetime in ms, minimum share reported with the own command line).
const TARGETS: [(u32, f64); 2] = [(20, 0.95), (5, 0.60)];

struct Row {
    lifetime: u32,
    spawned: u32,
    own_cmdline: usize,
    seen_at_all: usize,
    missed_reported: i64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench_capture: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let monitor = std::fs::canonicalize(&args.monitor)
        .with_context(|| format!("monitor binary {}", args.monitor.display()))?;
    let task = EmulatedTask::new()?;
    let app = task.add_container("app")?;
    app.install_program("sleeper")?;
    app.install_program("spawner")?;
    if args.image_files > 0 {
        let filler = vec![b'x'; 1024];
        for i in 0..args.image_files {
            let dir = app.host_path(&format!("/data/d{:04}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir_all(&dir).context("filler directory")?;
            }
            std::fs::write(dir.join(format!("f{i}.txt")), &filler).context("filler file")?;
        }
    }
    let mut monitor_args = vec!["run".to_string(), "--emit".into(), "events".into()];
    monitor_args.extend(args.monitor_args.iter().cloned());
    let mut spec = MonitorSpec::new(&monitor_args);
    spec.program = Some(monitor);
    let mon = task.start_monitor_with(spec)?;
    mon.wait_until_monitoring(&app, 0, Duration::from_secs(30))?;

    let mut rows = Vec::new();
    for &lifetime in &args.lifetimes {
        let marker = support::marker(&format!("cap{lifetime}"));
        let start = mon.line_count();
        let stdout = app.run_ok(&[
            "spawner",
            &args.runs.to_string(),
            &lifetime.to_string(),
            &args.max_gap_ms.to_string(),
            &marker,
        ])?;
        let spawner: i64 = stdout.trim().parse().context("the spawner's pid")?;
        // Once a later process is reported, the monitor has looked at everything before it.
        let end = support::marker("end");
        let mut end_process = app.spawn(&["sleeper", "3000", &end])?;
        mon.wait_for_after(
            start,
            |e| is_execve(e) && support::proc_args(e).iter().any(|a| a == &end),
            Duration::from_secs(10),
        )
        .map_err(|error| anyhow::anyhow!("the end marker was not reported: {error}"))?;
        std::thread::sleep(Duration::from_millis(300));
        let _ = end_process.kill();
        let events: Vec<Value> = mon.lines_so_far()[start..]
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let own: BTreeSet<String> = events
            .iter()
            .filter(|e| is_execve(e) && e["proc"]["name"] == "sleeper")
            .filter_map(|e| {
                let a = support::proc_args(e);
                (a.len() == 2 && a[0] == lifetime.to_string() && a[1].starts_with(&marker))
                    .then(|| a[1].clone())
            })
            .collect();
        let at_all: BTreeSet<i64> = events
            .iter()
            .filter(|e| e["proc"]["ppid"].as_i64() == Some(spawner))
            .filter_map(|e| e["proc"]["pid"].as_i64())
            .collect();
        let missed_reported = events
            .iter()
            .filter(|e| e["evt"]["type"] == "tasksentry")
            .filter(|e| e["internal"]["kind"] == "processes_missed")
            .map(|e| e["internal"]["count"].as_i64().unwrap_or(0))
            .sum();
        rows.push(Row {
            lifetime,
            spawned: args.runs,
            own_cmdline: own.len(),
            seen_at_all: at_all.len(),
            missed_reported,
        });
    }

    println!(
        "{:>9} {:>8} {:>17} {:>12} {:>16}",
        "lifetime", "spawned", "own cmdline", "seen at all", "missed reported"
    );
    let mut all_met = true;
    for row in &rows {
        let target = TARGETS.iter().find(|(ms, _)| *ms == row.lifetime);
        let verdict = match target {
            Some((_, share)) => {
                let met = row.own_cmdline as f64 >= share * f64::from(row.spawned);
                all_met &= met;
                format!(
                    "  target >= {:.0}%: {}",
                    share * 100.0,
                    if met { "met" } else { "MISSED" }
                )
            }
            None => String::new(),
        };
        println!(
            "{:>6} ms {:>8} {:>17} {:>12} {:>16}{verdict}",
            row.lifetime, row.spawned, row.own_cmdline, row.seen_at_all, row.missed_reported
        );
    }
    for line in mon.lines_so_far() {
        if line.contains("\"image_inventory\"") {
            let cut: String = line.chars().take(600).collect();
            println!("image pass: {cut}");
        }
    }
    if !mon.non_json_lines().is_empty() {
        bail!("the monitor printed lines that are not JSON objects");
    }
    Ok(all_met)
}

fn is_execve(event: &Value) -> bool {
    event["evt"]["type"] == "execve"
}

//! Learning a workload profile under a busy workload, live, run by `bench/learn` (issue 18).
//!
//! In an emulated Fargate task (the integration tests' harness, `tests/support`) whose ECS
//! metadata endpoint names its container `busy`, the monitor runs as the sidecar with `--learn`
//! while the container runs `busyload` (`tests/programs/busyload.c`), a paced workload: EXECS
//! programs a second spread over PROGRAMS distinct executables (hard links of one static binary
//! under `/opt/bench/`, each exiting at once), and CONNS TCP connections a second spread over
//! DESTINATIONS addresses, 198.18.0.1-5, 198.18.1.1-5, ... (RFC 2544's benchmarking range,
//! configured on the loopback of the task's network namespace, which this benchmark creates:
//! never a real address), each held open HOLD_MS, accepted by a listener in the same namespace.
//! `--no-learn` runs the same without learning: the baseline of the worker's RSS and CPU.
//!
//! Printed: the rates achieved (by the workload, and as learnt: the counts of the final
//! snapshot's entries), the worker's RSS (and peak) before and after, its CPU time, and per
//! snapshot the learner's memory (`learner_bytes` of the monitor's "Profile snapshot taken"
//! log), entries, overflow and the largest snapshot line (CloudWatch's event limit: 256 KiB);
//! per container of the final snapshot its entries, overflow and largest record.
//!
//! Needs root, like the integration tests. Example:
//! `bench_learn --monitor target/release/tasksentry --seconds 600`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use support::sidecar::{EcsMetadata, TASK_DOC};
use support::{EmulatedTask, MonitorSpec};

/// Profile learning under a busy workload, in an emulated Fargate task.
#[derive(Debug, Parser)]
struct Args {
    /// The monitor binary (a release build gives meaningful numbers).
    #[arg(long, default_value = "target/release/tasksentry")]
    monitor: PathBuf,
    /// How long the workload runs (and the monitor learns), in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Programs started per second.
    #[arg(long, default_value_t = 1000)]
    execs: u32,
    /// Distinct programs.
    #[arg(long, default_value_t = 200)]
    programs: u32,
    /// TCP connections per second.
    #[arg(long, default_value_t = 500)]
    conns: u32,
    /// Distinct destination addresses (at most 1,275).
    #[arg(long, default_value_t = 50)]
    destinations: u32,
    /// The monitor's collection mode (`trace` sees every exec; `poll` only the processes that
    /// live long enough to be scanned).
    #[arg(long, default_value = "trace")]
    mode: String,
    /// Time between two snapshots while learning.
    #[arg(long, default_value = "60s")]
    learn_interval: String,
    /// How long each connection stays open, in milliseconds (a connection closed at once is
    /// gone before a scan of the socket tables sees it).
    #[arg(long, default_value_t = 1000)]
    hold_ms: u32,
    /// Run the same workload without `--learn` (the baseline of the worker's RSS and CPU).
    #[arg(long)]
    no_learn: bool,
    /// Seconds between two samples of the worker's RSS.
    #[arg(long, default_value_t = 60)]
    sample_seconds: u64,
}

const PORT: u16 = 8443;
const CONTAINER: &str = "busy";
const PROGRAM_FORMAT: &str = "/opt/bench/programs/p%03d/worker";
const READY_RULE: &str = r#"- rule: Bench ready
  desc: The benchmark's probe process (the monitor sees the container).
  condition: evt.type = execve and proc.name = "bench-ready"
  output: ready (container=%container.name)
  priority: NOTICE
"#;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_learn: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn rss_kib(pid: i32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse()?;
    let sticks: u64 = fields.get(12).context("stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks + sticks) as f64 / hz)
}

fn arg<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event["evt"]["args"]
        .as_array()?
        .iter()
        .find(|a| a[0] == name)?
        .get(1)?
        .as_str()
}

fn run(args: Args) -> Result<()> {
    if args.destinations == 0 || args.destinations > 1275 || args.programs == 0 {
        bail!("--destinations must be 1..=1275 and --programs at least 1");
    }
    let monitor = std::fs::canonicalize(&args.monitor)
        .with_context(|| format!("monitor binary {}", args.monitor.display()))?;
    let task = EmulatedTask::new()?;
    let busy = task.add_container(CONTAINER)?;
    let busyload = busy.install_program("busyload")?;
    let binary = busy.host_path(&busyload);
    for n in 0..args.programs {
        let path = busy.host_path(&format!("/opt/bench/programs/p{n:03}/worker"));
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::hard_link(&binary, &path)?;
    }
    std::fs::hard_link(&binary, busy.host_path("/opt/bench/bench-ready"))?;
    // The destinations' networks, in the task's namespace only.
    for net in 0..args.destinations.div_ceil(5) {
        let status = task
            .netns_command("ip")
            .args(["addr", "add", &format!("198.18.{net}.1/24"), "dev", "lo"])
            .status()?;
        if !status.success() {
            bail!("ip addr add 198.18.{net}.1/24 in the task's namespace failed");
        }
    }
    let mut listener = task
        .netns_command(&binary)
        .args(["listen", &PORT.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("the listener")?;

    let mut doc: Value = serde_json::from_str(TASK_DOC)?;
    doc["TaskARN"] = json!(format!(
        "arn:aws:ecs:eu-west-1:111122223333:task/bench/{}",
        task.task_id()
    ));
    let mut entry = doc["Containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["Name"] == "app"))
        .context("the test document's app")?
        .clone();
    entry["Name"] = json!(CONTAINER);
    entry["DockerName"] = json!(CONTAINER);
    entry["DockerId"] = json!(busy.id());
    entry["Labels"]["com.amazonaws.ecs.container-name"] = json!(CONTAINER);
    doc["Containers"] = json!([entry]);
    let metadata = EcsMetadata::start(&task, &doc.to_string());
    let rules = task.dir().join("bench-ready.yaml");
    std::fs::write(&rules, READY_RULE)?;

    let mut monitor_args = vec![
        "run".to_owned(),
        "--mode".into(),
        args.mode.clone(),
        "--rules".into(),
        rules.to_str().context("path")?.to_owned(),
        "--log-format".into(),
        "json".into(),
    ];
    if !args.no_learn {
        monitor_args.extend([
            "--learn".into(),
            "24h".into(),
            "--learn-interval".into(),
            args.learn_interval.clone(),
        ]);
    }
    let mut spec = MonitorSpec::new(&monitor_args).with_ecs_metadata(&metadata);
    spec.program = Some(monitor);
    let mut mon = task.start_monitor_with(spec)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // From a shell that waits first, so that the tracer holds it before the probe starts
        // (a process entering the container from outside is only polled until then).
        busy.run(&["/bin/sh", "-c", "sleep 0.5; /opt/bench/bench-ready"])?;
        if mon
            .wait_for(|a| a["rule"] == "Bench ready", Duration::from_secs(1))
            .is_ok()
        {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the monitor never saw the container:\n{}",
                mon.stderr_so_far()
            );
        }
    }
    let worker = mon.worker_host_pid();
    // Settle, then measure the worker before the load.
    std::thread::sleep(Duration::from_secs(2));
    let (rss_before, _) = rss_kib(worker)?;
    let cpu_before = cpu_seconds(worker)?;
    eprintln!(
        "bench_learn: {} s of {} execs/s over {} programs and {} conns/s to {} destinations, \
         mode {}",
        args.seconds, args.execs, args.programs, args.conns, args.destinations, args.mode
    );
    let command = format!(
        "{busyload} run {} {} {PROGRAM_FORMAT} {} {} {PORT} {} {} > /tmp/busyload.out",
        args.seconds, args.execs, args.programs, args.conns, args.destinations, args.hold_ms
    );
    let started = Instant::now();
    let mut workload = busy.spawn(&["/bin/sh", "-c", &command])?;
    let mut samples = vec![(0u64, rss_before)];
    let mut next_sample = args.sample_seconds.max(1);
    while workload.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_millis(200));
        let elapsed = started.elapsed().as_secs();
        if elapsed >= next_sample {
            samples.push((elapsed, rss_kib(worker)?.0));
            next_sample += args.sample_seconds.max(1);
        }
    }
    let report = std::fs::read_to_string(busy.host_path("/tmp/busyload.out"))?;
    let numbers: BTreeMap<&str, f64> = report
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| Some((pair[0], pair.get(1)?.parse().ok()?)))
        .collect();
    let workload_seconds = *numbers.get("seconds").context(report.clone())?;
    // Let the collectors catch up, then measure the worker after the load.
    std::thread::sleep(Duration::from_secs(2));
    let (rss_after, hwm_after) = rss_kib(worker)?;
    let cpu_after = cpu_seconds(worker)?;
    mon.terminate()?;
    mon.wait_exit(Duration::from_secs(60))?;
    let _ = listener.kill();
    let _ = listener.wait();

    // The snapshots: the monitor's logs of them, and the last one's records.
    let logs: Vec<Value> = mon
        .stderr_so_far()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "Profile snapshot taken.")
        .collect();
    let parts: Vec<(String, Value)> = mon
        .lines_so_far()
        .iter()
        .filter(|l| l.contains("\"profile_snapshot\""))
        .filter_map(|l| Some((l.clone(), serde_json::from_str::<Value>(l).ok()?)))
        .collect();
    let last_id = parts
        .iter()
        .filter_map(|(_, v)| arg(v, "snapshot"))
        .max_by_key(|id| {
            id.rsplit_once('.')
                .and_then(|(_, seq)| seq.parse::<u64>().ok())
        })
        .unwrap_or_default()
        .to_owned();
    if last_id.is_empty() && !args.no_learn {
        bail!("no profile snapshot on stdout");
    }

    println!(
        "{} a busy workload: {} s, mode {}, {} programs, {} destinations (tcp/{PORT}), \
         connections held {} ms",
        if args.no_learn {
            "not learning"
        } else {
            "learning"
        },
        args.seconds,
        args.mode,
        args.programs,
        args.destinations,
        args.hold_ms
    );
    println!();
    println!("| figure | target | achieved |");
    println!("|---|---:|---:|");
    let rate = |name: &str| numbers.get(name).copied().unwrap_or(0.0) / workload_seconds;
    println!(
        "| execs/s started by the workload | {} | {:.0} (failed forks: {:.0}) |",
        args.execs,
        rate("execs"),
        numbers.get("failed_execs").copied().unwrap_or(0.0)
    );
    println!(
        "| connections/s made by the workload | {} | {:.0} (failed: {:.0}) |",
        args.conns,
        rate("conns"),
        numbers.get("failed_conns").copied().unwrap_or(0.0)
    );
    let mut learnt: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, value) in parts
        .iter()
        .filter(|(_, v)| arg(v, "snapshot") == Some(&last_id))
    {
        let Some(profile) = arg(value, "profile") else {
            continue;
        };
        let part: Value = serde_json::from_str(profile)?;
        for entry in part["profile"]["entries"].as_array().into_iter().flatten() {
            let kind = match entry["kind"].as_str() {
                Some("exec") => "exec",
                Some("connect") => "connect",
                _ => continue,
            };
            *learnt.entry(kind).or_default() += entry["n"].as_u64().unwrap_or(0);
        }
    }
    println!(
        "| execs/s learnt (final snapshot's exec counts / workload time) | | {:.0} |",
        learnt.get("exec").copied().unwrap_or(0) as f64 / workload_seconds
    );
    println!(
        "| connections/s learnt | | {:.0} |",
        learnt.get("connect").copied().unwrap_or(0) as f64 / workload_seconds
    );
    println!(
        "| worker RSS before → after (peak) | | {:.1} → {:.1} MiB ({:.1}) |",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    println!(
        "| worker CPU during the load | | {:.2} cores |",
        (cpu_after - cpu_before) / workload_seconds
    );
    println!(
        "| worker RSS over time (s: MiB) | | {} |",
        samples
            .iter()
            .map(|(t, kib)| format!("{t}: {:.1}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "| snapshot | reason | containers | entries | overflow | learner memory | parts | largest line (limit 256 KiB) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for log in &logs {
        let f = &log["fields"];
        println!(
            "| {} | {} | {} | {} | {} | {:.1} KiB | {} | {:.1} KiB |",
            f["seq"],
            f["reason"].as_str().unwrap_or("?"),
            f["containers"],
            f["entries"],
            f["overflow"],
            f["learner_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            f["parts"],
            f["largest_line_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    println!();
    println!(
        "| container (final snapshot {last_id}) | events learnt | entries | overflow | memory | records | largest record |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut containers: BTreeMap<String, (u64, u64, String, u64, usize, usize)> = BTreeMap::new();
    for (line, value) in parts
        .iter()
        .filter(|(_, v)| arg(v, "snapshot") == Some(&last_id))
    {
        let Some(profile) = arg(value, "profile") else {
            continue;
        };
        let part: Value = serde_json::from_str(profile)?;
        let p = &part["profile"];
        let row = containers
            .entry(p["container"].as_str().unwrap_or("?").to_owned())
            .or_default();
        row.0 = p["events"].as_u64().unwrap_or(0);
        row.1 += p["entries"].as_array().map_or(0, Vec::len) as u64;
        row.2 = p["overflow"].to_string();
        row.3 = p["memory_bytes"].as_u64().unwrap_or(0);
        row.4 += 1;
        row.5 = row.5.max(line.len());
    }
    for (name, (events, entries, overflow, memory, records, largest)) in &containers {
        println!(
            "| {name} | {events} | {entries} | {overflow} | {:.1} KiB | {records} | {:.1} KiB |",
            *memory as f64 / 1024.0,
            *largest as f64 / 1024.0
        );
    }
    Ok(())
}

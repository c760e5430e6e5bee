//! CloudWatch sink throughput into a local moto server over loopback, and how many PutLogEvents
//! calls it needs compared with the minimum the service limits allow.
//!
//! Run with `cargo bench --bench cloudwatch` (needs `scripts/moto-venv`; the support module
//! installs it when missing). Prints one line per scenario: records, bytes, seconds, records/s,
//! calls made, the lower bound `max(ceil(n / 10,000), ceil(bytes / 1,048,576))` (bytes counting
//! 26 per event) and the ratio of the two. Not a pass/fail test: the machine is shared.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use support::cloudwatch::{Moto, now_ms, padded_alert_message, settings};
use tasksentry::priority::Priority;
use tasksentry::sink::cloudwatch::batch::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
};
use tasksentry::sink::cloudwatch::{CloudWatchSink, Record};

async fn scenario(moto: &Moto, name: &str, n: u64, pad: impl Fn(u64) -> usize) {
    let group = format!("/bench/{name}");
    let mut config = settings(&moto.url(), &group);
    config.buffer_capacity = n as usize + 1;
    config.attempt_timeout = Duration::from_secs(60);
    let (handle, tx) = CloudWatchSink::start(config, "bench".into()).await.unwrap();
    let messages: Vec<String> = (0..n).map(|i| padded_alert_message(i, pad(i))).collect();
    let bytes: usize = messages
        .iter()
        .map(|m| m.len() + EVENT_OVERHEAD_BYTES)
        .sum();
    let base = now_ms() - 60_000;
    let started = Instant::now();
    for (i, message) in messages.into_iter().enumerate() {
        tx.send(Record {
            timestamp_ms: base + i as i64 / 10,
            priority: Priority::Warning,
            message,
        })
        .await
        .unwrap();
    }
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(600)).await;
    let seconds = started.elapsed().as_secs_f64();
    let minimum = (n as usize)
        .div_ceil(MAX_BATCH_EVENTS)
        .max(bytes.div_ceil(MAX_BATCH_BYTES));
    let calls = report.stats.put_calls;
    println!(
        "cloudwatch/{name}: {n} records, {bytes} bytes, {seconds:.2} s, {:.0} records/s, {calls} PutLogEvents calls, minimum {minimum}, ratio {:.3}, undelivered {}, dropped {}",
        n as f64 / seconds,
        calls as f64 / minimum as f64,
        report.undelivered,
        report.stats.dropped_total(),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let moto = Moto::start();
    runtime.block_on(async {
        // Small alerts (~290 B counted): 10,000 of them exceed 1 MiB, so the byte limit binds
        // (the event-count limit binds only for messages under ~78 bytes).
        scenario(&moto, "small", 100_000, |_| 0).await;
        // ~1.3 KiB alerts.
        scenario(&moto, "medium", 100_000, |_| 1_000).await;
        // Mixed sizes, 100 B to 4 KiB.
        scenario(&moto, "mixed", 100_000, |i| ((i * 7919) % 4_000) as usize).await;
    });
}

//! The CloudWatch sink through a fault-injecting proxy in front of a real moto server:
//! throttling (400 `ThrottlingException`), 500s, responses slower than the attempt timeout,
//! connections closed or reset without a response, and requests that take effect but lose
//! their response.
//!
//! The delivery contract these tests hold the sink to: **at least once**. A record is sent
//! again only when its call failed. A duplicate is therefore possible only when the service
//! applied a call whose response was lost (here: the proxy's `ForwardThenClose`); every other
//! fault happens before the request reaches moto, so apart from those calls delivery is exactly
//! once. The tests count the events in the lost-response calls and bound duplicates by it.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::cloudwatch::{
    Fault, FaultProxy, Moto, Plan, alert_message, client, dir_is_empty, now_ms,
    padded_alert_message, read_stream, seq_of, settings, wait_for,
};
use tasksentry::priority::Priority;
use tasksentry::sink::cloudwatch::{CloudWatchSink, Record};

/// Slow faults wait this long: longer than the sink's 5 s attempt timeout in tests.
const SLOW: Duration = Duration::from_secs(6);

fn count_seqs(events: &[(i64, String)]) -> HashMap<u64, u64> {
    let mut counts = HashMap::new();
    for (_, message) in events {
        *counts
            .entry(seq_of(message).expect("an alert"))
            .or_default() += 1;
    }
    counts
}

/// Queues the alerts numbered `range` (priority 4, stamped now) without waiting: the
/// sink's channel has room for them.
fn queue_alerts(tx: &tokio::sync::mpsc::Sender<Record>, range: std::ops::Range<u64>) {
    for n in range {
        tx.try_send(Record {
            timestamp_ms: now_ms(),
            priority: Priority::Warning,
            message: alert_message(n),
        })
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_through_every_fault_arrive_with_bounded_duplicates() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(
        moto.addr,
        Plan::Cycle(vec![
            Fault::Throttle,
            Fault::Pass,
            Fault::Error500,
            Fault::Slow,
            Fault::Pass,
            Fault::Close,
            Fault::Reset,
            Fault::Pass,
            Fault::ForwardThenClose,
            Fault::Throttle,
            Fault::Pass,
        ]),
        SLOW,
    )
    .await;
    let group = "/ecs/faults";
    let stream = "task-faults";
    let mut config = settings(&proxy.url(), group);
    config.batch_interval = Duration::from_millis(50);
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    let base = now_ms() - 120_000;
    for chunk in 0..20u64 {
        for i in 0..500u64 {
            let n = chunk * 500 + i;
            tx.send(Record {
                timestamp_ms: base + n as i64,
                priority: Priority::Warning,
                // About 1 KiB each: 10,000 records need at least 10 calls by the byte limit.
                message: padded_alert_message(n, 800),
            })
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(120)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.dropped_total(), 0, "{report:?}");

    for fault in [
        Fault::Throttle,
        Fault::Error500,
        Fault::Slow,
        Fault::Close,
        Fault::Reset,
        Fault::ForwardThenClose,
    ] {
        assert!(proxy.injected(fault) > 0, "{fault:?} was never injected");
    }
    assert!(report.stats.retries > 0);
    assert!(report.stats.put_ok >= 10, "{report:?}");

    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let counts = count_seqs(&events);
    let missing: Vec<u64> = (0..10_000).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost records: {missing:?}");
    assert_eq!(counts.len(), 10_000, "only records that were sent");
    let duplicates: u64 = counts.values().map(|c| c - 1).sum();
    let allowed = proxy
        .counters
        .events_forwarded_then_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "puts through proxy: {}, faults injected: {:?}, duplicates: {duplicates} (allowed {allowed}), sink retries: {}",
        proxy
            .counters
            .puts
            .load(std::sync::atomic::Ordering::Relaxed),
        proxy.counters.faults,
        report.stats.retries
    );
    assert!(
        duplicates <= allowed,
        "{duplicates} duplicates, but only {allowed} events had their response lost after moto applied them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_5000_buffered_records_once_the_endpoint_recovers() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Plan::Always(Fault::Error500), SLOW).await;
    let group = "/ecs/shutdown";
    let stream = "task-shutdown";
    let (handle, tx) = CloudWatchSink::start(settings(&proxy.url(), group), stream.to_owned())
        .await
        .unwrap();
    let base = now_ms() - 60_000;
    for n in 0..5_000u64 {
        tx.try_send(Record {
            timestamp_ms: base + n as i64,
            priority: Priority::Error,
            message: alert_message(n),
        })
        .expect("the channel takes the records without waiting");
    }
    drop(tx);
    // Wait until the sink has tried and failed: the records are buffered, not delivered.
    assert!(
        wait_for(Duration::from_secs(30), || {
            proxy.injected(Fault::Error500) >= 3 && handle.stats().received_by_priority[3] == 5_000
        })
        .await
    );
    assert_eq!(handle.stats().delivered, 0);
    let recover = {
        let state = std::sync::Arc::new(proxy);
        let proxy = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            proxy.set_plan(Plan::Always(Fault::Pass));
        });
        state
    };
    let deadline = Duration::from_secs(20);
    let started = Instant::now();
    let report = handle.shutdown(deadline).await;
    let took = started.elapsed();
    assert!(took < deadline, "shutdown took {took:?}");
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert!(!report.deadline_reached);
    assert_eq!(report.stats.delivered, 5_000);
    let cw = client(&moto.url()).await;
    let counts = count_seqs(&read_stream(&cw, group, stream).await);
    assert_eq!(counts.len(), 5_000);
    assert!(
        counts.values().all(|c| *c == 1),
        "no lost responses here, so exactly once"
    );
    drop(recover);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_hanging_when_the_shutdown_starts_does_not_use_up_the_flush() {
    let moto = Moto::start();
    // The first call (creating the group) hangs longer than the whole flush; every later call
    // passes: a dead connection while the service itself is fine.
    let proxy = FaultProxy::start(
        moto.addr,
        Plan::Script(vec![Fault::Slow]),
        Duration::from_secs(30),
    )
    .await;
    let group = "/ecs/hung";
    let stream = "s";
    let mut config = settings(&proxy.url(), group);
    // Longer than the flush: only the shutdown can cut the hanging call short.
    config.attempt_timeout = Duration::from_secs(20);
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    queue_alerts(&tx, 0..500);
    drop(tx);
    assert!(
        wait_for(Duration::from_secs(30), || {
            proxy.injected(Fault::Slow) == 1 && handle.stats().received_by_priority[4] == 500
        })
        .await,
        "the first call is in flight, hanging"
    );
    let deadline = Duration::from_secs(8);
    let started = Instant::now();
    let report = handle.shutdown(deadline).await;
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.delivered, 500);
    let cw = client(&moto.url()).await;
    assert_eq!(
        count_seqs(&read_stream(&cw, group, stream).await).len(),
        500
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_reports_what_could_not_be_delivered() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Plan::Always(Fault::Throttle), SLOW).await;
    let (handle, tx) = CloudWatchSink::start(settings(&proxy.url(), "/ecs/dead"), "s".into())
        .await
        .unwrap();
    queue_alerts(&tx, 0..300);
    drop(tx);
    let started = Instant::now();
    let report = handle.shutdown(Duration::from_secs(2)).await;
    // The deadline plus at most the one-second grace for an attempt in flight.
    assert!(started.elapsed() < Duration::from_millis(3500));
    assert!(report.deadline_reached);
    assert_eq!(report.undelivered, 300, "{report:?}");
    assert_eq!(report.stats.delivered, 0);
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_directory_absorbs_an_outage_and_is_emptied_after_delivery() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Plan::Always(Fault::Close), SLOW).await;
    let spill = tempfile::tempdir().unwrap();
    let group = "/ecs/spill";
    let stream = "task-spill";
    let mut config = settings(&proxy.url(), group);
    config.buffer_capacity = 100;
    config.spill_dir = Some(spill.path().to_owned());
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    let base = now_ms() - 60_000;
    for n in 0..2_000u64 {
        tx.send(Record {
            timestamp_ms: base + n as i64,
            priority: Priority::Informational,
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(30), || handle.stats().spilled >= 1_800).await,
        "{:?}",
        handle.stats()
    );
    assert!(!dir_is_empty(spill.path()));
    proxy.set_plan(Plan::Always(Fault::Pass));
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.dropped_total(), 0);
    assert!(
        dir_is_empty(spill.path()),
        "delivered spill files are deleted"
    );
    let cw = client(&moto.url()).await;
    let seqs: Vec<u64> = read_stream(&cw, group, stream)
        .await
        .iter()
        .filter_map(|(_, m)| seq_of(m))
        .collect();
    assert_eq!(seqs, (0..2_000).collect::<Vec<_>>(), "in order, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_full_the_least_severe_are_dropped_counted_and_reported() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Plan::Always(Fault::Error500), SLOW).await;
    let group = "/ecs/drops";
    let stream = "task-drops";
    let mut config = settings(&proxy.url(), group);
    config.buffer_capacity = 100;
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    // 250 debug records, then 50 critical ones. Memory holds 100 and the stuck sender at most
    // one batch of 100 more, so at least 100 must go: debug ones, never critical ones.
    for n in 0..300u64 {
        tx.send(Record {
            timestamp_ms: now_ms(),
            priority: if n < 250 {
                Priority::Debug
            } else {
                Priority::Critical
            },
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(30), || handle
            .stats()
            .dropped_by_priority[7]
            > 0)
        .await
    );
    proxy.set_plan(Plan::Always(Fault::Pass));
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(20)).await;
    assert_eq!(report.undelivered, 0);
    let dropped = report.stats.dropped_by_priority;
    assert_eq!(
        dropped[2], 0,
        "no critical record is dropped while debug ones remain"
    );
    assert!(dropped[7] >= 100, "{dropped:?}");
    assert_eq!(report.stats.drop_reports, 1);

    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let seqs: Vec<u64> = events.iter().filter_map(|(_, m)| seq_of(m)).collect();
    assert!(
        (250..300).all(|n| seqs.contains(&n)),
        "every critical record delivered"
    );
    assert_eq!(
        seqs.len() as u64 + dropped[7],
        300,
        "delivered + counted drops = sent"
    );
    let reports: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|(_, m)| serde_json::from_str::<serde_json::Value>(m).ok())
        .filter(|v| v["tasksentry"]["kind"] == "alerts_dropped")
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0]["tasksentry"]["dropped_by_priority"]["debug"],
        dropped[7]
    );
    assert!(
        reports[0]["output"]
            .as_str()
            .unwrap()
            .starts_with(&format!("tasksentry dropped {} alerts", dropped[7])),
        "{}",
        reports[0]["output"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_keeps_the_batch_and_invalid_parameter_drops_it_with_a_report() {
    let moto = Moto::start();
    // The first put is refused as invalid, the next two as access denied; everything else
    // passes.
    let proxy = FaultProxy::start(
        moto.addr,
        Plan::PutScript(vec![Fault::Invalid, Fault::Denied, Fault::Denied]),
        SLOW,
    )
    .await;
    let group = "/ecs/refused";
    let stream = "task-refused";
    let (handle, tx) = CloudWatchSink::start(settings(&proxy.url(), group), stream.to_owned())
        .await
        .unwrap();
    queue_alerts(&tx, 0..10);
    assert!(
        wait_for(Duration::from_secs(30), || handle.stats().dropped_invalid
            > 0)
        .await
    );
    queue_alerts(&tx, 10..15);
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(20)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.auth_errors, 2, "{report:?}");
    // The first batch taken (the oldest records: usually all of the first 10, fewer if a
    // flush tick came in the middle of sending them) is the one refused as invalid.
    let invalid = report.stats.dropped_invalid;
    assert!((1..=10).contains(&invalid), "{report:?}");
    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let seqs: Vec<u64> = events.iter().filter_map(|(_, m)| seq_of(m)).collect();
    assert_eq!(
        seqs,
        (invalid..15).collect::<Vec<_>>(),
        "everything but the invalid batch, kept through the denials"
    );
    let report_record = events
        .iter()
        .find(|(_, m)| m.contains("alerts_dropped"))
        .expect("a drop report");
    let expected = format!(
        "tasksentry dropped {invalid} alerts: {invalid} in batches CloudWatch refused as invalid"
    );
    assert!(report_record.1.contains(&expected), "{}", report_record.1);
}

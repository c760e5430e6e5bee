//! The CloudWatch sink against a real moto server: records arrive in the right group and stream,
//! in order, with their JSON intact; a group deleted while running is re-created; heartbeats are
//! valid EMF in the same stream; the group gets its retention.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use support::cloudwatch::{
    Moto, alert_message, client, now_ms, read_stream, seq_of, settings, wait_for,
};
use tasksentry::priority::Priority;
use tasksentry::sink::cloudwatch::emf::validate_emf;
use tasksentry::sink::cloudwatch::{CloudWatchSink, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_order_in_the_right_group_and_stream_with_json_intact() {
    let moto = Moto::start();
    let group = "/ecs/tasksentry-test";
    let stream = "task-0123456789abcdef";
    let mut config = settings(&moto.url(), group);
    config.retention_days = Some(7);
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    let base = now_ms() - 60_000;
    let mut sent = Vec::new();
    for n in 0..2_000u64 {
        let message = alert_message(n);
        sent.push(message.clone());
        tx.send(Record {
            timestamp_ms: base + n as i64,
            priority: Priority::from_level((n % 8) as u8).unwrap(),
            message,
        })
        .await
        .unwrap();
    }
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.stats.delivered, 2_000);
    assert_eq!(report.stats.dropped_total(), 0);

    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let messages: Vec<String> = events.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(messages, sent, "every record, in order, byte for byte");
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(events[0].0, base);

    let groups = cw
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap();
    let created = groups.log_groups().first().expect("group created");
    assert_eq!(created.log_group_name(), Some(group));
    assert_eq!(created.retention_in_days(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_while_running_is_recreated_and_delivery_continues() {
    let moto = Moto::start();
    let group = "/ecs/recreate";
    let stream = "s1";
    let (handle, tx) = CloudWatchSink::start(settings(&moto.url(), group), stream.to_owned())
        .await
        .unwrap();
    let base = now_ms();
    for n in 0..100u64 {
        tx.send(Record {
            timestamp_ms: base,
            priority: Priority::Warning,
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(30), || handle.stats().delivered == 100).await,
        "first records delivered: {:?}",
        handle.stats()
    );
    let cw = client(&moto.url()).await;
    cw.delete_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap();
    for n in 100..200u64 {
        tx.send(Record {
            timestamp_ms: base + 1,
            priority: Priority::Warning,
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert!(report.stats.recreated >= 1, "{report:?}");
    assert_eq!(report.stats.delivered, 200);
    let seqs: Vec<u64> = read_stream(&cw, group, stream)
        .await
        .iter()
        .filter_map(|(_, m)| seq_of(m))
        .collect();
    assert_eq!(
        seqs,
        (100..200).collect::<Vec<_>>(),
        "the re-created group holds everything sent after the deletion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_valid_emf_in_the_same_stream() {
    let moto = Moto::start();
    let group = "/ecs/heartbeat";
    let stream = "hb";
    let mut config = settings(&moto.url(), group);
    config.heartbeat_interval = Duration::from_millis(300);
    config.cluster = "prod".into();
    config.task_family = "orders-api".into();
    config
        .telemetry
        .events
        .store(4242, std::sync::atomic::Ordering::Relaxed);
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    tx.send(Record {
        timestamp_ms: now_ms(),
        priority: Priority::Alert,
        message: alert_message(1),
    })
    .await
    .unwrap();
    assert!(wait_for(Duration::from_secs(30), || handle.stats().heartbeats >= 2).await);
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.undelivered, 0);
    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let heartbeats: Vec<&String> = events
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.contains("\"_aws\""))
        .collect();
    assert!(heartbeats.len() >= 2, "{events:?}");
    let mut alerts_seen = HashSet::new();
    for heartbeat in &heartbeats {
        validate_emf(heartbeat).unwrap();
        let value: serde_json::Value = serde_json::from_str(heartbeat).unwrap();
        assert_eq!(value["cluster"], "prod");
        assert_eq!(value["task_family"], "orders-api");
        assert_eq!(value["EventsProcessed"], 4242);
        assert!(value["MonitorRssBytes"].as_u64().unwrap() > 0);
        alerts_seen.insert(value["AlertsAlert"].as_u64().unwrap());
    }
    assert!(alerts_seen.contains(&1), "the alert is counted by priority");
}

/// (Which priorities reach CloudWatch is decided where the engine hands records to the
/// CloudWatch output, once: `engine::tests::an_output_takes_only_records_at_or_above_its_minimum`
/// has the filtering half of what this test asserted when the sink filtered too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_timestamps_are_clamped_not_lost() {
    let moto = Moto::start();
    let group = "/ecs/filter";
    let stream = "f";
    let config = settings(&moto.url(), group);
    let (handle, tx) = CloudWatchSink::start(config, stream.to_owned())
        .await
        .unwrap();
    let now = now_ms();
    let old = now - 20 * 24 * 3600 * 1000;
    for (n, priority, ts) in [
        (1u64, Priority::Warning, now),
        (3, Priority::Emergency, old),
    ] {
        tx.send(Record {
            timestamp_ms: ts,
            priority,
            message: alert_message(n),
        })
        .await
        .unwrap();
    }
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.stats.timestamps_clamped, 1);
    assert_eq!(report.stats.rejected_by_service, 0);
    let cw = client(&moto.url()).await;
    let events = read_stream(&cw, group, stream).await;
    let seqs: HashSet<u64> = events.iter().filter_map(|(_, m)| seq_of(m)).collect();
    assert_eq!(seqs, HashSet::from([1, 3]));
    let clamped = events.iter().find(|(_, m)| seq_of(m) == Some(3)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&clamped.1).unwrap();
    assert_eq!(value["tasksentry_original_timestamp_ms"], old);
    assert!(clamped.0 >= now);
}

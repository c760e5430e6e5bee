//! The alert stage through the real engine loop, with synthetic events: aggregation counts add
//! up exactly, budgets never lose an occurrence uncounted, every output gets the same redacted
//! alert and only at or above its minimum priority, and a rules reload swaps the rule set
//! between events, keeping the old one when the new one is broken.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::rules::internal_rules_and;
use tasksentry::alert::AlertSettings;
use tasksentry::alert::budget::BudgetConfig;
use tasksentry::alert::chain::EmitAlerts;
use tasksentry::engine::{Control, OutputPort, Processor, Record, run_engine};
use tasksentry::event::{Collector, Container, Event, EventType, Process, Timestamp};
use tasksentry::priority::Priority;
use tasksentry::rules::{LoadOptions, RuleSet};
use tasksentry::telemetry::Telemetry;
use tokio::sync::mpsc;

const MINER_RULE: &str = r#"
- rule: Miner
  desc: test
  condition: evt.type = execve and proc.name = xmrig
  output: miner started (command=%proc.cmdline pid=%proc.pid container=%container.id)
  priority: CRITICAL
- rule: Noisy notice
  desc: test
  condition: evt.type = execve and proc.name = chatty
  output: chatty (command=%proc.cmdline)
  priority: NOTICE
"#;

/// The given rules plus the embedded internal rules (visibility, suppression, reload).
fn ruleset(text: &str) -> Result<RuleSet, String> {
    let sources = internal_rules_and("test.yaml", text);
    let outcome = tasksentry::rules::load(&sources, &LoadOptions::default());
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    match outcome.ruleset {
        Some(set) if errors.is_empty() => Ok(set),
        _ => Err(errors.join("\n")),
    }
}

fn exec(name: &str, args: &[&str], pid: i32, time: Timestamp) -> Event {
    let mut event = Event::new(EventType::Execve, Collector::Procscan);
    event.evt.time = time;
    event.proc = Some(Box::new(Process {
        pid,
        ppid: 1,
        name: name.into(),
        exepath: Some(format!("/usr/local/bin/{name}")),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Process::default()
    }));
    event.container = Some(Box::new(Container {
        id: "0123456789ab".into(),
        name: Some("app".into()),
        ..Container::default()
    }));
    event
}

/// Runs the real engine loop over `events` with the given outputs' minimum priorities;
/// returns each output's alerts.
fn run(
    processor: Box<dyn Processor>,
    events: Vec<Event>,
    mins: &[Priority],
    controls: Vec<Control>,
) -> Vec<Vec<Value>> {
    let (event_tx, event_rx) = sync_channel(events.len() + 16);
    let (control_tx, control_rx) = channel();
    for control in controls {
        control_tx.send(control).expect("control");
    }
    let mut outputs = Vec::new();
    let mut receivers = Vec::new();
    for (i, min) in mins.iter().enumerate() {
        let (tx, rx) = mpsc::channel(200_000);
        outputs.push(OutputPort {
            name: if i == 0 { "stdout" } else { "other" },
            min_priority: *min,
            tx,
        });
        receivers.push(rx);
    }
    for event in events {
        event_tx.send(event).expect("room");
    }
    drop(event_tx);
    run_engine(
        event_rx,
        processor,
        outputs,
        control_rx,
        Arc::new(AtomicBool::new(false)),
        Arc::new(Telemetry::default()),
    );
    receivers
        .into_iter()
        .map(|mut rx| {
            let mut alerts = Vec::new();
            while let Ok(record) = rx.try_recv() {
                alerts.push(serde_json::from_str(&record.line).expect("JSON alert"));
            }
            alerts
        })
        .collect()
}

fn count_of(alert: &Value) -> u64 {
    alert["tasksentry"]["count"].as_u64().expect("a count")
}

#[test]
fn ten_thousand_repeats_give_one_alert_and_summaries_that_add_up_to_ten_thousand() {
    let settings = AlertSettings {
        aggregation_window: Duration::from_secs(2),
        ..AlertSettings::default()
    };
    let processor =
        EmitAlerts::with_settings(ruleset(MINER_RULE).expect("valid"), "h".into(), settings);
    // 10,000 executions one millisecond apart: ten seconds, five windows.
    let start = Timestamp::now().0;
    let events: Vec<Event> = (0..10_000u64)
        .map(|i| {
            exec(
                "xmrig",
                &["-o", "pool.example:3333"],
                1000 + i32::try_from(i % 30_000).expect("small"),
                Timestamp(start + i * 1_000_000),
            )
        })
        .collect();
    let outputs = run(Box::new(processor), events, &[Priority::Debug], Vec::new());
    let alerts: Vec<&Value> = outputs[0].iter().filter(|a| a["rule"] == "Miner").collect();
    let firsts: Vec<&&Value> = alerts
        .iter()
        .filter(|a| a["tasksentry"]["summary"] == false)
        .collect();
    assert_eq!(firsts.len(), 1, "exactly one immediate alert");
    assert_eq!(count_of(firsts[0]), 1);
    assert_eq!(
        alerts[0]["tasksentry"]["summary"], false,
        "the first occurrence is shipped first"
    );
    let total: u64 = alerts.iter().map(|a| count_of(a)).sum();
    assert_eq!(total, 10_000, "first alert + summaries = every occurrence");
    assert!(
        alerts.len() < 20,
        "a flood becomes a handful of alerts, not {}",
        alerts.len()
    );
    for summary in alerts.iter().skip(1) {
        assert_eq!(summary["tasksentry"]["summary"], true);
        let samples = summary["tasksentry"]["samples"]["proc.pid"]
            .as_array()
            .expect("pid samples");
        assert!(!samples.is_empty() && samples.len() <= 5, "{summary}");
        assert!(
            summary["tasksentry"]["first_seen"].as_str()
                <= summary["tasksentry"]["last_seen"].as_str()
        );
    }
    // Windows are consecutive: summaries do not overlap in time.
    for pair in alerts.windows(2).skip(1) {
        assert!(
            pair[0]["tasksentry"]["last_seen"].as_str()
                < pair[1]["tasksentry"]["first_seen"].as_str(),
            "{} / {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn budgets_suppress_distinct_alerts_but_every_occurrence_is_counted() {
    let settings = AlertSettings {
        aggregation_window: Duration::from_secs(60),
        budget: BudgetConfig {
            per_rule_per_minute: 50,
            global_per_minute: 0,
            report_interval: Duration::from_secs(1),
        },
        ..AlertSettings::default()
    };
    let processor =
        EmitAlerts::with_settings(ruleset(MINER_RULE).expect("valid"), "h".into(), settings);
    // 3,000 distinct command lines (distinct keys), some repeated: aggregation cannot fold
    // them, so the per-rule budget has to.
    let start = Timestamp::now().0;
    let mut events = Vec::new();
    let mut n = 0u64;
    for i in 0..3_000u64 {
        let arg = format!("--worker={i}");
        for _ in 0..(1 + i % 3) {
            events.push(exec("xmrig", &[&arg], 2000, Timestamp(start + n * 100_000)));
            n += 1;
        }
    }
    let outputs = run(Box::new(processor), events, &[Priority::Debug], Vec::new());
    let shipped: u64 = outputs[0]
        .iter()
        .filter(|a| a["rule"] == "Miner")
        .map(count_of)
        .sum();
    let reports: Vec<&Value> = outputs[0]
        .iter()
        .filter(|a| a["rule"] == "TaskSentry suppressed alerts")
        .collect();
    assert!(!reports.is_empty(), "suppression is reported");
    for report in &reports {
        assert_eq!(report["output_fields"]["evt.arg.rule"], "Miner");
        assert!(
            report["output"]
                .as_str()
                .is_some_and(|o| o.contains("alerts of rule Miner")),
            "{report}"
        );
    }
    let suppressed: u64 = reports
        .iter()
        .map(|r| {
            // A summary of several reports carries the sum of their counts.
            r["output_fields"]["tasksentry.count"]
                .as_u64()
                .expect("count")
        })
        .sum();
    assert_eq!(
        shipped + suppressed,
        n,
        "shipped counts + suppressed counts = every occurrence ({} alerts shipped)",
        outputs[0].len()
    );
    assert!(suppressed > 0 && shipped >= 50);
}

#[test]
fn every_output_gets_the_same_redacted_alert_at_or_above_its_minimum_priority() {
    let processor = EmitAlerts::new(ruleset(MINER_RULE).expect("valid"), "h".into());
    let secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let now = Timestamp::now();
    let events = vec![
        exec(
            "xmrig",
            &[
                "--password=hunter2",
                &format!("aws_secret_access_key={secret_key}"),
                "-H",
                "Authorization: Bearer eyToken.abc-123",
            ],
            10,
            now,
        ),
        exec("chatty", &["--password", "hunter2"], 11, now),
    ];
    let outputs = run(
        Box::new(processor),
        events,
        &[Priority::Debug, Priority::Warning],
        Vec::new(),
    );
    let (all, warning_up) = (&outputs[0], &outputs[1]);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        warning_up.len(),
        1,
        "the Notice alert stays off the Warning output"
    );
    assert_eq!(
        warning_up[0], all[0],
        "both outputs get the very same alert"
    );
    for alert in all.iter().chain(warning_up) {
        let text = alert.to_string();
        for secret in [secret_key, "hunter2", "eyToken.abc-123"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    assert_eq!(all[0]["tasksentry"]["redactions"], 6, "{}", all[0]);
    let command = all[0]["output_fields"]["proc.cmdline"]
        .as_str()
        .expect("cmdline");
    assert_eq!(
        command,
        "xmrig --password=[REDACTED:password] aws_secret_access_key=[REDACTED:aws_secret_key] -H Authorization: Bearer [REDACTED:bearer_token]"
    );
}

#[test]
fn internal_alerts_pass_every_output_filter() {
    let processor = EmitAlerts::new(ruleset(MINER_RULE).expect("valid"), "h".into());
    let mut missed = Event::new(EventType::Tasksentry, Collector::Procscan);
    missed.internal = Some(Box::new(tasksentry::event::Internal {
        kind: "processes_missed".into(),
        message: "3 processes were missed".into(),
        count: Some(3),
    }));
    let outputs = run(
        Box::new(processor),
        vec![missed],
        &[Priority::Debug, Priority::Emergency],
        Vec::new(),
    );
    assert_eq!(
        outputs[1].len(),
        1,
        "a Notice visibility alert passes an Emergency filter"
    );
    assert_eq!(outputs[1][0]["rule"], "TaskSentry missed processes");
    assert_eq!(
        outputs[1][0]["source"], "tasksentry",
        "the monitor's own reports"
    );
    assert_eq!(outputs[1][0]["output_fields"]["tasksentry.count"], 3);
}

#[test]
fn reload_swaps_rules_between_events_and_keeps_the_old_ones_when_broken() {
    let text = Arc::new(Mutex::new(String::from("- rule: [broken\n")));
    let reload_text = text.clone();
    let mut processor = EmitAlerts::new(ruleset(MINER_RULE).expect("valid"), "h".into())
        .with_reloader(Box::new(move || {
            let text = reload_text.lock().expect("lock").clone();
            ruleset(&text)
        }));
    let mut out: Vec<Record> = Vec::new();
    let now = Timestamp::now();
    processor.process(&exec("xmrig", &[], 1, now), &mut out);
    assert_eq!(out.len(), 1, "the old rules fire");

    // A broken file: rejected, reported, old rules kept.
    let report = processor
        .reload("SIGHUP from pid 7")
        .expect("a report event");
    processor.process(&report, &mut out);
    let rejected: Value = serde_json::from_str(&out[1].line).expect("json");
    assert_eq!(rejected["rule"], "TaskSentry rules reload rejected");
    assert_eq!(rejected["priority"], "Error");
    assert!(
        rejected["output"]
            .as_str()
            .is_some_and(|o| o.contains("test.yaml:2:1: error: YAML syntax error")),
        "the error names the file and position: {rejected}"
    );
    assert_eq!(
        rejected["output_fields"]["evt.arg.reason"],
        "SIGHUP from pid 7"
    );
    processor.process(&exec("xmrig", &["-x"], 2, now), &mut out);
    assert_eq!(
        out.len(),
        3,
        "the old rules still fire after the rejected reload"
    );

    // A valid file: takes effect for the next event.
    *text.lock().expect("lock") = MINER_RULE.replace("proc.name = xmrig", "proc.name = minerd");
    let report = processor
        .reload("rule files changed")
        .expect("a report event");
    processor.process(&report, &mut out);
    let reloaded: Value = serde_json::from_str(&out[3].line).expect("json");
    assert_eq!(reloaded["rule"], "TaskSentry rules reloaded");
    processor.process(&exec("xmrig", &["-y"], 3, now), &mut out);
    assert_eq!(out.len(), 4, "the old rule is gone");
    processor.process(&exec("minerd", &[], 4, now), &mut out);
    assert_eq!(out.len(), 5, "the new rule fires");
}

#[test]
fn reload_requests_are_served_by_the_engine_loop() {
    let processor = EmitAlerts::new(ruleset(MINER_RULE).expect("valid"), "h".into())
        .with_reloader(Box::new(|| ruleset("- rule: [broken\n")));
    let outputs = run(
        Box::new(processor),
        Vec::new(),
        &[Priority::Debug],
        vec![Control::Reload {
            reason: "test".into(),
        }],
    );
    assert_eq!(outputs[0].len(), 1);
    assert_eq!(outputs[0][0]["rule"], "TaskSentry rules reload rejected");
}

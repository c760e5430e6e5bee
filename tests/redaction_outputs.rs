//! No byte of a credential on a command line reaches any output: the alert lines (stdout and
//! CloudWatch get the same line), the events of `--emit events`, the `--record` file, and the
//! log stream as CloudWatch Logs (a real moto server) stores it.
//!
//! The command lines are `tests/data/redaction/credential_command_lines.tsv`: credentials in
//! the forms the tools' own documentation gives (flags with `=` and as the next argument,
//! `user:password`, URLs, headers, environment assignments, positional tokens), for curl,
//! wget, HTTPie, sshpass, redis-cli, the MySQL, PostgreSQL, MongoDB, SQL Server and LDAP
//! clients, Samba, lftp, docker/helm/az logins, the AWS, Azure, DigitalOcean, Vault, kubectl,
//! MinIO and npm CLIs, git over https, twine, pip, openssl, ssh-keygen, htpasswd, zip and 7z.
//! Each is run as the process's command line *and* as its parent's (a shell running it), with
//! the secret also in the process's environment.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::time::Duration;

use support::cloudwatch::{Moto, client, now_ms, read_stream, settings};
use support::rules::internal_rules_and;
use tasksentry::alert::AlertSettings;
use tasksentry::alert::budget::BudgetConfig;
use tasksentry::alert::chain::EmitAlerts;
use tasksentry::alert::redact::Redactor;
use tasksentry::engine::{EmitEvents, Processor, Record, Recording};
use tasksentry::event::{Ancestor, Collector, Container, Event, EventType, Process};
use tasksentry::priority::Priority;
use tasksentry::rules::LoadOptions;
use tasksentry::sink::cloudwatch::{CloudWatchSink, Record as SinkRecord};

const RULES: &str = r#"
- rule: Any exec
  desc: every exec, with every field a credential can be in
  condition: evt.type = execve
  output: >-
    exec %proc.cmdline args=%proc.args exe=%proc.exe parent=%proc.pcmdline
    ancestor=%proc.acmdline[2] env=%proc.env
  priority: WARNING
"#;

struct Case {
    source: &'static str,
    secrets: Vec<&'static str>,
    command: &'static str,
}

fn cases() -> Vec<Case> {
    include_str!("data/redaction/credential_command_lines.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            Case {
                source: parts.next().unwrap(),
                secrets: parts.next().unwrap().split(" | ").collect(),
                command: parts.next().expect("three tab-separated columns"),
            }
        })
        .collect()
}

/// Splits a command line as a POSIX shell would for these lines (quotes, no expansions).
fn argv(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn exec_event(case: &Case, pid: i32) -> Event {
    let words = argv(case.command);
    let (env, words): (Vec<_>, Vec<_>) = {
        // Leading `NAME=value` words are the environment of the command (`PGPASSWORD=x psql`).
        let split = words
            .iter()
            .position(|w| !w.contains('=') || w.starts_with('-'))
            .unwrap_or(0);
        let (env, rest) = words.split_at(split);
        (env.to_vec(), rest.to_vec())
    };
    let program = words.first().cloned().unwrap_or_default();
    let name: String = program
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    let mut event = Event::new(EventType::Execve, Collector::Procscan);
    event.proc = Some(Box::new(Process {
        pid,
        ppid: 1,
        name,
        exe: Some(program.clone()),
        exepath: Some(format!("/usr/bin/{program}")),
        args: words.iter().skip(1).cloned().collect(),
        env: env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(
                case.secrets
                    .iter()
                    .map(|s| ("APP_SECRET".to_owned(), (*s).to_owned())),
            )
            .collect(),
        ancestors: vec![
            Ancestor {
                pid: 1,
                name: "sh".into(),
                exe: Some("/bin/sh".into()),
                exepath: Some("/bin/sh".into()),
                args: vec!["-c".into(), case.command.into()],
            },
            Ancestor {
                pid: 0,
                name: "entrypoint.sh".into(),
                exe: Some("/bin/sh".into()),
                exepath: Some("/bin/sh".into()),
                args: vec!["/entrypoint.sh".into(), case.command.into()],
            },
        ],
        ..Process::default()
    }));
    event.container = Some(Box::new(Container {
        id: "0123456789ab".into(),
        name: Some("app".into()),
        ..Container::default()
    }));
    event
}

fn leaks(cases: &[Case], output: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for case in cases {
        for secret in &case.secrets {
            if text.contains(secret) {
                found.push(format!("{output}: {} ({secret})", case.source));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_of_a_credential_reaches_any_output() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} command lines", cases.len());
    let events: Vec<Event> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| exec_event(case, 100 + i32::try_from(i).unwrap()))
        .collect();
    // The events do carry every secret before any output redacts them.
    let raw: String = events.iter().map(Event::to_json_line).collect();
    assert_eq!(
        leaks(&cases, "raw", &raw).len(),
        cases.iter().map(|c| c.secrets.len()).sum::<usize>()
    );

    let sources = internal_rules_and("redaction.yaml", RULES);
    let ruleset = tasksentry::rules::load(&sources, &LoadOptions::default())
        .ruleset
        .expect("rules load");
    let alerts = EmitAlerts::with_settings(
        ruleset,
        "ip-10-0-0-1".into(),
        AlertSettings {
            aggregation_window: Duration::ZERO,
            budget: BudgetConfig {
                per_rule_per_minute: 100_000,
                global_per_minute: 100_000,
                ..BudgetConfig::default()
            },
            redactor: Redactor::builtin(),
            ..AlertSettings::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let recording_path = dir.path().join("events.ndjson");
    let mut alerting: Box<dyn Processor> =
        Box::new(Recording::new(Box::new(alerts), &recording_path, Redactor::builtin()).unwrap());
    let mut emitting: Box<dyn Processor> = Box::new(EmitEvents::new(Redactor::builtin()));
    let (mut alert_records, mut event_records): (Vec<Record>, Vec<Record>) =
        (Vec::new(), Vec::new());
    for event in &events {
        alerting.process(event, &mut alert_records);
        emitting.process(event, &mut event_records);
    }
    alerting.flush(&mut alert_records);
    emitting.flush(&mut event_records);
    drop(alerting);

    let alert_lines: Vec<&str> = alert_records.iter().map(|r| &*r.line).collect();
    assert_eq!(
        alert_lines
            .iter()
            .filter(|l| l.contains("\"rule\":\"Any exec\""))
            .count(),
        cases.len(),
        "one alert per command line"
    );
    let event_lines: Vec<&str> = event_records.iter().map(|r| &*r.line).collect();
    assert_eq!(event_lines.len(), cases.len());
    let recording = std::fs::read_to_string(&recording_path).unwrap();
    assert_eq!(recording.lines().count(), cases.len());

    // Both redacted lines still read as the command: the flag and the kind of what was removed.
    assert!(
        alert_lines
            .iter()
            .any(|l| l.contains("sshpass -p [REDACTED:password]"))
    );
    assert!(recording.contains("[REDACTED:"));

    // CloudWatch Logs, as stored by the service (moto): alert and event lines.
    let moto = Moto::start();
    let group = "/ecs/tasksentry-redaction";
    let stream = "task-redaction";
    let (handle, tx) = CloudWatchSink::start(settings(&moto.url(), group), stream.to_owned())
        .await
        .unwrap();
    let base = now_ms() - 1_000;
    for (n, line) in alert_lines.iter().chain(&event_lines).enumerate() {
        tx.send(SinkRecord {
            timestamp_ms: base + i64::try_from(n).unwrap(),
            priority: Priority::Warning,
            message: (*line).to_owned(),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.undelivered, 0, "{report:?}");
    let stored: Vec<String> = read_stream(&client(&moto.url()).await, group, stream)
        .await
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert_eq!(stored.len(), alert_lines.len() + event_lines.len());

    let mut found = Vec::new();
    found.extend(leaks(&cases, "alert line", &alert_lines.join("\n")));
    found.extend(leaks(&cases, "--emit events line", &event_lines.join("\n")));
    found.extend(leaks(&cases, "--record file", &recording));
    found.extend(leaks(&cases, "CloudWatch stream", &stored.join("\n")));
    assert!(
        found.is_empty(),
        "{} leaks:\n{}",
        found.len(),
        found.join("\n")
    );
}

//! Property tests of the alert stage: aggregation and budget counts always add up to the
//! number of matches, whatever the timing; redaction removes every generated secret in any
//! context and leaves text without secrets unchanged.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use support::rules::internal_rules_and;
use tasksentry::alert::AlertSettings;
use tasksentry::alert::budget::BudgetConfig;
use tasksentry::alert::chain::EmitAlerts;
use tasksentry::alert::redact::Redactor;
use tasksentry::engine::{Processor, Record};
use tasksentry::event::{Collector, Container, Event, EventType, Process, Timestamp};
use tasksentry::rules::{LoadOptions, RuleSet};

const RULES: &str = r#"
- rule: Miner
  desc: test
  condition: evt.type = execve and proc.name in (xmrig, minerd)
  output: miner (command=%proc.cmdline pid=%proc.pid)
  priority: CRITICAL
"#;

fn ruleset() -> RuleSet {
    let sources = internal_rules_and("t.yaml", RULES);
    tasksentry::rules::load(&sources, &LoadOptions::default())
        .ruleset
        .expect("valid rules")
}

fn exec(name: &str, arg: &str, pid: i32, time: u64) -> Event {
    let mut event = Event::new(EventType::Execve, Collector::Procscan);
    event.evt.time = Timestamp(time);
    event.proc = Some(Box::new(Process {
        pid,
        name: name.into(),
        exepath: Some(format!("/bin/{name}")),
        args: vec![arg.into()],
        ..Process::default()
    }));
    event.container = Some(Box::new(Container {
        id: "c".into(),
        ..Container::default()
    }));
    event
}

/// One step of a run: an event (program index, argument index, milliseconds since the
/// previous step) or, when `tick`, a timer tick at the current time.
#[derive(Debug, Clone)]
struct Step {
    program: usize,
    arg: usize,
    delay_ms: u64,
    tick: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0usize..3, 0usize..3, 0u64..3_000, prop::bool::weighted(0.2)).prop_map(
            |(program, arg, delay_ms, tick)| Step {
                program,
                arg,
                delay_ms,
                tick,
            },
        ),
        1..300,
    )
}

/// Plays the steps on a fresh processor; returns it with its records so far, the time of the
/// last step and the number of events that match the rule.
fn replay(steps: &[Step], settings: AlertSettings) -> (EmitAlerts, Vec<Record>, u64, u64) {
    let mut processor = EmitAlerts::with_settings(ruleset(), "h".into(), settings);
    let mut out: Vec<Record> = Vec::new();
    let mut now = 1_000_000_000_000u64;
    let mut matching = 0;
    for (i, step) in steps.iter().enumerate() {
        now += step.delay_ms * 1_000_000;
        if step.tick {
            processor.tick(Timestamp(now), &mut out);
            continue;
        }
        let program = ["xmrig", "minerd", "ls"][step.program];
        if program != "ls" {
            matching += 1;
        }
        let arg = ["-a", "-b", "-c"][step.arg];
        let pid = i32::try_from(i).expect("small");
        processor.process(&exec(program, arg, pid, now), &mut out);
    }
    (processor, out, now, matching)
}

/// Plays the steps and flushes; returns the records and the number of events that match the
/// rule.
fn play(steps: &[Step], settings: AlertSettings) -> (Vec<Value>, u64) {
    let (mut processor, mut out, _, matching) = replay(steps, settings);
    processor.flush(&mut out);
    let alerts = out
        .iter()
        .map(|r| serde_json::from_str(&r.line).expect("json"))
        .collect();
    (alerts, matching)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn aggregation_counts_add_up_to_the_matches(steps in steps(), window_s in 1u64..10) {
        let settings = AlertSettings {
            aggregation_window: Duration::from_secs(window_s),
            budget: BudgetConfig { per_rule_per_minute: 0, global_per_minute: 0, ..BudgetConfig::default() },
            ..AlertSettings::default()
        };
        let (alerts, matching) = play(&steps, settings);
        let miner: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "Miner").collect();
        let total: u64 = miner.iter().map(|a| a["tasksentry"]["count"].as_u64().expect("count")).sum();
        prop_assert_eq!(total, matching);
        for alert in &miner {
            let count = alert["tasksentry"]["count"].as_u64().expect("count");
            if alert["tasksentry"]["summary"] == false {
                prop_assert_eq!(count, 1);
            } else {
                prop_assert!(count >= 1);
                prop_assert!(alert["tasksentry"]["first_seen"].as_str() <= alert["tasksentry"]["last_seen"].as_str());
            }
        }
        // Six keys at most (two programs, three arguments), each opening with a first alert.
        let firsts = miner.iter().filter(|a| a["tasksentry"]["summary"] == false).count();
        prop_assert!(matching == 0 || firsts >= 1);
    }

    #[test]
    fn budget_and_aggregation_counts_add_up_with_suppressions(steps in steps(), per_minute in 1u32..5) {
        let settings = AlertSettings {
            aggregation_window: Duration::from_secs(2),
            budget: BudgetConfig {
                per_rule_per_minute: per_minute,
                global_per_minute: 0,
                report_interval: Duration::from_secs(1),
            },
            ..AlertSettings::default()
        };
        let (alerts, matching) = play(&steps, settings);
        let shipped: u64 = alerts
            .iter()
            .filter(|a| a["rule"] == "Miner")
            .map(|a| a["tasksentry"]["count"].as_u64().expect("count"))
            .sum();
        let suppressed: u64 = alerts
            .iter()
            .filter(|a| a["rule"] == "TaskSentry suppressed alerts")
            .map(|a| a["output_fields"]["tasksentry.count"].as_u64().expect("count"))
            .sum();
        prop_assert_eq!(shipped + suppressed, matching);
    }
}

/// Context words that contain no secret: lowercase words, paths and short flags.
fn benign_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9]{1,10}",
            "/[a-z]{1,6}/[a-z.]{1,8}",
            "-[a-z]",
            "--[a-z]{2,8}",
            "[a-z]{1,6}=[a-z0-9/.]{0,10}",
            "https://[a-z]{1,8}\\.example\\.com/[a-z]{0,6}",
        ],
        0..12,
    )
    .prop_map(|words| words.join(" "))
    .prop_filter("no secret keywords", |text| {
        ![
            "pass", "pwd", "secret", "token", "key", "bearer", "auth", "mysql", "mariadb",
        ]
        .iter()
        .any(|word| text.contains(word))
    })
}

/// A secret and the way it is written into a command line. The secret values contain
/// uppercase letters, which benign context never does, so a leak cannot hide in context.
fn secret_form() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[A-Z0-9]{16}".prop_map(|tail| {
            let secret = format!("AKIA{tail}");
            (secret.clone(), secret)
        }),
        "[A-Za-z0-9/+]{39}".prop_map(|tail| {
            let secret = format!("K{tail}");
            (secret.clone(), format!("aws_secret_access_key={secret}"))
        }),
        "[A-Za-z0-9/+]{39}".prop_map(|tail| {
            let secret = format!("K{tail}");
            (secret.clone(), format!("AWS_SECRET_ACCESS_KEY={secret}"))
        }),
        "[A-Za-z0-9/+]{39}".prop_map(|tail| {
            let secret = format!("K{tail}");
            (secret.clone(), format!("--secret {secret}"))
        }),
        "[A-Za-z0-9!#%^*]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("--password={secret}"))
        }),
        "[A-Za-z0-9!#%^*]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("--password {secret}"))
        }),
        "[A-Za-z0-9]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("mysql -u root -p{secret}"))
        }),
        "[A-Za-z0-9]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("PASSWORD={secret}"))
        }),
        "[A-Za-z0-9]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("passwd={secret}"))
        }),
        "[A-Za-z0-9]{6,16}".prop_map(|tail| {
            let secret = format!("Zq{tail}");
            (secret.clone(), format!("pwd={secret}"))
        }),
        "[A-Za-z0-9._~+/-]{10,40}".prop_map(|tail| {
            let secret = format!("Tk{tail}");
            (secret.clone(), format!("Authorization: Bearer {secret}"))
        }),
        "[A-Za-z0-9._~+/-]{10,40}".prop_map(|tail| {
            let secret = format!("Tk{tail}");
            (secret.clone(), format!("bearer {secret}"))
        }),
        ("[a-z]{1,8}", "[A-Za-z0-9]{6,12}").prop_map(|(user, tail)| {
            let secret = format!("Pw{tail}");
            (
                secret.clone(),
                format!("https://{user}:{secret}@db.example.com/x"),
            )
        }),
        "[A-Za-z0-9+/=\n]{20,200}".prop_map(|body| {
            let secret = format!("MIIE{body}");
            (
                secret.clone(),
                format!("-----BEGIN RSA PRIVATE KEY-----\n{secret}\n-----END RSA PRIVATE KEY-----"),
            )
        }),
        "[A-Za-z0-9]{36}".prop_map(|tail| {
            let secret = format!("ghp_{tail}");
            (secret.clone(), secret)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_secret_survives(before in benign_text(), (secret, form) in secret_form(), after in benign_text()) {
        let text = format!("{before} {form} {after}");
        let (redacted, count) = Redactor::builtin().redact(&text);
        prop_assert!(!redacted.contains(&secret), "secret survived: {redacted}");
        // A secret's long tail does not survive either (no partial leak of 12+ characters).
        if secret.len() > 14 {
            prop_assert!(!redacted.contains(&secret[2..14]), "part of the secret survived: {redacted}");
        }
        prop_assert!(count >= 1);
        prop_assert!(redacted.contains("[REDACTED:"));
        // The context around the secret is kept.
        for word in before.split(' ').chain(after.split(' ')) {
            prop_assert!(redacted.contains(word), "context word {word:?} lost: {redacted}");
        }
    }

    #[test]
    fn text_without_secrets_is_unchanged(text in benign_text()) {
        let (redacted, count) = Redactor::builtin().redact(&text);
        prop_assert_eq!(redacted.as_ref(), text.as_str());
        prop_assert_eq!(count, 0);
    }
}

/// Plays `steps` on a fresh processor and says whether it is idle at the end, and if so how
/// many records a tick an hour later produces.
fn idle_after(steps: &[Step], settings: AlertSettings) -> (bool, usize) {
    let (mut processor, mut out, now, _) = replay(steps, settings);
    if !processor.idle() {
        return (false, 0);
    }
    let before = out.len();
    processor.tick(Timestamp(now + 3_600_000_000_000), &mut out);
    (true, out.len() - before)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The engine waits up to a second instead of ticking every 200 ms while the processor
    /// says it is idle: that is only right if a tick then has nothing to ship, however late.
    /// Small budgets make suppression reports pending, short windows make summaries pending.
    #[test]
    fn an_idle_processor_has_nothing_for_any_later_tick(steps in steps(), window_s in 0u64..5, per_rule in 1u32..4) {
        let settings = AlertSettings {
            aggregation_window: Duration::from_secs(window_s),
            budget: BudgetConfig { per_rule_per_minute: per_rule, global_per_minute: 0, ..BudgetConfig::default() },
            ..AlertSettings::default()
        };
        let steps = &steps[..steps.len().min(60)];
        let mut idle_prefixes = 0;
        for end in 0..=steps.len() {
            let (idle, shipped_late) = idle_after(&steps[..end], settings.clone());
            prop_assert_eq!(shipped_late, 0, "idle after {} steps, yet a later tick shipped", end);
            idle_prefixes += usize::from(idle);
        }
        // A fresh processor is idle: the property is never vacuous.
        prop_assert!(idle_prefixes >= 1);
    }
}

//! Aggregation: repeats of one behaviour become one alert with a count, not a flood.
//!
//! Alerts are grouped by a key: the rule, the container id, the process executable
//! (`proc.exepath`) and the values of the rule's own output fields except volatile ones that
//! differ between repeats of the same behaviour ([`VOLATILE_FIELDS`]: times, pids, client
//! ports). For each key:
//!
//! - The first occurrence is shipped at once, with `count: 1`, and opens a window of
//!   `aggregation_window` (default 60 s).
//! - Further occurrences inside the window are counted, not shipped. When the window ends,
//!   if there were any, one summary alert is shipped (`summary: true`) with `count` = the
//!   number of repeats in that window (not cumulative), `first_seen`/`last_seen` of those
//!   repeats, the last repeat's fields, and up to [`MAX_SAMPLES`] distinct values of each
//!   volatile field in `samples`. The key stays hot: a new window opens at once, so a
//!   sustained flood gives one summary per window.
//! - A window that ends with no repeats closes the key; its next occurrence ships at once.
//!
//! So the counts add up: the first alert's 1 plus every summary's `count` is the number of
//! occurrences. Nothing is dropped uncounted: at shutdown every pending summary is flushed,
//! and when more than `max_keys` keys are open a new key's alerts are shipped unaggregated.
//!
//! Time is the largest time seen so far, from events (`evt.time`) and from the engine's
//! periodic ticks (wall clock), so replaying a recording aggregates as the live run did.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::Alert;
use crate::event::{Event, Timestamp};

/// Distinct sample values kept per field for a summary.
pub(crate) const MAX_SAMPLES: usize = 5;

/// The default aggregation window.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The default bound on open aggregation keys.
pub(crate) const DEFAULT_MAX_KEYS: usize = 10_000;

/// Output fields left out of the aggregation key because they differ between repeats of one
/// behaviour. A name ending in `*` is a prefix. Their values are sampled instead.
pub(crate) const VOLATILE_FIELDS: &[&str] = &[
    "evt.time*",
    "evt.datetime*",
    "evt.rawtime*",
    "evt.num",
    "proc.pid",
    "proc.ppid",
    "proc.vpid",
    "proc.tid",
    "proc.apid*",
    "proc.start_ts",
    "proc.duration",
    "thread.*",
    "fd.cport",
    "fd.num",
    "tasksentry.message",
    "tasksentry.count",
];

/// Output fields whose values add up: a summary carries their sum over its repeats (the
/// processes missed, lines dropped or alerts suppressed that repeated internal reports stand
/// for), not samples.
pub(crate) const ADDITIVE_FIELDS: &[&str] = &["tasksentry.count"];

/// Fields sampled from the event itself for every repeat, whether or not the rule's output
/// shows them.
const EVENT_SAMPLES: [&str; 2] = ["proc.pid", "proc.cmdline"];

/// Whether an output field is volatile (see [`VOLATILE_FIELDS`]).
pub(crate) fn is_volatile(field: &str) -> bool {
    VOLATILE_FIELDS
        .iter()
        .any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => field.starts_with(prefix),
            None => field == *entry,
        })
}

/// The aggregation key of an alert and the event it came from.
pub(crate) fn key_of(alert: &Alert, event: &Event) -> String {
    let mut key = String::with_capacity(128);
    key.push_str(&alert.rule);
    key.push('\u{1f}');
    if let Some(container) = &event.container {
        key.push_str(&container.id);
    }
    key.push('\u{1f}');
    if let Some(exepath) = event.proc.as_ref().and_then(|p| p.exepath.as_deref()) {
        key.push_str(exepath);
    }
    for (name, value) in &alert.output_fields {
        if is_volatile(name) {
            continue;
        }
        key.push('\u{1f}');
        key.push_str(name);
        key.push('=');
        match value {
            Value::String(text) => key.push_str(text),
            other => key.push_str(&other.to_string()),
        }
    }
    key
}

/// Repeats counted in the current window of one key.
#[derive(Debug)]
struct Pending {
    /// The last repeat's alert (its fields describe the summary).
    last: Alert,
    count: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    samples: BTreeMap<String, Vec<Value>>,
    sums: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Entry {
    window_end: Timestamp,
    pending: Option<Pending>,
}

/// Counters of what the aggregator did, for tests and the heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AggregateStats {
    /// Alerts shipped at once (first occurrences, and unaggregated ones).
    pub(crate) shipped: u64,
    /// Occurrences absorbed into summaries.
    pub(crate) absorbed: u64,
    /// Summary alerts shipped.
    pub(crate) summaries: u64,
    /// Alerts shipped unaggregated because `max_keys` keys were open.
    pub(crate) overflow: u64,
}

/// Groups repeated alerts (see the module documentation).
#[derive(Debug)]
pub(crate) struct Aggregator {
    window: u64,
    max_keys: usize,
    entries: HashMap<String, Entry>,
    clock: Timestamp,
    next_due: Option<Timestamp>,
    stats: AggregateStats,
}

impl Aggregator {
    /// An aggregator with the given window (zero disables aggregation) and key bound.
    pub fn new(window: Duration, max_keys: usize) -> Aggregator {
        Aggregator {
            window: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            max_keys,
            entries: HashMap::new(),
            clock: Timestamp(0),
            next_due: None,
            stats: AggregateStats::default(),
        }
    }

    /// What the aggregator did so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> AggregateStats {
        self.stats
    }

    /// Number of open keys.
    #[cfg(test)]
    pub(crate) fn open_keys(&self) -> usize {
        self.entries.len()
    }

    /// Handles one alert of `event`: first closes the windows that ended by the event's time
    /// (their summaries go to `out`), then ships the alert to `out` or counts it as a repeat.
    pub(crate) fn observe(&mut self, alert: Alert, event: &Event, out: &mut Vec<Alert>) {
        let time = alert.time;
        self.advance(time, out);
        if self.window == 0 {
            self.stats.shipped += 1;
            out.push(alert);
            return;
        }
        let key = key_of(&alert, event);
        if let Some(entry) = self.entries.get_mut(&key) {
            self.stats.absorbed += 1;
            let mut values: Vec<(String, Value)> = Vec::new();
            if let Some(process) = &event.proc {
                values.push((EVENT_SAMPLES[0].to_owned(), Value::from(process.pid)));
                values.push((EVENT_SAMPLES[1].to_owned(), Value::from(process.cmdline())));
            }
            let mut sums: Vec<(String, u64)> = Vec::new();
            for (name, value) in &alert.output_fields {
                if ADDITIVE_FIELDS.contains(&name.as_str()) {
                    sums.push((name.clone(), value.as_u64().unwrap_or(0)));
                } else if is_volatile(name)
                    && !name.starts_with("evt.")
                    && !EVENT_SAMPLES.contains(&name.as_str())
                {
                    values.push((name.clone(), value.clone()));
                }
            }
            match &mut entry.pending {
                Some(pending) => {
                    pending.count += 1;
                    pending.first_seen = pending.first_seen.min(time);
                    pending.last_seen = pending.last_seen.max(time);
                    pending.last = alert;
                    add_samples(&mut pending.samples, values);
                    add_sums(&mut pending.sums, sums);
                }
                None => {
                    let mut samples = BTreeMap::new();
                    add_samples(&mut samples, values);
                    let mut pending_sums = BTreeMap::new();
                    add_sums(&mut pending_sums, sums);
                    entry.pending = Some(Pending {
                        last: alert,
                        count: 1,
                        first_seen: time,
                        last_seen: time,
                        samples,
                        sums: pending_sums,
                    });
                }
            }
            return;
        }
        if self.entries.len() >= self.max_keys {
            self.stats.overflow += 1;
            self.stats.shipped += 1;
            out.push(alert);
            return;
        }
        let window_end = Timestamp(time.0.saturating_add(self.window));
        self.next_due = Some(self.next_due.map_or(window_end, |due| due.min(window_end)));
        self.entries.insert(
            key,
            Entry {
                window_end,
                pending: None,
            },
        );
        self.stats.shipped += 1;
        out.push(alert);
    }

    /// No window is open: [`Aggregator::advance`] has nothing to close until the next alert.
    pub(crate) fn idle(&self) -> bool {
        self.next_due.is_none()
    }

    /// Closes every window that ended by `now` (or by the latest time seen, if later) and
    /// appends their summaries to `out`, oldest first.
    pub(crate) fn advance(&mut self, now: Timestamp, out: &mut Vec<Alert>) {
        self.clock = self.clock.max(now);
        match self.next_due {
            Some(due) if due <= self.clock => {}
            _ => return,
        }
        let clock = self.clock;
        let window = self.window;
        let mut summaries = Vec::new();
        let mut next_due: Option<Timestamp> = None;
        self.entries.retain(|_, entry| {
            if entry.window_end > clock {
                next_due = Some(next_due.map_or(entry.window_end, |d| d.min(entry.window_end)));
                return true;
            }
            match entry.pending.take() {
                Some(pending) => {
                    summaries.push(summary(pending));
                    // The key stays hot: the next window starts now.
                    entry.window_end = Timestamp(clock.0.saturating_add(window));
                    next_due = Some(next_due.map_or(entry.window_end, |d| d.min(entry.window_end)));
                    true
                }
                None => false,
            }
        });
        self.next_due = next_due;
        self.emit(summaries, out);
    }

    /// Ships every pending summary now (at shutdown, or at the end of a replay) and forgets
    /// every key.
    pub(crate) fn flush(&mut self, out: &mut Vec<Alert>) {
        let summaries: Vec<Alert> = self
            .entries
            .drain()
            .filter_map(|(_, entry)| entry.pending.map(summary))
            .collect();
        self.next_due = None;
        self.emit(summaries, out);
    }

    fn emit(&mut self, mut summaries: Vec<Alert>, out: &mut Vec<Alert>) {
        summaries.sort_by(|a, b| {
            (a.tasksentry.first_seen, &a.rule, &a.output).cmp(&(
                b.tasksentry.first_seen,
                &b.rule,
                &b.output,
            ))
        });
        self.stats.summaries += summaries.len() as u64;
        out.extend(summaries);
    }
}

fn add_samples(samples: &mut BTreeMap<String, Vec<Value>>, values: Vec<(String, Value)>) {
    for (name, value) in values {
        let list = samples.entry(name).or_default();
        if list.len() < MAX_SAMPLES && !list.contains(&value) {
            list.push(value);
        }
    }
}

fn add_sums(sums: &mut BTreeMap<String, u64>, values: Vec<(String, u64)>) {
    for (name, value) in values {
        let sum = sums.entry(name).or_default();
        *sum = sum.saturating_add(value);
    }
}

/// The summary alert of one window's repeats.
fn summary(pending: Pending) -> Alert {
    let mut alert = pending.last;
    alert.time = pending.last_seen;
    alert.tasksentry.count = pending.count;
    alert.tasksentry.first_seen = pending.first_seen;
    alert.tasksentry.last_seen = pending.last_seen;
    alert.tasksentry.summary = true;
    alert.tasksentry.samples = pending.samples;
    let mut totals = String::new();
    for (name, sum) in pending.sums {
        totals.push_str(&format!("; {name} totals {sum}"));
        alert.output_fields.insert(name, Value::from(sum));
    }
    alert.output = format!(
        "{} (repeated {} times between {} and {}{totals})",
        alert.output, pending.count, pending.first_seen, pending.last_seen
    );
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertMeta;
    use crate::event::{Collector, Container, EventType, Process};
    use crate::priority::Priority;

    fn event(pid: i32, container: &str, time: u64) -> Event {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.evt.time = Timestamp(time);
        event.proc = Some(Box::new(Process {
            pid,
            name: "xmrig".into(),
            exepath: Some("/usr/local/bin/xmrig".into()),
            args: vec!["-o".into(), format!("pool{}", pid % 2)],
            ..Process::default()
        }));
        event.container = Some(Box::new(Container {
            id: container.into(),
            ..Container::default()
        }));
        event
    }

    pub(crate) fn alert_for(rule: &str, event: &Event) -> Alert {
        let mut fields = serde_json::Map::new();
        let process = event.proc.as_ref().expect("a process");
        fields.insert("proc.pid".into(), Value::from(process.pid));
        fields.insert("proc.name".into(), Value::from(process.name.clone()));
        fields.insert("evt.time".into(), Value::from(event.evt.time.to_string()));
        Alert {
            time: event.evt.time,
            rule: rule.into(),
            priority: Priority::Critical,
            source: "syscall".into(),
            hostname: "h".into(),
            output: format!("miner pid={}", process.pid),
            output_fields: fields,
            tags: Vec::new(),
            ecs: Default::default(),
            tasksentry: AlertMeta {
                event_type: "execve".into(),
                collector: "procscan".into(),
                count: 1,
                first_seen: event.evt.time,
                last_seen: event.evt.time,
                ..AlertMeta::default()
            },
        }
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn first_is_shipped_and_repeats_are_summarised_when_the_window_ends() {
        let mut agg = Aggregator::new(Duration::from_secs(60), 100);
        let mut out = Vec::new();
        for i in 0..10 {
            let e = event(
                100 + i,
                "c1",
                1000 * SEC + u64::try_from(i).expect("small") * SEC,
            );
            agg.observe(alert_for("R", &e), &e, &mut out);
        }
        assert_eq!(out.len(), 1, "only the first goes out at once");
        assert_eq!(out[0].tasksentry.count, 1);
        assert!(!out[0].tasksentry.summary);
        agg.advance(Timestamp(1059 * SEC), &mut out);
        assert_eq!(out.len(), 1, "the window is still open");
        agg.advance(Timestamp(1060 * SEC), &mut out);
        assert_eq!(out.len(), 2);
        let s = &out[1];
        assert!(s.tasksentry.summary);
        assert_eq!(s.tasksentry.count, 9);
        assert_eq!(s.tasksentry.first_seen, Timestamp(1001 * SEC));
        assert_eq!(s.tasksentry.last_seen, Timestamp(1009 * SEC));
        assert_eq!(s.tasksentry.samples["proc.pid"].len(), MAX_SAMPLES);
        assert_eq!(
            s.tasksentry.samples["proc.cmdline"],
            vec![Value::from("xmrig -o pool1"), Value::from("xmrig -o pool0")]
        );
        assert!(s.output.contains("repeated 9 times"), "{}", s.output);
        // The key stayed hot: the next repeat is counted, not shipped.
        let e = event(7, "c1", 1061 * SEC);
        agg.observe(alert_for("R", &e), &e, &mut out);
        assert_eq!(out.len(), 2);
        agg.flush(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].tasksentry.count, 1);
        // After a quiet window the key closes and the next one ships at once.
        let e = event(8, "c1", 2000 * SEC);
        agg.observe(alert_for("R", &e), &e, &mut out);
        assert_eq!(out.len(), 4);
        assert!(!out[3].tasksentry.summary);
    }

    #[test]
    fn different_rules_containers_and_fields_are_different_keys() {
        let mut agg = Aggregator::new(Duration::from_secs(60), 100);
        let mut out = Vec::new();
        let a = event(1, "c1", SEC);
        let b = event(2, "c2", SEC);
        agg.observe(alert_for("R", &a), &a, &mut out);
        agg.observe(alert_for("S", &a), &a, &mut out);
        agg.observe(alert_for("R", &b), &b, &mut out);
        let mut c = event(3, "c1", SEC);
        if let Some(p) = c.proc.as_mut() {
            p.name = "other".into();
        }
        agg.observe(alert_for("R", &c), &c, &mut out);
        assert_eq!(out.len(), 4, "no two of these are repeats");
        assert_eq!(agg.open_keys(), 4);
    }

    #[test]
    fn summaries_of_internal_reports_sum_their_counts() {
        let mut agg = Aggregator::new(Duration::from_secs(60), 100);
        let mut out = Vec::new();
        for (i, missed) in [3u64, 4, 5].iter().enumerate() {
            let e = event(1, "c1", SEC + u64::try_from(i).expect("small"));
            let mut alert = alert_for("Missed", &e);
            alert
                .output_fields
                .insert("tasksentry.count".into(), Value::from(*missed));
            alert.output_fields.insert(
                "tasksentry.message".into(),
                Value::from(format!("{missed} missed")),
            );
            agg.observe(alert, &e, &mut out);
        }
        agg.flush(&mut out);
        assert_eq!(
            out.len(),
            2,
            "different counts and messages are still one key"
        );
        assert_eq!(out[0].output_fields["tasksentry.count"], 3);
        assert_eq!(out[1].tasksentry.count, 2);
        assert_eq!(out[1].output_fields["tasksentry.count"], 9, "4 + 5");
        assert!(
            out[1].output.contains("tasksentry.count totals 9"),
            "{}",
            out[1].output
        );
        assert_eq!(
            out[1].tasksentry.samples["tasksentry.message"],
            vec![Value::from("4 missed"), Value::from("5 missed")]
        );
    }

    #[test]
    fn zero_window_disables_and_key_bound_ships_unaggregated() {
        let mut agg = Aggregator::new(Duration::ZERO, 100);
        let mut out = Vec::new();
        let e = event(1, "c1", SEC);
        for _ in 0..3 {
            agg.observe(alert_for("R", &e), &e, &mut out);
        }
        assert_eq!(out.len(), 3);
        let mut agg = Aggregator::new(Duration::from_secs(60), 1);
        let mut out = Vec::new();
        let a = event(1, "c1", SEC);
        let b = event(1, "c2", SEC);
        agg.observe(alert_for("R", &a), &a, &mut out);
        agg.observe(alert_for("R", &b), &b, &mut out);
        agg.observe(alert_for("R", &b), &b, &mut out);
        assert_eq!(out.len(), 3, "beyond the key bound nothing is held back");
        assert_eq!(agg.stats().overflow, 2);
    }
}

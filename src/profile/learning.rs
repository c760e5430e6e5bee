//! Learning inside `tasksentry run` (the `learn` setting): a [`Processor`] in front of the
//! engine's own that feeds every event, after enrichment, to the [`Learner`], and hands the
//! snapshot events of every container to the inner processor (which records them with
//! `--record` and prints them on every output) every `learn_interval`, at the end of the
//! window and when the monitor stops before it. Alerts keep flowing, unless `learn_suppress`
//! asks the inner processor to keep rule alerts quiet while learning (the monitor's own
//! reports are never quiet).

use std::time::Duration;

use super::learner::{Learner, Limits, VPC_RESOLVER};
use super::snapshot::{MAX_PART_BYTES, Reason, SnapshotHeader, snapshot_events};
use crate::ecs::enrich::TaskView;
use crate::engine::{Processor, Record};
use crate::event::{Event, Timestamp};

/// How to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnSettings {
    /// The learning window, from start-up.
    pub window: Duration,
    /// Time between two snapshots during the window.
    pub interval: Duration,
    /// Rule alerts are kept quiet while learning.
    pub suppress: bool,
    /// Bounds of the aggregate.
    pub limits: Limits,
}

/// Learns while handing every event to the inner processor.
pub struct Learning {
    inner: Box<dyn Processor>,
    learner: Learner,
    settings: LearnSettings,
    run: String,
    task: Option<String>,
    start: Timestamp,
    until: Timestamp,
    next: Timestamp,
    seq: u64,
    active: bool,
    /// The task metadata, read (never waited for) until it names the VPC's resolvers.
    task_view: Option<TaskView>,
}

fn after(time: Timestamp, duration: Duration) -> Timestamp {
    Timestamp(
        time.0
            .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)),
    )
}

impl Learning {
    /// Starts learning at `start` for run `run` (a name unique to this monitor process).
    pub fn new(
        mut inner: Box<dyn Processor>,
        settings: LearnSettings,
        start: Timestamp,
        run: String,
    ) -> Learning {
        if settings.suppress {
            inner.set_quiet(true);
        }
        Learning {
            inner,
            learner: Learner::new(settings.limits),
            settings,
            run,
            task: None,
            start,
            until: after(start, settings.window),
            next: after(start, settings.interval),
            seq: 0,
            active: true,
            task_view: None,
        }
    }

    /// Reads the task metadata the engine reads, for the VPC resolvers' addresses: connections
    /// to them are learnt as `vpc-resolver`, the same name in every task whatever its subnet.
    pub(crate) fn with_task_view(mut self, view: Option<TaskView>) -> Learning {
        self.task_view = view;
        self
    }

    /// Names the VPC resolvers once the task metadata is known (then stops looking).
    fn name_resolvers(&mut self) {
        let Some(view) = self.task_view.as_mut() else {
            return;
        };
        let Some(task) = view.current() else {
            return;
        };
        for ip in task.vpc_resolvers() {
            self.learner.name_endpoint(ip, VPC_RESOLVER);
        }
        self.task_view = None;
    }

    fn snapshot(&mut self, time: Timestamp, reason: Reason, out: &mut Vec<Record>) {
        self.seq += 1;
        let task = self.task.clone().unwrap_or_else(|| self.run.clone());
        let header = SnapshotHeader {
            run: &self.run,
            seq: self.seq,
            task: &task,
            reason,
            window_start: self.start,
            time,
        };
        let summaries = self.learner.summaries();
        let events: Vec<Event> = summaries
            .iter()
            .flat_map(|summary| snapshot_events(summary, &header, MAX_PART_BYTES))
            .collect();
        // As a line of `--emit events` output (alerts lines are the same event in another
        // shape); CloudWatch's event limit is 256 KiB.
        let largest_part = events
            .iter()
            .map(|e| e.to_json_line().len())
            .max()
            .unwrap_or(0);
        tracing::info!(
            seq = self.seq,
            reason = ?reason,
            containers = summaries.len(),
            entries = self.learner.entries(),
            overflow = summaries.iter().flat_map(|s| s.overflow.values()).sum::<u64>(),
            learner_bytes = self.learner.memory_bytes(),
            parts = events.len(),
            largest_line_bytes = largest_part,
            "Profile snapshot taken."
        );
        for event in &events {
            self.inner.process(event, out);
        }
    }

    fn end(&mut self, time: Timestamp, reason: Reason, out: &mut Vec<Record>) {
        self.snapshot(time, reason, out);
        self.active = false;
        if self.settings.suppress {
            self.inner.set_quiet(false);
        }
        tracing::info!(
            entries = self.learner.entries(),
            unnamed_events = self.learner.unnamed(),
            "Learning ended; the profile snapshot is on the outputs."
        );
        // What was learnt is on the outputs; the memory is not needed any more.
        self.learner = Learner::new(self.settings.limits);
    }
}

impl Processor for Learning {
    fn process(&mut self, event: &Event, out: &mut Vec<Record>) {
        if self.active {
            if self.task.is_none()
                && let Some(task) = event
                    .container
                    .as_ref()
                    .and_then(|c| c.ecs.as_ref())
                    .and_then(|e| e.task_id.as_ref())
            {
                self.task = Some(task.clone());
            }
            self.learner.observe(event);
        }
        self.inner.process(event, out);
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        if self.active {
            self.name_resolvers();
            if now >= self.until {
                self.end(now, Reason::WindowEnd, out);
            } else if now >= self.next {
                self.snapshot(now, Reason::Interval, out);
                while self.next <= now {
                    self.next = after(self.next, self.settings.interval);
                }
            }
        }
        self.inner.tick(now, out);
    }

    fn flush(&mut self, out: &mut Vec<Record>) {
        if self.active {
            self.end(Timestamp::now(), Reason::Shutdown, out);
        }
        self.inner.flush(out);
    }

    fn reload(&mut self, reason: &str) -> Option<Event> {
        self.inner.reload(reason)
    }

    fn annotate(&self, event: &Event) -> Option<Event> {
        self.inner.annotate(event)
    }

    fn set_quiet(&mut self, quiet: bool) {
        self.inner.set_quiet(quiet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::chain::EmitAlerts;
    use crate::event::{Collector, EventType};
    use crate::profile::snapshot::{parts_in_text, reassemble};

    fn default_rules() -> crate::rules::RuleSet {
        crate::rules::load(
            &crate::rules::defaults::default_sources(),
            &crate::rules::LoadOptions::default(),
        )
        .ruleset
        .expect("the default rules load")
    }

    fn miner(time: u64) -> Event {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.evt.time = Timestamp(time);
        event.container = Some(Box::new(crate::event::Container {
            id: "t-1".into(),
            name: Some("worker".into()),
            ..Default::default()
        }));
        event.proc = Some(Box::new(crate::event::Process {
            pid: 5,
            ppid: 0,
            name: "xmrig".into(),
            exe: Some("/usr/local/bin/xmrig".into()),
            exepath: Some("/usr/local/bin/xmrig".into()),
            args: vec!["-o".into(), "pool.example:3333".into()],
            ..Default::default()
        }));
        event
    }

    fn settings(suppress: bool) -> LearnSettings {
        LearnSettings {
            window: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            suppress,
            limits: Limits::default(),
        }
    }

    fn lines(out: &[Record]) -> Vec<serde_json::Value> {
        out.iter()
            .map(|r| serde_json::from_str(&r.line).expect("json"))
            .collect()
    }

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn snapshots_go_out_every_interval_and_at_the_end_and_alerts_keep_flowing() {
        let start = Timestamp(1000 * SECOND);
        let inner = Box::new(EmitAlerts::new(default_rules(), "h".into()));
        let mut learning = Learning::new(inner, settings(false), start, "run".into());
        let mut out = Vec::new();
        learning.process(&miner(start.0 + SECOND), &mut out);
        let alerts = lines(&out);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["rule"], "Crypto miner launched");
        out.clear();
        learning.tick(Timestamp(start.0 + 5 * SECOND), &mut out);
        assert!(out.is_empty(), "no snapshot before the interval");
        learning.tick(Timestamp(start.0 + 11 * SECOND), &mut out);
        learning.tick(Timestamp(start.0 + 21 * SECOND), &mut out);
        learning.tick(Timestamp(start.0 + 61 * SECOND), &mut out);
        learning.tick(Timestamp(start.0 + 71 * SECOND), &mut out);
        learning.flush(&mut out);
        let text: Vec<String> = out.iter().map(|r| r.line.to_string()).collect();
        assert!(
            out.iter().all(|r| r.internal),
            "snapshots pass every output"
        );
        let (parts, _) = parts_in_text(&text.join("\n"));
        let reasons: Vec<Reason> = parts.iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            [Reason::Interval, Reason::Interval, Reason::WindowEnd],
            "two intervals, the end of the window, nothing after"
        );
        let (snapshots, _) = reassemble(parts);
        let last = snapshots.last().expect("snapshots");
        assert_eq!(last.profile.container, "worker");
        assert_eq!(last.profile.entries.len(), 1);
    }

    #[test]
    fn learn_suppress_keeps_rule_alerts_quiet_while_learning_only() {
        let start = Timestamp(1000 * SECOND);
        let inner = Box::new(EmitAlerts::new(default_rules(), "h".into()));
        let mut learning = Learning::new(inner, settings(true), start, "run".into());
        let mut out = Vec::new();
        learning.process(&miner(start.0 + SECOND), &mut out);
        learning.tick(Timestamp(start.0 + 2 * SECOND), &mut out);
        assert!(out.is_empty(), "quiet while learning: {:?}", lines(&out));
        learning.tick(Timestamp(start.0 + 61 * SECOND), &mut out);
        out.clear();
        let mut later = miner(start.0 + 62 * SECOND);
        later.proc.as_mut().expect("proc").pid = 6;
        learning.process(&later, &mut out);
        let alerts = lines(&out);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["rule"], "Crypto miner launched");
    }

    #[test]
    fn a_monitor_stopped_before_the_end_of_the_window_ships_what_it_learnt() {
        let start = Timestamp(1000 * SECOND);
        let inner = Box::new(crate::engine::EmitEvents::new(
            crate::alert::redact::Redactor::builtin(),
        ));
        let mut learning = Learning::new(inner, settings(false), start, "run".into());
        let mut out = Vec::new();
        learning.process(&miner(start.0 + SECOND), &mut out);
        out.clear();
        learning.flush(&mut out);
        let text: Vec<String> = out.iter().map(|r| r.line.to_string()).collect();
        let (parts, _) = parts_in_text(&text.join("\n"));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].reason, Reason::Shutdown);
    }
}

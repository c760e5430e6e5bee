//! Rate budgets: token buckets per rule and for all rules together.
//!
//! Aggregation folds repeats of one key; a budget limits how many alerts (first occurrences
//! and summaries) a rule, and all rules together, may ship per minute, for floods of distinct
//! keys (a new command line every time). Each bucket holds up to its per-minute budget and
//! refills continuously at that rate. An alert is shipped only if both its rule's bucket and
//! the global bucket have a token.
//!
//! A suppressed alert is never silent: its `count` (the occurrences it stood for) is added to
//! its rule's suppression tally, and [`Budget::take_reports`] turns every tally older than
//! the report interval (and every tally at shutdown) into a [`SuppressionReport`], which the
//! pipeline ships as a `tasksentry`/`alerts_suppressed` event ("TaskSentry suppressed N
//! alerts of rule R"). Internal (`tasksentry`) alerts are not subject to budgets.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::event::Timestamp;

/// Budgets, in alerts per minute; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Alerts per minute for each rule (bucket size and refill rate).
    pub per_rule_per_minute: u32,
    /// Alerts per minute for all rules together.
    pub global_per_minute: u32,
    /// How long a suppression tally accumulates before it is reported.
    pub report_interval: Duration,
}

impl Default for BudgetConfig {
    fn default() -> BudgetConfig {
        BudgetConfig {
            per_rule_per_minute: 120,
            global_per_minute: 1200,
            report_interval: Duration::from_secs(10),
        }
    }
}

/// One token bucket, on the time of the alerts it sees.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    last: Timestamp,
}

impl Bucket {
    fn new(per_minute: u32) -> Bucket {
        Bucket {
            capacity: f64::from(per_minute),
            tokens: f64::from(per_minute),
            last: Timestamp(0),
        }
    }

    fn unlimited(&self) -> bool {
        self.capacity <= 0.0
    }

    fn refill(&mut self, now: Timestamp) {
        if now > self.last {
            if self.last.0 != 0 {
                let elapsed = (now.0 - self.last.0) as f64 / 1e9;
                self.tokens = (self.tokens + elapsed * self.capacity / 60.0).min(self.capacity);
            }
            self.last = now;
        }
    }
}

/// Suppressed alerts of one rule since the last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SuppressionReport {
    /// The rule.
    pub(crate) rule: String,
    /// Occurrences suppressed (the sum of the suppressed alerts' counts).
    pub(crate) occurrences: u64,
    /// Alerts suppressed.
    pub(crate) alerts: u64,
    /// Time of the first suppressed alert.
    pub(crate) first: Timestamp,
    /// Time of the last suppressed alert.
    pub(crate) last: Timestamp,
}

/// Per-rule and global budgets with suppression accounting.
#[derive(Debug)]
pub(crate) struct Budget {
    config: BudgetConfig,
    global: Bucket,
    per_rule: HashMap<String, Bucket>,
    tally: BTreeMap<String, SuppressionReport>,
    clock: Timestamp,
}

impl Budget {
    /// Budgets as configured.
    pub fn new(config: BudgetConfig) -> Budget {
        Budget {
            config,
            global: Bucket::new(config.global_per_minute),
            per_rule: HashMap::new(),
            tally: BTreeMap::new(),
            clock: Timestamp(0),
        }
    }

    /// Whether an alert of `rule` standing for `count` occurrences at `time` may be shipped;
    /// if not, it is added to the rule's suppression tally.
    pub(crate) fn admit(&mut self, rule: &str, count: u64, time: Timestamp) -> bool {
        self.clock = self.clock.max(time);
        let now = self.clock;
        let per_rule = self.config.per_rule_per_minute;
        let bucket = self
            .per_rule
            .entry(rule.to_owned())
            .or_insert_with(|| Bucket::new(per_rule));
        bucket.refill(now);
        self.global.refill(now);
        let rule_ok = bucket.unlimited() || bucket.tokens >= 1.0;
        let global_ok = self.global.unlimited() || self.global.tokens >= 1.0;
        if rule_ok && global_ok {
            if !bucket.unlimited() {
                bucket.tokens -= 1.0;
            }
            if !self.global.unlimited() {
                self.global.tokens -= 1.0;
            }
            return true;
        }
        let entry = self
            .tally
            .entry(rule.to_owned())
            .or_insert_with(|| SuppressionReport {
                rule: rule.to_owned(),
                occurrences: 0,
                alerts: 0,
                first: time,
                last: time,
            });
        entry.occurrences += count;
        entry.alerts += 1;
        entry.first = entry.first.min(time);
        entry.last = entry.last.max(time);
        false
    }

    /// The tallies whose first suppression is at least the report interval before `now`
    /// (all of them when `all`), oldest first; they are reset.
    pub(crate) fn take_reports(&mut self, now: Timestamp, all: bool) -> Vec<SuppressionReport> {
        self.clock = self.clock.max(now);
        let interval = u64::try_from(self.config.report_interval.as_nanos()).unwrap_or(u64::MAX);
        let clock = self.clock;
        let due: Vec<String> = self
            .tally
            .iter()
            .filter(|(_, t)| all || t.first.0.saturating_add(interval) <= clock.0)
            .map(|(rule, _)| rule.clone())
            .collect();
        let mut reports: Vec<SuppressionReport> = due
            .iter()
            .filter_map(|rule| self.tally.remove(rule))
            .collect();
        reports.sort_by(|a, b| (a.first, &a.rule).cmp(&(b.first, &b.rule)));
        reports
    }

    /// Nothing suppressed is waiting to be reported.
    pub(crate) fn idle(&self) -> bool {
        self.tally.is_empty()
    }

    /// Occurrences currently suppressed and not yet reported.
    #[cfg(test)]
    pub(crate) fn unreported(&self) -> u64 {
        self.tally.values().map(|t| t.occurrences).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn rule_budget_suppresses_and_reports_the_excess() {
        let mut budget = Budget::new(BudgetConfig {
            per_rule_per_minute: 10,
            global_per_minute: 0,
            report_interval: Duration::from_secs(5),
        });
        let t = Timestamp(100 * SEC);
        let admitted = (0..25).filter(|_| budget.admit("R", 2, t)).count();
        assert_eq!(admitted, 10, "the bucket holds ten");
        assert!(budget.admit("S", 1, t), "other rules have their own bucket");
        assert!(budget.take_reports(Timestamp(104 * SEC), false).is_empty());
        let reports = budget.take_reports(Timestamp(105 * SEC), false);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].rule, "R");
        assert_eq!(reports[0].alerts, 15);
        assert_eq!(
            reports[0].occurrences, 30,
            "counts of suppressed summaries add up"
        );
        assert_eq!(budget.unreported(), 0);
        // Six seconds refill one token at ten per minute.
        assert!(budget.admit("R", 1, Timestamp(111 * SEC)));
        assert!(!budget.admit("R", 1, Timestamp(111 * SEC)));
        assert_eq!(budget.take_reports(Timestamp(111 * SEC), true).len(), 1);
    }

    #[test]
    fn global_budget_limits_all_rules_together() {
        let mut budget = Budget::new(BudgetConfig {
            per_rule_per_minute: 0,
            global_per_minute: 3,
            report_interval: Duration::from_secs(5),
        });
        let t = Timestamp(SEC);
        let admitted = ["A", "B", "C", "D", "E"]
            .iter()
            .filter(|rule| budget.admit(rule, 1, t))
            .count();
        assert_eq!(admitted, 3);
        let reports = budget.take_reports(t, true);
        assert_eq!(
            reports.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>(),
            ["D", "E"]
        );
    }
}

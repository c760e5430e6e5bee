//! Workload profiles in end-to-end tests: which alerts a profile raised, and waiting for the
//! deviations a test expects.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Monitor;

/// Whether `alert` is one of a generated profile's (they are tagged `profile`).
pub fn is_profile_alert(alert: &Value) -> bool {
    alert["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t == "profile"))
}

/// Waits until `mon` has raised, for each `(rule, output field, value)` of `expected`, an alert
/// of that rule whose output field has that value. Past `timeout` it panics naming what is
/// missing, with the profile alerts raised, the profile text and the monitor's stderr.
pub fn wait_for_profile_alerts(
    mon: &Monitor,
    expected: &[(&str, &str, Value)],
    profile: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let alerts = mon.events();
        let missing: Vec<&(&str, &str, Value)> = expected
            .iter()
            .filter(|(rule, field, value)| {
                !alerts
                    .iter()
                    .any(|a| a["rule"] == *rule && a["output_fields"][*field] == *value)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "profile alerts missing: {missing:?}\nprofile alerts:\n{}\nprofile:\n{profile}\nstderr:\n{}",
            alerts
                .iter()
                .filter(|a| is_profile_alert(a))
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

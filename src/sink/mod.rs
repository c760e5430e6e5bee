//! Sinks: where alerts and events are delivered (stdout JSON lines, CloudWatch Logs).

pub mod bridge;
pub mod cloudwatch;
pub mod stdout;

//! Sinks: where alerts and events are delivered (stdout JSON lines, CloudWatch Logs).

pub(crate) mod bridge;
pub mod cloudwatch;
pub(crate) mod stdout;

//! Alerts: what a rule match becomes before it reaches a sink.

//! Guarding the monitor itself: nothing done to it is silent.
//!
//! - [`supervise`]: `tasksentry run` is a small supervisor whose only job is the worker that
//!   monitors: it forwards stop signals with their sender, restarts a killed or crashed worker
//!   with bounded backoff, and hands the new worker a restart report.
//! - [`carry`]: what a worker already reported, handed to its successor through a memory file
//!   the supervisor holds, so a restart does not replay it.
//! - [`watchdog`]: the worker's signal watchdog: who sent a signal, stops of the monitor and
//!   of its supervisor, tracers attached to either, rule-file changes, supervisor loss.
//! - [`health`]: collector threads that end early are reported, and restarted where they can be.

pub mod carry;
pub mod health;
pub mod supervise;
pub mod watchdog;

//! Workload profiles: learn what each container of a task normally does, then alert on what it
//! never did.
//!
//! ```text
//! engine thread: learning.rs (Processor) ─▶ learner.rs (bounded aggregate per container name)
//!                      └── every learn_interval / end of window / stop ─▶ snapshot.rs (parts ≤ 200 KiB)
//!                                                                    ─▶ outputs, --record
//! tasksentry profile build: snapshot.rs (read, reassemble) ─▶ build.rs (merge, --min-tasks, rules file)
//! ```
//!
//! Everything here is pure, like `rules/`: no I/O (the command reads and writes the files), no
//! clock but the times it is given.

pub mod build;
pub mod learner;
pub mod learning;
pub mod snapshot;

//! TaskSentry: a runtime security monitor for Amazon ECS tasks on AWS Fargate.
//!
//! The crate is laid out as the pipeline it implements (see `ARCHITECTURE.md`):
//! collectors ([`collect`]) turn observations of `/proc`, sockets and files into [`event::Event`]s;
//! the rule engine ([`rules`]) matches events against Falco-compatible rules; [`alert`] turns
//! matches into alerts; sinks ([`sink`]) deliver them. [`ecs`] knows about the task's metadata.

pub mod alert;
mod memory;

pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod ecs;
pub mod engine;
pub mod event;
pub mod exit;
mod fasthash;
pub mod guard;
pub mod image;
pub mod lint;
pub mod priority;
pub mod procfs;
pub mod profile;
pub mod rule_files;
pub mod rules;
pub mod sink;
pub mod telemetry;
pub mod topology;

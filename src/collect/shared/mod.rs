//! What the collectors share: the process and container tables procscan publishes
//! ([`table`], with the tracer's [`exec_images`] overlay), the files the file collector saw
//! written ([`drift`]), the exec signal ([`exec_signal`]), the procscan-tracer link
//! ([`tracer_link`]), the monitor's own connections ([`own_sockets`]), container user
//! databases ([`users`]) and the rate limiter of their warnings.

pub(crate) mod drift;
pub(crate) mod exec_images;
pub(crate) mod exec_signal;
pub(crate) mod log_limit;
pub(crate) mod own_sockets;
pub(crate) mod table;
pub(crate) mod tracer_link;
pub(crate) mod users;

pub use drift::DriftRegistry;
pub(crate) use exec_images::ExecImages;
pub(crate) use exec_signal::ExecSignal;
pub use table::Tables;
pub(crate) use table::{ContainerTable, Exclusion, MemberInfo, ProcEntry, ProcKey, SharedTables};
pub(crate) use tracer_link::{ScannedImage, TracerLink};

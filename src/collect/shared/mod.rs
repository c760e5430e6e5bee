//! What the collectors share: the process and container tables procscan publishes
//! ([`table`], with the tracer's [`exec_images`] overlay), the files the file collector saw
//! written ([`drift`]), the exec signal ([`exec_signal`]), the procscan-tracer link
//! ([`tracer_link`]), the monitor's own connections ([`own_sockets`]), container user
//! databases ([`users`]) and the rate limiter of their warnings.

pub mod drift;
pub mod exec_images;
pub mod exec_signal;
pub(crate) mod log_limit;
pub mod own_sockets;
pub mod table;
pub mod tracer_link;
pub mod users;

pub use drift::DriftRegistry;
pub use exec_images::ExecImages;
pub use exec_signal::ExecSignal;
pub use table::{
    ContainerEntry, ContainerTable, Exclusion, MemberInfo, ProcEntry, ProcKey, ProcessTable,
    SharedTables, Tables,
};
pub use tracer_link::{ScannedImage, TracerLink};

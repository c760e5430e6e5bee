//! Exclusions: the monitor, its children and its own container; the task's pause process and
//! its container; kernel threads (see the module documentation of [`super`]). Excluded
//! processes stay in the table so that other collectors drop their events.

use std::path::Path;

use super::ProcScanner;
use crate::collect::proc::{ProcIdentity, read_link_string};
use crate::collect::shared::{Exclusion, ProcKey};
use crate::procfs::{parse_cgroup, parse_ns_link};

/// What the monitor knows about itself, for exclusion.
#[derive(Debug, Clone, Default)]
pub(super) struct SelfInfo {
    pub(super) pid: Option<i32>,
    pub(super) container: Option<String>,
    pub(super) mnt_ns: Option<u64>,
}

pub(super) fn read_self_info(root: &Path) -> SelfInfo {
    let pid = read_link_string(&root.join("self")).and_then(|t| t.parse().ok());
    let cgroup = std::fs::read_to_string(root.join("self/cgroup"))
        .ok()
        .map(|text| parse_cgroup(&text));
    let mnt_ns = read_link_string(&root.join("self/ns/mnt"))
        .as_deref()
        .and_then(parse_ns_link);
    let init_mnt_ns = read_link_string(&root.join("1/ns/mnt"))
        .as_deref()
        .and_then(parse_ns_link);
    // The monitor is a sidecar of its own when it has a mount namespace of its own (pid 1,
    // the task's pause process, is known to be elsewhere) or an ECS container cgroup. Anywhere
    // else (a developer's host, a plain container it shares with everything) excluding "our
    // container" or "our mount namespace" would hide every process, so only the monitor's
    // own pid and descendants are excluded.
    let own_mnt_ns = match (mnt_ns, init_mnt_ns) {
        (Some(mine), Some(init)) if mine != init => Some(mine),
        _ => None,
    };
    let ecs_cgroup = cgroup
        .as_ref()
        .is_some_and(|info| info.path.contains("/ecs/"));
    let container = cgroup
        .and_then(|info| info.container_id)
        .filter(|_| ecs_cgroup || own_mnt_ns.is_some());
    SelfInfo {
        pid,
        container,
        mnt_ns: own_mnt_ns,
    }
}

impl ProcScanner {
    /// Whether a new process is excluded, and whether the exclusion covers its whole container.
    pub(super) fn exclusion_for(
        &self,
        identity: &ProcIdentity,
        container_id: &str,
    ) -> (Option<Exclusion>, bool) {
        let pid = identity.stat.pid;
        if self.config.exclude_pause {
            if let Some(pause) = &self.pause_container
                && pause == container_id
            {
                return (Some(Exclusion::Pause), true);
            }
            if pid == 1 {
                return (Some(Exclusion::Pause), false);
            }
        }
        if self.config.exclude_self {
            if let Some(mine) = &self.me.container
                && mine == container_id
            {
                return (Some(Exclusion::Monitor), true);
            }
            if self.me.pid == Some(pid)
                || (self.me.mnt_ns.is_some() && identity.mnt_ns == self.me.mnt_ns)
            {
                return (Some(Exclusion::Monitor), false);
            }
            let ppid = identity.stat.ppid;
            if let Some(start) = self.tables.processes.live_start(ppid)
                && let Some(parent) = self.tables.processes.get(&ProcKey {
                    pid: ppid,
                    start_ticks: start,
                })
                && parent.excluded == Some(Exclusion::Monitor)
            {
                return (Some(Exclusion::Monitor), false);
            }
        }
        (None, false)
    }
}

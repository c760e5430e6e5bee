//! `/proc/<pid>/status` and `/proc/<pid>/loginuid`.

/// The fields of `/proc/<pid>/status` that TaskSentry uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Thread group id: the process a thread belongs to.
    pub(crate) tgid: Option<i32>,
    /// Real uid.
    pub uid: Option<u32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Saved uid.
    pub(crate) suid: Option<u32>,
    /// Real gid.
    pub gid: Option<u32>,
    /// Effective gid.
    pub egid: Option<u32>,
    /// Saved gid.
    pub(crate) sgid: Option<u32>,
    /// Inheritable capabilities.
    pub(crate) cap_inh: Option<u64>,
    /// Permitted capabilities.
    pub(crate) cap_prm: Option<u64>,
    /// Effective capabilities.
    pub cap_eff: Option<u64>,
    /// Pid of the tracer, 0 when none.
    pub tracer_pid: Option<i32>,
    /// The pid in each nested PID namespace, outermost first.
    pub(crate) nspid: Vec<i32>,
    /// Number of threads.
    pub threads: Option<u32>,
}

/// Parses the text of `/proc/<pid>/status`. Unknown or malformed lines are ignored.
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut values = value.split_ascii_whitespace();
        match key {
            "Uid" => {
                status.uid = values.next().and_then(|v| v.parse().ok());
                status.euid = values.next().and_then(|v| v.parse().ok());
                status.suid = values.next().and_then(|v| v.parse().ok());
            }
            "Gid" => {
                status.gid = values.next().and_then(|v| v.parse().ok());
                status.egid = values.next().and_then(|v| v.parse().ok());
                status.sgid = values.next().and_then(|v| v.parse().ok());
            }
            "CapInh" => status.cap_inh = parse_hex(values.next()),
            "CapPrm" => status.cap_prm = parse_hex(values.next()),
            "CapEff" => status.cap_eff = parse_hex(values.next()),
            "Tgid" => status.tgid = values.next().and_then(|v| v.parse().ok()),
            "TracerPid" => status.tracer_pid = values.next().and_then(|v| v.parse().ok()),
            "NSpid" => status.nspid = values.filter_map(|v| v.parse().ok()).collect(),
            "Threads" => status.threads = values.next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    status
}

fn parse_hex(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| u64::from_str_radix(v, 16).ok())
}

/// Parses `/proc/<pid>/loginuid`: `4294967295` (unset) becomes -1.
pub fn parse_loginuid(text: &str) -> Option<i64> {
    let value: u64 = text.trim().parse().ok()?;
    if value == u64::from(u32::MAX) {
        Some(-1)
    } else {
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::fixture;

    #[test]
    fn status_fields() {
        let status = parse_status(&String::from_utf8_lossy(&fixture("hostile", "status")));
        assert_eq!(status.uid, Some(0));
        assert_eq!(status.euid, Some(0));
        assert_eq!(status.gid, Some(0));
        assert_eq!(status.egid, Some(0));
        assert_eq!(status.cap_inh, Some(0));
        assert_eq!(status.cap_prm, Some(0x1fffeffffff));
        assert_eq!(status.cap_eff, Some(0x1fffeffffff));
        assert_eq!(status.tracer_pid, Some(0));
        assert_eq!(status.nspid, vec![10209]);
        assert_eq!(status.threads, Some(1));

        let nested = parse_status(
            "Uid:\t1000\t1001\t1001\t1001\nGid:\t50\t51\t51\t51\nNSpid:\t4242\t7\nTracerPid:\t99\n",
        );
        assert_eq!((nested.uid, nested.euid), (Some(1000), Some(1001)));
        assert_eq!((nested.gid, nested.egid), (Some(50), Some(51)));
        assert_eq!(nested.nspid, vec![4242, 7]);
        assert_eq!(nested.tracer_pid, Some(99));
        assert_eq!(parse_status("garbage\n:::\nUid:\tx\n").uid, None);
    }
}

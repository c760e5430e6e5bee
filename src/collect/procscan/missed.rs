//! Missed processes: every pid the kernel allocated since the previous scan (from
//! `ns_last_pid`) that the scan did not see (see the module documentation of
//! [`super`]).

use std::collections::HashSet;

use super::ProcScanner;

/// Pids the kernel allocated between two readings of `ns_last_pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AllocRange {
    /// Half-open ranges `[start, end)`.
    parts: [(i32, i32); 2],
}

/// After wrapping, the kernel allocates from here (`RESERVED_PIDS`).
const RESERVED_PIDS: i32 = 300;

/// Past this many pids in one range, missed processes are estimated instead of probed.
const MAX_MISSED_PROBES: usize = 8192;

impl AllocRange {
    pub(super) fn empty() -> AllocRange {
        AllocRange {
            parts: [(0, 0), (0, 0)],
        }
    }

    pub(super) fn new(prev: i32, cur: i32, pid_max: i32) -> AllocRange {
        if cur >= prev {
            AllocRange {
                parts: [(prev + 1, cur + 1), (0, 0)],
            }
        } else {
            let low = if pid_max > RESERVED_PIDS {
                RESERVED_PIDS
            } else {
                1
            };
            AllocRange {
                parts: [(prev + 1, pid_max), (low, cur + 1)],
            }
        }
    }

    pub(super) fn contains(&self, pid: i32) -> bool {
        self.parts.iter().any(|&(s, e)| pid >= s && pid < e)
    }

    pub(super) fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|&(s, e)| usize::try_from(e - s).unwrap_or(0))
            .sum()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.parts.iter().flat_map(|&(s, e)| s..e)
    }
}

impl ProcScanner {
    pub(super) fn count_missed(
        &self,
        alloc: &AllocRange,
        new_pids: &HashSet<i32>,
        exited_pids: &HashSet<i32>,
    ) -> u64 {
        let len = alloc.len();
        if len == 0 {
            return 0;
        }
        if len > MAX_MISSED_PROBES {
            // Too many to probe one by one: estimate from what was seen.
            let seen = new_pids.len() + exited_pids.len();
            return u64::try_from(len.saturating_sub(seen)).unwrap_or(u64::MAX);
        }
        let mut missed = 0;
        for pid in alloc.iter() {
            if new_pids.contains(&pid) || exited_pids.contains(&pid) {
                continue;
            }
            // In trace mode, a pid the tracer saw is not missed.
            if self.config.tracer.as_ref().is_some_and(|l| l.covers(pid)) {
                continue;
            }
            if self.config.proc_root.join(pid.to_string()).exists() {
                continue;
            }
            missed += 1;
        }
        missed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alloc_range_plain_and_wrapped() {
        let r = AllocRange::new(100, 105, 32768);
        assert_eq!(r.len(), 5);
        assert!(!r.contains(100));
        assert!(r.contains(101) && r.contains(105));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![101, 102, 103, 104, 105]);
        let w = AllocRange::new(32765, 302, 32768);
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            vec![32766, 32767, 300, 301, 302]
        );
        assert!(!w.contains(5));
        assert_eq!(AllocRange::empty().len(), 0);
    }
}

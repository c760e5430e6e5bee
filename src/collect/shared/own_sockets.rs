//! Connections the monitor opened itself, so that the sockets collector never reports them.
//!
//! The sockets collector recognises the monitor's sockets from its own fd table, but a short
//! request (the ECS task metadata fetch, a few milliseconds) can open and close between two
//! polls: only its `TIME_WAIT` entry is then seen, without an inode, and it would be reported
//! as an unattributed connection to 169.254.170.2, which the default rules flag. Code of the
//! monitor that opens such connections ([`crate::ecs::http`]) registers each one here with
//! [`register`]; the collector asks [`is_own`] before reporting a connection it could not
//! attribute. Entries are kept for [`KEEP`] (longer than `TIME_WAIT` lasts) and bounded in number.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::procfs::net::unmap;

/// How long a registered connection is remembered (Linux keeps `TIME_WAIT` for 60 s).
pub(crate) const KEEP: Duration = Duration::from_secs(180);
/// The most connections remembered; the oldest is forgotten first.
const MAX: usize = 4096;

static OWN: Mutex<VecDeque<(SocketAddr, SocketAddr, Instant)>> = Mutex::new(VecDeque::new());

fn normal(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(unmap(addr.ip()), addr.port())
}

/// Remembers a connection the monitor opened (its local and remote addresses).
pub(crate) fn register(local: SocketAddr, remote: SocketAddr) {
    let now = Instant::now();
    let mut own = OWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while own
        .front()
        .is_some_and(|(_, _, at)| now.duration_since(*at) > KEEP)
        || own.len() >= MAX
    {
        own.pop_front();
    }
    own.push_back((normal(local), normal(remote), now));
}

/// Whether the monitor registered a connection with these ends recently.
pub(crate) fn is_own(local: SocketAddr, remote: SocketAddr) -> bool {
    let (local, remote) = (normal(local), normal(remote));
    let now = Instant::now();
    OWN.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .any(|(l, r, at)| *l == local && *r == remote && now.duration_since(*at) <= KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_connections_are_recognised_in_either_address_form() {
        let local: SocketAddr = "198.51.100.77:40123".parse().expect("addr");
        let remote: SocketAddr = "169.254.170.2:80".parse().expect("addr");
        assert!(!is_own(local, remote));
        register(local, remote);
        assert!(is_own(local, remote));
        let mapped_local: SocketAddr = "[::ffff:198.51.100.77]:40123".parse().expect("addr");
        assert!(is_own(mapped_local, remote));
        let other_port: SocketAddr = "198.51.100.77:40124".parse().expect("addr");
        assert!(!is_own(other_port, remote));
        assert!(!is_own(remote, local), "direction matters");
    }
}

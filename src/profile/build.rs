//! `tasksentry profile build`, the pure part: snapshots of many tasks merged into one profile
//! (union, with in how many tasks and how often each entry was seen), entries seen in too few
//! tasks dropped, and the profile written as a Falco-language rules file: per container, macros
//! and lists of what is normal and rules that fire on what was never seen. The same snapshots
//! always give the same bytes (everything is sorted; nothing depends on the time of the build).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use super::learner::{Entry, FIXED_ENDPOINTS, cidr, directory, endpoint_description};
use super::snapshot::Snapshot;
use crate::event::Timestamp;

/// An entry merged over tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The tasks that saw it.
    pub tasks: BTreeSet<String>,
    /// How often, over every task.
    pub n: u64,
}

impl Seen {
    fn absorb(&mut self, other: Seen) {
        self.tasks.extend(other.tasks);
        self.n += other.n;
    }
}

/// One container's merged profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedContainer {
    /// Image digests seen.
    pub digests: BTreeSet<String>,
    /// Tasks that learnt it.
    pub tasks: BTreeSet<String>,
    /// First and last event learnt.
    pub first_seen: Option<Timestamp>,
    /// Last event learnt.
    pub last_seen: Option<Timestamp>,
    /// Overflow by kind, summed over tasks: the profile is incomplete for these kinds.
    pub overflow: BTreeMap<String, u64>,
    /// Named endpoints among the destinations, with every address they stood for.
    pub endpoints: BTreeMap<String, BTreeSet<String>>,
    /// What was seen in enough tasks.
    pub entries: BTreeMap<Entry, Seen>,
    /// Entries left out for being seen in fewer than `min_tasks` tasks.
    pub dropped: Vec<(Entry, Seen)>,
}

/// The merged profile of every container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// By container name.
    pub containers: BTreeMap<String, MergedContainer>,
    /// Every task.
    pub tasks: BTreeSet<String>,
    /// Entries kept were seen in at least this many tasks.
    pub min_tasks: usize,
}

/// Merges snapshots: for each task, container and learning run the latest snapshot (they are
/// cumulative), the runs of a task added up, then the tasks united.
pub fn merge(snapshots: &[Snapshot], min_tasks: usize) -> Profile {
    let mut latest: BTreeMap<(&str, &str, &str), &Snapshot> = BTreeMap::new();
    for snapshot in snapshots {
        let key = (
            snapshot.task.as_str(),
            snapshot.profile.container.as_str(),
            snapshot.run.as_str(),
        );
        let newer = latest.get(&key).is_none_or(|held| snapshot.seq > held.seq);
        if newer {
            latest.insert(key, snapshot);
        }
    }
    let mut profile = Profile {
        min_tasks,
        ..Profile::default()
    };
    for ((task, container, _run), snapshot) in latest {
        profile.tasks.insert(task.to_owned());
        let merged = profile.containers.entry(container.to_owned()).or_default();
        merged.tasks.insert(task.to_owned());
        merged
            .digests
            .extend(snapshot.profile.image_digests.iter().cloned());
        merged.first_seen = min_time(merged.first_seen, snapshot.profile.first_seen);
        merged.last_seen = max_time(merged.last_seen, snapshot.profile.last_seen);
        for (kind, n) in &snapshot.profile.overflow {
            *merged.overflow.entry(kind.clone()).or_default() += n;
        }
        for (name, addresses) in &snapshot.profile.endpoints {
            merged
                .endpoints
                .entry(name.clone())
                .or_default()
                .extend(addresses.iter().cloned());
        }
        for counted in &snapshot.profile.entries {
            let seen = merged.entries.entry(counted.entry.clone()).or_default();
            seen.tasks.insert(task.to_owned());
            seen.n += counted.n;
        }
    }
    for merged in profile.containers.values_mut() {
        fold(&mut merged.entries);
        let (kept, dropped): (BTreeMap<Entry, Seen>, BTreeMap<Entry, Seen>) =
            std::mem::take(&mut merged.entries)
                .into_iter()
                .partition(|(_, seen)| seen.tasks.len() >= min_tasks);
        merged.entries = kept;
        merged.dropped = dropped.into_iter().collect();
    }
    profile
}

fn min_time(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_time(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Addresses one task learnt one by one and another as their network, files one task learnt
/// one by one and another as their directory: the network (directory) stands for them.
fn fold(entries: &mut BTreeMap<Entry, Seen>) {
    let covering: BTreeSet<Entry> = entries
        .keys()
        .filter(|e| match e {
            Entry::Connect { dest: a, .. } | Entry::Inbound { peer: a, .. } => a.contains('/'),
            Entry::Write { dir, .. } => *dir,
            _ => false,
        })
        .cloned()
        .collect();
    if covering.is_empty() {
        return;
    }
    let covered: Vec<(Entry, Entry)> = entries
        .keys()
        .filter_map(|entry| {
            let cover = match entry {
                Entry::Connect { proto, port, dest } => {
                    let ip: IpAddr = dest.parse().ok()?;
                    Entry::Connect {
                        proto: proto.clone(),
                        port: *port,
                        dest: cidr(network_of(ip)),
                    }
                }
                Entry::Inbound { proto, port, peer } => {
                    let ip: IpAddr = peer.parse().ok()?;
                    Entry::Inbound {
                        proto: proto.clone(),
                        port: *port,
                        peer: cidr(network_of(ip)),
                    }
                }
                Entry::Write { path, dir: false } => Entry::Write {
                    path: directory(path).to_owned(),
                    dir: true,
                },
                _ => return None,
            };
            covering.contains(&cover).then(|| (entry.clone(), cover))
        })
        .collect();
    for (entry, cover) in covered {
        if let Some(seen) = entries.remove(&entry)
            && let Some(target) = entries.get_mut(&cover)
        {
            target.absorb(seen);
        }
    }
}

fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The shells the "Shell never seen" rule knows.
const SHELLS: &[&str] = &[
    "ash", "bash", "csh", "dash", "fish", "ksh", "sh", "tcsh", "zsh",
];

/// A string in Falco's condition syntax: double-quoted, escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A list item in YAML: a bare word when Falco and YAML both take it as is, else a Falco
/// quoted string in YAML single quotes.
fn item(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
        && !text.starts_with(['-', '@', '.'])
        && !["and", "or", "not", "in", "true", "false", "null"].contains(&text);
    if bare {
        text.to_owned()
    } else {
        format!("'{}'", quoted(text).replace('\'', "''"))
    }
}

/// A name part for lists and macros: lowercase letters, digits and `_`.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A rules-file block scalar (folded), indented for a key at the top level of an item.
fn block(text: &str) -> String {
    let mut out = String::from(">-\n");
    for line in text.lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

fn join_items<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(item).collect();
    format!("[{}]", items.join(", "))
}

fn list(out: &mut String, name: &str, items: &[&str]) {
    let _ = writeln!(
        out,
        "- list: {name}\n  items: {}\n",
        join_items(items.iter().copied())
    );
}

fn macro_def(out: &mut String, name: &str, condition: &str) {
    let _ = writeln!(out, "- macro: {name}\n  condition: {}", block(condition));
}

struct RuleText<'a> {
    name: String,
    desc: String,
    condition: String,
    output: &'a str,
    priority: &'a str,
    tags: &'a str,
}

fn rule(out: &mut String, rule: &RuleText<'_>) {
    let _ = writeln!(
        out,
        "- rule: {}\n  desc: {}  condition: {}  output: {}  priority: {}\n  tags: {}\n",
        rule.name,
        block(&rule.desc),
        block(&rule.condition),
        block(rule.output),
        rule.priority,
        rule.tags
    );
}

const LOOPBACK: &str = "(\"127.0.0.0/8\", \"::1/128\")";

/// A single address as a CIDR of its own, a network as it is.
fn as_net(address: &str) -> String {
    if address.contains('/') {
        address.to_owned()
    } else if address.contains(':') {
        format!("{address}/128")
    } else {
        format!("{address}/32")
    }
}

/// `(fd.l4proto = P and fd.sport = N and NETFIELD in (...))` for every protocol and port.
fn address_macro(groups: &BTreeMap<(&str, u16), Vec<&str>>, net_field: &str) -> String {
    groups
        .iter()
        .map(|((proto, port), addresses)| {
            let nets: Vec<String> = addresses.iter().map(|a| quoted(&as_net(a))).collect();
            format!(
                "(fd.l4proto = {} and fd.sport = {port} and {net_field} in ({}))",
                quoted(proto),
                nets.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n or ")
}

/// The named AWS and ECS endpoints a container connected to: a comment saying what each is,
/// a list of its addresses (the fixed one, or every one it stood for in the tasks), and the
/// clauses of the destinations macro that allow them by protocol and port.
fn named_endpoints(
    out: &mut String,
    slug: &str,
    container: &MergedContainer,
    used: &BTreeMap<(&str, u16), Vec<&str>>,
) -> Vec<String> {
    let names: BTreeSet<&str> = used.values().flatten().copied().collect();
    let mut lists: BTreeMap<&str, String> = BTreeMap::new();
    for name in names {
        let mut addresses: BTreeSet<String> = container
            .endpoints
            .get(name)
            .map(|a| a.iter().map(|a| as_net(a)).collect())
            .unwrap_or_default();
        if let Some((ip, _, _)) = FIXED_ENDPOINTS.iter().find(|(_, n, _)| *n == name) {
            addresses.insert(format!("{ip}/32"));
        }
        if addresses.is_empty() {
            continue;
        }
        let list_name = format!("profile_{slug}_{}", slug_part(name));
        let _ = writeln!(
            out,
            "# Endpoint {name}: {} ({})",
            endpoint_description(name).unwrap_or("?"),
            addresses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let items: Vec<&str> = addresses.iter().map(String::as_str).collect();
        list(out, &list_name, &items);
        lists.insert(name, list_name);
    }
    let mut clauses = Vec::new();
    for ((proto, port), names) in used {
        for name in names {
            if let Some(list_name) = lists.get(name) {
                clauses.push(format!(
                    "(fd.l4proto = {} and fd.sport = {port} and fd.snet in ({list_name}))",
                    quoted(proto)
                ));
            }
        }
    }
    clauses
}

fn time_text(time: Option<Timestamp>) -> String {
    time.map_or_else(|| "?".to_owned(), |t| t.to_string())
}

/// The profile as a rules file.
pub fn render(profile: &Profile) -> String {
    let mut out = String::new();
    let first = profile
        .containers
        .values()
        .filter_map(|c| c.first_seen)
        .min();
    let last = profile
        .containers
        .values()
        .filter_map(|c| c.last_seen)
        .max();
    let _ = writeln!(
        out,
        "# TaskSentry workload profile, written by `tasksentry profile build`.\n\
         #\n\
         # What each container below did while TaskSentry learnt it; the rules fire on what it\n\
         # never did. Load it after the default rules (`--rules`), which keep firing on known-bad\n\
         # behaviour whether or not it happened while learning. Rebuild it from new snapshots\n\
         # rather than editing it, and review the difference (`tasksentry profile diff`).\n\
         #\n\
         # Tasks: {} ({})\n\
         # Period: {} to {}\n\
         # Entries kept: seen in at least {} task(s)",
        profile.tasks.len(),
        profile.tasks.iter().cloned().collect::<Vec<_>>().join(", "),
        time_text(first),
        time_text(last),
        profile.min_tasks
    );
    for (name, container) in &profile.containers {
        let _ = writeln!(
            out,
            "# Container {name}: {} task(s), {} entries, {} left out (seen in too few tasks), image {}",
            container.tasks.len(),
            container.entries.len(),
            container.dropped.len(),
            if container.digests.is_empty() {
                "digest unknown".to_owned()
            } else {
                container
                    .digests
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for (kind, n) in &container.overflow {
            let _ = writeln!(
                out,
                "#   PROFILE OVERFLOW: {n} new {kind} entries were not learnt (the cap was reached): \
                 no {kind} rule for this container"
            );
        }
    }
    out.push('\n');
    let mut slugs = BTreeSet::new();
    for (name, container) in &profile.containers {
        let mut base = slug(name);
        while !slugs.insert(base.clone()) {
            base.push('_');
        }
        render_container(&mut out, name, &base, container);
    }
    out
}

/// How an entry reads in the profile's listing: kind, then what.
pub fn describe(entry: &Entry) -> (&'static str, String) {
    let what = match entry {
        Entry::Exec { exe, name, parent } => format!(
            "{exe} name={name} parent={}",
            parent.as_deref().unwrap_or("-")
        ),
        Entry::Listen { proto, port } => format!("{proto}/{port}"),
        Entry::Connect { proto, port, dest } => format!("{proto}/{port} {dest}"),
        Entry::Inbound { proto, port, peer } => format!("{proto}/{port} {peer}"),
        Entry::Write { path, dir: true } => format!("{path}/*"),
        Entry::Write { path, dir: false } | Entry::Read { path } => path.clone(),
    };
    (entry.kind(), what)
}

/// The prefix of an entry line of the listing.
pub const ENTRY_LINE: &str = "#   entry: ";
/// The prefix of a left-out entry line of the listing.
pub const LEFT_OUT_LINE: &str = "#   left out: ";

fn render_container(out: &mut String, name: &str, slug: &str, container: &MergedContainer) {
    let _ = writeln!(
        out,
        "# {}\n# Container {name}\n#\n# What it did (container | kind | what | in how many tasks, how often):",
        "-".repeat(94)
    );
    for (entry, seen) in &container.entries {
        let (kind, what) = describe(entry);
        let _ = writeln!(
            out,
            "{ENTRY_LINE}{name} | {kind} | {what} | tasks={} n={}",
            seen.tasks.len(),
            seen.n
        );
    }
    for (entry, seen) in &container.dropped {
        let (kind, what) = describe(entry);
        let _ = writeln!(
            out,
            "{LEFT_OUT_LINE}{name} | {kind} | {what} | tasks={} n={}",
            seen.tasks.len(),
            seen.n
        );
    }
    out.push('\n');
    let in_container = format!("container.name = {}", quoted(name));
    let overflowed = |kind: &str| container.overflow.contains_key(kind);
    // Programs: executable -> names; (executable, name) -> parents' executables (`None`: run
    // without a known parent, as the container's first process is).
    let mut programs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut parents_of: BTreeMap<(&str, &str), BTreeSet<Option<&str>>> = BTreeMap::new();
    let mut listeners: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    let mut outbound: BTreeMap<(&str, u16), Vec<&str>> = BTreeMap::new();
    let mut named_outbound: BTreeMap<(&str, u16), Vec<&str>> = BTreeMap::new();
    let mut inbound: BTreeMap<(&str, u16), Vec<&str>> = BTreeMap::new();
    let mut written_dirs: Vec<&str> = Vec::new();
    let mut written_files: Vec<&str> = Vec::new();
    let mut reads: Vec<&str> = Vec::new();
    for entry in container.entries.keys() {
        match entry {
            Entry::Exec { exe, name, parent } => {
                programs.entry(exe).or_default().insert(name);
                if let Some(parent) = parent {
                    parents.entry(exe).or_default().insert(parent);
                }
                parents_of
                    .entry((exe, name))
                    .or_default()
                    .insert(parent.as_deref());
            }
            Entry::Listen { proto, port } => {
                listeners.entry(proto).or_default().insert(*port);
            }
            Entry::Connect { proto, port, dest } if endpoint_description(dest).is_some() => {
                named_outbound.entry((proto, *port)).or_default().push(dest)
            }
            Entry::Connect { proto, port, dest } => {
                outbound.entry((proto, *port)).or_default().push(dest)
            }
            Entry::Inbound { proto, port, peer } => {
                inbound.entry((proto, *port)).or_default().push(peer)
            }
            Entry::Write { path, dir: true } => written_dirs.push(path),
            Entry::Write { path, dir: false } => written_files.push(path),
            Entry::Read { path } => reads.push(path),
        }
    }

    let process_output = "%container.name ran a program it never ran while learning \
         (program=%proc.exepath name=%proc.name parent=%proc.pexepath command=%proc.cmdline \
         user=%user.name container_id=%container.id image=%container.image.digest)";
    let ran_shell = programs.values().flatten().any(|n| SHELLS.contains(n));
    if !overflowed("exec") && !ran_shell {
        let shells: Vec<&str> = SHELLS.to_vec();
        rule(
            out,
            &RuleText {
                name: format!("Shell never seen in this container ({name})"),
                desc: format!(
                    "A shell ran in container {name}, which ran none while its profile was learnt."
                ),
                condition: format!(
                    "evt.type = execve and {in_container}\nand proc.name in {}",
                    join_items(shells).replace('[', "(").replace(']', ")")
                ),
                output: "A shell ran in %container.name, which never ran one while learning \
                    (shell=%proc.name parent=%proc.pname command=%proc.cmdline \
                    exepath=%proc.exepath user=%user.name container_id=%container.id \
                    image=%container.image.digest)",
                priority: "WARNING",
                tags: "[profile, process, shell, mitre_execution, T1059]",
            },
        );
    }
    if !overflowed("exec") {
        if !programs.is_empty() {
            let _ = writeln!(
                out,
                "# Programs run, by executable: process names, and parents' executables:"
            );
            for (exe, names) in &programs {
                let parent_list: Vec<&str> = parents
                    .get(exe)
                    .map(|p| p.iter().copied().collect())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "#   {exe}: {} (parents: {})",
                    names.iter().copied().collect::<Vec<_>>().join(", "),
                    if parent_list.is_empty() {
                        "none".to_owned()
                    } else {
                        parent_list.join(", ")
                    }
                );
            }
            // One clause per executable and set of parents, naming the processes it ran as
            // with those parents. A process whose parent is unknown (it ended before it was
            // read) passes the parent check: that is no evidence of a new parent; and a program
            // only ever seen without a known parent (the entrypoint, or a parent that ended
            // first) has no parent check.
            let mut clauses: BTreeMap<(&str, &BTreeSet<Option<&str>>), Vec<&str>> = BTreeMap::new();
            for ((exe, name), seen_parents) in &parents_of {
                clauses.entry((exe, seen_parents)).or_default().push(name);
            }
            let condition = clauses
                .iter()
                .map(|((exe, seen_parents), names)| {
                    let names: Vec<String> = names.iter().map(|n| quoted(n)).collect();
                    let known: Vec<String> =
                        seen_parents.iter().flatten().map(|p| quoted(p)).collect();
                    let parent = if known.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " and (not proc.pexepath exists or proc.pexepath in ({}))",
                            known.join(", ")
                        )
                    };
                    format!(
                        "(proc.exepath = {} and proc.name in ({}){parent})",
                        quoted(exe),
                        names.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n or ");
            macro_def(out, &format!("profile_{slug}_programs"), &condition);
        }
        let seen = if programs.is_empty() {
            String::new()
        } else {
            format!("\nand not profile_{slug}_programs")
        };
        rule(
            out,
            &RuleText {
                name: format!("Program never seen in this container ({name})"),
                desc: format!(
                    "A program (executable and process name) that container {name} never ran, or \
                     never ran from that parent executable, while its profile was learnt."
                ),
                condition: format!(
                    "evt.type = execve and {in_container} and proc.exepath exists{seen}"
                ),
                output: process_output,
                priority: "WARNING",
                tags: "[profile, process, mitre_execution]",
            },
        );
    }
    if !overflowed("listen") {
        let mut parts = Vec::new();
        for (proto, ports) in &listeners {
            let list_name = format!("profile_{slug}_{}_listen_ports", slug_part(proto));
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
            list(out, &list_name, &refs);
            parts.push(format!(
                "(fd.l4proto = {} and fd.sport in ({list_name}))",
                quoted(proto)
            ));
        }
        let seen = if parts.is_empty() {
            String::new()
        } else {
            macro_def(
                out,
                &format!("profile_{slug}_listeners"),
                &parts.join("\n or "),
            );
            format!("\nand not profile_{slug}_listeners")
        };
        rule(
            out,
            &RuleText {
                name: format!("Listener never seen in this container ({name})"),
                desc: format!(
                    "A listening socket on a port container {name} never listened on while its \
                     profile was learnt."
                ),
                condition: format!("evt.type = listen and {in_container}{seen}"),
                output: "%container.name listens on a port it never listened on while learning \
                    (port=%fd.sport proto=%fd.l4proto address=%fd.sip process=%proc.name \
                    exepath=%proc.exepath command=%proc.cmdline container_id=%container.id \
                    image=%container.image.digest)",
                priority: "WARNING",
                tags: "[profile, network, mitre_command_and_control]",
            },
        );
    }
    if !overflowed("connect") {
        let named = named_endpoints(out, slug, container, &named_outbound);
        let seen = if outbound.is_empty() && named.is_empty() {
            String::new()
        } else {
            let mut clauses = Vec::new();
            if !outbound.is_empty() {
                clauses.push(address_macro(&outbound, "fd.snet"));
            }
            clauses.extend(named);
            macro_def(
                out,
                &format!("profile_{slug}_destinations"),
                &clauses.join("\n or "),
            );
            format!("\nand not profile_{slug}_destinations")
        };
        rule(
            out,
            &RuleText {
                name: format!("Connection never seen from this container ({name})"),
                desc: format!(
                    "An outbound connection to a port and address (or network) container {name} \
                     never connected to while its profile was learnt. Loopback is not outbound."
                ),
                condition: format!(
                    "evt.type = connect and {in_container}\nand not fd.snet in {LOOPBACK}{seen}"
                ),
                output: "%container.name connected where it never connected while learning \
                    (connection=%fd.name proto=%fd.l4proto server=%fd.sip port=%fd.sport \
                    process=%proc.name exepath=%proc.exepath command=%proc.cmdline \
                    container_id=%container.id image=%container.image.digest)",
                priority: "WARNING",
                tags: "[profile, network, mitre_command_and_control, mitre_exfiltration]",
            },
        );
    }
    if !overflowed("inbound") {
        let seen = if inbound.is_empty() {
            String::new()
        } else {
            macro_def(
                out,
                &format!("profile_{slug}_peers"),
                &address_macro(&inbound, "fd.cnet"),
            );
            format!("\nand not profile_{slug}_peers")
        };
        rule(
            out,
            &RuleText {
                name: format!("Inbound connection never seen in this container ({name})"),
                desc: format!(
                    "An inbound connection, on a port or from a peer, that container {name} never \
                     accepted while its profile was learnt. Loopback peers are not judged."
                ),
                condition: format!(
                    "evt.type = accept and {in_container}\nand not fd.cnet in {LOOPBACK}{seen}"
                ),
                output: "%container.name accepted a connection it never accepted while learning \
                    (connection=%fd.name proto=%fd.l4proto client=%fd.cip port=%fd.sport \
                    process=%proc.name exepath=%proc.exepath container_id=%container.id \
                    image=%container.image.digest)",
                priority: "NOTICE",
                tags: "[profile, network, mitre_initial_access]",
            },
        );
    }
    if !overflowed("write") {
        let mut parts = Vec::new();
        if !written_dirs.is_empty() {
            let list_name = format!("profile_{slug}_written_dirs");
            list(out, &list_name, &written_dirs);
            parts.push(format!("fd.directory in ({list_name})"));
        }
        if !written_files.is_empty() {
            let list_name = format!("profile_{slug}_written_files");
            list(out, &list_name, &written_files);
            parts.push(format!("fd.name in ({list_name})"));
        }
        let seen = if parts.is_empty() {
            String::new()
        } else {
            macro_def(
                out,
                &format!("profile_{slug}_writes"),
                &parts.join("\n or "),
            );
            format!("\nand not profile_{slug}_writes")
        };
        rule(
            out,
            &RuleText {
                name: format!("Write where this container never wrote ({name})"),
                desc: format!(
                    "A file written, created, deleted, renamed or changed in a watched place where \
                     container {name} never wrote while its profile was learnt."
                ),
                condition: format!(
                    "{in_container}\nand ((evt.type = open and evt.is_open_write = true)\n     or evt.type in (creat, unlinkat, renameat, chmod, mkdir)){seen}"
                ),
                output: "%container.name wrote where it never wrote while learning \
                    (file=%fd.name directory=%fd.directory event=%evt.type process=%proc.name \
                    exepath=%proc.exepath command=%proc.cmdline container_id=%container.id \
                    image=%container.image.digest)",
                priority: "WARNING",
                tags: "[profile, filesystem, mitre_persistence]",
            },
        );
    }
    if !overflowed("read") {
        let seen = if reads.is_empty() {
            String::new()
        } else {
            let list_name = format!("profile_{slug}_reads");
            list(out, &list_name, &reads);
            format!("\nand not fd.name in ({list_name})")
        };
        rule(
            out,
            &RuleText {
                name: format!("Sensitive file read never seen in this container ({name})"),
                desc: format!(
                    "A watched sensitive file read by container {name}, which never read it while \
                     its profile was learnt."
                ),
                condition: format!(
                    "evt.type = open and {in_container}\nand evt.is_open_read = true and not evt.is_open_write = true{seen}"
                ),
                output: "%container.name read a sensitive file it never read while learning \
                    (file=%fd.name process=%proc.name exepath=%proc.exepath \
                    command=%proc.cmdline container_id=%container.id image=%container.image.digest)",
                priority: "WARNING",
                tags: "[profile, filesystem, mitre_credential_access]",
            },
        );
    }
}

/// The entries a profile file lists (container, kind, what), from its entry lines.
pub fn listed_entries(text: &str) -> BTreeSet<(String, String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(ENTRY_LINE))
        .filter_map(|rest| {
            let rest = &rest[..rest.rfind(" | tasks=")?];
            let (container, rest) = rest.split_once(" | ")?;
            let (kind, what) = rest.split_once(" | ")?;
            Some((container.to_owned(), kind.to_owned(), what.to_owned()))
        })
        .collect()
}

/// What a new profile adds to an old one (`+`) and drops from it (`-`), one line each, sorted.
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (listed_entries(old), listed_entries(new));
    let mut lines: Vec<String> = new
        .difference(&old)
        .map(|(c, k, w)| format!("+ {c} | {k} | {w}"))
        .chain(
            old.difference(&new)
                .map(|(c, k, w)| format!("- {c} | {k} | {w}")),
        )
        .collect();
    lines.sort_by(|a, b| a[2..].cmp(&b[2..]).then(a.cmp(b)));
    lines
}

fn slug_part(text: &str) -> String {
    slug(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::learner::{ContainerSummary, Counted};
    use crate::profile::snapshot::Reason;

    fn snapshot(task: &str, container: &str, entries: Vec<(Entry, u64)>) -> Snapshot {
        Snapshot {
            run: format!("run-{task}"),
            seq: 1,
            task: task.to_owned(),
            reason: Reason::Shutdown,
            window_start: Timestamp(0),
            profile: ContainerSummary {
                container: container.to_owned(),
                image_digests: vec!["sha256:abc".into()],
                first_seen: Some(Timestamp(1_000_000_000)),
                last_seen: Some(Timestamp(2_000_000_000)),
                events: 10,
                memory_bytes: 0,
                endpoints: BTreeMap::new(),
                overflow: BTreeMap::new(),
                entries: entries
                    .into_iter()
                    .map(|(entry, n)| Counted { entry, n })
                    .collect(),
            },
        }
    }

    fn exec(exe: &str, name: &str) -> Entry {
        Entry::Exec {
            exe: exe.into(),
            name: name.into(),
            parent: None,
        }
    }

    #[test]
    fn tasks_are_united_with_counts_and_rare_entries_dropped() {
        let snapshots = vec![
            snapshot("a", "web", vec![(exec("/bin/busybox", "httpd"), 3)]),
            snapshot("b", "web", vec![(exec("/bin/busybox", "httpd"), 2)]),
            snapshot(
                "c",
                "web",
                vec![(exec("/bin/busybox", "httpd"), 1), (exec("/tmp/x", "x"), 1)],
            ),
        ];
        let profile = merge(&snapshots, 2);
        let web = &profile.containers["web"];
        assert_eq!(web.entries.len(), 1);
        let seen = &web.entries[&exec("/bin/busybox", "httpd")];
        assert_eq!(seen.tasks.len(), 3);
        assert_eq!(seen.n, 6);
        assert_eq!(web.dropped.len(), 1);
        assert_eq!(web.dropped[0].0, exec("/tmp/x", "x"));
        let all = merge(&snapshots, 1);
        assert_eq!(all.containers["web"].entries.len(), 2);
    }

    #[test]
    fn an_address_of_one_task_is_folded_into_the_network_of_another() {
        let connect = |dest: &str| Entry::Connect {
            proto: "tcp".into(),
            port: 443,
            dest: dest.into(),
        };
        let snapshots = vec![
            snapshot("a", "web", vec![(connect("198.51.100.0/24"), 9)]),
            snapshot("b", "web", vec![(connect("198.51.100.7"), 1)]),
        ];
        let profile = merge(&snapshots, 2);
        let web = &profile.containers["web"];
        assert_eq!(web.entries.len(), 1, "{web:?}");
        assert_eq!(web.entries[&connect("198.51.100.0/24")].n, 10);
    }

    #[test]
    fn the_rules_file_is_the_same_for_the_same_snapshots_in_any_order() {
        let a = snapshot(
            "a",
            "web",
            vec![
                (exec("/bin/busybox", "httpd"), 3),
                (
                    Entry::Listen {
                        proto: "tcp".into(),
                        port: 8080,
                    },
                    1,
                ),
            ],
        );
        let b = snapshot(
            "b",
            "worker",
            vec![(exec("/usr/bin/python3", "python3"), 1)],
        );
        let one = render(&merge(&[a.clone(), b.clone()], 1));
        let two = render(&merge(&[b, a], 1));
        assert_eq!(one, two);
        assert!(one.contains("# Tasks: 2 (a, b)"), "{one}");
        assert!(one.contains("- rule: Program never seen in this container (web)"));
        assert!(one.contains("- rule: Shell never seen in this container (worker)"));
    }

    #[test]
    fn the_rules_file_loads_strictly_after_the_defaults_without_a_warning() {
        let connect = |dest: &str| Entry::Connect {
            proto: "tcp".into(),
            port: 443,
            dest: dest.into(),
        };
        let snapshots = vec![snapshot(
            "a",
            "web-1 \"odd\"",
            vec![
                (exec("/bin/busybox", "httpd"), 3),
                (exec("/opt/my app/run", "it's"), 1),
                (connect("198.51.100.0/24"), 2),
                (connect("2001:db8::7"), 2),
                (
                    Entry::Inbound {
                        proto: "tcp".into(),
                        port: 8080,
                        peer: "10.0.0.0/24".into(),
                    },
                    1,
                ),
                (
                    Entry::Listen {
                        proto: "tcp".into(),
                        port: 8080,
                    },
                    1,
                ),
                (
                    Entry::Write {
                        path: "/tmp".into(),
                        dir: true,
                    },
                    1,
                ),
                (
                    Entry::Write {
                        path: "/etc/app/app.conf".into(),
                        dir: false,
                    },
                    1,
                ),
                (
                    Entry::Read {
                        path: "/etc/shadow".into(),
                    },
                    1,
                ),
            ],
        )];
        let text = render(&merge(&snapshots, 1));
        let mut sources = crate::rules::defaults::default_sources();
        sources.push(crate::rules::RuleSource {
            name: "profile.yaml".into(),
            text: text.clone(),
        });
        let outcome = crate::rules::load(
            &sources,
            &crate::rules::LoadOptions {
                strict: true,
                ..Default::default()
            },
        );
        let diagnostics: Vec<String> = outcome.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(diagnostics.is_empty(), "{diagnostics:#?}\n{text}");
        assert!(outcome.skipped.is_empty());
        let ruleset = outcome.ruleset.expect("loads");
        let names: Vec<&str> = ruleset.rules().map(|r| r.name.as_str()).collect();
        for rule in [
            "Program never seen in this container (web-1 \"odd\")",
            "Shell never seen in this container (web-1 \"odd\")",
            "Listener never seen in this container (web-1 \"odd\")",
            "Connection never seen from this container (web-1 \"odd\")",
            "Inbound connection never seen in this container (web-1 \"odd\")",
            "Write where this container never wrote (web-1 \"odd\")",
            "Sensitive file read never seen in this container (web-1 \"odd\")",
        ] {
            assert!(names.contains(&rule), "{rule} missing: {names:?}");
        }
    }

    /// The profile rules an execve of `web` matches.
    fn program_alerts(text: &str, exe: &str, name: &str, parent: Option<&str>) -> Vec<String> {
        use crate::event::{Ancestor, Collector, Container, Event, EventType, Process};
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.container = Some(Box::new(Container {
            id: "c1".into(),
            name: Some("web".into()),
            ..Container::default()
        }));
        event.proc = Some(Box::new(Process {
            pid: 7,
            name: name.into(),
            exepath: Some(exe.into()),
            ancestors: parent
                .map(|p| Ancestor {
                    pid: 1,
                    name: "parent".into(),
                    exe: None,
                    exepath: Some(p.into()),
                    args: Vec::new(),
                })
                .into_iter()
                .collect(),
            ..Process::default()
        }));
        profile_alerts(text, &event)
    }

    /// The profile rules (loaded after the defaults, every rule matching) an event matches.
    fn profile_alerts(text: &str, event: &crate::event::Event) -> Vec<String> {
        let mut sources = crate::rules::defaults::default_sources();
        sources.push(crate::rules::RuleSource {
            name: "profile.yaml".into(),
            text: text.to_owned(),
        });
        let ruleset = crate::rules::load(
            &sources,
            &crate::rules::LoadOptions {
                rule_matching: crate::rules::RuleMatching::All,
                strict: true,
            },
        )
        .ruleset
        .expect("loads");
        let mut out = Vec::new();
        ruleset.evaluate(event, &mut out);
        out.iter()
            .map(|m| m.rule.name.clone())
            .filter(|n| n.contains("never seen"))
            .collect()
    }

    #[test]
    fn a_known_program_run_by_a_new_parent_is_a_new_program() {
        let with_parent = |exe: &str, name: &str, parent: Option<&str>| Entry::Exec {
            exe: exe.into(),
            name: name.into(),
            parent: parent.map(str::to_owned),
        };
        let text = render(&merge(
            &[snapshot(
                "a",
                "web",
                vec![
                    (with_parent("/usr/bin/node", "node", None), 1),
                    (
                        with_parent("/usr/bin/curl", "curl", Some("/usr/bin/node")),
                        4,
                    ),
                    (
                        with_parent("/usr/bin/curl", "curl", Some("/usr/bin/env")),
                        1,
                    ),
                ],
            )],
            1,
        ));
        let new_program = ["Program never seen in this container (web)".to_owned()];
        // Learnt parents, or a parent not known (it ended first): nothing new.
        for parent in [Some("/usr/bin/node"), Some("/usr/bin/env"), None] {
            assert!(
                program_alerts(&text, "/usr/bin/curl", "curl", parent).is_empty(),
                "{parent:?}\n{text}"
            );
        }
        // The same program run by a parent it never had.
        assert_eq!(
            program_alerts(&text, "/usr/bin/curl", "curl", Some("/usr/bin/python3")),
            new_program,
            "{text}"
        );
        // A program only seen without a parent (the entrypoint) is not judged by its parent.
        assert!(program_alerts(&text, "/usr/bin/node", "node", Some("/usr/bin/env")).is_empty());
        assert_eq!(
            program_alerts(&text, "/usr/bin/wget", "wget", Some("/usr/bin/node")),
            new_program
        );
    }

    #[test]
    fn named_endpoints_are_allowed_by_name_over_tasks_of_different_subnets() {
        let to = |proto: &str, port: u16, dest: &str| Entry::Connect {
            proto: proto.into(),
            port,
            dest: dest.into(),
        };
        let task = |id: &str, resolver: &str| {
            let mut snapshot = snapshot(
                id,
                "web",
                vec![
                    (to("udp", 53, "vpc-resolver"), 9),
                    (to("tcp", 80, "ecs-agent"), 2),
                ],
            );
            snapshot.profile.endpoints = BTreeMap::from([
                ("vpc-resolver".to_owned(), vec![resolver.to_owned()]),
                ("ecs-agent".to_owned(), vec!["169.254.170.2".to_owned()]),
            ]);
            snapshot
        };
        let profile = merge(&[task("a", "10.20.0.2"), task("b", "10.30.0.2")], 2);
        assert_eq!(profile.containers["web"].entries.len(), 2, "{profile:?}");
        let text = render(&profile);
        assert!(
            text.contains("# Endpoint vpc-resolver: the VPC's DNS resolver"),
            "{text}"
        );
        assert!(
            text.contains(
                "- list: profile_web_vpc_resolver\n  items: [10.20.0.2/32, 10.30.0.2/32]"
            ),
            "{text}"
        );
        let alerts = |proto: &str, ip: &str, port: u16| connect_alerts(&text, proto, ip, port);
        assert!(alerts("udp", "10.30.0.2", 53).is_empty(), "{text}");
        assert!(alerts("udp", "10.20.0.2", 53).is_empty());
        assert!(alerts("tcp", "169.254.170.2", 80).is_empty());
        let new = ["Connection never seen from this container (web)".to_owned()];
        assert_eq!(alerts("udp", "10.30.0.9", 53), new);
        assert_eq!(alerts("tcp", "10.30.0.2", 53), new);
        assert_eq!(alerts("tcp", "169.254.169.254", 80), new);
    }

    /// The profile rules a connection from `web` matches.
    fn connect_alerts(text: &str, proto: &str, ip: &str, port: u16) -> Vec<String> {
        use crate::event::{Collector, Container, Event, EventType, Fd};
        let mut event = Event::new(EventType::Connect, Collector::Sockets);
        event.container = Some(Box::new(Container {
            id: "c1".into(),
            name: Some("web".into()),
            ..Container::default()
        }));
        event.fd = Some(Box::new(Fd {
            l4proto: Some(proto.into()),
            cip: "10.20.3.57".parse().ok(),
            cport: Some(40000),
            sip: ip.parse().ok(),
            sport: Some(port),
            local_is_client: Some(true),
            ..Fd::default()
        }));
        profile_alerts(text, &event)
    }

    #[test]
    fn a_diff_names_what_was_added_and_what_was_dropped() {
        let old = render(&merge(
            &[snapshot(
                "a",
                "web",
                vec![
                    (exec("/bin/busybox", "httpd"), 3),
                    (exec("/bin/busybox", "sh"), 1),
                ],
            )],
            1,
        ));
        let new = render(&merge(
            &[snapshot(
                "a",
                "web",
                vec![
                    (exec("/bin/busybox", "httpd"), 5),
                    (exec("/usr/bin/python3", "python3"), 1),
                ],
            )],
            1,
        ));
        assert_eq!(
            diff(&old, &new),
            [
                "- web | exec | /bin/busybox name=sh parent=-",
                "+ web | exec | /usr/bin/python3 name=python3 parent=-",
            ]
        );
        assert!(
            diff(&new, &new).is_empty(),
            "counts alone are no difference"
        );
        assert!(
            new.contains("#   entry: web | exec | /bin/busybox name=httpd parent=- | tasks=1 n=5"),
            "{new}"
        );
    }

    #[test]
    fn quoting_keeps_odd_names_intact() {
        assert_eq!(item("/usr/bin/python3.11"), "/usr/bin/python3.11");
        assert_eq!(item("my app"), "'\"my app\"'");
        assert_eq!(item("it's"), "'\"it''s\"'");
        assert_eq!(item("not"), "'\"not\"'");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}

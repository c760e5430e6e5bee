//! Linux capability sets as Fargate grants them, and the ones the shipped task definitions ask
//! for.
//!
//! - [`CapSet::docker_default`]: the set a container runtime grants a container that asks for
//!   nothing: moby's `oci/caps/defaults.go` (`DefaultCapabilities`, moby/moby commit
//!   1086671441) and containerd's `oci/spec.go` (`defaultUnixCaps`, containerd/containerd
//!   commit 7379fa6631) list the same 14 capabilities. Fargate (platform version 1.4.0 and
//!   later runs containerd) starts every container with this set unless its task definition
//!   changes it.
//! - [`CapSet::from_kernel_capabilities`]: the ECS `linuxParameters.capabilities`
//!   (`KernelCapabilities`) semantics, as the ECS API reference states them: "The default is
//!   to first drop the capabilities specified in the drop request parameter, and then add the
//!   capabilities specified in the add request parameter"; `ALL` in `drop` leaves only the
//!   `add` list; `ALL` in `add` gives "all of the default Docker capabilities, excluding those
//!   specified in the drop request parameter"; both empty: the default set. ("`ALL` in `add`"
//!   follows the ECS text; Docker itself grants every capability for `--cap-add ALL`. No
//!   Fargate task can ask for it anyway.) Fargate accepts only `SYS_PTRACE` in `add` (same
//!   page: "Tasks launched on Fargate only support adding the SYS_PTRACE kernel capability"),
//!   which [`CapSet::from_fargate_kernel_capabilities`] enforces.
//! - [`TaskDefinition`]: reads a task definition JSON (`task-definitions/*.json`) and gives the
//!   effective set of any container, or of the TaskSentry sidecar (the container whose name or
//!   image says `tasksentry`), so that tests follow the shipped files.
//! - [`ProcCaps`]: the capability lines of `/proc/<pid>/status`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Capability names in kernel order (`CAP_<NAME>` is bit N for the N-th entry), as in
/// `linux/capability.h` up to `CAP_CHECKPOINT_RESTORE` (40).
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The default set of moby and containerd, in their order (see the module documentation).
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities: bit N is capability N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CapSet(pub u64);

/// The bit of a capability name (`SYS_PTRACE`, `CAP_SYS_PTRACE`, any case).
fn cap_bit(name: &str) -> Result<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAP_NAMES
        .iter()
        .position(|known| *known == bare)
        .and_then(|i| u32::try_from(i).ok())
        .with_context(|| format!("unknown capability {name:?}"))
}

impl CapSet {
    /// No capability.
    pub fn empty() -> CapSet {
        CapSet(0)
    }

    /// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub fn all() -> Result<CapSet> {
        let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .context("reading /proc/sys/kernel/cap_last_cap")?;
        let last: u32 = text
            .trim()
            .parse()
            .with_context(|| format!("cap_last_cap {text:?}"))?;
        Ok(CapSet(if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        }))
    }

    /// The set of the given names.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<CapSet> {
        let mut set = CapSet::empty();
        for name in names {
            set.0 |= 1u64 << cap_bit(name.as_ref())?;
        }
        Ok(set)
    }

    /// Docker's and containerd's default set, what a Fargate container gets by default.
    pub fn docker_default() -> CapSet {
        CapSet::from_names(&DOCKER_DEFAULT).unwrap_or_default()
    }

    /// Fargate's default set (the same as [`CapSet::docker_default`]).
    pub fn fargate_default() -> CapSet {
        CapSet::docker_default()
    }

    /// This set plus `name`.
    pub fn with(self, name: &str) -> Result<CapSet> {
        Ok(CapSet(self.0 | 1u64 << cap_bit(name)?))
    }

    /// This set without `name`.
    pub fn without(self, name: &str) -> Result<CapSet> {
        Ok(CapSet(self.0 & !(1u64 << cap_bit(name)?)))
    }

    /// Whether the set holds `name` (false for an unknown name).
    pub fn contains(self, name: &str) -> bool {
        cap_bit(name).is_ok_and(|bit| self.0 & (1u64 << bit) != 0)
    }

    /// The names in the set, in kernel order; bits without a known name as `CAP_<N>`.
    pub fn names(self) -> Vec<String> {
        (0..64u32)
            .filter(|bit| self.0 & (1u64 << bit) != 0)
            .map(|bit| {
                CAP_NAMES
                    .get(bit as usize)
                    .map_or_else(|| format!("CAP_{bit}"), |name| (*name).to_string())
            })
            .collect()
    }

    /// The `--bounding-set` argument of util-linux `setpriv` for exactly this set
    /// (`-all,+chown,+kill`, or `-all` for the empty set).
    pub fn setpriv_bounding_set(self) -> String {
        let mut arg = String::from("-all");
        for name in self.names() {
            arg.push_str(",+");
            arg.push_str(&name.to_ascii_lowercase());
        }
        arg
    }

    /// The ECS `KernelCapabilities` semantics (see the module documentation): the effective set
    /// of a container whose `linuxParameters.capabilities` has these `add` and `drop` lists.
    pub fn from_kernel_capabilities<S: AsRef<str>>(add: &[S], drop: &[S]) -> Result<CapSet> {
        let is_all = |s: &S| s.as_ref().trim().eq_ignore_ascii_case("ALL");
        let default = CapSet::docker_default();
        let named = |list: &[S]| -> Result<CapSet> {
            let names: Vec<&str> = list
                .iter()
                .filter(|s| !is_all(s))
                .map(AsRef::as_ref)
                .collect();
            CapSet::from_names(&names)
        };
        let adds = named(add)?;
        let drops = named(drop)?;
        if add.iter().any(is_all) {
            return Ok(CapSet(default.0 & !drops.0));
        }
        if drop.iter().any(is_all) {
            return Ok(adds);
        }
        Ok(CapSet((default.0 & !drops.0) | adds.0))
    }

    /// [`CapSet::from_kernel_capabilities`], refusing what Fargate refuses: an `add` list with
    /// anything but `SYS_PTRACE`.
    pub fn from_fargate_kernel_capabilities<S: AsRef<str>>(
        add: &[S],
        drop: &[S],
    ) -> Result<CapSet> {
        for name in add {
            if cap_bit(name.as_ref()).ok() != cap_bit("SYS_PTRACE").ok() {
                bail!(
                    "capabilities.add has {:?}: tasks on Fargate can only add SYS_PTRACE",
                    name.as_ref()
                );
            }
        }
        CapSet::from_kernel_capabilities(add, drop)
    }
}

impl fmt::Display for CapSet {
    /// `CHOWN,KILL,...`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// The capability sets of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcCaps {
    /// `CapInh`.
    pub inheritable: CapSet,
    /// `CapPrm`.
    pub permitted: CapSet,
    /// `CapEff`.
    pub effective: CapSet,
    /// `CapBnd`.
    pub bounding: CapSet,
    /// `CapAmb`.
    pub ambient: CapSet,
}

impl ProcCaps {
    /// Reads the capability lines of `/proc/<host_pid>/status`.
    pub fn of(host_pid: i32) -> Result<ProcCaps> {
        let path = format!("/proc/{host_pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |key: &str| -> Result<CapSet> {
            let value = status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .with_context(|| format!("{path} has no {key} line"))?;
            let bits = u64::from_str_radix(value.trim(), 16)
                .with_context(|| format!("{path}: {key} {value:?}"))?;
            Ok(CapSet(bits))
        };
        Ok(ProcCaps {
            inheritable: field("CapInh:")?,
            permitted: field("CapPrm:")?,
            effective: field("CapEff:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:")?,
        })
    }
}

/// The directory of the shipped task definitions.
fn task_definitions_dir() -> PathBuf {
    crate::repo_path("task-definitions")
}

/// A task definition JSON, as registered with `aws ecs register-task-definition
/// --cli-input-json`.
#[derive(Debug, Clone)]
pub struct TaskDefinition {
    /// The file it was read from.
    pub path: PathBuf,
    json: Value,
}

impl TaskDefinition {
    /// Reads and parses a task definition file.
    pub fn read(path: &Path) -> Result<TaskDefinition> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", path.display()))?;
        if !json["containerDefinitions"].is_array() {
            bail!("{}: no containerDefinitions array", path.display());
        }
        Ok(TaskDefinition {
            path: path.to_path_buf(),
            json,
        })
    }

    /// Every `task-definitions/*.json` (sorted by file name).
    pub fn shipped() -> Result<Vec<TaskDefinition>> {
        let dir = task_definitions_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no task definition in {}", dir.display());
        }
        files
            .iter()
            .map(|path| TaskDefinition::read(path))
            .collect()
    }

    /// The file name (`web-nginx-with-tasksentry.json`).
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn containers(&self) -> &[Value] {
        self.json["containerDefinitions"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// The container names.
    pub fn container_names(&self) -> Vec<String> {
        self.containers()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The name of the TaskSentry sidecar: the one container whose name or image contains
    /// `tasksentry` (the name decides when several images do, as when the application image
    /// is built from the TaskSentry one).
    pub fn sidecar_name(&self) -> Result<String> {
        let says = |field: &str| -> Vec<String> {
            self.containers()
                .iter()
                .filter(|c| {
                    c[field]
                        .as_str()
                        .is_some_and(|v| v.to_ascii_lowercase().contains("tasksentry"))
                })
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        };
        let by_name = says("name");
        let by_image = says("image");
        match (by_name.as_slice(), by_image.as_slice()) {
            ([only], _) => Ok(only.clone()),
            ([], [only]) => Ok(only.clone()),
            _ => bail!(
                "{}: cannot tell the TaskSentry sidecar (containers named {:?}, with tasksentry images {:?})",
                self.path.display(),
                by_name,
                by_image
            ),
        }
    }

    /// The effective capability set of container `name` (ECS semantics, Fargate's `add`
    /// restriction enforced).
    pub fn container_caps(&self, name: &str) -> Result<CapSet> {
        let container = self
            .containers()
            .iter()
            .find(|c| c["name"] == name)
            .with_context(|| format!("{}: no container {name:?}", self.path.display()))?;
        let capabilities = &container["linuxParameters"]["capabilities"];
        let list = |key: &str| -> Result<Vec<String>> {
            match &capabilities[key] {
                Value::Null => Ok(Vec::new()),
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_string).with_context(|| {
                            format!(
                                "{}: container {name}: capabilities.{key} holds {item}",
                                self.path.display()
                            )
                        })
                    })
                    .collect(),
                other => bail!(
                    "{}: container {name}: capabilities.{key} is {other}, not a list",
                    self.path.display()
                ),
            }
        };
        let (add, drop) = (list("add")?, list("drop")?);
        CapSet::from_fargate_kernel_capabilities(&add, &drop)
            .with_context(|| format!("{}: container {name}", self.path.display()))
    }

    /// The effective capability set of the TaskSentry sidecar.
    pub fn sidecar_caps(&self) -> Result<CapSet> {
        self.container_caps(&self.sidecar_name()?)
    }
}

/// The distinct sidecar capability sets of every shipped task definition, each with the file
/// names that ask for it (in file order).
pub fn shipped_sidecar_sets() -> Result<Vec<(CapSet, Vec<String>)>> {
    let mut sets: BTreeMap<CapSet, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for definition in TaskDefinition::shipped()? {
        let set = definition.sidecar_caps()?;
        if !sets.contains_key(&set) {
            order.push(set);
        }
        sets.entry(set).or_default().push(definition.file_name());
    }
    Ok(order
        .into_iter()
        .map(|set| {
            let files = sets.remove(&set).unwrap_or_default();
            (set, files)
        })
        .collect())
}

//! Validates what `task-definitions/` ships: every ECS task definition against the rules ECS
//! applies to Fargate task definitions (and the rules the TaskSentry sidecar needs), every IAM
//! policy for shape and least privilege, and the CloudFormation template for syntax and for
//! references (`!Ref`, `!GetAtt`, `!Sub`, conditions, `DependsOn`) that point at something it
//! defines. Each check is also run against broken in-memory copies, so the checker is known to
//! reject what ECS or CloudFormation would reject.
//!
//! Sources for the ECS rules: the ECS API model (RegisterTaskDefinition, ContainerDefinition,
//! KernelCapabilities, LogConfiguration, HealthCheck, ContainerDependency) and the Fargate
//! task definition limits of the ECS developer guide.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use support::CapSet;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_with_extension(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_with_extension(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
}

fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

// ------------------------------------------------------------------------------------------
// Task definitions.
// ------------------------------------------------------------------------------------------

const TASK_KEYS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
];

/// Task-level fields ECS accepts in general but rejects (or ignores) on Fargate.
const TASK_KEYS_NOT_ON_FARGATE: &[&str] =
    &["ipcMode", "placementConstraints", "inferenceAccelerators"];

const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "repositoryCredentials",
    "cpu",
    "memory",
    "memoryReservation",
    "links",
    "portMappings",
    "essential",
    "restartPolicy",
    "entryPoint",
    "command",
    "environment",
    "environmentFiles",
    "mountPoints",
    "volumesFrom",
    "linuxParameters",
    "secrets",
    "dependsOn",
    "startTimeout",
    "stopTimeout",
    "versionConsistency",
    "hostname",
    "user",
    "workingDirectory",
    "disableNetworking",
    "privileged",
    "readonlyRootFilesystem",
    "dnsServers",
    "dnsSearchDomains",
    "extraHosts",
    "dockerSecurityOptions",
    "interactive",
    "pseudoTerminal",
    "dockerLabels",
    "ulimits",
    "logConfiguration",
    "healthCheck",
    "systemControls",
    "resourceRequirements",
    "firelensConfiguration",
    "credentialSpecs",
];

/// Container fields that awsvpc/Fargate does not support.
const CONTAINER_KEYS_NOT_ON_FARGATE: &[&str] = &[
    "links",
    "hostname",
    "dnsServers",
    "dnsSearchDomains",
    "extraHosts",
    "dockerSecurityOptions",
    "credentialSpecs",
];

const LINUX_PARAMETER_KEYS: &[&str] = &[
    "capabilities",
    "devices",
    "initProcessEnabled",
    "sharedMemorySize",
    "tmpfs",
    "maxSwap",
    "swappiness",
];
const LINUX_PARAMETERS_NOT_ON_FARGATE: &[&str] = &[
    "devices",
    "sharedMemorySize",
    "tmpfs",
    "maxSwap",
    "swappiness",
];

/// Every capability name `KernelCapabilities.drop` accepts (plus `ALL`).
const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// Valid Fargate task memory (MiB) for a task CPU value (CPU units).
fn fargate_memory_valid(cpu: u64, memory: u64) -> bool {
    let range =
        |low: u64, high: u64, step: u64| (low..=high).step_by(step as usize).any(|m| m == memory);
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122880, 8192),
        _ => false,
    }
}

/// A task-level cpu or memory value: a string of digits (or a number); "1 vCPU" / "2 GB"
/// forms are accepted by ECS too and converted here.
fn task_size(value: &Value, unit_per_whole: u64, suffixes: &[&str]) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => {
            let text = text.trim();
            if let Ok(n) = text.parse::<u64>() {
                return Some(n);
            }
            for suffix in suffixes {
                if let Some(whole) = text.strip_suffix(suffix) {
                    let whole: f64 = whole.trim().parse().ok()?;
                    return Some((whole * unit_per_whole as f64) as u64);
                }
            }
            None
        }
        _ => None,
    }
}

fn str_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| item.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_sidecar(container: &Value) -> bool {
    container["name"].as_str() == Some("tasksentry")
        || container["image"]
            .as_str()
            .is_some_and(|image| image.contains("tasksentry"))
}

fn environment(container: &Value) -> BTreeMap<String, String> {
    container["environment"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some((
                        item["name"].as_str()?.to_owned(),
                        item["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every problem ECS (for Fargate) or the TaskSentry sidecar's needs would find.
fn check_task_definition(task: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = task.as_object() else {
        return vec!["a task definition is a JSON object".into()];
    };
    for key in object.keys() {
        if !TASK_KEYS.contains(&key.as_str()) {
            problems.push(format!("unknown task definition key `{key}`"));
        } else if TASK_KEYS_NOT_ON_FARGATE.contains(&key.as_str()) {
            problems.push(format!("`{key}` is not supported on Fargate"));
        }
    }
    let family_ok = task["family"].as_str().is_some_and(|f| {
        !f.is_empty()
            && f.len() <= 255
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !family_ok {
        problems.push("`family` is required: 1-255 letters, digits, hyphens, underscores".into());
    }
    if !str_list(task.get("requiresCompatibilities")).contains(&"FARGATE".to_owned()) {
        problems.push("`requiresCompatibilities` must contain FARGATE".into());
    }
    if task["networkMode"].as_str() != Some("awsvpc") {
        problems.push("`networkMode` must be awsvpc on Fargate".into());
    }
    match task.get("pidMode").and_then(Value::as_str) {
        Some("task") => {}
        Some(other) => problems.push(format!(
            "`pidMode` {other:?}: Fargate accepts only \"task\", which the sidecar needs"
        )),
        None => problems.push(
            "`pidMode` is missing: the sidecar needs \"task\" to see the other containers".into(),
        ),
    }
    if let Some(platform) = task.get("runtimePlatform") {
        if platform["operatingSystemFamily"]
            .as_str()
            .unwrap_or("LINUX")
            != "LINUX"
        {
            problems
                .push("pidMode \"task\" is Linux only: operatingSystemFamily must be LINUX".into());
        }
        if let Some(arch) = platform.get("cpuArchitecture")
            && !matches!(arch.as_str(), Some("X86_64" | "ARM64"))
        {
            problems.push(format!("cpuArchitecture {arch} is not X86_64 or ARM64"));
        }
    }
    let cpu = task
        .get("cpu")
        .and_then(|v| task_size(v, 1024, &["vCPU", "vcpu"]));
    let memory = task
        .get("memory")
        .and_then(|v| task_size(v, 1024, &["GB", "gb"]));
    match (cpu, memory) {
        (Some(cpu), Some(memory)) => {
            if !fargate_memory_valid(cpu, memory) {
                problems.push(format!(
                    "task cpu {cpu} / memory {memory} is not a valid Fargate combination"
                ));
            }
        }
        _ => problems.push("task-level `cpu` and `memory` are required on Fargate".into()),
    }
    if let Some(storage) = task.get("ephemeralStorage") {
        let size = storage["sizeInGiB"].as_u64().unwrap_or(0);
        if !(21..=200).contains(&size) {
            problems.push(format!(
                "ephemeralStorage.sizeInGiB {size} is not within 21-200"
            ));
        }
    }

    // Volumes.
    let mut volumes = BTreeSet::new();
    for volume in task["volumes"].as_array().into_iter().flatten() {
        let Some(name) = volume["name"].as_str() else {
            problems.push("a volume has no name".into());
            continue;
        };
        if !volumes.insert(name.to_owned()) {
            problems.push(format!("volume `{name}` is defined twice"));
        }
        if volume.get("dockerVolumeConfiguration").is_some() {
            problems.push(format!(
                "volume `{name}`: dockerVolumeConfiguration is not supported on Fargate"
            ));
        }
        if volume["host"].get("sourcePath").is_some() {
            problems.push(format!(
                "volume `{name}`: host.sourcePath is not supported on Fargate"
            ));
        }
    }

    // Containers.
    let Some(containers) = task["containerDefinitions"]
        .as_array()
        .filter(|c| !c.is_empty())
    else {
        problems.push("`containerDefinitions` must list at least one container".into());
        return problems;
    };
    let mut names = BTreeMap::new();
    for container in containers {
        if let Some(name) = container["name"].as_str() {
            if names.insert(name.to_owned(), container).is_some() {
                problems.push(format!("container name `{name}` is used twice"));
            }
        }
    }
    let mut essential_count = 0;
    let mut sidecars = 0;
    let mut container_cpu = 0u64;
    let mut container_memory = 0u64;
    for container in containers {
        let name = container["name"].as_str().unwrap_or("<unnamed>");
        let name_ok = container["name"].as_str().is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 255
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
        if !name_ok {
            problems.push(format!("container `{name}`: a valid `name` is required"));
        }
        if container["image"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("container `{name}`: `image` is required"));
        }
        for key in container.as_object().into_iter().flat_map(|o| o.keys()) {
            if !CONTAINER_KEYS.contains(&key.as_str()) {
                problems.push(format!("container `{name}`: unknown key `{key}`"));
            } else if CONTAINER_KEYS_NOT_ON_FARGATE.contains(&key.as_str()) {
                problems.push(format!(
                    "container `{name}`: `{key}` is not supported on Fargate/awsvpc"
                ));
            }
        }
        if container["privileged"].as_bool() == Some(true) {
            problems.push(format!(
                "container `{name}`: privileged containers are not supported on Fargate"
            ));
        }
        if container["essential"].as_bool().unwrap_or(true) {
            essential_count += 1;
        }
        container_cpu += container["cpu"].as_u64().unwrap_or(0);
        container_memory += container["memory"]
            .as_u64()
            .or_else(|| container["memoryReservation"].as_u64())
            .unwrap_or(0);
        if let (Some(hard), Some(soft)) = (
            container["memory"].as_u64(),
            container["memoryReservation"].as_u64(),
        ) && soft > hard
        {
            problems.push(format!(
                "container `{name}`: memoryReservation {soft} exceeds memory {hard}"
            ));
        }

        for (field, range) in [("stopTimeout", 2..=120), ("startTimeout", 2..=120)] {
            if let Some(value) = container.get(field) {
                if !value.as_u64().is_some_and(|v| range.contains(&v)) {
                    problems.push(format!(
                        "container `{name}`: `{field}` {value} is outside 2-120 s"
                    ));
                }
            }
        }

        // linuxParameters.
        let linux = &container["linuxParameters"];
        for key in linux.as_object().into_iter().flat_map(|o| o.keys()) {
            if !LINUX_PARAMETER_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "container `{name}`: unknown linuxParameters key `{key}`"
                ));
            } else if LINUX_PARAMETERS_NOT_ON_FARGATE.contains(&key.as_str()) {
                problems.push(format!(
                    "container `{name}`: linuxParameters.{key} is not supported on Fargate"
                ));
            }
        }
        let added = str_list(linux["capabilities"].get("add"));
        let dropped = str_list(linux["capabilities"].get("drop"));
        for capability in &added {
            if capability != "SYS_PTRACE" {
                problems.push(format!(
                    "container `{name}`: capability {capability} cannot be added on Fargate (only SYS_PTRACE)"
                ));
            }
        }
        for capability in &dropped {
            if !CAPABILITIES.contains(&capability.as_str()) {
                problems.push(format!(
                    "container `{name}`: unknown capability {capability} in drop"
                ));
            }
        }

        // Networking.
        for mapping in container["portMappings"].as_array().into_iter().flatten() {
            let port = mapping["containerPort"].as_u64();
            if port.is_none_or(|p| p == 0 || p > 65535) {
                problems.push(format!(
                    "container `{name}`: portMappings needs a containerPort"
                ));
            }
            if let Some(host) = mapping.get("hostPort")
                && host.as_u64() != port
            {
                problems.push(format!(
                    "container `{name}`: with awsvpc hostPort must equal containerPort"
                ));
            }
        }

        // Logging.
        match &container["logConfiguration"] {
            Value::Null => problems.push(format!(
                "container `{name}`: no logConfiguration (logs would be lost)"
            )),
            log => {
                let driver = log["logDriver"].as_str().unwrap_or("");
                if !["awslogs", "splunk", "awsfirelens"].contains(&driver) {
                    problems.push(format!(
                        "container `{name}`: log driver {driver:?} is not available on Fargate"
                    ));
                }
                if driver == "awslogs" {
                    for option in ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"] {
                        if log["options"][option].as_str().is_none_or(str::is_empty) {
                            problems.push(format!(
                                "container `{name}`: awslogs option `{option}` is required on Fargate"
                            ));
                        }
                    }
                    if let Some(mode) = log["options"].get("mode")
                        && !matches!(mode.as_str(), Some("blocking" | "non-blocking"))
                    {
                        problems.push(format!(
                            "container `{name}`: awslogs mode {mode} is invalid"
                        ));
                    }
                }
            }
        }

        // Health check.
        if let Some(health) = container.get("healthCheck") {
            let command = str_list(health.get("command"));
            if !matches!(
                command.first().map(String::as_str),
                Some("CMD" | "CMD-SHELL")
            ) {
                problems.push(format!(
                    "container `{name}`: healthCheck.command must start with CMD or CMD-SHELL"
                ));
            }
            for (field, low, high) in [
                ("interval", 5, 300),
                ("timeout", 2, 60),
                ("retries", 1, 10),
                ("startPeriod", 0, 300),
            ] {
                if let Some(value) = health.get(field)
                    && !value.as_u64().is_some_and(|v| (low..=high).contains(&v))
                {
                    problems.push(format!(
                        "container `{name}`: healthCheck.{field} {value} outside {low}-{high}"
                    ));
                }
            }
        }

        // Volumes and other containers referenced.
        for mount in container["mountPoints"].as_array().into_iter().flatten() {
            let source = mount["sourceVolume"].as_str().unwrap_or("");
            if !volumes.contains(source) {
                problems.push(format!(
                    "container `{name}`: mountPoint uses undefined volume `{source}`"
                ));
            }
            if !mount["containerPath"]
                .as_str()
                .is_some_and(|p| p.starts_with('/'))
            {
                problems.push(format!(
                    "container `{name}`: mountPoint needs an absolute containerPath"
                ));
            }
        }
        for from in container["volumesFrom"].as_array().into_iter().flatten() {
            let source = from["sourceContainer"].as_str().unwrap_or("");
            if !names.contains_key(source) || source == name {
                problems.push(format!(
                    "container `{name}`: volumesFrom names unknown container `{source}`"
                ));
            }
        }
        for dependency in container["dependsOn"].as_array().into_iter().flatten() {
            let target_name = dependency["containerName"].as_str().unwrap_or("");
            let condition = dependency["condition"].as_str().unwrap_or("");
            let Some(target) = names.get(target_name).filter(|_| target_name != name) else {
                problems.push(format!(
                    "container `{name}`: dependsOn names unknown container `{target_name}`"
                ));
                continue;
            };
            match condition {
                "START" => {}
                "COMPLETE" | "SUCCESS" => {
                    if target["essential"].as_bool().unwrap_or(true) {
                        problems.push(format!(
                            "container `{name}`: {condition} cannot be used on essential container `{target_name}`"
                        ));
                    }
                }
                "HEALTHY" => {
                    if target.get("healthCheck").is_none() {
                        problems.push(format!(
                            "container `{name}`: HEALTHY needs a healthCheck on `{target_name}`"
                        ));
                    }
                }
                other => problems.push(format!(
                    "container `{name}`: dependsOn condition {other:?} is invalid"
                )),
            }
        }

        // Environment.
        let mut seen = BTreeSet::new();
        for variable in container["environment"].as_array().into_iter().flatten() {
            match (variable["name"].as_str(), variable.get("value")) {
                (Some(var), Some(Value::String(_))) => {
                    if !seen.insert(var) {
                        problems.push(format!(
                            "container `{name}`: environment variable {var} set twice"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "container `{name}`: environment entries need a name and a string value"
                )),
            }
        }

        if is_sidecar(container) {
            sidecars += 1;
            problems.extend(check_sidecar(name, container, task, &volumes));
        }
    }
    if essential_count == 0 {
        problems.push("at least one container must be essential".into());
    }
    if sidecars != 1 {
        problems.push(format!(
            "expected exactly one TaskSentry sidecar, found {sidecars}"
        ));
    }
    if let Some(cpu) = cpu
        && container_cpu > cpu
    {
        problems.push(format!(
            "containers reserve {container_cpu} CPU units, more than the task's {cpu}"
        ));
    }
    if let Some(memory) = memory
        && container_memory > memory
    {
        problems.push(format!(
            "containers reserve {container_memory} MiB, more than the task's {memory}"
        ));
    }
    problems
}

/// What the TaskSentry sidecar itself needs (docs/platform-engineers.md).
fn check_sidecar(
    name: &str,
    sidecar: &Value,
    task: &Value,
    volumes: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if sidecar["readonlyRootFilesystem"].as_bool() != Some(true) {
        problems.push(format!(
            "sidecar `{name}`: readonlyRootFilesystem must be true"
        ));
    }
    if !matches!(sidecar["user"].as_str(), Some("0" | "0:0")) {
        problems.push(format!(
            "sidecar `{name}`: user must be \"0\" (reading /proc of other users)"
        ));
    }
    // The smallest set that sees everything, in poll and trace mode (measured by
    // tests/fargate_caps.rs; docs/platform-engineers.md explains it): SYS_PTRACE for the
    // kernel's ptrace checks and the tracer, DAC_OVERRIDE for other users' environ, fd and
    // private directories. Fargate can only add SYS_PTRACE, so DAC_OVERRIDE is kept by
    // dropping every other default capability by name, not ALL.
    let capabilities = &sidecar["linuxParameters"]["capabilities"];
    let add = str_list(capabilities.get("add"));
    let drop = str_list(capabilities.get("drop"));
    match CapSet::from_fargate_kernel_capabilities(&add, &drop) {
        Ok(set) => {
            let wanted =
                CapSet::from_names(&["DAC_OVERRIDE", "SYS_PTRACE"]).expect("capability names");
            if set != wanted {
                problems.push(format!(
                    "sidecar `{name}`: its capabilities are {set}; they must be exactly DAC_OVERRIDE,SYS_PTRACE (add [\"SYS_PTRACE\"], drop every other default by name)"
                ));
            }
        }
        Err(error) => problems.push(format!("sidecar `{name}`: {error:#}")),
    }
    if sidecar.get("healthCheck").is_some() {
        problems.push(format!(
            "sidecar `{name}`: the image has no shell and TaskSentry no health subcommand; remove healthCheck"
        ));
    }
    let env = environment(sidecar);
    // The spill directory must sit on a writable mounted volume.
    match env.get("TASKSENTRY_SPILL_DIR") {
        None => problems.push(format!("sidecar `{name}`: TASKSENTRY_SPILL_DIR is not set")),
        Some(dir) => {
            let mounted = sidecar["mountPoints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|mount| {
                    let path = mount["containerPath"].as_str().unwrap_or("/nonexistent");
                    let path = path.trim_end_matches('/');
                    mount["readOnly"].as_bool() != Some(true)
                        && volumes.contains(mount["sourceVolume"].as_str().unwrap_or(""))
                        && (dir == path || dir.starts_with(&format!("{path}/")))
                });
            if !mounted {
                problems.push(format!(
                    "sidecar `{name}`: TASKSENTRY_SPILL_DIR {dir} is not on a writable mounted volume (the root filesystem is read-only)"
                ));
            }
        }
    }
    let flush = env
        .get("TASKSENTRY_FLUSH_TIMEOUT")
        .map(|text| humantime::parse_duration(text).unwrap_or(Duration::MAX));
    let stop = Duration::from_secs(sidecar["stopTimeout"].as_u64().unwrap_or(30));
    match flush {
        None => problems.push(format!(
            "sidecar `{name}`: TASKSENTRY_FLUSH_TIMEOUT is not set"
        )),
        Some(flush) if flush >= stop => problems.push(format!(
            "sidecar `{name}`: stopTimeout {stop:?} must exceed TASKSENTRY_FLUSH_TIMEOUT {flush:?}"
        )),
        Some(_) => {}
    }
    let outputs = env.get("TASKSENTRY_OUTPUTS").cloned().unwrap_or_default();
    if outputs.split(',').any(|o| o.trim() == "cloudwatch") {
        if env.get("TASKSENTRY_LOG_GROUP").is_none_or(String::is_empty) {
            problems.push(format!(
                "sidecar `{name}`: the cloudwatch output needs TASKSENTRY_LOG_GROUP"
            ));
        }
        if task["taskRoleArn"].as_str().is_none_or(str::is_empty) {
            problems.push(
                "the cloudwatch output needs a taskRoleArn allowed to write the log group".into(),
            );
        }
    }
    if task["executionRoleArn"].as_str().is_none_or(str::is_empty) {
        problems.push("awslogs and private ECR images need an executionRoleArn".into());
    }
    // The application should not wait for (HEALTHY) a container that has no health check, and
    // every other container should start after the monitor so it sees them from the start.
    for other in task["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if other["name"].as_str() == Some(name) {
            continue;
        }
        let waits = other["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["containerName"].as_str() == Some(name));
        if !waits {
            problems.push(format!(
                "container `{}` does not depend on the sidecar (START): it could run unobserved at start",
                other["name"].as_str().unwrap_or("<unnamed>")
            ));
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------
// IAM policies.
// ------------------------------------------------------------------------------------------

fn check_policy(policy: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if policy["Version"].as_str() != Some("2012-10-17") {
        problems.push("Version must be 2012-10-17".into());
    }
    let Some(statements) = policy["Statement"].as_array().filter(|s| !s.is_empty()) else {
        return vec!["Statement must be a non-empty list".into()];
    };
    for (index, statement) in statements.iter().enumerate() {
        if !matches!(statement["Effect"].as_str(), Some("Allow" | "Deny")) {
            problems.push(format!("statement {index}: Effect must be Allow or Deny"));
        }
        let actions = match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            Value::Array(_) => str_list(statement.get("Action")),
            _ => {
                problems.push(format!("statement {index}: Action is required"));
                continue;
            }
        };
        let resources = match &statement["Resource"] {
            Value::String(resource) => vec![resource.clone()],
            Value::Array(_) => str_list(statement.get("Resource")),
            Value::Null if statement.get("Principal").is_some() => continue, // trust policy
            _ => {
                problems.push(format!("statement {index}: Resource is required"));
                continue;
            }
        };
        for action in &actions {
            if action == "*" || action.ends_with(":*") {
                problems.push(format!("statement {index}: wildcard action {action}"));
            }
            let Some((service, _)) = action.split_once(':') else {
                problems.push(format!(
                    "statement {index}: action {action} has no service prefix"
                ));
                continue;
            };
            let wildcard_allowed = action == "ecr:GetAuthorizationToken";
            for resource in &resources {
                if resource == "*" && !wildcard_allowed {
                    problems.push(format!(
                        "statement {index}: {action} on Resource \"*\" (scope it)"
                    ));
                }
                if resource != "*" && !resource.starts_with(&format!("arn:aws:{service}:")) {
                    problems.push(format!(
                        "statement {index}: {action} on a resource of another service: {resource}"
                    ));
                }
            }
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------
// CloudFormation (YAML with short-form intrinsic function tags).
// ------------------------------------------------------------------------------------------

use support::cfn;

const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

struct Names {
    parameters: BTreeSet<String>,
    resources: BTreeSet<String>,
    conditions: BTreeSet<String>,
}

fn check_template(text: &str) -> Vec<String> {
    use cfn::Node;
    let root = match cfn::parse(text) {
        Ok(root) => root,
        Err(error) => return vec![format!("not valid YAML: {error}")],
    };
    let mut problems = Vec::new();
    if root.get("AWSTemplateFormatVersion").and_then(Node::as_str) != Some("2010-09-09") {
        problems.push("AWSTemplateFormatVersion must be 2010-09-09".to_owned());
    }
    let keys = |section: &str| -> BTreeSet<String> {
        root.get(section)
            .map(|s| s.entries().iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    };
    let names = Names {
        parameters: keys("Parameters"),
        resources: keys("Resources"),
        conditions: keys("Conditions"),
    };
    if names.resources.is_empty() {
        problems.push("Resources must not be empty".to_owned());
    }
    for (name, resource) in root.get("Resources").map(Node::entries).unwrap_or_default() {
        let kind = resource.get("Type").and_then(Node::as_str).unwrap_or("");
        if !kind.starts_with("AWS::") || kind.split("::").count() != 3 {
            problems.push(format!(
                "resource {name}: Type {kind:?} is not AWS::Service::Resource"
            ));
        }
        if let Some(condition) = resource.get("Condition").and_then(Node::as_str)
            && !names.conditions.contains(condition)
        {
            problems.push(format!("resource {name}: unknown Condition {condition}"));
        }
        let depends: Vec<&str> = match resource.get("DependsOn") {
            Some(Node::Scalar { value, .. }) => vec![value.as_str()],
            Some(Node::Seq { items, .. }) => items.iter().filter_map(Node::as_str).collect(),
            _ => Vec::new(),
        };
        for target in depends {
            if !names.resources.contains(target) {
                problems.push(format!(
                    "resource {name}: DependsOn unknown resource {target}"
                ));
            }
        }
        if kind == "AWS::Logs::LogGroup" {
            match resource
                .get("Properties")
                .and_then(|p| p.get("RetentionInDays"))
            {
                None => problems.push(format!(
                    "log group {name}: RetentionInDays is required (never expire otherwise)"
                )),
                Some(node) if node.tag().is_none() => {
                    let days = node
                        .as_str()
                        .and_then(|d| d.parse::<u32>().ok())
                        .unwrap_or(0);
                    if !RETENTION_DAYS.contains(&days) {
                        problems.push(format!(
                            "log group {name}: RetentionInDays {days} is not an allowed value"
                        ));
                    }
                }
                Some(_) => {}
            }
        }
    }
    for (name, parameter) in root
        .get("Parameters")
        .map(Node::entries)
        .unwrap_or_default()
    {
        if parameter.get("Type").is_none() {
            problems.push(format!("parameter {name}: Type is required"));
        }
        if name == "RetentionInDays" {
            let allowed: Vec<u32> = match parameter.get("AllowedValues") {
                Some(Node::Seq { items, .. }) => items
                    .iter()
                    .filter_map(|i| i.as_str()?.parse().ok())
                    .collect(),
                _ => Vec::new(),
            };
            if allowed.is_empty() || allowed.iter().any(|d| !RETENTION_DAYS.contains(d)) {
                problems.push(
                    "parameter RetentionInDays: AllowedValues must be CloudWatch retention values"
                        .into(),
                );
            }
        }
    }
    walk(&root, &names, &mut problems);
    problems
}

fn check_ref(target: &str, names: &Names, line: usize, problems: &mut Vec<String>) {
    if !(names.parameters.contains(target)
        || names.resources.contains(target)
        || PSEUDO_PARAMETERS.contains(&target))
    {
        problems.push(format!("line {}: Ref to undefined {target:?}", line + 1));
    }
}

fn check_getatt(target: &str, names: &Names, line: usize, problems: &mut Vec<String>) {
    let resource = target.split('.').next().unwrap_or("");
    if !names.resources.contains(resource) || !target.contains('.') {
        problems.push(format!(
            "line {}: GetAtt {target:?} does not name Resource.Attribute",
            line + 1
        ));
    }
}

fn check_sub(
    text: &str,
    extra: &BTreeSet<String>,
    names: &Names,
    line: usize,
    problems: &mut Vec<String>,
) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push(format!("line {}: unclosed ${{ in Sub", line + 1));
            return;
        };
        let variable = &after[..end];
        rest = &after[end + 1..];
        if variable.starts_with('!') {
            continue; // A literal `${!...}`.
        }
        if extra.contains(variable) {
            continue;
        }
        if variable.contains('.') && !variable.starts_with("AWS::") {
            check_getatt(variable, names, line, problems);
        } else {
            check_ref(variable, names, line, problems);
        }
    }
}

fn walk(node: &cfn::Node, names: &Names, problems: &mut Vec<String>) {
    use cfn::Node;
    let line = node.line();
    match (node.tag(), node) {
        (Some("Ref"), Node::Scalar { value, .. }) => check_ref(value, names, line, problems),
        (Some("GetAtt"), Node::Scalar { value, .. }) => check_getatt(value, names, line, problems),
        (Some("GetAtt"), Node::Seq { items, .. }) => {
            let parts: Vec<&str> = items.iter().filter_map(Node::as_str).collect();
            check_getatt(&parts.join("."), names, line, problems);
        }
        (Some("Sub"), Node::Scalar { value, .. }) => {
            check_sub(value, &BTreeSet::new(), names, line, problems)
        }
        (Some("Sub"), Node::Seq { items, .. }) => {
            let extra: BTreeSet<String> = items
                .get(1)
                .map(|vars| vars.entries().iter().map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            if let Some(template) = items.first().and_then(Node::as_str) {
                check_sub(template, &extra, names, line, problems);
            }
        }
        (Some("If"), Node::Seq { items, .. }) => {
            if let Some(condition) = items.first().and_then(Node::as_str)
                && !names.conditions.contains(condition)
            {
                problems.push(format!(
                    "line {}: If on unknown condition {condition}",
                    line + 1
                ));
            }
        }
        (Some("Condition"), Node::Scalar { value, .. }) if !names.conditions.contains(value) => {
            problems.push(format!("line {}: unknown condition {value}", line + 1));
        }
        (Some(tag), _)
            if ![
                "Ref",
                "GetAtt",
                "Sub",
                "If",
                "Condition",
                "Not",
                "Equals",
                "And",
                "Or",
                "Join",
                "Select",
                "Split",
                "GetAZs",
                "ImportValue",
                "FindInMap",
                "Base64",
                "Cidr",
            ]
            .contains(&tag) =>
        {
            problems.push(format!("line {}: unknown tag !{tag}", line + 1));
        }
        _ => {}
    }
    match node {
        Node::Map { entries, .. } => {
            for (key, value) in entries {
                match (key.as_str(), value) {
                    ("Ref", Node::Scalar { value: target, .. }) => {
                        check_ref(target, names, value.line(), problems)
                    }
                    ("Fn::GetAtt", Node::Seq { items, .. }) => {
                        let parts: Vec<&str> = items.iter().filter_map(Node::as_str).collect();
                        check_getatt(&parts.join("."), names, value.line(), problems);
                    }
                    (
                        "Fn::Sub",
                        Node::Scalar {
                            value: template, ..
                        },
                    ) => check_sub(template, &BTreeSet::new(), names, value.line(), problems),
                    _ => {}
                }
                walk(value, names, problems);
            }
        }
        Node::Seq { items, .. } => {
            for item in items {
                walk(item, names, problems);
            }
        }
        Node::Scalar { .. } => {}
    }
}

// ------------------------------------------------------------------------------------------
// The tests.
// ------------------------------------------------------------------------------------------

fn nginx_task() -> Value {
    load_json(&repo().join("task-definitions/web-nginx-with-tasksentry.json"))
}

fn template_text() -> String {
    std::fs::read_to_string(repo().join("task-definitions/cloudformation/tasksentry-alerting.yaml"))
        .unwrap()
}

fn service_template_text() -> String {
    std::fs::read_to_string(
        repo().join("task-definitions/cloudformation/tasksentry-service-monitoring.yaml"),
    )
    .unwrap()
}

/// Problems with a CloudFormation parameters file (`--parameters file://...`: a list of
/// `{ParameterKey, ParameterValue}`) for the template `template`: unknown keys, values the
/// parameter's constraints refuse, parameters without a default left out.
fn check_parameters(file: &Value, template: &str) -> Vec<String> {
    use cfn::Node;
    let mut problems = Vec::new();
    let root = cfn::parse(template).unwrap();
    let parameters = root.get("Parameters").unwrap();
    let Some(items) = file.as_array() else {
        return vec!["a parameters file is a JSON list".into()];
    };
    let mut given = BTreeMap::new();
    for item in items {
        match (
            item["ParameterKey"].as_str(),
            item["ParameterValue"].as_str(),
        ) {
            (Some(key), Some(value)) => {
                if given.insert(key.to_owned(), value.to_owned()).is_some() {
                    problems.push(format!("{key} given twice"));
                }
            }
            _ => problems.push(format!(
                "{item}: needs ParameterKey and a string ParameterValue"
            )),
        }
    }
    for (key, value) in &given {
        let Some(parameter) = parameters.get(key) else {
            problems.push(format!("the template has no parameter {key}"));
            continue;
        };
        if let Some(Node::Seq { items, .. }) = parameter.get("AllowedValues")
            && !items.iter().any(|i| i.as_str() == Some(value))
        {
            problems.push(format!("{key}: {value:?} is not an allowed value"));
        }
        if let Some(pattern) = parameter.get("AllowedPattern").and_then(Node::as_str) {
            let full = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            if !full.is_match(value) {
                problems.push(format!("{key}: {value:?} does not match {pattern}"));
            }
        }
        if parameter.get("Type").and_then(Node::as_str) == Some("Number") {
            match value.parse::<f64>() {
                Err(_) => problems.push(format!("{key}: {value:?} is not a number")),
                Ok(number) => {
                    for (bound, low) in [("MinValue", true), ("MaxValue", false)] {
                        let limit = parameter
                            .get(bound)
                            .and_then(Node::as_str)
                            .and_then(|b| b.parse::<f64>().ok());
                        if let Some(limit) = limit
                            && ((low && number < limit) || (!low && number > limit))
                        {
                            problems.push(format!("{key}: {value} is outside {bound} {limit}"));
                        }
                    }
                }
            }
        }
    }
    for (key, parameter) in parameters.entries() {
        if parameter.get("Default").is_none() && !given.contains_key(key) {
            problems.push(format!("{key} has no default and is not given"));
        }
    }
    problems
}

fn assert_rejected(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}, got {problems:#?}"
    );
}

#[test]
fn every_json_file_is_a_valid_task_definition_or_policy() {
    let mut files = Vec::new();
    files_with_extension(&repo().join("task-definitions"), "json", &mut files);
    let (mut tasks, mut policies, mut parameter_files) = (0, 0, 0);
    for path in &files {
        let value = load_json(path);
        let problems = if value.get("containerDefinitions").is_some() {
            tasks += 1;
            check_task_definition(&value)
        } else if value.get("Statement").is_some() {
            policies += 1;
            check_policy(&value)
        } else if path
            .parent()
            .is_some_and(|d| d.ends_with("cloudformation/parameters"))
        {
            parameter_files += 1;
            check_parameters(&value, &service_template_text())
        } else {
            vec!["neither a task definition, an IAM policy nor stack parameters".to_owned()]
        };
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
    assert!(tasks >= 2, "the web and the worker task definitions");
    assert!(policies >= 3, "task role, execution role, trust policy");
    assert!(parameter_files >= 2, "service stack parameters per example");
}

#[test]
fn the_parameters_check_rejects_what_cloudformation_would() {
    let template = service_template_text();
    let good = json!([
        {"ParameterKey": "ClusterName", "ParameterValue": "prod"},
        {"ParameterKey": "TaskFamily", "ParameterValue": "web"},
        {"ParameterKey": "TaskLogGroupName", "ParameterValue": "/ecs/web"},
    ]);
    assert!(check_parameters(&good, &template).is_empty());
    let with = |key: &str, value: &str| {
        let mut file = good.clone();
        file.as_array_mut()
            .unwrap()
            .push(json!({"ParameterKey": key, "ParameterValue": value}));
        check_parameters(&file, &template)
    };
    assert_rejected(&with("Cluster", "prod"), "no parameter Cluster");
    assert_rejected(
        &with("TaskLogRetentionInDays", "42"),
        "not an allowed value",
    );
    assert_rejected(&with("ExpectedTaskCount", "-1"), "outside MinValue");
    assert_rejected(&with("ExpectedTaskCount", "two"), "not a number");
    let mut file = good.clone();
    file.as_array_mut().unwrap().remove(1);
    assert_rejected(
        &check_parameters(&file, &template),
        "TaskFamily has no default",
    );
    let mut file = good;
    file[0]["ParameterValue"] = json!("arn:aws:ecs:eu-west-1:111122223333:cluster/prod");
    assert_rejected(&check_parameters(&file, &template), "does not match");
}

#[test]
fn rejects_a_task_definition_without_pid_mode_or_with_host_pid_mode() {
    let mut task = nginx_task();
    task.as_object_mut().unwrap().remove("pidMode");
    assert_rejected(&check_task_definition(&task), "`pidMode` is missing");
    task["pidMode"] = json!("host");
    assert_rejected(
        &check_task_definition(&task),
        "Fargate accepts only \"task\"",
    );
}

#[test]
fn rejects_capabilities_fargate_does_not_grant() {
    let mut task = nginx_task();
    task["containerDefinitions"][0]["linuxParameters"]["capabilities"]["add"] =
        json!(["SYS_PTRACE", "SYS_ADMIN"]);
    assert_rejected(
        &check_task_definition(&task),
        "SYS_ADMIN cannot be added on Fargate",
    );
    let mut task = nginx_task();
    task["containerDefinitions"][1]["linuxParameters"] =
        json!({"capabilities": {"add": ["NET_ADMIN"]}});
    assert_rejected(&check_task_definition(&task), "NET_ADMIN cannot be added");
    let mut task = nginx_task();
    task["containerDefinitions"][0]["linuxParameters"]["capabilities"]["drop"] = json!(["NET_RAW"]);
    assert_rejected(
        &check_task_definition(&task),
        "they must be exactly DAC_OVERRIDE,SYS_PTRACE",
    );
    // "drop ALL" loses DAC_OVERRIDE, which Fargate cannot add back.
    let mut task = nginx_task();
    task["containerDefinitions"][0]["linuxParameters"]["capabilities"]["drop"] = json!(["ALL"]);
    assert_rejected(
        &check_task_definition(&task),
        "its capabilities are SYS_PTRACE; they must be exactly",
    );
}

#[test]
fn rejects_invalid_fargate_sizes() {
    for (cpu, memory) in [
        ("512", "512"),
        ("256", "4096"),
        ("300", "1024"),
        ("4096", "4096"),
    ] {
        let mut task = nginx_task();
        task["cpu"] = json!(cpu);
        task["memory"] = json!(memory);
        assert_rejected(
            &check_task_definition(&task),
            "not a valid Fargate combination",
        );
    }
    let mut task = nginx_task();
    task["cpu"] = json!("1 vCPU");
    task["memory"] = json!("2 GB");
    assert!(
        check_task_definition(&task).is_empty(),
        "the unit forms are valid"
    );
    task.as_object_mut().unwrap().remove("memory");
    assert_rejected(&check_task_definition(&task), "are required on Fargate");
}

#[test]
fn rejects_logging_without_the_fargate_stream_prefix() {
    let mut task = nginx_task();
    task["containerDefinitions"][1]["logConfiguration"]["options"]
        .as_object_mut()
        .unwrap()
        .remove("awslogs-stream-prefix");
    assert_rejected(
        &check_task_definition(&task),
        "`awslogs-stream-prefix` is required",
    );
    let mut task = nginx_task();
    task["containerDefinitions"][0]["logConfiguration"]["logDriver"] = json!("journald");
    assert_rejected(&check_task_definition(&task), "not available on Fargate");
}

#[test]
fn rejects_a_sidecar_that_is_writable_unprivileged_or_misconfigured() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "readonlyRootFilesystem",
            json!(false),
            "readonlyRootFilesystem must be true",
        ),
        ("user", json!("1000"), "user must be \"0\""),
        (
            "stopTimeout",
            json!(10),
            "must exceed TASKSENTRY_FLUSH_TIMEOUT",
        ),
        ("stopTimeout", json!(300), "outside 2-120"),
        (
            "healthCheck",
            json!({"command": ["CMD-SHELL", "pgrep tasksentry"], "interval": 30}),
            "remove healthCheck",
        ),
        ("mountPoints", json!([]), "not on a writable mounted volume"),
        (
            "privileged",
            json!(true),
            "privileged containers are not supported",
        ),
        ("hostname", json!("monitor"), "`hostname` is not supported"),
        ("volumeMounts", json!([]), "unknown key `volumeMounts`"),
    ];
    for (field, value, expected) in cases {
        let mut task = nginx_task();
        task["containerDefinitions"][0][field] = value;
        assert_rejected(&check_task_definition(&task), expected);
    }
    let mut task = nginx_task();
    task["containerDefinitions"][0]["mountPoints"][0]["readOnly"] = json!(true);
    assert_rejected(
        &check_task_definition(&task),
        "not on a writable mounted volume",
    );
    let mut task = nginx_task();
    task.as_object_mut().unwrap().remove("taskRoleArn");
    assert_rejected(&check_task_definition(&task), "needs a taskRoleArn");
}

#[test]
fn rejects_dangling_references_between_containers_and_volumes() {
    let mut task = nginx_task();
    task["containerDefinitions"][1]["dependsOn"][0]["containerName"] = json!("monitor");
    let problems = check_task_definition(&task);
    assert_rejected(&problems, "dependsOn names unknown container `monitor`");
    assert_rejected(&problems, "does not depend on the sidecar");

    let mut task = nginx_task();
    task["containerDefinitions"][1]["dependsOn"][0]["condition"] = json!("HEALTHY");
    assert_rejected(&check_task_definition(&task), "HEALTHY needs a healthCheck");

    let mut task = nginx_task();
    task["containerDefinitions"][0]["essential"] = json!(true);
    task["containerDefinitions"][1]["dependsOn"][0]["condition"] = json!("COMPLETE");
    assert_rejected(
        &check_task_definition(&task),
        "cannot be used on essential container",
    );

    let mut task = nginx_task();
    task["containerDefinitions"][1]["mountPoints"][0]["sourceVolume"] = json!("nginx-cahce");
    assert_rejected(
        &check_task_definition(&task),
        "undefined volume `nginx-cahce`",
    );

    let mut task = nginx_task();
    task["containerDefinitions"][1]["essential"] = json!(false);
    assert_rejected(
        &check_task_definition(&task),
        "at least one container must be essential",
    );

    let mut task = nginx_task();
    task["volumes"][0]["host"] = json!({"sourcePath": "/var/run/docker.sock"});
    assert_rejected(
        &check_task_definition(&task),
        "host.sourcePath is not supported",
    );

    let mut task = nginx_task();
    task["containerDefinitions"][0]["memory"] = json!(2048);
    assert_rejected(&check_task_definition(&task), "more than the task's 1024");
}

#[test]
fn rejects_over_broad_iam_policies() {
    let path = repo().join("task-definitions/iam/tasksentry-task-role-policy.json");
    let mut policy = load_json(&path);
    assert!(check_policy(&policy).is_empty());
    policy["Statement"][0]["Resource"] = json!("*");
    assert_rejected(&check_policy(&policy), "on Resource \"*\"");
    policy["Statement"][0]["Action"] = json!("logs:*");
    assert_rejected(&check_policy(&policy), "wildcard action logs:*");
    // The task role covers exactly what the CloudWatch sink cannot do without (the stack
    // creates the group with its retention; tests/packaging_links.rs derives this set from the
    // sink's code and shows the sink delivering without the rest).
    let policy = load_json(&path);
    let actions: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| str_list(s.get("Action")))
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "logs:CreateLogStream".to_owned(),
            "logs:PutLogEvents".to_owned()
        ])
    );
}

#[test]
fn the_cloudformation_template_is_valid_and_its_references_resolve() {
    let service = service_template_text();
    let problems = check_template(&service);
    assert!(problems.is_empty(), "service template: {problems:#?}");
    let text = template_text();
    let problems = check_template(&text);
    assert!(problems.is_empty(), "{problems:#?}");
    let root = cfn::parse(&text).unwrap();
    let resources = root.get("Resources").unwrap();
    let kinds: Vec<&str> = resources
        .entries()
        .iter()
        .filter_map(|(_, r)| r.get("Type").and_then(cfn::Node::as_str))
        .collect();
    for kind in [
        "AWS::Logs::LogGroup",
        "AWS::Logs::MetricFilter",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::Topic",
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::IAM::Role",
        "AWS::CloudWatch::Dashboard",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing");
    }
    // The Critical filter matches the alert JSON's priority; the heartbeat alarm (per service)
    // breaches on missing data (a dead monitor sends nothing) and reads the namespace the
    // binary writes (tests/packaging_links.rs checks every alarm against a real heartbeat).
    assert!(text.contains(r#"$.priority = "Critical""#));
    let service_root = cfn::parse(&service).unwrap();
    let heartbeat = service_root
        .get("Resources")
        .and_then(|r| r.get("HeartbeatMissingAlarm"))
        .unwrap();
    let properties = heartbeat.get("Properties").unwrap();
    assert_eq!(
        properties
            .get("TreatMissingData")
            .and_then(cfn::Node::as_str),
        Some("breaching")
    );
    let Some(cfn::Node::Seq { items, .. }) = properties.get("Metrics") else {
        panic!("a metric-math alarm");
    };
    let namespace = items[0]
        .get("MetricStat")
        .and_then(|m| m.get("Metric"))
        .and_then(|m| m.get("Namespace"))
        .and_then(cfn::Node::as_str);
    assert_eq!(
        namespace,
        Some(tasksentry::sink::cloudwatch::emf::NAMESPACE),
        "the EMF namespace the binary writes"
    );
}

#[test]
fn the_template_checker_rejects_broken_references_and_syntax() {
    let text = template_text();
    let cases = [
        (
            "TopicArn: !Ref SecurityAlarmTopic",
            "TopicArn: !Ref SecurityAlarmTopc",
            "Ref to undefined \"SecurityAlarmTopc\"",
        ),
        (
            "Value: !GetAtt TaskSentryTaskRole.Arn",
            "Value: !GetAtt TaskSentryRole.Arn",
            "GetAtt \"TaskSentryRole.Arn\"",
        ),
        (
            "log-group:${AlertLogGroupName}\"",
            "log-group:${AlertGroupName}\"",
            "Ref to undefined \"AlertGroupName\"",
        ),
        (
            "Condition: HasSecurityTeamEmail",
            "Condition: HasEmail",
            "unknown Condition HasEmail",
        ),
        (
            "DependsOn: CriticalAlertsFilter",
            "DependsOn: CriticalFilter",
            "DependsOn unknown resource",
        ),
        (
            "RetentionInDays: !Ref RetentionInDays",
            "RetentionInDays: 42",
            "RetentionInDays 42 is not an allowed value",
        ),
        (
            "Resources:\n",
            "Resources:\n  Broken: [unclosed\n",
            "not valid YAML",
        ),
        (
            "!Ref AlertLogGroupName",
            "!Reff AlertLogGroupName",
            "unknown tag !Reff",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(text.contains(from), "fixture text {from:?} present");
        let broken = text.replacen(from, to, 1);
        assert_rejected(&check_template(&broken), expected);
    }
}

//! The task metadata v4 documents (`${ECS_CONTAINER_METADATA_URI_V4}/task` and the container's
//! own `${ECS_CONTAINER_METADATA_URI_V4}`), parsed leniently into what TaskSentry uses.
//!
//! AWS promises that v4 only ever gains fields, and real responses differ between Fargate and
//! EC2 and between platform versions (`ClockDrift` at task or container level, `Revision` as a
//! string, `Limits.CPU` in vCPU at task level and CPU units at container level). So unknown
//! fields are ignored and a field of an unexpected type is treated as absent rather than failing
//! the whole document; only a document that is not a JSON object at all is an error. Containers
//! are keyed by `DockerId`, which on Fargate is the `<task id>-<digits>` last segment of the
//! container's cgroup path and on EC2 the 64-hex Docker id.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::event::{Container, EcsContext, PortMapping, Timestamp};

/// CPU and memory limits as the endpoint reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct Limits {
    /// CPU: vCPU (e.g. 0.25) at task level, CPU units (e.g. 128) at container level.
    #[serde(rename = "CPU", default, deserialize_with = "lenient")]
    pub(crate) cpu: Option<f64>,
    /// Memory in MiB.
    #[serde(rename = "Memory", default, deserialize_with = "lenient")]
    pub(crate) memory: Option<f64>,
}

/// Clock synchronisation information (Fargate reports it at task or container level).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ClockDrift {
    /// Error bound of the clock, in milliseconds.
    #[serde(rename = "ClockErrorBound", default, deserialize_with = "lenient")]
    pub(crate) clock_error_bound: Option<f64>,
    /// When the bound was computed.
    #[serde(rename = "ReferenceTimestamp", default, deserialize_with = "lenient")]
    pub(crate) reference_timestamp: Option<String>,
    /// `SYNCHRONIZED` or `NOT_SYNCHRONIZED`.
    #[serde(
        rename = "ClockSynchronizationStatus",
        default,
        deserialize_with = "lenient"
    )]
    pub(crate) status: Option<String>,
}

/// One container of the task, as the metadata endpoint describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerMetadata {
    /// `DockerId`: the key the container is found by (see the module documentation).
    pub docker_id: String,
    /// `Name`: the container name from the task definition.
    pub name: Option<String>,
    /// `DockerName`.
    pub(crate) docker_name: Option<String>,
    /// `Image`: the image reference as written in the task definition.
    pub(crate) image: Option<String>,
    /// `ImageID`: the image digest (`sha256:...`).
    pub(crate) image_id: Option<String>,
    /// `ContainerARN`.
    pub(crate) container_arn: Option<String>,
    /// `CreatedAt`.
    pub(crate) created_at: Option<Timestamp>,
    /// `StartedAt`.
    pub(crate) started_at: Option<Timestamp>,
    /// `Type`: `NORMAL` for the task definition's containers.
    pub(crate) container_type: Option<String>,
    /// `KnownStatus`, e.g. `RUNNING`.
    pub(crate) known_status: Option<String>,
    /// `Limits`.
    pub(crate) limits: Option<Limits>,
    /// `ClockDrift`, where the platform reports it per container.
    pub(crate) clock_drift: Option<ClockDrift>,
    /// `Labels`.
    pub(crate) labels: BTreeMap<String, String>,
    /// `Ports`: the container's `portMappings` from the task definition, when the endpoint
    /// lists them (`None` when the document has no `Ports`).
    pub(crate) ports: Option<Vec<PortMapping>>,
    /// The DNS resolvers of the container's networks (`Networks[].DomainNameServers`), else
    /// each network's subnet base + 2 (`Networks[].IPv4SubnetCIDRBlock`), the address the VPC
    /// reserves in every subnet for its resolver.
    pub(crate) resolvers: Vec<IpAddr>,
}

impl ContainerMetadata {
    /// The image digest for `container.image.digest`: the `@sha256:...` part of the image
    /// reference when the task definition pinned one, otherwise `ImageID`.
    pub(crate) fn image_digest(&self) -> Option<&str> {
        self.image
            .as_deref()
            .and_then(|image| image.split_once('@').map(|(_, digest)| digest))
            .filter(|digest| digest.contains(':'))
            .or(self.image_id.as_deref())
    }
}

/// The task and its containers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskMetadata {
    /// `Cluster` (the full ARN on Fargate).
    pub(crate) cluster: Option<String>,
    /// `TaskARN`.
    pub(crate) task_arn: Option<String>,
    /// The task id: the last segment of the task ARN.
    pub task_id: Option<String>,
    /// `Family`.
    pub family: Option<String>,
    /// `Revision` (a string in v4; a number is accepted too).
    pub(crate) revision: Option<String>,
    /// `AvailabilityZone`.
    pub(crate) availability_zone: Option<String>,
    /// `LaunchType` (`FARGATE`, `EC2`, ...).
    pub(crate) launch_type: Option<String>,
    /// `Limits` of the task.
    pub(crate) limits: Option<Limits>,
    /// `ClockDrift`, where the platform reports it per task.
    pub(crate) clock_drift: Option<ClockDrift>,
    containers: HashMap<String, ContainerMetadata>,
}

impl TaskMetadata {
    /// Parses a `${ECS_CONTAINER_METADATA_URI_V4}/task` document. Containers without a
    /// `DockerId` (or that are not objects) are skipped.
    pub fn from_json(body: &[u8]) -> Result<TaskMetadata, serde_json::Error> {
        let raw: RawTask = serde_json::from_value(object_from_slice(body)?)?;
        let mut containers = HashMap::new();
        for value in raw.containers.unwrap_or_default() {
            if let Ok(raw) = serde_json::from_value::<RawContainer>(value)
                && let Some(container) = raw.into_metadata()
            {
                containers.insert(container.docker_id.clone(), container);
            }
        }
        let task_id = raw.task_arn.as_deref().and_then(task_id_from_arn);
        Ok(TaskMetadata {
            cluster: raw.cluster,
            task_arn: raw.task_arn,
            task_id,
            family: raw.family,
            revision: raw.revision,
            availability_zone: raw.availability_zone,
            launch_type: raw.launch_type,
            limits: raw.limits,
            clock_drift: raw.clock_drift,
            containers,
        })
    }

    /// The container whose `DockerId` is `container_id` (the id taken from a cgroup path).
    /// Hex ids are compared case-insensitively.
    pub fn container(&self, container_id: &str) -> Option<&ContainerMetadata> {
        self.containers.get(container_id).or_else(|| {
            let lower = container_id.to_ascii_lowercase();
            self.containers.get(&lower)
        })
    }

    /// The VPC DNS resolvers the task's containers use (see [`ContainerMetadata`]'s
    /// `resolvers`), sorted, without repeats.
    pub fn vpc_resolvers(&self) -> Vec<IpAddr> {
        let mut resolvers: Vec<IpAddr> = self
            .containers
            .values()
            .flat_map(|c| c.resolvers.iter().copied())
            .collect();
        resolvers.sort();
        resolvers.dedup();
        resolvers
    }

    /// The number of containers the document listed (with a `DockerId`).
    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    /// The task-level ECS context (no container ARN).
    pub fn task_context(&self) -> EcsContext {
        EcsContext {
            cluster: self.cluster.clone(),
            task_arn: self.task_arn.clone(),
            task_id: self.task_id.clone(),
            family: self.family.clone(),
            revision: self.revision.clone(),
            availability_zone: self.availability_zone.clone(),
            launch_type: self.launch_type.clone(),
            container_arn: None,
        }
    }

    /// Fills `container.ecs` with the task's context and, when the task lists the container
    /// (looked up by `container.id`), its name, image, image digest and ARN. Values the
    /// metadata does not have leave what is there untouched. Returns whether the container was
    /// found; the task context is filled either way, since every process the monitor sees
    /// belongs to this task.
    pub fn enrich(&self, container: &mut Container) -> bool {
        let ecs = container.ecs.get_or_insert_with(EcsContext::default);
        let task = self.task_context();
        set(&mut ecs.cluster, task.cluster);
        set(&mut ecs.task_arn, task.task_arn);
        set(&mut ecs.task_id, task.task_id);
        set(&mut ecs.family, task.family);
        set(&mut ecs.revision, task.revision);
        set(&mut ecs.availability_zone, task.availability_zone);
        set(&mut ecs.launch_type, task.launch_type);
        let Some(metadata) = self.container(&container.id) else {
            return false;
        };
        set(&mut ecs.container_arn, metadata.container_arn.clone());
        set(&mut container.name, metadata.name.clone());
        set(&mut container.image, metadata.image.clone());
        set(
            &mut container.image_digest,
            metadata.image_digest().map(str::to_owned),
        );
        if metadata.ports.is_some() {
            container.port_mappings.clone_from(&metadata.ports);
        }
        true
    }
}

impl ContainerMetadata {
    /// Parses a container document (`${ECS_CONTAINER_METADATA_URI_V4}`). `None` in the `Ok`
    /// case means the document is an object without a usable `DockerId`.
    pub fn from_json(body: &[u8]) -> Result<Option<ContainerMetadata>, serde_json::Error> {
        let raw: RawContainer = serde_json::from_value(object_from_slice(body)?)?;
        Ok(raw.into_metadata())
    }
}

/// Parses a JSON document that must be an object (serde would also accept an array for a
/// struct whose fields all have defaults).
fn object_from_slice(body: &[u8]) -> Result<Value, serde_json::Error> {
    match serde_json::from_slice::<Value>(body)? {
        Value::Object(map) => Ok(Value::Object(map)),
        other => Err(serde::de::Error::custom(format!(
            "expected a JSON object, found {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
    }
}

fn set(slot: &mut Option<String>, value: Option<String>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The last `/`-separated segment of a task ARN (`arn:aws:ecs:r:a:task/cluster/<id>` or the
/// old `arn:aws:ecs:r:a:task/<id>` form).
pub fn task_id_from_arn(arn: &str) -> Option<String> {
    let (_, id) = arn.rsplit_once('/')?;
    (!id.is_empty()).then(|| id.to_owned())
}

#[derive(Debug, Deserialize)]
struct RawTask {
    #[serde(rename = "Cluster", default, deserialize_with = "lenient")]
    cluster: Option<String>,
    #[serde(rename = "TaskARN", default, deserialize_with = "lenient")]
    task_arn: Option<String>,
    #[serde(rename = "Family", default, deserialize_with = "lenient")]
    family: Option<String>,
    #[serde(rename = "Revision", default, deserialize_with = "lenient_string")]
    revision: Option<String>,
    #[serde(rename = "AvailabilityZone", default, deserialize_with = "lenient")]
    availability_zone: Option<String>,
    #[serde(rename = "LaunchType", default, deserialize_with = "lenient")]
    launch_type: Option<String>,
    #[serde(rename = "Limits", default, deserialize_with = "lenient")]
    limits: Option<Limits>,
    #[serde(rename = "ClockDrift", default, deserialize_with = "lenient")]
    clock_drift: Option<ClockDrift>,
    #[serde(rename = "Containers", default, deserialize_with = "lenient")]
    containers: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct RawContainer {
    #[serde(rename = "DockerId", default, deserialize_with = "lenient")]
    docker_id: Option<String>,
    #[serde(rename = "Name", default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(rename = "DockerName", default, deserialize_with = "lenient")]
    docker_name: Option<String>,
    #[serde(rename = "Image", default, deserialize_with = "lenient")]
    image: Option<String>,
    #[serde(rename = "ImageID", default, deserialize_with = "lenient")]
    image_id: Option<String>,
    #[serde(rename = "ContainerARN", default, deserialize_with = "lenient")]
    container_arn: Option<String>,
    #[serde(rename = "CreatedAt", default, deserialize_with = "lenient")]
    created_at: Option<String>,
    #[serde(rename = "StartedAt", default, deserialize_with = "lenient")]
    started_at: Option<String>,
    #[serde(rename = "Type", default, deserialize_with = "lenient")]
    container_type: Option<String>,
    #[serde(rename = "KnownStatus", default, deserialize_with = "lenient")]
    known_status: Option<String>,
    #[serde(rename = "Limits", default, deserialize_with = "lenient")]
    limits: Option<Limits>,
    #[serde(rename = "ClockDrift", default, deserialize_with = "lenient")]
    clock_drift: Option<ClockDrift>,
    #[serde(rename = "Labels", default, deserialize_with = "lenient")]
    labels: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Ports", default, deserialize_with = "lenient")]
    ports: Option<Vec<Value>>,
    #[serde(rename = "Networks", default, deserialize_with = "lenient")]
    networks: Option<Vec<Value>>,
}

/// A network's resolvers: its `DomainNameServers` (IPv4 and IPv6 addresses), else the base of
/// its `IPv4SubnetCIDRBlock` plus two.
fn network_resolvers(network: &Value) -> Vec<IpAddr> {
    let named: Vec<IpAddr> = network
        .get("DomainNameServers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.trim().parse().ok())
        .collect();
    if !named.is_empty() {
        return named;
    }
    let Some((base, prefix)) = network
        .get("IPv4SubnetCIDRBlock")
        .and_then(Value::as_str)
        .and_then(|cidr| cidr.trim().split_once('/'))
    else {
        return Vec::new();
    };
    match (base.parse::<Ipv4Addr>(), prefix.parse::<u8>()) {
        (Ok(base), Ok(prefix)) if prefix <= 30 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let network = u32::from(base) & mask;
            vec![IpAddr::V4(Ipv4Addr::from(network.wrapping_add(2)))]
        }
        _ => Vec::new(),
    }
}

/// One entry of a container's `Ports` (`ContainerPort`, `Protocol`; `HostPort` and `HostIp`
/// are not needed). An entry without a usable port is skipped; the protocol defaults to TCP,
/// as in a task definition's `portMappings`.
fn port_mapping(value: &Value) -> Option<PortMapping> {
    let port = value.get("ContainerPort")?.as_u64()?;
    let port = u16::try_from(port).ok().filter(|port| *port != 0)?;
    let protocol = match value.get("Protocol").and_then(Value::as_str) {
        None => "tcp".to_owned(),
        Some(text) => {
            let text = text.trim().to_ascii_lowercase();
            match text.as_str() {
                "tcp" | "udp" => text,
                _ => return None,
            }
        }
    };
    Some(PortMapping { port, protocol })
}

impl RawContainer {
    fn into_metadata(self) -> Option<ContainerMetadata> {
        let docker_id = self.docker_id.filter(|id| !id.trim().is_empty())?;
        let parse_time =
            |text: Option<String>| text.and_then(|text| Timestamp::parse_rfc3339(text.trim()).ok());
        let labels = self
            .labels
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::String(text) => Some((key, text)),
                Value::Number(number) => Some((key, number.to_string())),
                Value::Bool(flag) => Some((key, flag.to_string())),
                _ => None,
            })
            .collect();
        Some(ContainerMetadata {
            docker_id: docker_id.trim().to_owned(),
            name: self.name,
            docker_name: self.docker_name,
            image: self.image,
            image_id: self.image_id,
            container_arn: self.container_arn,
            created_at: parse_time(self.created_at),
            started_at: parse_time(self.started_at),
            container_type: self.container_type,
            known_status: self.known_status,
            limits: self.limits,
            clock_drift: self.clock_drift,
            labels,
            ports: self
                .ports
                .map(|ports| ports.iter().filter_map(port_mapping).collect()),
            resolvers: self
                .networks
                .iter()
                .flatten()
                .flat_map(network_resolvers)
                .collect(),
        })
    }
}

/// Deserializes any JSON value and keeps it only if it has the expected type; a field of the
/// wrong type is treated as absent instead of failing the document.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Like [`lenient`] for strings, but also accepts a number (`"Revision": 7`).
fn lenient_string<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => Some(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = include_str!("testdata/task-fargate.json");
    const CONTAINER: &str = include_str!("testdata/container-fargate.json");
    const MONITOR_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-1203914765";
    const APP_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-3551829907";

    #[test]
    fn parses_the_realistic_fargate_task_document() {
        let task = TaskMetadata::from_json(TASK.as_bytes()).expect("valid");
        assert_eq!(
            task.cluster.as_deref(),
            Some("arn:aws:ecs:eu-west-1:111122223333:cluster/prod")
        );
        assert_eq!(
            task.task_id.as_deref(),
            Some("5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c")
        );
        assert_eq!(
            task.family.as_deref(),
            Some("orders-api-with-runtime-monitor")
        );
        assert_eq!(task.revision.as_deref(), Some("7"));
        assert_eq!(task.availability_zone.as_deref(), Some("eu-west-1b"));
        assert_eq!(task.launch_type.as_deref(), Some("FARGATE"));
        assert_eq!(task.limits.and_then(|l| l.cpu), Some(1.0));
        assert_eq!(
            task.clock_drift.as_ref().and_then(|c| c.status.as_deref()),
            Some("SYNCHRONIZED")
        );
        assert_eq!(task.container_count(), 2);

        let app = task.container(APP_ID).expect("app is listed");
        assert_eq!(app.name.as_deref(), Some("app"));
        assert_eq!(
            app.image.as_deref(),
            Some("111122223333.dkr.ecr.eu-west-1.amazonaws.com/orders-api:2026.08.1")
        );
        assert_eq!(
            app.image_digest(),
            Some("sha256:0b9e8d7c6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa9988776655")
        );
        assert_eq!(app.container_type.as_deref(), Some("NORMAL"));
        assert_eq!(
            app.started_at.map(|t| t.to_string()).as_deref(),
            Some("2026-08-20T09:14:27.990341776Z")
        );
        assert_eq!(
            app.labels
                .get("com.amazonaws.ecs.container-name")
                .map(String::as_str),
            Some("app")
        );
        let monitor = task.container(MONITOR_ID).expect("monitor is listed");
        assert_eq!(monitor.name.as_deref(), Some("runtime-monitor"));
        assert_eq!(monitor.limits.and_then(|l| l.cpu), Some(128.0));
        assert!(
            task.container("5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-1")
                .is_none()
        );
    }

    #[test]
    fn declared_ports_are_read_leniently_and_reach_the_container() {
        let task = TaskMetadata::from_json(TASK.as_bytes()).expect("valid");
        let mut container = Container {
            id: APP_ID.to_owned(),
            ..Container::default()
        };
        assert!(task.enrich(&mut container));
        assert_eq!(container.declares_port(8000, "tcp"), Some(true));
        assert_eq!(container.declares_port(8125, "udp"), Some(true));
        assert_eq!(container.declares_port(8125, "tcp"), Some(false));
        // The monitor's entry has no `Ports`: unknown, not "declares none".
        let mut monitor = Container {
            id: MONITOR_ID.to_owned(),
            ..Container::default()
        };
        assert!(task.enrich(&mut monitor));
        assert_eq!(monitor.declares_port(8000, "tcp"), None);

        // Entries the agent would never write are skipped, not fatal; a missing protocol is TCP.
        let doc = r#"{"DockerId":"abc","Ports":[
            {"ContainerPort":9000},
            {"ContainerPort":"9001","Protocol":"tcp"},
            {"ContainerPort":0,"Protocol":"tcp"},
            {"ContainerPort":70000,"Protocol":"tcp"},
            {"ContainerPort":9002,"Protocol":"sctp"},
            {"ContainerPort":9003,"Protocol":" UDP "},
            "9004/tcp"
        ]}"#;
        let parsed = ContainerMetadata::from_json(doc.as_bytes())
            .expect("valid")
            .expect("has a DockerId");
        let ports: Vec<(u16, &str)> = parsed
            .ports
            .as_ref()
            .expect("listed")
            .iter()
            .map(|p| (p.port, p.protocol.as_str()))
            .collect();
        assert_eq!(ports, vec![(9000, "tcp"), (9003, "udp")]);
        // `Ports` of the wrong type is treated as absent.
        let odd = ContainerMetadata::from_json(br#"{"DockerId":"abc","Ports":{"a":1}}"#)
            .expect("valid")
            .expect("has a DockerId");
        assert_eq!(odd.ports, None);
    }

    #[test]
    fn parses_the_container_document() {
        let container = ContainerMetadata::from_json(CONTAINER.as_bytes())
            .expect("valid")
            .expect("has a DockerId");
        assert_eq!(container.docker_id, MONITOR_ID);
        assert_eq!(container.name.as_deref(), Some("runtime-monitor"));
        assert_eq!(
            container.container_arn.as_deref(),
            Some(
                "arn:aws:ecs:eu-west-1:111122223333:container/6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
            )
        );
    }

    #[test]
    fn enrich_fills_the_container_and_its_ecs_context() {
        let task = TaskMetadata::from_json(TASK.as_bytes()).expect("valid");
        let mut container = Container {
            id: APP_ID.to_owned(),
            cgroup: Some(format!("/ecs/5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c/{APP_ID}")),
            ..Container::default()
        };
        assert!(task.enrich(&mut container));
        assert_eq!(container.name.as_deref(), Some("app"));
        assert!(
            container
                .image_digest
                .as_deref()
                .is_some_and(|d| d.starts_with("sha256:0b9e"))
        );
        let ecs = container.ecs.as_ref().expect("ecs context");
        assert_eq!(
            ecs.task_id.as_deref(),
            Some("5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c")
        );
        assert_eq!(ecs.revision.as_deref(), Some("7"));
        assert_eq!(
            ecs.container_arn.as_deref(),
            Some(
                "arn:aws:ecs:eu-west-1:111122223333:container/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
            )
        );
        assert_eq!(
            container.cgroup.as_deref().map(|c| c.starts_with("/ecs/")),
            Some(true)
        );

        let mut unknown = Container {
            id: "0123456789abcdef0123456789abcdef-42".to_owned(),
            name: Some("kept".to_owned()),
            ..Container::default()
        };
        assert!(!task.enrich(&mut unknown));
        assert_eq!(unknown.name.as_deref(), Some("kept"));
        let ecs = unknown
            .ecs
            .expect("task context even for an unknown container");
        assert_eq!(
            ecs.family.as_deref(),
            Some("orders-api-with-runtime-monitor")
        );
        assert_eq!(ecs.container_arn, None);
    }

    #[test]
    fn accepts_clock_drift_per_container_numeric_revision_and_fractional_cpu() {
        let body = br#"{
            "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "Family": "worker", "Revision": 12,
            "Limits": {"CPU": 0.25, "Memory": 512},
            "NewFieldFromTheFuture": {"nested": [1, 2, 3]},
            "Containers": [{
                "DockerId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9-987654321",
                "Name": "worker",
                "Image": "public.ecr.aws/docker/library/python@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "ImageID": "sha256:bbbb",
                "Limits": {"CPU": 10, "Memory": 128},
                "ClockDrift": {"ClockErrorBound": 0.54, "ReferenceTimestamp": "2021-09-07T16:57:44Z",
                               "ClockSynchronizationStatus": "SYNCHRONIZED"}
            }],
            "LaunchType": "FARGATE"
        }"#;
        let task = TaskMetadata::from_json(body).expect("valid");
        assert_eq!(task.revision.as_deref(), Some("12"));
        assert_eq!(task.limits.and_then(|l| l.cpu), Some(0.25));
        assert!(task.clock_drift.is_none());
        let worker = task
            .container("0A1B2C3D4E5F60718293A4B5C6D7E8F9-987654321")
            .expect("nine-digit suffix, upper-case lookup");
        assert_eq!(
            worker
                .clock_drift
                .as_ref()
                .and_then(|c| c.clock_error_bound),
            Some(0.54)
        );
        assert_eq!(
            worker.image_digest(),
            Some("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "a digest pinned in the image reference wins over ImageID"
        );
    }

    #[test]
    fn partial_and_mistyped_documents_keep_what_is_usable() {
        let body = br#"{
            "TaskARN": 42,
            "Family": ["not", "a", "string"],
            "Revision": null,
            "Limits": "lots",
            "Containers": [
                "not an object",
                {"Name": "no docker id"},
                {"DockerId": "", "Name": "empty docker id"},
                {"DockerId": "c0ffee00c0ffee00c0ffee00c0ffee00-1", "Name": 7, "CreatedAt": "yesterday",
                 "Labels": {"a": "b", "n": 1, "o": {}}}
            ]
        }"#;
        let task = TaskMetadata::from_json(body).expect("lenient");
        assert_eq!(
            (task.task_arn.as_deref(), task.task_id.as_deref()),
            (None, None)
        );
        assert_eq!(
            (task.family.as_deref(), task.revision.as_deref()),
            (None, None)
        );
        assert_eq!(task.limits, None);
        assert_eq!(task.container_count(), 1);
        let container = task
            .container("c0ffee00c0ffee00c0ffee00c0ffee00-1")
            .expect("the usable container");
        assert_eq!(
            (container.name.as_deref(), container.created_at),
            (None, None)
        );
        assert_eq!(container.labels.len(), 2);

        let empty = TaskMetadata::from_json(b"{}").expect("an empty object is a valid document");
        assert_eq!(empty.container_count(), 0);
        assert_eq!(
            ContainerMetadata::from_json(b"{\"Name\":\"x\"}").expect("valid"),
            None
        );
    }

    #[test]
    fn rejects_documents_that_are_not_json_objects() {
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"\"task\"",
            b"{\"Cluster\": ",
            b"<html>502</html>",
        ] {
            assert!(
                TaskMetadata::from_json(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert!(ContainerMetadata::from_json(body).is_err());
        }
    }

    #[test]
    fn the_vpc_resolvers_are_the_networks_dns_servers_else_the_subnet_base_plus_two() {
        let task =
            TaskMetadata::from_json(include_bytes!("testdata/task-fargate.json")).expect("valid");
        // The app container names its resolver, the sidecar only its subnet (10.20.3.0/24).
        assert_eq!(
            task.vpc_resolvers(),
            [
                "10.20.0.2".parse::<IpAddr>().expect("ip"),
                "10.20.3.2".parse().expect("ip")
            ]
        );
        let doc = |networks: &str| {
            TaskMetadata::from_json(
                format!(r#"{{"Containers": [{{"DockerId": "a", "Networks": {networks}}}]}}"#)
                    .as_bytes(),
            )
            .expect("valid")
            .vpc_resolvers()
        };
        assert_eq!(
            doc(r#"[{"IPv4SubnetCIDRBlock": "172.31.77.130/25"}]"#),
            ["172.31.77.130".parse::<IpAddr>().expect("ip")]
        );
        assert!(doc(r#"[{"IPv4SubnetCIDRBlock": "bogus"}]"#).is_empty());
        assert!(doc(r#"[{"IPv4SubnetCIDRBlock": "10.0.0.0/32"}]"#).is_empty());
        assert!(doc(r#""not a list""#).is_empty());
        assert!(doc("[]").is_empty());
    }

    #[test]
    fn task_ids_come_from_the_last_arn_segment() {
        assert_eq!(
            task_id_from_arn("arn:aws:ecs:eu-west-1:1:task/prod/abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            task_id_from_arn("arn:aws:ecs:eu-west-1:1:task/abc").as_deref(),
            Some("abc")
        );
        assert_eq!(task_id_from_arn("arn:aws:ecs:eu-west-1:1:task/"), None);
        assert_eq!(task_id_from_arn("no-slash"), None);
    }
}

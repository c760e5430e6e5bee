//! The monitor set up as a Fargate sidecar runs: shipping to CloudWatch Logs and reading its
//! task from the ECS task metadata endpoint, inside an [`EmulatedTask`].
//!
//! The monitor lives in the task's network namespace, where the host's loopback (and the moto
//! server on it) does not exist: [`TaskCloudWatch`] starts moto on the host and a relay
//! listening inside the namespace (which can also play outages), and builds the monitor's
//! command line aimed at it. [`EcsMetadata`] serves a task document in the same namespace, at
//! the URI the monitor reads from `ECS_CONTAINER_METADATA_URI_V4`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::cloudwatch::{Moto, REGION, StreamReader};
use crate::netns::{HttpServer, Relay, RelayMode};
use crate::{Container, EmulatedTask, MonitorSpec};

/// The task metadata document of a Fargate task (`GET ${ECS_CONTAINER_METADATA_URI_V4}/task`).
pub const TASK_DOC: &str = include_str!("../../../src/ecs/testdata/task-fargate.json");
/// The sidecar's own container document (`GET ${ECS_CONTAINER_METADATA_URI_V4}`).
pub const CONTAINER_DOC: &str = include_str!("../../../src/ecs/testdata/container-fargate.json");
/// The task id in [`TASK_DOC`]'s TaskARN: the default stream name.
pub const TASK_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c";

/// [`TASK_DOC`] whose container named `app` is the emulated `app` (its `DockerId`), so that
/// the monitor enriches that container's alerts from it.
pub fn task_document(app: &Container) -> Value {
    let mut doc: Value = serde_json::from_str(TASK_DOC).unwrap();
    let containers = doc["Containers"].as_array_mut().unwrap();
    let entry = containers.iter_mut().find(|c| c["Name"] == "app").unwrap();
    entry["DockerId"] = json!(app.id());
    doc
}

/// An ECS task metadata endpoint (v4) on a free port of the task's 127.0.0.1, serving a task
/// document and [`CONTAINER_DOC`].
pub struct EcsMetadata {
    server: HttpServer,
}

impl EcsMetadata {
    /// Serves `task_doc` as the task document.
    pub fn start(task: &EmulatedTask, task_doc: &str) -> EcsMetadata {
        let server = HttpServer::with_documents(
            &task.ns_path("net"),
            HashMap::from([
                ("/v4/sidecar/task".to_owned(), task_doc.to_owned()),
                ("/v4/sidecar".to_owned(), CONTAINER_DOC.to_owned()),
            ]),
        )
        .expect("metadata endpoint");
        EcsMetadata { server }
    }

    /// The `ECS_CONTAINER_METADATA_URI_V4` of the sidecar.
    pub fn uri(&self) -> String {
        format!("{}/v4/sidecar", self.server.url())
    }

    /// The requests answered so far.
    pub fn requests(&self) -> u64 {
        self.server.requests()
    }
}

impl MonitorSpec {
    /// Points the monitor at `metadata` (`ECS_CONTAINER_METADATA_URI_V4`), as ECS does.
    pub fn with_ecs_metadata(self, metadata: &EcsMetadata) -> MonitorSpec {
        self.with_env("ECS_CONTAINER_METADATA_URI_V4", metadata.uri())
    }
}

/// CloudWatch Logs for a monitor inside an emulated task: moto on the host, a relay to it
/// inside the task's network namespace, and a reader of what arrived.
pub struct TaskCloudWatch {
    /// The moto server (dropping it stops it).
    pub moto: Moto,
    /// The relay the monitor connects to: set its mode to play outages.
    pub relay: Relay,
    /// Reads the streams back.
    pub reader: StreamReader,
}

impl TaskCloudWatch {
    /// Starts moto and a relay to it inside `task`, in `mode`.
    pub fn start(task: &EmulatedTask, mode: RelayMode) -> TaskCloudWatch {
        let moto = Moto::start();
        let relay = Relay::start(&task.ns_path("net"), moto.addr, mode).expect("relay");
        let reader = StreamReader::new(&moto);
        TaskCloudWatch {
            moto,
            relay,
            reader,
        }
    }

    /// `tasksentry run --outputs OUTPUTS` shipping to `group` through the relay (in the test
    /// region, with 200 ms batches), with static credentials in the environment (the SDK's
    /// default chain reads them first, as it reads the task role's in ECS). Add arguments with
    /// [`MonitorSpec::with_args`].
    pub fn monitor_spec(&self, outputs: &str, group: &str) -> MonitorSpec {
        TaskCloudWatch::monitor_spec_through(&self.relay, outputs, group)
    }

    /// [`TaskCloudWatch::monitor_spec`] through `relay`.
    pub fn monitor_spec_through(relay: &Relay, outputs: &str, group: &str) -> MonitorSpec {
        MonitorSpec::new(&[
            "run",
            "--outputs",
            outputs,
            "--log-group",
            group,
            "--cloudwatch-endpoint",
            &relay.url(),
            "--cloudwatch-region",
            REGION,
            "--batch-interval",
            "200ms",
        ])
        .with_env("AWS_ACCESS_KEY_ID", "testing")
        .with_env("AWS_SECRET_ACCESS_KEY", "testing")
    }
}

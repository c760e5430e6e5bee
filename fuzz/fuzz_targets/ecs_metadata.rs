//! Arbitrary bytes as the ECS task metadata endpoint's task and container documents, as a
//! task ARN, and as the settings file: parsing never panics, a rejected settings file says
//! why, and a task id taken from an ARN is its last path segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::config::{Config, FileConfig, Overrides};
use tasksentry::ecs::metadata::{ContainerMetadata, TaskMetadata, task_id_from_arn};
use tasksentry::procfs::ecs_container_id;

fuzz_target!(|data: &[u8]| {
    let _ = TaskMetadata::from_json(data);
    let _ = ContainerMetadata::from_json(data);
    let text = String::from_utf8_lossy(data);
    if let Some(id) = task_id_from_arn(&text) {
        assert!(!id.is_empty() && !id.contains('/'), "{id:?}");
    }
    let _ = ecs_container_id(&text);
    match FileConfig::parse(&text) {
        Ok(file) => {
            if let Err(error) = Config::layer(Overrides::default(), file) {
                assert!(!error.to_string().is_empty());
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});

//! ECS enrichment end to end: the real `tasksentry run` as the sidecar of an emulated task, with
//! a task metadata v4 endpoint served inside the task's network namespace on
//! `169.254.170.2:80`, as on Fargate.
//!
//! - Alerts for processes in each of two containers name that container (`container.name`,
//!   `container.image`, digest, ARN) and carry the task's `ecs.*` context, both in the alert's
//!   `ecs` object and to rules (a rule conditioned on `ecs.family` fires and prints every field).
//! - A container that starts after the monitor is enriched once the endpoint lists it (refresh
//!   on an unknown container id), and the endpoint is asked only a bounded number of times.
//! - With the endpoint down, the monitor starts, says once why ECS fields are missing, and
//!   alerts still flow, without ECS fields.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::netns::HttpServer;
use support::{Container, EmulatedTask, MonitorSpec};

const TIMEOUT: Duration = Duration::from_secs(20);
const ACCOUNT: &str = "111122223333";
const FAMILY: &str = "orders-api-with-runtime-monitor";
const WEB_IMAGE: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/orders-web:2026.08.1";
const WEB_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const WORKER_IMAGE: &str = "public.ecr.aws/docker/library/python@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const WORKER_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const LATE_IMAGE: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/orders-migrate:7";

/// One container entry of a Fargate task document (the shape of `src/ecs/testdata`).
fn container_doc(
    task_id: &str,
    docker_id: Option<&str>,
    name: &str,
    image: &str,
    image_id: &str,
) -> Value {
    let running = docker_id.is_some();
    let mut doc = json!({
        "Name": name,
        "DockerName": name,
        "Image": image,
        "ImageID": image_id,
        "Labels": {
            "com.amazonaws.ecs.cluster": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod"),
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-arn": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/{task_id}"),
            "com.amazonaws.ecs.task-definition-family": FAMILY,
            "com.amazonaws.ecs.task-definition-version": "7"
        },
        "DesiredStatus": "RUNNING",
        "KnownStatus": if running { "RUNNING" } else { "PENDING" },
        "Limits": { "CPU": 0, "Memory": 0 },
        "Type": "NORMAL",
        "Networks": [{
            "NetworkMode": "awsvpc", "IPv4Addresses": ["10.20.3.57"], "AttachmentIndex": 0,
            "MACAddress": "0a:3f:9c:21:5e:b7", "IPv4SubnetCIDRBlock": "10.20.3.0/24",
            "PrivateDNSName": "ip-10-20-3-57.eu-west-1.compute.internal",
            "SubnetGatewayIpv4Address": "10.20.3.1/24"
        }],
        "ContainerARN": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:container/{name}-0000-4000-8000-{task_id}"),
        "LogDriver": "awslogs",
        "LogOptions": { "awslogs-group": "/ecs/orders-api", "awslogs-region": "eu-west-1",
                        "awslogs-stream": format!("{name}/{name}/{task_id}") }
    });
    // Fargate lists a container that has not started yet without a DockerId.
    if let Some(id) = docker_id {
        doc["DockerId"] = id.into();
        doc["CreatedAt"] = "2026-08-20T09:14:27.402118832Z".into();
        doc["StartedAt"] = "2026-08-20T09:14:27.990341776Z".into();
    }
    doc
}

fn task_doc(task_id: &str, containers: Vec<Value>) -> Value {
    json!({
        "Cluster": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod"),
        "TaskARN": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/{task_id}"),
        "Family": FAMILY,
        "Revision": "7",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 1, "Memory": 2048 },
        "PullStartedAt": "2026-08-20T09:14:02.118337510Z",
        "PullStoppedAt": "2026-08-20T09:14:09.904215337Z",
        "AvailabilityZone": "eu-west-1b",
        "LaunchType": "FARGATE",
        "ClockDrift": { "ClockErrorBound": 0.412, "ReferenceTimestamp": "2026-08-20T09:20:00Z",
                        "ClockSynchronizationStatus": "SYNCHRONIZED" },
        "EphemeralStorageMetrics": { "Utilized": 612, "Reserved": 30736 },
        "Containers": containers
    })
}

/// The metadata endpoint, listening on 169.254.170.2:80 inside the task's network namespace:
/// `/v4/<id>/task` is the task document, `/v4/<DockerId>` the entry of that container.
struct MetadataServer {
    task_doc: Arc<Mutex<Value>>,
    /// For every `/task` request served: the DockerIds the document listed.
    served: Arc<Mutex<Vec<Vec<String>>>>,
    _server: HttpServer,
}

impl MetadataServer {
    fn start(task: &EmulatedTask, doc: Value) -> MetadataServer {
        let task_doc = Arc::new(Mutex::new(doc));
        let served = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let task_doc = task_doc.clone();
            let served = served.clone();
            HttpServer::start(
                &task.ns_path("net"),
                "169.254.170.2:80".parse().unwrap(),
                move |path| respond(path, &task_doc, &served),
            )
            .expect("bind 169.254.170.2:80 in the task")
        };
        MetadataServer {
            task_doc,
            served,
            _server: server,
        }
    }

    fn update(&self, change: impl FnOnce(&mut Value)) {
        change(&mut self.task_doc.lock().unwrap());
    }

    fn task_requests(&self) -> usize {
        self.served.lock().unwrap().len()
    }

    fn served_listing(&self, docker_id: &str) -> bool {
        self.served
            .lock()
            .unwrap()
            .iter()
            .any(|ids| ids.iter().any(|id| id == docker_id))
    }
}

fn respond(
    path: &str,
    task_doc: &Mutex<Value>,
    served: &Mutex<Vec<Vec<String>>>,
) -> Option<String> {
    let doc = task_doc.lock().unwrap().clone();
    if path.starts_with("/v4/") && path.ends_with("/task") {
        let ids = doc["Containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["DockerId"].as_str().map(str::to_owned))
            .collect();
        served.lock().unwrap().push(ids);
        Some(doc.to_string())
    } else if let Some(id) = path.strip_prefix("/v4/") {
        // The container document of the caller: the monitor's entry.
        doc["Containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["DockerId"].as_str() == Some(id))
            .map(Value::to_string)
    } else {
        None
    }
}

/// The body of the scripts the tests run: long enough for a poll to read the process whole.
const SCRIPT: &str = "sleep 1";

/// A rule that sees the ECS fields: it fires only when `ecs.family` is the task's, and prints
/// every enrichment field.
const PROBE_RULE: &str = r#"
- rule: ECS probe
  desc: test rule that prints every ECS enrichment field
  condition: >
    evt.type = execve and proc.name = ecs-probe
    and ecs.family = "orders-api-with-runtime-monitor" and ecs.launch_type = FARGATE
  output: >
    probe cluster=%ecs.cluster task_arn=%ecs.task_arn task_id=%ecs.task_id
    family=%ecs.family revision=%ecs.revision az=%ecs.availability_zone
    launch_type=%ecs.launch_type container_arn=%ecs.container_arn id=%container.id
    name=%container.name image=%container.image digest=%container.image.digest
  priority: WARNING
  tags: [test]
"#;

fn monitor_spec(task: &EmulatedTask, uri: &str) -> (MonitorSpec, std::path::PathBuf) {
    let rules = task.dir().join("probe.yaml");
    std::fs::write(&rules, PROBE_RULE).expect("write the probe rule");
    let spec = MonitorSpec::new(&["run", "--rules", rules.to_str().expect("utf-8")])
        .with_env("ECS_CONTAINER_METADATA_URI_V4", uri);
    (spec, rules)
}

/// Runs `program` in `container` every 300 ms until an alert satisfies `wanted`.
fn trigger_until(
    mon: &support::Monitor,
    container: &Container,
    program: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        container.run_ok(&[program]).expect("the program runs");
        if let Some(alert) = mon.events().into_iter().find(|a| wanted(a)) {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "no matching alert; stdout:\n{}\nstderr: {}",
            mon.lines_so_far().join("\n"),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn alert_for<'a>(alerts: &'a [Value], rule: &str, container: &Container) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["rule"] == rule && a["output_fields"]["container.id"] == container.id())
}

fn assert_task_context(alert: &Value, task: &EmulatedTask) {
    let ecs = &alert["ecs"];
    let task_arn = format!(
        "arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/{}",
        task.task_id()
    );
    assert_eq!(
        ecs["cluster"],
        format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod"),
        "{alert}"
    );
    assert_eq!(ecs["task_arn"], task_arn, "{alert}");
    assert_eq!(ecs["task_id"], task.task_id(), "{alert}");
    assert_eq!(ecs["family"], FAMILY, "{alert}");
    assert_eq!(ecs["revision"], "7", "{alert}");
    assert_eq!(ecs["availability_zone"], "eu-west-1b", "{alert}");
    assert_eq!(ecs["launch_type"], "FARGATE", "{alert}");
}

#[test]
fn alerts_name_the_container_and_task_they_come_from() {
    let task = EmulatedTask::new().expect("task");
    let web = task.add_container("web").expect("web");
    let worker = task.add_container("worker").expect("worker");
    let tid = task.task_id().to_owned();
    let server = MetadataServer::start(
        &task,
        task_doc(
            &tid,
            vec![
                container_doc(&tid, Some(web.id()), "web", WEB_IMAGE, WEB_DIGEST),
                container_doc(
                    &tid,
                    Some(worker.id()),
                    "worker",
                    WORKER_IMAGE,
                    "sha256:ffff",
                ),
            ],
        ),
    );
    let (spec, _rules) = monitor_spec(&task, &format!("http://169.254.170.2/v4/{tid}-monitor"));
    let mon = task
        .start_monitor_with(spec)
        .expect("starting tasksentry run");
    // The monitor's own entry, as ECS lists it (its id is known only now).
    let monitor_id = mon.container_id().to_owned();
    server.update(|doc| {
        doc["Containers"]
            .as_array_mut()
            .expect("containers")
            .push(container_doc(
                &tid,
                Some(&monitor_id),
                "runtime-monitor",
                LATE_IMAGE,
                "sha256:aaaa",
            ))
    });

    for container in [&web, &worker] {
        container
            .install_script("xmrig", SCRIPT)
            .expect("the script");
        container
            .install_script("ecs-probe", SCRIPT)
            .expect("the script");
    }
    // Both behaviours, until each container's alerts are in (the first scan may still run).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        for container in [&web, &worker] {
            container.run_ok(&["xmrig"]).expect("xmrig runs");
            container.run_ok(&["ecs-probe"]).expect("ecs-probe runs");
        }
        let alerts = mon.events();
        let done = [&web, &worker].iter().all(|c| {
            alert_for(&alerts, "Crypto miner launched", c).is_some()
                && alert_for(&alerts, "ECS probe", c).is_some()
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts missing; stdout:\n{}\nstderr: {}",
            mon.lines_so_far().join("\n"),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let alerts = mon.events();
    for (container, name, image, digest) in [
        (&web, "web", WEB_IMAGE, WEB_DIGEST),
        (&worker, "worker", WORKER_IMAGE, WORKER_DIGEST),
    ] {
        let miner = alert_for(&alerts, "Crypto miner launched", container).expect("miner alert");
        assert_eq!(miner["output_fields"]["container.name"], name, "{miner}");
        assert_eq!(miner["output_fields"]["container.image"], image, "{miner}");
        assert!(
            miner["output"]
                .as_str()
                .expect("output")
                .contains(&format!("container_name={name} image={image}")),
            "{miner}"
        );
        assert_eq!(miner["ecs"]["container_name"], name, "{miner}");
        assert_eq!(miner["ecs"]["image"], image, "{miner}");
        assert_eq!(miner["ecs"]["image_digest"], digest, "{miner}");
        assert_eq!(
            miner["ecs"]["container_arn"],
            format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:container/{name}-0000-4000-8000-{tid}"),
            "{miner}"
        );
        assert_task_context(miner, &task);

        // Rules see the fields: the probe's condition needs ecs.family and ecs.launch_type.
        let probe = alert_for(&alerts, "ECS probe", container).expect("probe alert");
        let fields = &probe["output_fields"];
        assert_eq!(
            fields["ecs.cluster"],
            format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod")
        );
        assert_eq!(
            fields["ecs.task_arn"],
            format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/{tid}")
        );
        assert_eq!(fields["ecs.task_id"], tid.as_str());
        assert_eq!(fields["ecs.family"], FAMILY);
        assert_eq!(fields["ecs.revision"], "7");
        assert_eq!(fields["ecs.availability_zone"], "eu-west-1b");
        assert_eq!(fields["ecs.launch_type"], "FARGATE");
        assert_eq!(fields["container.id"], container.id());
        assert_eq!(fields["container.name"], name);
        assert_eq!(fields["container.image"], image);
        assert_eq!(fields["container.image.digest"], digest, "{probe}");
        assert_task_context(probe, &task);
    }
    // Both containers were known from the start: the document was fetched once.
    assert_eq!(server.task_requests(), 1, "{}", mon.stderr_so_far());
    // The monitor's own requests to 169.254.170.2 are not reported as someone else's.
    assert!(
        !alerts
            .iter()
            .any(|a| a["rule"] == "Unattributed connection to the ECS credentials endpoint"),
        "{}",
        mon.lines_so_far().join("\n")
    );
}

#[test]
fn a_container_that_starts_later_is_enriched_once_the_endpoint_lists_it() {
    let task = EmulatedTask::new().expect("task");
    let web = task.add_container("web").expect("web");
    let tid = task.task_id().to_owned();
    // As on Fargate, the task document lists the later container from the start, without a
    // DockerId until it runs.
    let server = MetadataServer::start(
        &task,
        task_doc(
            &tid,
            vec![
                container_doc(&tid, Some(web.id()), "web", WEB_IMAGE, WEB_DIGEST),
                container_doc(&tid, None, "migrate", LATE_IMAGE, "sha256:3333"),
            ],
        ),
    );
    let (spec, _rules) = monitor_spec(&task, &format!("http://169.254.170.2/v4/{tid}-monitor"));
    let mon = task
        .start_monitor_with(spec)
        .expect("starting tasksentry run");
    let deadline = Instant::now() + TIMEOUT;
    while server.task_requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the monitor never asked for the task"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let late = task.add_container("migrate").expect("late container");
    let late_id = late.id().to_owned();
    server.update(|doc| {
        let entry = doc["Containers"]
            .as_array_mut()
            .expect("containers")
            .iter_mut()
            .find(|c| c["Name"] == "migrate")
            .expect("the migrate entry");
        *entry = container_doc(&tid, Some(&late_id), "migrate", LATE_IMAGE, "sha256:3333");
    });
    // The monitor sees the new container's processes, finds their id unknown and asks again
    // (at once, or on its retry if it asked before the document changed).
    while !server.served_listing(&late_id) {
        assert!(
            Instant::now() < deadline,
            "the monitor never refreshed the task document for the new container ({} requests); stderr:\n{}",
            server.task_requests(),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    late.install_script("xmrig", SCRIPT).expect("the script");
    let alert = trigger_until(&mon, &late, "xmrig", |a| {
        a["rule"] == "Crypto miner launched"
            && a["output_fields"]["container.id"] == late_id.as_str()
    });
    assert_eq!(
        alert["output_fields"]["container.name"], "migrate",
        "{alert}"
    );
    assert_eq!(
        alert["output_fields"]["container.image"], LATE_IMAGE,
        "{alert}"
    );
    assert_eq!(alert["ecs"]["container_name"], "migrate", "{alert}");
    assert_task_context(&alert, &task);
    // Start-up, then one refresh for the new id (plus at most its retries): rate-limited, not
    // one request per event.
    let requests = server.task_requests();
    assert!((2..=5).contains(&requests), "{requests} task requests");
}

#[test]
fn with_the_endpoint_down_the_monitor_runs_and_alerts_still_flow() {
    let task = EmulatedTask::new().expect("task");
    let app = task.add_container("app").expect("app");
    app.install_script("xmrig", SCRIPT).expect("the script");
    // Nothing listens on 169.254.170.2:80 in this task: connections are refused.
    let (spec, _rules) = monitor_spec(
        &task,
        &format!("http://169.254.170.2/v4/{}-monitor", task.task_id()),
    );
    let mon = task
        .start_monitor_with(spec)
        .expect("starting tasksentry run");
    let alert = trigger_until(&mon, &app, "xmrig", |a| {
        a["rule"] == "Crypto miner launched" && a["output_fields"]["container.id"] == app.id()
    });
    // The fields are unavailable: null in output_fields, <NA> in the text, absent in `ecs`.
    assert_eq!(
        alert["output_fields"]["container.name"],
        Value::Null,
        "{alert}"
    );
    assert!(
        alert["output"]
            .as_str()
            .expect("output")
            .contains("container_name=<NA>"),
        "{alert}"
    );
    assert_eq!(alert["ecs"], json!({}), "{alert}");
    let stderr = mon.stderr_so_far();
    assert_eq!(
        stderr.matches("ECS task metadata unavailable").count(),
        1,
        "said once, with the reason:\n{stderr}"
    );
    assert!(stderr.contains("169.254.170.2"), "{stderr}");
}

/// A rule that prints the declared ports of a listener's container.
const PORTS_PROBE_RULE: &str = r#"
- rule: Ports probe
  desc: test rule that prints container.port_mappings and fd.sport_declared
  condition: evt.type = listen and fd.sport = 9443
  output: >
    listener port=%fd.sport declared=%container.port_mappings sport_declared=%fd.sport_declared
  priority: WARNING
  tags: [test]
"#;

/// "Unexpected listening port" alerts for `container` on server port `port`.
fn listener_alerts<'a>(
    alerts: &'a [Value],
    container: &Container,
    port: u16,
) -> impl Iterator<Item = &'a Value> {
    alerts.iter().filter(move |a| {
        a["rule"] == "Unexpected listening port"
            && a["output_fields"]["container.id"] == container.id()
            && a["output_fields"]["fd.sport"] == port
    })
}

#[test]
fn a_listener_on_a_port_the_task_definition_declares_is_the_services_own() {
    let task = EmulatedTask::new().expect("task");
    let web = task.add_container("web").expect("web");
    let tid = task.task_id().to_owned();
    let mut web_doc = container_doc(&tid, Some(web.id()), "web", WEB_IMAGE, WEB_DIGEST);
    // What the endpoint lists for `portMappings` (the agent's `Ports`; `HostPort` equals the
    // container port in awsvpc mode).
    web_doc["Ports"] = json!([
        { "ContainerPort": 9443, "Protocol": "tcp", "HostPort": 9443 },
        { "ContainerPort": 9445, "Protocol": "tcp", "HostPort": 9445 },
        { "ContainerPort": 9444, "Protocol": "udp", "HostPort": 9444 }
    ]);
    let server = MetadataServer::start(&task, task_doc(&tid, vec![web_doc]));
    let rules = task.dir().join("ports.yaml");
    std::fs::write(&rules, PORTS_PROBE_RULE).expect("write the probe rule");
    let spec = MonitorSpec::new(&["run", "--rules", rules.to_str().expect("utf-8")]).with_env(
        "ECS_CONTAINER_METADATA_URI_V4",
        format!("http://169.254.170.2/v4/{tid}-monitor"),
    );
    let mon = task
        .start_monitor_with(spec)
        .expect("starting tasksentry run");
    let deadline = Instant::now() + TIMEOUT;
    while server.task_requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the monitor never asked for the task"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not started by the container's entrypoint, so the start-up exemption does not apply to
    // any of them: only the declaration decides.
    // - the service's own port, declared: not news;
    let _declared = web
        .spawn(&["/bin/nc", "-l", "-p", "9443"])
        .expect("nc 9443");
    // - a TCP port the task definition declares only for UDP: news;
    let _undeclared = web
        .spawn(&["/bin/nc", "-l", "-p", "9444"])
        .expect("nc 9444");
    // - a declared port bound by a program a shell started (a bind shell on the app's port):
    //   news. The `; :` keeps the shell from exec'ing nc in its own place.
    let _shell = web
        .spawn(&["/bin/sh", "-c", "/bin/nc -l -p 9445; :"])
        .expect("sh -c nc 9445");
    loop {
        let alerts = mon.events();
        if listener_alerts(&alerts, &web, 9444).next().is_some()
            && listener_alerts(&alerts, &web, 9445).next().is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "listener alerts missing; stdout:\n{}\nstderr: {}",
            mon.lines_so_far().join("\n"),
            mon.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The three listeners were up together, so the polls that reported 9444 and 9445 saw 9443.
    std::thread::sleep(Duration::from_millis(500));
    let alerts = mon.events();
    assert_eq!(
        listener_alerts(&alerts, &web, 9443).count(),
        0,
        "the declared port alerted:\n{}",
        mon.lines_so_far().join("\n")
    );
    let shell = listener_alerts(&alerts, &web, 9445).next().expect("9445");
    assert_eq!(shell["output_fields"]["proc.pname"], "sh", "{shell}");
    // Rules see what the container declares, and whether a listener's port is among it (the
    // probe comes after the default rules, and only the first rule an event matches fires).
    let probe = alerts
        .iter()
        .find(|a| a["rule"] == "Ports probe" && a["output_fields"]["fd.sport"] == 9443)
        .unwrap_or_else(|| panic!("no probe for 9443:\n{}", mon.lines_so_far().join("\n")));
    assert!(
        probe["output"]
            .as_str()
            .expect("output")
            .contains("declared=9443/tcp,9445/tcp,9444/udp sport_declared=true"),
        "{probe}"
    );
}

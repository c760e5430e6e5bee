//! The image collector of `tasksentry run` (issue 19) in an emulated task: the real binary, its
//! default rules, the OSV fixture records of `tests/data/osv/`, and app containers whose roots
//! hold a vulnerable dpkg package (libssl3 `3.0.11-1~deb12u2`, DSA-5764-1) whose library a
//! process of the app maps (`tests/programs/mapper.c`), a vulnerable Python distribution nothing
//! maps (requests `2.31.0`, GHSA-9wx4-h78v-vm56), credentials planted in files, and a credential
//! in the app's environment.
//!
//! - Under the shipped sidecar capability set, with the app as uid 1000: the mapped package is
//!   `in use: yes` with the mapping process as evidence, the unmapped one `no`; the file and
//!   environment credentials raise `image_secret` and `env_secret` alerts; no output line (nor
//!   stderr) holds 8 consecutive bytes of any planted value; two containers of the same image
//!   are read once (one `image_inventory` record naming both); the pass stays within its byte
//!   budget and its rate (its duration is at least its bytes over the rate).
//! - Under Docker's default set (no `SYS_PTRACE`), a mapping process that is not dumpable cannot
//!   have its maps read: the package it maps is `unknown`, never `no`, with the reason.
//! - A pass whose byte budget is smaller than the image says it is incomplete and reads no
//!   more than its budget.
//! - With the ECS task metadata endpoint, the digest is ECS's (`ImageID`), and the alerts carry
//!   the container's ECS name.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::caps::shipped_sidecar_sets;
use support::{CapSet, Container, ContainerSpec, EmulatedTask, Monitor, MonitorSpec, User};

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

fn write(app: &Container, path: &str, content: impl AsRef<[u8]>) {
    let host = app.host_path(path);
    std::fs::create_dir_all(host.parent().expect("a parent")).expect("mkdir");
    std::fs::write(&host, content).expect("write");
}

/// Credentials planted in the image's files, generated as real ones are (random).
struct Planted {
    github_in_file: String,
    env_file_password: String,
}

/// Writes the image content of the fixture into a container's root.
fn image_content(app: &Container, planted: &Planted) {
    write(
        app,
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    write(
        app,
        "/var/lib/dpkg/status",
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\n\
Version: 3.0.11-1~deb12u2\nDescription: Secure Sockets Layer toolkit\n\n",
    );
    write(
        app,
        "/var/lib/dpkg/info/libssl3:amd64.list",
        format!("/.\n/usr\n{LIBSSL}\n/usr/lib/x86_64-linux-gnu/libcrypto.so.3\n"),
    );
    // Library stand-ins: content to map (the mapper maps, it does not link).
    write(app, LIBSSL, vec![0x7fu8; 64 * 1024]);
    write(
        app,
        "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
        vec![0x7fu8; 64 * 1024],
    );
    let site = "/usr/local/lib/python3.11/site-packages";
    write(
        app,
        &format!("{site}/requests-2.31.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n",
    );
    write(
        app,
        &format!("{site}/requests-2.31.0.dist-info/RECORD"),
        "requests/__init__.py,sha256=abc,10\nrequests-2.31.0.dist-info/RECORD,,\n",
    );
    write(app, &format!("{site}/requests/__init__.py"), "# requests\n");
    write(
        app,
        "/app/settings.py",
        format!(
            "DEBUG = False\nGITHUB_TOKEN = \"{}\"\n",
            planted.github_in_file
        ),
    );
    write(
        app,
        "/app/.env",
        format!("DB_HOST=db\nDB_PASSWORD={}\n", planted.env_file_password),
    );
}

fn app_user() -> User {
    User::new("app", 1000)
}

/// A container of the fixture image running as uid 1000 with `env_token` in its environment.
fn app_container(task: &EmulatedTask, name: &str, env_token: &str, planted: &Planted) -> Container {
    let mut spec = ContainerSpec::with_users(vec![app_user()]).with_user(app_user());
    spec.env
        .push(("GITHUB_TOKEN".to_owned(), env_token.to_owned()));
    spec.env.push(("LOG_LEVEL".to_owned(), "info".to_owned()));
    let app = task
        .add_container_with(name, spec)
        .expect("the app container");
    image_content(&app, planted);
    app
}

fn osv_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/osv").to_owned()
}

fn start_monitor(task: &EmulatedTask, caps: Option<CapSet>, extra: &[&str]) -> Monitor {
    let osv = osv_dir();
    let mut args = vec![
        "run",
        "--image-scan-delay",
        "1s",
        "--vulndb",
        osv.as_str(),
        "--image-scan-rate",
        "1048576",
    ];
    args.extend_from_slice(extra);
    let mut spec = MonitorSpec::new(&args);
    spec.capabilities = caps;
    task.start_monitor_with(spec).expect("starting the monitor")
}

fn arg<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    support::evt_arg(event, name)
}

/// The `image_inventory` record of the pass, waiting for it.
fn wait_inventory(mon: &Monitor) -> Value {
    mon.wait_for(
        |e| e["internal"]["kind"] == "image_inventory",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|error| panic!("no image_inventory record: {error}"))
}

/// The alert of `rule` whose output field `field` is `value`.
fn alert<'a>(events: &'a [Value], field: &str, value: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["rule"].is_string() && e["output_fields"][field] == value)
        .collect()
}

fn assert_never_printed(mon: &Monitor, values: &[&str]) {
    let mut outputs: Vec<String> = mon.lines_so_far();
    outputs.push(mon.stderr_so_far());
    for value in values {
        for window in value.as_bytes().windows(8) {
            let window = String::from_utf8_lossy(window);
            for (index, line) in outputs.iter().enumerate() {
                assert!(
                    !line.contains(window.as_ref()),
                    "output {index} holds 8 bytes of a planted secret ({window}): {line}"
                );
            }
        }
    }
}

#[test]
fn vulnerable_packages_in_use_and_credentials_are_alerts_and_secrets_never_leave() {
    let (caps, files) = shipped_sidecar_sets()
        .expect("the shipped sidecar sets")
        .into_iter()
        .next()
        .expect("one set at least");
    eprintln!("the sidecar set of {}: {caps}", files.join(", "));
    let task = EmulatedTask::new().expect("task");
    let planted = Planted {
        github_in_file: format!("ghp_{}", support::random_hex(18)),
        env_file_password: support::random_hex(12),
    };
    let env_token = format!("ghp_{}", support::random_hex(18));
    let app = app_container(&task, "app", &env_token, &planted);
    // A second replica of the same image: read once with the first.
    let replica = app_container(&task, "replica", &env_token, &planted);
    let mapper = app.install_program("mapper").expect("the mapper");
    // The replica's root gets the same binary (same image).
    replica.install_program("mapper").expect("the mapper");
    let _mapping = app
        .spawn_as(app_user().uid, &[mapper.as_str(), LIBSSL])
        .expect("the mapping process");
    let mon = start_monitor(&task, Some(caps), &[]);
    let inventory = wait_inventory(&mon);
    // Let every finding of the pass arrive (they precede the summary) and the aggregator's
    // first alerts go out.
    std::thread::sleep(Duration::from_secs(2));
    let events = mon.events();
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-scan-e2e.ndjson");
    let _ = std::fs::write(keep, mon.lines_so_far().join("\n"));

    // Once per digest: one pass for the two containers, naming both.
    let inventories: Vec<&Value> = events
        .iter()
        .filter(|e| e["internal"]["kind"] == "image_inventory")
        .collect();
    assert_eq!(inventories.len(), 1, "{inventories:#?}");
    let containers = arg(&inventory, "containers").expect("containers");
    assert!(
        containers.contains(app.id()) && containers.contains(replica.id()),
        "{containers}"
    );
    assert_eq!(arg(&inventory, "image.digest_source"), Some("content"));
    let digest = arg(&inventory, "image.digest").expect("a digest");
    assert!(digest.starts_with("content:sha256:"), "{digest}");

    // The budget: within the pass's bytes, and held to the rate.
    let bytes: u64 = arg(&inventory, "bytes_read")
        .and_then(|b| b.parse().ok())
        .expect("bytes_read");
    let duration: u64 = arg(&inventory, "duration_ms")
        .and_then(|b| b.parse().ok())
        .expect("duration_ms");
    assert!(bytes > 0 && bytes <= 512 << 20, "{bytes}");
    assert!(
        duration + 50 >= bytes * 1000 / 1_048_576,
        "{bytes} bytes in {duration} ms at 1 MiB/s"
    );
    assert_eq!(arg(&inventory, "truncated"), Some(""));
    eprintln!(
        "image_inventory: {}",
        inventory["internal"]["message"].as_str().unwrap_or("")
    );

    // DSA-5764-1: libssl3's library is mapped by the mapper: in use, with it as evidence.
    let dsa = alert(&events, "vuln.id", "DSA-5764-1");
    assert_eq!(
        dsa.len(),
        1,
        "one alert per image and vulnerability: {dsa:#?}"
    );
    let fields = &dsa[0]["output_fields"];
    assert_eq!(fields["vuln.in_use"], "yes", "{fields:#}");
    assert!(
        fields["vuln.in_use_reason"]
            .as_str()
            .is_some_and(|r| r.contains(LIBSSL)),
        "{fields:#}"
    );
    assert_eq!(fields["vuln.fixed_version"], "3.0.14-1~deb12u2");
    assert_eq!(fields["vuln.package"], "libssl3");
    assert_eq!(dsa[0]["rule"], "Vulnerability in a package in use");
    // requests: nothing maps it, and every process was read: present, not in use.
    let requests = alert(&events, "vuln.id", "GHSA-9wx4-h78v-vm56");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["output_fields"]["vuln.in_use"], "no");
    assert_eq!(requests[0]["output_fields"]["vuln.fixed_version"], "2.32.0");
    assert_eq!(requests[0]["rule"], "Vulnerability in a package not in use");

    // Credentials in files: the GitHub token and the .env password, by path and kind.
    let secrets: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["rule"] == "Credential baked into a running image")
        .map(|e| {
            (
                e["output_fields"]["secret.path"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["output_fields"]["secret.kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        secrets.contains(&("/app/settings.py".into(), "github_token".into())),
        "{secrets:?}"
    );
    assert!(
        secrets.contains(&("/app/.env".into(), "env_file_secret".into())),
        "{secrets:?}"
    );
    // The environment credential: one per container (each has its own environment).
    let env: Vec<&Value> = events
        .iter()
        .filter(|e| e["rule"] == "Credential in a container's environment")
        .collect();
    let env_containers: Vec<&str> = env
        .iter()
        .filter(|e| e["output_fields"]["secret.variable"] == "GITHUB_TOKEN")
        .filter_map(|e| e["output_fields"]["container.id"].as_str())
        .collect();
    assert!(
        env_containers.contains(&app.id()) && env_containers.contains(&replica.id()),
        "{env:#?}"
    );
    assert!(
        !env.iter()
            .any(|e| e["output_fields"]["secret.variable"] == "LOG_LEVEL"),
        "{env:#?}"
    );

    // The SBOM records: every part is a CycloneDX document; together they list libssl3.
    let parts: Vec<Value> = events
        .iter()
        .filter(|e| e["internal"]["kind"] == "image_sbom")
        .filter_map(|e| arg(e, "sbom").and_then(|s| serde_json::from_str(s).ok()))
        .collect();
    assert!(!parts.is_empty());
    assert!(parts.iter().any(|doc| {
        doc["components"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "libssl3"))
    }));

    assert_never_printed(
        &mon,
        &[
            &planted.github_in_file[4..],
            &planted.env_file_password,
            &env_token[4..],
        ],
    );
}

#[test]
fn without_sys_ptrace_a_process_whose_maps_cannot_be_read_makes_use_unknown_not_no() {
    let task = EmulatedTask::new().expect("task");
    let planted = Planted {
        github_in_file: format!("ghp_{}", support::random_hex(18)),
        env_file_password: support::random_hex(12),
    };
    let app = app_container(&task, "app", "plain", &planted);
    let mapper = app.install_program("mapper").expect("the mapper");
    let _mapping = app
        .spawn_as(app_user().uid, &[mapper.as_str(), "--undumpable", LIBSSL])
        .expect("the mapping process");
    let mon = start_monitor(&task, Some(CapSet::fargate_default()), &[]);
    wait_inventory(&mon);
    std::thread::sleep(Duration::from_secs(2));
    let events = mon.events();
    let dsa = alert(&events, "vuln.id", "DSA-5764-1");
    assert_eq!(dsa.len(), 1, "{dsa:#?}");
    let fields = &dsa[0]["output_fields"];
    assert_eq!(fields["vuln.in_use"], "unknown", "{fields:#}");
    assert!(
        fields["vuln.in_use_reason"]
            .as_str()
            .is_some_and(|r| r.contains("SYS_PTRACE")),
        "{fields:#}"
    );
    // Same for the package nothing maps: one process could not be read, so not "no".
    let requests = alert(&events, "vuln.id", "GHSA-9wx4-h78v-vm56");
    assert_eq!(requests[0]["output_fields"]["vuln.in_use"], "unknown");
}

#[test]
fn a_pass_stops_at_its_byte_budget_and_says_it_is_incomplete() {
    let task = EmulatedTask::new().expect("task");
    let planted = Planted {
        github_in_file: format!("ghp_{}", support::random_hex(18)),
        env_file_password: support::random_hex(12),
    };
    let _app = app_container(&task, "app", "plain", &planted);
    let mon = start_monitor(&task, None, &["--image-scan-max-bytes", "4096"]);
    let inventory = wait_inventory(&mon);
    let bytes: u64 = arg(&inventory, "bytes_read")
        .and_then(|b| b.parse().ok())
        .expect("bytes_read");
    assert!(bytes <= 4096, "{bytes}");
    assert_eq!(arg(&inventory, "truncated"), Some("bytes"));
    assert!(Path::new(&osv_dir()).is_dir());
}

#[test]
fn with_ecs_metadata_the_digest_is_the_image_id_and_alerts_name_the_container() {
    use support::sidecar::{EcsMetadata, task_document};
    let task = EmulatedTask::new().expect("task");
    let planted = Planted {
        github_in_file: format!("ghp_{}", support::random_hex(18)),
        env_file_password: support::random_hex(12),
    };
    let app = app_container(&task, "app", "plain", &planted);
    let document = task_document(&app);
    let image_id = document["Containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["Name"] == "app"))
        .and_then(|c| c["ImageID"].as_str())
        .expect("the app's ImageID")
        .to_owned();
    let metadata = EcsMetadata::start(&task, &document.to_string());
    let osv = osv_dir();
    let spec = MonitorSpec::new(&["run", "--image-scan-delay", "1s", "--vulndb", osv.as_str()])
        .with_ecs_metadata(&metadata);
    let mon = task.start_monitor_with(spec).expect("starting the monitor");
    let inventory = wait_inventory(&mon);
    assert_eq!(arg(&inventory, "image.digest_source"), Some("ecs"));
    assert_eq!(arg(&inventory, "image.digest"), Some(image_id.as_str()));
    let secret = mon
        .wait_for(
            |e| e["rule"] == "Credential baked into a running image",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|error| panic!("no image_secret alert: {error}"));
    assert_eq!(secret["output_fields"]["image.digest"], image_id.as_str());
    assert_eq!(secret["output_fields"]["container.name"], "app");
}

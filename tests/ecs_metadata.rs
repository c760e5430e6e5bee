//! End-to-end tests of the ECS task metadata v4 client against a real HTTP server on loopback,
//! serving realistic Fargate `/task` and container documents for a two-container task: task
//! fetch, container lookup and enrichment, refresh when a container appears later (and its rate
//! limit), a server that is down, a server that stalls or trickles, and an oversized answer.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tasksentry::ecs::{EcsClient, EcsError, EcsMetadata, HttpLimits};
use tasksentry::event::Container;
use tasksentry::procfs::ecs_container_id;

const TASK_DOC: &str = include_str!("../src/ecs/testdata/task-fargate.json");
const CONTAINER_DOC: &str = include_str!("../src/ecs/testdata/container-fargate.json");
const TASK_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c";
const MONITOR_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-1203914765";
const APP_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-3551829907";
const LATE_ID: &str = "5f0e6b8f0c7e4a1d9b7c2a3e4f5a6b7c-424242424";

/// How the fake endpoint answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Content-Length` framing.
    Length,
    /// Chunked transfer coding, in small chunks.
    Chunked,
    /// Accept, read the request, then say nothing until released.
    Stall,
    /// Send the head, then one body byte every 100 ms.
    Trickle,
}

struct Server {
    uri: String,
    task_doc: Arc<Mutex<String>>,
    task_requests: Arc<AtomicUsize>,
    container_requests: Arc<AtomicUsize>,
    release: Mutex<Option<mpsc::Sender<()>>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let task_doc = Arc::new(Mutex::new(TASK_DOC.to_owned()));
        let task_requests = Arc::new(AtomicUsize::new(0));
        let container_requests = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        {
            let task_doc = task_doc.clone();
            let task_requests = task_requests.clone();
            let container_requests = container_requests.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let task_doc = task_doc.clone();
                    let task_requests = task_requests.clone();
                    let container_requests = container_requests.clone();
                    let release_rx = release_rx.clone();
                    thread::spawn(move || {
                        serve(
                            stream,
                            mode,
                            &task_doc,
                            &task_requests,
                            &container_requests,
                            &release_rx,
                        )
                    });
                }
            });
        }
        Server {
            uri: format!("http://127.0.0.1:{port}/v4/{MONITOR_ID}"),
            task_doc,
            task_requests,
            container_requests,
            release: Mutex::new(Some(release_tx)),
        }
    }

    fn client(&self) -> EcsClient {
        EcsClient::new(&self.uri).unwrap()
    }

    fn set_task_doc(&self, doc: String) {
        *self.task_doc.lock().unwrap() = doc;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the sender releases stalled handlers at once.
        self.release.lock().unwrap().take();
    }
}

fn serve(
    stream: TcpStream,
    mode: Mode,
    task_doc: &Mutex<String>,
    task_requests: &AtomicUsize,
    container_requests: &AtomicUsize,
    release: &Mutex<mpsc::Receiver<()>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut host = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.strip_prefix("Host: ") {
            host = Some(value.trim().to_owned());
        }
    }
    let mut stream = stream;
    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let base = format!("/v4/{MONITOR_ID}");
    let (status, body) = if host.is_none() {
        ("400 Bad Request", String::new())
    } else if path == format!("{base}/task") {
        task_requests.fetch_add(1, Ordering::SeqCst);
        ("200 OK", task_doc.lock().unwrap().clone())
    } else if path == base {
        container_requests.fetch_add(1, Ordering::SeqCst);
        ("200 OK", CONTAINER_DOC.to_owned())
    } else {
        ("404 Not Found", "404 page not found\n".to_owned())
    };
    match mode {
        Mode::Length => {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        Mode::Chunked => {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            for chunk in body.as_bytes().chunks(700) {
                let _ = write!(stream, "{:x}\r\n", chunk.len());
                let _ = stream.write_all(chunk);
                let _ = stream.write_all(b"\r\n");
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        Mode::Stall => {
            // Hold the connection open without answering until the test is done (bounded).
            let _ = release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
        }
        Mode::Trickle => {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            for byte in body.as_bytes().iter().take(300) {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn task_doc_with_late_container() -> String {
    let mut doc: serde_json::Value = serde_json::from_str(TASK_DOC).unwrap();
    let containers = doc["Containers"].as_array_mut().unwrap();
    let mut late = containers[1].clone();
    late["DockerId"] = LATE_ID.into();
    late["Name"] = "late-worker".into();
    late["Image"] = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/worker:1.0".into();
    late["ImageID"] =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111".into();
    containers.push(late);
    doc.to_string()
}

#[test]
fn fetches_the_task_and_the_own_container_with_both_framings() {
    for mode in [Mode::Length, Mode::Chunked] {
        let server = Server::start(mode);
        let client = server.client();
        let task = client.fetch_task().expect("task document");
        assert_eq!(task.task_id.as_deref(), Some(TASK_ID));
        assert_eq!(
            task.family.as_deref(),
            Some("orders-api-with-runtime-monitor")
        );
        assert_eq!(task.container_count(), 2);
        assert_eq!(
            task.container(APP_ID).and_then(|c| c.name.as_deref()),
            Some("app")
        );
        let own = client.fetch_container().expect("container document");
        assert_eq!(own.docker_id, MONITOR_ID);
        assert_eq!(own.name.as_deref(), Some("runtime-monitor"));
        assert_eq!(server.task_requests.load(Ordering::SeqCst), 1);
        assert_eq!(server.container_requests.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn enriches_a_container_found_through_its_cgroup() {
    let server = Server::start(Mode::Length);
    let cache = EcsMetadata::new(Some(server.client()));
    let cgroup = format!(
        "11:hugetlb:/ecs/{TASK_ID}/{APP_ID}\n4:memory:/ecs/{TASK_ID}/{APP_ID}\n1:name=systemd:/ecs/{TASK_ID}/{APP_ID}\n"
    );
    let id = ecs_container_id(&cgroup).expect("Fargate container id");
    let mut container = Container {
        id,
        ..Container::default()
    };
    assert!(cache.enrich(&mut container));
    assert_eq!(container.name.as_deref(), Some("app"));
    assert_eq!(
        container.image.as_deref(),
        Some("111122223333.dkr.ecr.eu-west-1.amazonaws.com/orders-api:2026.08.1")
    );
    assert_eq!(
        container.image_digest.as_deref(),
        Some("sha256:0b9e8d7c6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa9988776655")
    );
    let ecs = container.ecs.expect("ecs context");
    assert_eq!(
        ecs.cluster.as_deref(),
        Some("arn:aws:ecs:eu-west-1:111122223333:cluster/prod")
    );
    assert_eq!(ecs.task_id.as_deref(), Some(TASK_ID));
    assert_eq!(ecs.launch_type.as_deref(), Some("FARGATE"));

    // A second container of the same task is served from the cache.
    let mut monitor = Container {
        id: MONITOR_ID.to_owned(),
        ..Container::default()
    };
    assert!(cache.enrich(&mut monitor));
    assert_eq!(monitor.name.as_deref(), Some("runtime-monitor"));
    assert_eq!(server.task_requests.load(Ordering::SeqCst), 1);
}

#[test]
fn a_container_that_appears_later_is_found_after_a_refresh() {
    let server = Server::start(Mode::Chunked);
    let cache = EcsMetadata::new(Some(server.client())).with_min_refresh(Duration::ZERO);
    assert_eq!(cache.task().expect("first fetch").container_count(), 2);
    assert!(cache.container(LATE_ID).is_none(), "not started yet");
    let requests_before = server.task_requests.load(Ordering::SeqCst);

    server.set_task_doc(task_doc_with_late_container());
    let mut late = Container {
        id: LATE_ID.to_owned(),
        ..Container::default()
    };
    assert!(cache.enrich(&mut late), "refresh on an unknown container");
    assert_eq!(late.name.as_deref(), Some("late-worker"));
    assert_eq!(
        server.task_requests.load(Ordering::SeqCst),
        requests_before + 1
    );

    // Known containers do not cause requests.
    for _ in 0..5 {
        assert!(cache.container(APP_ID).is_some());
        assert!(cache.container(LATE_ID).is_some());
    }
    assert_eq!(
        server.task_requests.load(Ordering::SeqCst),
        requests_before + 1
    );
}

#[test]
fn refreshes_for_unknown_containers_are_rate_limited() {
    let server = Server::start(Mode::Length);
    let cache = EcsMetadata::new(Some(server.client())).with_min_refresh(Duration::from_secs(3600));
    assert!(cache.task().is_some());
    assert_eq!(server.task_requests.load(Ordering::SeqCst), 1);

    server.set_task_doc(task_doc_with_late_container());
    for _ in 0..50 {
        let mut unknown = Container {
            id: LATE_ID.to_owned(),
            ..Container::default()
        };
        assert!(
            !cache.enrich(&mut unknown),
            "within the interval the cache is not refreshed"
        );
        // The task context is still known for the task's own containers.
        assert_eq!(
            unknown.ecs.and_then(|e| e.task_id).as_deref(),
            Some(TASK_ID)
        );
    }
    assert_eq!(
        server.task_requests.load(Ordering::SeqCst),
        1,
        "one request only"
    );

    // An explicit refresh ignores the interval.
    cache.refresh().expect("forced refresh");
    assert!(cache.container(LATE_ID).is_some());
    assert_eq!(server.task_requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_server_that_is_down_gives_a_clean_error_naming_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let uri = format!("http://127.0.0.1:{port}/v4/{MONITOR_ID}");
    let client = EcsClient::new(&uri).unwrap();
    let error = client.fetch_task().expect_err("nothing listens");
    assert!(matches!(error, EcsError::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("{uri}/task")),
        "{error}"
    );

    let cache = EcsMetadata::new(Some(client)).with_min_refresh(Duration::from_secs(3600));
    let mut container = Container {
        id: APP_ID.to_owned(),
        ..Container::default()
    };
    assert!(!cache.enrich(&mut container));
    assert!(!cache.enrich(&mut container));
    assert_eq!(
        cache.fetch_counts(),
        (1, 1),
        "failed fetches are rate-limited too"
    );
    assert_eq!(container.name, None);
}

#[test]
fn unknown_paths_and_error_statuses_are_reported() {
    let server = Server::start(Mode::Length);
    let client = EcsClient::new(&format!("{}-wrong", server.uri)).unwrap();
    let error = client.fetch_task().expect_err("404");
    assert!(
        matches!(error, EcsError::Status { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("-wrong/task"), "{error}");
}

#[test]
fn a_stalled_server_times_out() {
    let server = Server::start(Mode::Stall);
    let limits = HttpLimits {
        total_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let client = server.client().with_limits(limits);
    let started = Instant::now();
    let error = client.fetch_task().expect_err("no answer");
    assert!(matches!(error, EcsError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("/task"), "{error}");
    // The stalled handler holds the connection for 30 s; the client must not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_trickling_server_is_bounded_by_the_total_timeout() {
    let server = Server::start(Mode::Trickle);
    let limits = HttpLimits {
        total_timeout: Duration::from_millis(700),
        ..HttpLimits::default()
    };
    let client = server.client().with_limits(limits);
    let started = Instant::now();
    // Each read succeeds within a read timeout; only the overall deadline stops it.
    let error = client.fetch_task().expect_err("too slow overall");
    assert!(matches!(error, EcsError::Timeout { .. }), "{error:?}");
    // The body alone would take 30 s at this pace.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_oversized_document_is_refused() {
    let server = Server::start(Mode::Chunked);
    server.set_task_doc(format!("{{\"Padding\": \"{}\"}}", "x".repeat(64 * 1024)));
    let limits = HttpLimits {
        max_body: 16 * 1024,
        ..HttpLimits::default()
    };
    let error = server
        .client()
        .with_limits(limits)
        .fetch_task()
        .expect_err("over the cap");
    assert!(
        matches!(error, EcsError::TooLarge { limit: 16384, .. }),
        "{error:?}"
    );
}

#[test]
fn a_document_that_is_not_json_is_a_parse_error() {
    let server = Server::start(Mode::Length);
    server.set_task_doc("<html>bad gateway</html>".to_owned());
    let error = server.client().fetch_task().expect_err("not JSON");
    assert!(matches!(error, EcsError::Parse { .. }), "{error:?}");
    assert!(error.to_string().contains("/task"), "{error}");
}

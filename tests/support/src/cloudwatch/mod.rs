//! CloudWatch Logs for the tests: a real moto server on a loopback port ([`Moto`]), a
//! fault-injecting HTTP proxy in front of it ([`FaultProxy`]), sink settings and an SDK client
//! aimed at them, reading a stream back ([`read_stream`], [`StreamReader`]), and alert-like
//! messages numbered for ordering checks. Everything listens on 127.0.0.1 only.

mod moto;
mod proxy;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;
use serde_json::Value;
use tasksentry::sink::cloudwatch::CloudWatchSettings;

pub use moto::Moto;
pub use proxy::{Fault, FaultProxy, Plan, ProxyCounters, PutSize};

/// The region and credentials every test uses against moto.
pub(crate) const REGION: &str = "eu-west-1";

/// Sink settings for tests: the endpoint, a fixed region, static credentials, short timeouts
/// and backoff, heartbeats off.
pub fn settings(endpoint: &str, group: &str) -> CloudWatchSettings {
    let mut settings = CloudWatchSettings::new(group);
    settings.endpoint = Some(endpoint.to_owned());
    settings.region = Some(REGION.to_owned());
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.batch_interval = Duration::from_millis(100);
    settings.heartbeat_interval = Duration::ZERO;
    settings.connect_timeout = Duration::from_secs(1);
    // Generous: a response slower than this (moto under a loaded CI machine) would count as
    // lost, and a lost response after the request was applied is a legitimate duplicate.
    settings.attempt_timeout = Duration::from_secs(5);
    settings.retry_base = Duration::from_millis(20);
    settings.retry_max = Duration::from_millis(500);
    settings
}

/// A client to inspect moto directly.
pub async fn client(endpoint: &str) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatchlogs::config::Region::new(REGION))
        .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    Client::from_conf(config)
}

/// Every event of a stream, oldest first: (timestamp, message).
pub async fn read_stream(client: &Client, group: &str, stream: &str) -> Vec<(i64, String)> {
    try_read_stream(client, group, stream)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Every event of a stream, oldest first: (timestamp, message); an error when the group or
/// stream does not exist (yet).
pub async fn try_read_stream(
    client: &Client,
    group: &str,
    stream: &str,
) -> Result<Vec<(i64, String)>, String> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let output = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|error| format!("GetLogEvents: {error:?}"))?;
        let page = output.events();
        for event in page {
            events.push((
                event.timestamp().unwrap_or_default(),
                event.message().unwrap_or_default().to_owned(),
            ));
        }
        let next = output.next_forward_token().map(str::to_owned);
        if page.is_empty() || next.is_none() || next == token {
            break;
        }
        token = next;
    }
    Ok(events)
}

/// A blocking reader of moto's streams for tests that are not async: a runtime of its own and a
/// client.
pub struct StreamReader {
    /// The runtime the client's calls run on.
    pub runtime: tokio::runtime::Runtime,
    /// A client aimed at moto.
    pub client: Client,
}

impl StreamReader {
    /// A reader of `moto`.
    pub fn new(moto: &Moto) -> StreamReader {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(client(&moto.url()));
        StreamReader { runtime, client }
    }

    /// Every event of the stream, oldest first: (timestamp, message); an error when the group
    /// or stream does not exist (yet).
    pub fn events(&self, group: &str, stream: &str) -> Result<Vec<(i64, String)>, String> {
        self.runtime
            .block_on(try_read_stream(&self.client, group, stream))
    }

    /// Every message of the stream, oldest first (none while it does not exist).
    pub fn messages(&self, group: &str, stream: &str) -> Vec<String> {
        self.events(group, stream)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, message)| message)
            .collect()
    }

    /// The stream's events without heartbeats (EMF records).
    pub fn alerts(&self, group: &str, stream: &str) -> Result<Vec<(i64, String)>, String> {
        Ok(self
            .events(group, stream)?
            .into_iter()
            .filter(|(_, m)| !m.contains("\"_aws\""))
            .collect())
    }

    /// Polls until `check` accepts the stream's alerts ([`StreamReader::alerts`]); returns
    /// them. Panics with `what` after `timeout`.
    pub fn wait_for_alerts(
        &self,
        group: &str,
        stream: &str,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&[(i64, String)]) -> bool,
    ) -> Vec<(i64, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let read = self.alerts(group, stream);
            if let Ok(alerts) = &read {
                if check(alerts) {
                    return alerts.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not in CloudWatch within {timeout:?}; last read: {}",
                    match read {
                        Ok(alerts) => format!("{} alerts", alerts.len()),
                        Err(error) => error,
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Polls until a message of the stream (heartbeats included) parses as JSON and satisfies
    /// `check`; returns it. Panics with `what` after `timeout`.
    pub fn wait_for_message(
        &self,
        group: &str,
        stream: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .messages(group, stream)
                .iter()
                .filter_map(|m| serde_json::from_str::<Value>(m).ok())
                .find(|v| check(v));
            if let Some(message) = found {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not in the stream within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A JSON alert-like message carrying a sequence number.
pub fn alert_message(n: u64) -> String {
    padded_alert_message(n, 0)
}

/// [`alert_message`] with `pad` extra bytes in `output_fields.padding`.
pub fn padded_alert_message(n: u64, pad: usize) -> String {
    serde_json::json!({
        "time": "2026-11-25T16:00:00.000Z",
        "rule": "Terminal shell in container",
        "priority": "Warning",
        "output": format!("Shell spawned (n={n}) — «unicode» ✓ \"quoted\""),
        "output_fields": {"seq": n, "proc.cmdline": "sh -c id", "padding": "p".repeat(pad)},
        "ecs": {"task": "0123456789abcdef"},
    })
    .to_string()
}

/// The `seq` of a message produced by [`alert_message`].
pub fn seq_of(message: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    value["output_fields"]["seq"].as_u64()
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until `check` is true or `timeout` passes; returns whether it became true.
pub async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Whether a directory holds no files.
pub fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

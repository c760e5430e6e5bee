//! The AWS side of the sink: building the CloudWatch Logs client, creating the log group and
//! stream, one PutLogEvents attempt, and sorting every failure into what the retry loop does
//! with it.
//!
//! Retry layering: the SDK's own retries are **disabled** (`RetryConfig::disabled()`, one
//! attempt per call), and each call has explicit timeouts (connect, per attempt, per operation).
//! The sink's delivery loop is the only retry layer: capped exponential backoff with full
//! jitter, and it never gives up on a batch while it is buffered (only a shutdown deadline
//! ends it). One layer means one place that decides, no multiplied attempts, and no SDK retry
//! token bucket silently ending retries during a long outage.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_smithy_http_client::tls;

use super::batch::LogEvent;
use super::{CloudWatchSettings, SinkError};

/// One CloudWatch Logs API operation the sink calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// The operation (`PutLogEvents`); the IAM action is `logs:` + this.
    pub operation: &'static str,
    /// Whether the task role must allow it. The optional ones are only needed when the sink
    /// is to create a missing log group itself; refused, the sink uses the group as it is.
    pub required: bool,
}

/// Every CloudWatch Logs API operation this module calls (the task role's policy is derived
/// from it; `tests/packaging_links.rs` checks the list against the code and the policies).
pub const API_CALLS: &[ApiCall] = &[
    ApiCall {
        operation: "CreateLogGroup",
        required: false,
    },
    ApiCall {
        operation: "PutRetentionPolicy",
        required: false,
    },
    ApiCall {
        operation: "CreateLogStream",
        required: true,
    },
    ApiCall {
        operation: "PutLogEvents",
        required: true,
    },
];

/// What the delivery loop does after a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Throttling, 5xx, timeouts, connection errors, unreadable responses: retry with backoff.
    Retry(String),
    /// The group or stream is missing (deleted while running): create them, then retry.
    Missing(String),
    /// Credentials or permissions (AccessDenied, UnrecognizedClient, expired token…): an
    /// operator must fix something; keep the batch and retry at the maximum backoff, loudly.
    Auth(String),
    /// The request itself is invalid (InvalidParameter and other 4xx): resending the same batch
    /// cannot succeed; drop it, counted and reported loudly.
    Invalid(String),
}

/// Which events of a successful call the service rejected (indexes into the batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Events too far in the future.
    pub(crate) too_new: usize,
    /// Events too old.
    pub(crate) too_old: usize,
    /// Events older than the group's retention.
    pub(crate) expired: usize,
}

impl Rejected {
    /// Every rejected event.
    pub(crate) fn total(&self) -> usize {
        self.too_new + self.too_old + self.expired
    }
}

/// Builds the client: default credential chain (env, profile, web identity, ECS container
/// credentials, IMDS) unless static credentials are given, region from the setting or the
/// environment, endpoint override for tests, SDK retries off, explicit timeouts.
pub(crate) async fn build_client(settings: &CloudWatchSettings) -> Result<Client, SinkError> {
    // hyper 1 + rustls with the ring provider: the SDK's modern HTTPS stack without compiling
    // aws-lc-sys (C code); aws-config hands the same client to its credential providers.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .operation_attempt_timeout(settings.attempt_timeout)
                .operation_timeout(settings.attempt_timeout + Duration::from_secs(1))
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some((key, secret)) = &settings.static_credentials {
        loader = loader.credentials_provider(Credentials::new(
            key.clone(),
            secret.clone(),
            None,
            None,
            "tasksentry-static",
        ));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(SinkError::NoRegion);
    }
    let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk);
    if let Some(endpoint) = &settings.endpoint {
        config = config.endpoint_url(endpoint.clone());
    }
    Ok(Client::from_conf(config.build()))
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, aws_sdk_cloudwatchlogs::config::http::HttpResponse>,
) -> String {
    match error {
        SdkError::ServiceError(context) => {
            let e = context.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("unknown error"),
                e.message().unwrap_or("")
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// Sorts a failed call into a [`Failure`].
pub(crate) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, aws_sdk_cloudwatchlogs::config::http::HttpResponse>,
) -> Failure {
    let text = describe(error);
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("");
            match code {
                "ResourceNotFoundException" => Failure::Missing(text),
                "ThrottlingException"
                | "Throttling"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "ServiceUnavailableException"
                | "RequestTimeout"
                | "RequestTimeoutException"
                | "RequestExpired"
                | "InternalFailure"
                | "OperationAbortedException"
                | "InvalidSequenceTokenException" => Failure::Retry(text),
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "ExpiredTokenException"
                | "InvalidClientTokenId"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "KMSInvalidStateException"
                | "KmsInvalidStateException" => Failure::Auth(text),
                _ if status >= 500 || status == 429 || status == 408 => Failure::Retry(text),
                _ => Failure::Invalid(text),
            }
        }
        // Timeouts, connection refused/reset/closed, unreadable responses: transient.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retry(text)
        }
        // The request could not be built: most often no credentials could be resolved.
        _ => Failure::Auth(text),
    }
}

/// One PutLogEvents attempt.
pub(crate) async fn put(
    client: &Client,
    group: &str,
    stream: &str,
    events: &[LogEvent],
) -> Result<Rejected, Failure> {
    let mut input = Vec::with_capacity(events.len());
    for event in events {
        let built = InputLogEvent::builder()
            .timestamp(event.timestamp_ms)
            .message(event.message.clone())
            .build()
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        input.push(built);
    }
    let output = client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(input))
        .send()
        .await
        .map_err(|error| classify(&error))?;
    let mut rejected = Rejected::default();
    if let Some(info) = output.rejected_log_events_info() {
        let n = events.len();
        if let Some(start) = info.too_new_log_event_start_index() {
            rejected.too_new = n.saturating_sub(usize::try_from(start).unwrap_or(n));
        }
        if let Some(end) = info.too_old_log_event_end_index() {
            rejected.too_old = usize::try_from(end).map_or(0, |e| (e + 1).min(n));
        }
        if let Some(end) = info.expired_log_event_end_index() {
            rejected.expired = usize::try_from(end)
                .map_or(0, |e| (e + 1).min(n))
                .saturating_sub(rejected.too_old);
        }
    }
    Ok(rejected)
}

/// Creates the log group (with its retention when it is new), treating
/// `ResourceAlreadyExistsException` as success. A refusal (`AccessDeniedException`) is
/// [`Failure::Auth`]; the delivery loop then uses the group as the deployment created it.
pub(crate) async fn ensure_group(
    client: &Client,
    group: &str,
    retention_days: Option<i32>,
) -> Result<(), Failure> {
    match client.create_log_group().log_group_name(group).send().await {
        Ok(_) => {
            tracing::info!(group, "Created the CloudWatch log group.");
            if let Some(days) = retention_days {
                // Alerts matter more than retention: a failure here is reported, not retried.
                if let Err(error) = client
                    .put_retention_policy()
                    .log_group_name(group)
                    .retention_in_days(days)
                    .send()
                    .await
                {
                    let failure = classify(&error);
                    tracing::warn!(group, days, error = ?failure, "Cannot set the log group's retention.");
                }
            }
            Ok(())
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(classify(&error)),
    }
}

/// Creates the log stream, treating `ResourceAlreadyExistsException` as success. A missing
/// group is [`Failure::Missing`].
pub(crate) async fn ensure_stream(
    client: &Client,
    group: &str,
    stream: &str,
) -> Result<(), Failure> {
    match client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(classify(&error)),
    }
}

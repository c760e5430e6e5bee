//! What an image pass found, as `tasksentry` events for the engine (`tasksentry run`'s image
//! collector, `collect/imagescan.rs`): one event per (image, vulnerability), per credential
//! baked into the image, per credential in a container's environment, the SBOM split into
//! records below CloudWatch's event limit, and one summary per pass. Pure: the collector reads,
//! this shapes. Details go in `evt.args` under the names of their rule fields (`vuln.id`,
//! `secret.kind`, ...; `docs/images.md`), so rules and exceptions use them as any field.
//!
//! Secrets are never in an event: a finding carries the file or variable, the kind and the
//! fingerprint only.

use serde_json::Value;

use super::inuse::InUse;
use super::osv::{Advisory, Finding};
use super::secrets::{EnvFinding, SecretFinding};
use super::{Component, Inventory};
use crate::event::{Collector, Container, Event, EventType, Internal, Process};

/// `tasksentry.kind` of a vulnerable package of an image.
pub const KIND_VULNERABILITY: &str = "image_vulnerability";
/// `tasksentry.kind` of a credential baked into an image's files.
pub const KIND_SECRET: &str = "image_secret";
/// `tasksentry.kind` of a credential in a container's environment.
pub const KIND_ENV_SECRET: &str = "env_secret";
/// `tasksentry.kind` of a part of an image's SBOM (a data record, not an alert).
pub const KIND_SBOM: &str = "image_sbom";
/// `tasksentry.kind` of the summary of one image pass (a data record, not an alert).
pub const KIND_INVENTORY: &str = "image_inventory";

/// The largest output line an SBOM part may take (as profile snapshots: CloudWatch's limit is
/// 256 KiB, with room for the line's other keys).
pub const MAX_PART_BYTES: usize = crate::profile::snapshot::MAX_PART_BYTES;

/// Whether an event is one of the image collector's data records (SBOM parts, pass summaries),
/// which outputs print whole instead of evaluating rules on them.
pub fn is_data_record(event: &Event) -> bool {
    event.evt.evt_type == EventType::Tasksentry
        && event
            .internal
            .as_ref()
            .is_some_and(|i| i.kind == KIND_SBOM || i.kind == KIND_INVENTORY)
}

/// The image a pass was about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Its digest: the ECS `ImageID`/pinned digest, else `content:sha256:…` of its package
    /// databases.
    pub digest: String,
    /// `ecs` or `content`.
    pub digest_source: &'static str,
    /// The container it was read through (the first seen with this digest).
    pub container: Option<Container>,
    /// Every container of the task running it when it was read (ids).
    pub containers: Vec<String>,
}

fn event(kind: &str, message: String, container: Option<&Container>) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Images);
    event.container = container.map(|c| {
        Box::new(Container {
            // The engine fills the ECS context and the image from the container id.
            ecs: None,
            ..c.clone()
        })
    });
    event.internal = Some(Box::new(Internal {
        kind: kind.to_owned(),
        message,
        count: None,
    }));
    event
}

fn arg(event: &mut Event, name: &str, value: impl Into<String>) {
    event.evt.args.push((name.to_owned(), value.into()));
}

fn subject_args(event: &mut Event, subject: &Subject) {
    arg(event, "image.digest", &subject.digest);
    arg(event, "image.digest_source", subject.digest_source);
}

/// The qualitative severity of an advisory: from its CVSS v3 score when it has one, else its
/// database's label (`moderate` read as `medium`), else `unknown`.
pub fn severity(advisory: &Advisory) -> String {
    if let Some(score) = advisory.cvss_score {
        return super::osv::rating(score).to_owned();
    }
    match advisory.severity_label.as_deref().map(str::to_lowercase) {
        Some(label) if label == "moderate" => "medium".to_owned(),
        Some(label) if ["critical", "high", "medium", "low"].contains(&label.as_str()) => label,
        _ => "unknown".to_owned(),
    }
}

/// The package's name as an advisory reader expects it (`group:name` for Maven, `@scope/name`
/// for npm).
fn package_name(component: &Component) -> String {
    match (&component.group, component.ecosystem) {
        (Some(group), super::Ecosystem::Maven) => format!("{group}:{}", component.name),
        (Some(group), _) => format!("{group}/{}", component.name),
        (None, _) => component.name.clone(),
    }
}

/// One vulnerable package of an image, with whether it is in use.
pub fn vulnerability_event(
    subject: &Subject,
    inventory: &Inventory,
    finding: &Finding<'_>,
    in_use: &InUse,
) -> Option<Event> {
    let component = inventory.components.get(finding.component)?;
    let advisory = finding.advisory;
    let severity = severity(advisory);
    let package = package_name(component);
    let fixed = finding.fixed.as_deref();
    let message = format!(
        "{} ({}) affects {} {} {} in image {} ({severity}{}; in use: {}){}",
        advisory.id,
        if advisory.aliases.is_empty() {
            "no alias".to_owned()
        } else {
            advisory.aliases.join(", ")
        },
        component.ecosystem.osv_name(),
        package,
        component.version,
        subject.digest,
        advisory
            .cvss_score
            .map(|s| format!(", CVSS {s:.1}"))
            .unwrap_or_default(),
        in_use.as_str(),
        fixed.map(|f| format!("; fixed in {f}")).unwrap_or_default(),
    );
    let mut event = event(KIND_VULNERABILITY, message, subject.container.as_ref());
    subject_args(&mut event, subject);
    arg(&mut event, "vuln.id", &advisory.id);
    arg(&mut event, "vuln.aliases", advisory.aliases.join(","));
    arg(&mut event, "vuln.severity", &severity);
    if let Some(score) = advisory.cvss_score {
        arg(&mut event, "vuln.cvss", format!("{score:.1}"));
    }
    if let Some(vector) = &advisory.cvss_vector {
        arg(&mut event, "vuln.cvss_vector", vector);
    }
    arg(&mut event, "vuln.summary", &advisory.summary);
    arg(&mut event, "vuln.ecosystem", component.ecosystem.osv_name());
    arg(&mut event, "vuln.package", package);
    arg(&mut event, "vuln.version", &component.version);
    arg(&mut event, "vuln.fixed_version", fixed.unwrap_or(""));
    arg(&mut event, "vuln.purl", &component.purl);
    arg(&mut event, "vuln.location", &component.location);
    arg(&mut event, "vuln.in_use", in_use.as_str());
    arg(&mut event, "vuln.in_use_reason", in_use.reason());
    Some(event)
}

/// One credential baked into an image's files: the file, line, kind and fingerprint.
pub fn secret_event(subject: &Subject, finding: &SecretFinding) -> Event {
    let message = format!(
        "a credential ({}) is baked into image {}: {} line {} (fingerprint {})",
        finding.kind, subject.digest, finding.path, finding.line, finding.fingerprint
    );
    let mut event = event(KIND_SECRET, message, subject.container.as_ref());
    subject_args(&mut event, subject);
    arg(&mut event, "secret.kind", finding.kind);
    arg(&mut event, "secret.fingerprint", &finding.fingerprint);
    arg(&mut event, "secret.path", &finding.path);
    arg(&mut event, "secret.line", finding.line.to_string());
    event
}

/// One credential in the environment of a container's entrypoint (`process`): the variable,
/// kind and fingerprint. The process is attached with its environment emptied (the alert
/// redactor would mask it, but nothing needs it here).
pub fn env_secret_event(
    container: Option<&Container>,
    process: Option<&Process>,
    finding: &EnvFinding,
) -> Event {
    let message = format!(
        "the environment of {} holds a credential ({}) in {} (fingerprint {}): use the task definition's `secrets`, not `environment`",
        process.map_or_else(
            || "the entrypoint".to_owned(),
            |p| format!("{} (pid {})", p.name, p.pid)
        ),
        finding.kind,
        finding.variable,
        finding.fingerprint
    );
    let mut event = event(KIND_ENV_SECRET, message, container);
    event.proc = process.map(|p| {
        Box::new(Process {
            env: Vec::new(),
            ..p.clone()
        })
    });
    arg(&mut event, "secret.kind", finding.kind);
    arg(&mut event, "secret.fingerprint", &finding.fingerprint);
    arg(&mut event, "secret.variable", &finding.variable);
    event
}

/// The SBOM `document` (CycloneDX JSON) as `image_sbom` records, each below `max_bytes` as a
/// line: every part is a CycloneDX document with the whole `metadata` and its share of
/// `components` and `vulnerabilities`, its JSON text in `evt.arg.sbom`, numbered in
/// `evt.arg.part`/`evt.arg.parts`.
pub fn sbom_events(subject: &Subject, document: &Value, max_bytes: usize) -> Vec<Event> {
    let list = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    // One list of (key, item) so that a part may end the components and start the
    // vulnerabilities.
    let items: Vec<(&str, Value)> = list("components")
        .into_iter()
        .map(|c| ("components", c))
        .chain(
            list("vulnerabilities")
                .into_iter()
                .map(|v| ("vulnerabilities", v)),
        )
        .collect();
    let skeleton = |share: &[(&str, Value)]| {
        let mut doc = document.clone();
        if let Some(object) = doc.as_object_mut() {
            for key in ["components", "vulnerabilities"] {
                let values: Vec<Value> = share
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .collect();
                object.insert(key.to_owned(), Value::Array(values));
            }
        }
        doc
    };
    let part_event = |doc: &Value, part: usize, parts: usize| {
        let count = ["components", "vulnerabilities"]
            .map(|k| doc.get(k).and_then(Value::as_array).map_or(0, Vec::len));
        let mut event = event(
            KIND_SBOM,
            format!(
                "SBOM of image {}: {} components, {} vulnerabilities (part {part} of {parts})",
                subject.digest, count[0], count[1]
            ),
            subject.container.as_ref(),
        );
        subject_args(&mut event, subject);
        arg(&mut event, "part", part.to_string());
        arg(&mut event, "parts", parts.to_string());
        arg(&mut event, "sbom", doc.to_string());
        if let Some(internal) = event.internal.as_mut() {
            internal.count = Some(count[0] as u64);
        }
        event
    };
    // The size of a part without items, as an event line (room for the part numbers).
    let base = part_event(&skeleton(&[]), 99_999, 99_999)
        .to_json_line()
        .len();
    let groups = crate::profile::snapshot::split_by_size(&items, base, max_bytes);
    let parts = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(index, range)| part_event(&skeleton(&items[range]), index + 1, parts))
        .collect()
}

/// What one pass did, for the summary record.
#[derive(Debug, Clone, Default)]
pub struct PassSummary {
    /// Components found.
    pub components: usize,
    /// Vulnerability findings, and of those in use.
    pub vulnerabilities: usize,
    /// Of those, in use (`yes`) and unknown.
    pub in_use: usize,
    /// Of those, whose use could not be told.
    pub in_use_unknown: usize,
    /// Credentials in the image's files.
    pub secrets: usize,
    /// Directory entries looked at and bytes read (inventory and secret scan together).
    pub entries_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// A budget that ran out (`files`, `bytes`) or `stopped`.
    pub truncated: Option<&'static str>,
    /// How long the pass took, paced, in milliseconds.
    pub duration_ms: u64,
    /// The rate the pass was held to, bytes per second.
    pub bytes_per_second: u64,
    /// What the vulnerability database said (`N advisories`, `not configured`, an error).
    pub vulndb: String,
    /// SBOM records emitted.
    pub sbom_parts: usize,
}

/// The summary of one image pass.
pub fn inventory_event(subject: &Subject, summary: &PassSummary) -> Event {
    let message = format!(
        "image {} read through container {}: {} components, {} vulnerabilities ({} in use, {} unknown), {} credentials; {} entries and {} bytes read in {} ms at most {} bytes/s{}",
        subject.digest,
        subject.container.as_ref().map_or("?", |c| c.id.as_str()),
        summary.components,
        summary.vulnerabilities,
        summary.in_use,
        summary.in_use_unknown,
        summary.secrets,
        summary.entries_read,
        summary.bytes_read,
        summary.duration_ms,
        summary.bytes_per_second,
        summary
            .truncated
            .map(|t| format!("; incomplete: the {t} budget ran out"))
            .unwrap_or_default(),
    );
    let mut event = event(KIND_INVENTORY, message, subject.container.as_ref());
    subject_args(&mut event, subject);
    for (name, value) in [
        ("containers", subject.containers.join(",")),
        ("components", summary.components.to_string()),
        ("vulnerabilities", summary.vulnerabilities.to_string()),
        ("in_use", summary.in_use.to_string()),
        ("in_use_unknown", summary.in_use_unknown.to_string()),
        ("secrets", summary.secrets.to_string()),
        ("entries_read", summary.entries_read.to_string()),
        ("bytes_read", summary.bytes_read.to_string()),
        ("duration_ms", summary.duration_ms.to_string()),
        ("bytes_per_second", summary.bytes_per_second.to_string()),
        ("truncated", summary.truncated.unwrap_or("").to_owned()),
        ("vulndb", summary.vulndb.clone()),
        ("sbom_parts", summary.sbom_parts.to_string()),
    ] {
        arg(&mut event, name, value);
    }
    if let Some(internal) = event.internal.as_mut() {
        internal.count = Some(summary.components as u64);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            digest: "sha256:abc".into(),
            digest_source: "ecs",
            container: Some(Container {
                id: "c1".into(),
                ..Container::default()
            }),
            containers: vec!["c1".into()],
        }
    }

    #[test]
    fn an_sbom_splits_below_the_line_limit_and_keeps_every_item() {
        let components: Vec<Value> = (0..400)
            .map(|i| serde_json::json!({"bom-ref": format!("pkg:npm/p{i}@1.0.0#/app/node_modules/p{i}"), "name": format!("p{i}"), "version": "1.0.0", "properties": [{"name": "x", "value": "y".repeat(200)}]}))
            .collect();
        let vulnerabilities: Vec<Value> = (0..30)
            .map(|i| serde_json::json!({"id": format!("GHSA-{i}")}))
            .collect();
        let document = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5",
            "metadata": {"component": {"name": "x"}}, "components": components,
            "vulnerabilities": vulnerabilities});
        let max = 20 * 1024;
        let events = sbom_events(&subject(), &document, max);
        assert!(events.len() > 3, "{}", events.len());
        let (mut seen_components, mut seen_vulns) = (0, 0);
        for (index, event) in events.iter().enumerate() {
            let line = event.to_json_line();
            assert!(line.len() <= max, "part {index}: {} bytes", line.len());
            assert!(is_data_record(event));
            assert_eq!(
                event.evt.arg("part"),
                Some((index + 1).to_string().as_str())
            );
            assert_eq!(
                event.evt.arg("parts"),
                Some(events.len().to_string().as_str())
            );
            let doc: Value = serde_json::from_str(event.evt.arg("sbom").expect("sbom"))
                .expect("each part is a JSON document");
            assert_eq!(doc["bomFormat"], "CycloneDX");
            seen_components += doc["components"].as_array().map_or(0, Vec::len);
            seen_vulns += doc["vulnerabilities"].as_array().map_or(0, Vec::len);
        }
        assert_eq!((seen_components, seen_vulns), (400, 30));
    }

    #[test]
    fn severity_comes_from_the_score_then_the_label() {
        let mut advisory = Advisory {
            id: "X".into(),
            aliases: vec![],
            summary: String::new(),
            cvss_vector: None,
            cvss_score: Some(9.8),
            severity_label: Some("LOW".into()),
        };
        assert_eq!(severity(&advisory), "critical");
        advisory.cvss_score = None;
        assert_eq!(severity(&advisory), "low");
        advisory.severity_label = Some("MODERATE".into());
        assert_eq!(severity(&advisory), "medium");
        advisory.severity_label = None;
        assert_eq!(severity(&advisory), "unknown");
    }
}

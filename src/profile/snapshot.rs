//! Snapshots on the wire: a container's learnt profile as `tasksentry` events of kind
//! `profile_snapshot`, split into parts that each stay below [`MAX_PART_BYTES`] as one output
//! line (CloudWatch Logs takes events up to 256 KiB), and put back together from whatever
//! carries them: `--record` files, `--emit events` or alerts lines on stdout, `aws logs
//! filter-log-events` output, CloudWatch Logs exports (a timestamp before each message).
//!
//! A part is an event whose `evt.arg.profile` holds the JSON of a [`SnapshotPart`]; the
//! `snapshot`, `part`, `parts` and `container` arguments repeat its header for readers and
//! rules. Parts of one snapshot share its id; a snapshot is used only when every part arrived.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::learner::{ContainerSummary, Counted};
use crate::event::{Collector, Event, EventType, Internal, Timestamp};

/// `tasksentry.kind` of snapshot events.
pub const KIND: &str = "profile_snapshot";

/// The largest output line a part may take (CloudWatch's event limit is 256 KiB, with room
/// for the line's other keys and redaction marks).
pub const MAX_PART_BYTES: usize = 200 * 1024;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Every `learn_interval` during the window.
    Interval,
    /// The learning window ended.
    WindowEnd,
    /// The monitor stopped before the window ended.
    Shutdown,
}

/// One part of one container's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    /// Format version (1).
    pub v: u32,
    /// The snapshot's id: the learning run and a sequence number.
    pub snapshot: String,
    /// The learning run (one monitor process): snapshots of a run are cumulative.
    pub run: String,
    /// The snapshot's sequence number within its run.
    pub seq: u64,
    /// The ECS task id, else the run.
    pub task: String,
    /// Why it was taken.
    pub reason: Reason,
    /// When the learning window started.
    pub window_start: Timestamp,
    /// This part's number, from 1.
    pub part: u32,
    /// How many parts the snapshot has.
    pub parts: u32,
    /// The profile; its `entries` are this part's share.
    pub profile: ContainerSummary,
}

/// Where and when a snapshot is taken.
#[derive(Debug, Clone)]
pub struct SnapshotHeader<'a> {
    /// Learning run.
    pub run: &'a str,
    /// Sequence number in the run.
    pub seq: u64,
    /// Task id (or the run).
    pub task: &'a str,
    /// Why.
    pub reason: Reason,
    /// Start of the learning window.
    pub window_start: Timestamp,
    /// Time of the snapshot.
    pub time: Timestamp,
}

/// The JSON text of a value inside a JSON string: how many bytes it takes there.
fn embedded_len<T: Serialize>(value: &T) -> usize {
    let text = serde_json::to_string(value).unwrap_or_default();
    serde_json::to_string(&text).map_or(text.len(), |quoted| quoted.len() - 2)
}

/// The events of one container's snapshot, each below `max_bytes` as a line (a single entry
/// larger than that still gets a part of its own).
pub fn snapshot_events(
    summary: &ContainerSummary,
    header: &SnapshotHeader<'_>,
    max_bytes: usize,
) -> Vec<Event> {
    let id = format!("{}.{}", header.run, header.seq);
    let part_of = |entries: Vec<Counted>, part: u32, parts: u32| SnapshotPart {
        v: 1,
        snapshot: id.clone(),
        run: header.run.to_owned(),
        seq: header.seq,
        task: header.task.to_owned(),
        reason: header.reason,
        window_start: header.window_start,
        part,
        parts,
        profile: ContainerSummary {
            entries,
            ..summary_header(summary)
        },
    };
    // The size of a part without entries, as an event line (with room for the part numbers).
    let base = event_of(&part_of(Vec::new(), 99_999, 99_999), header.time)
        .to_json_line()
        .len();
    let groups = split_by_size(&summary.entries, base, max_bytes);
    let parts = u32::try_from(groups.len()).unwrap_or(u32::MAX);
    groups
        .into_iter()
        .enumerate()
        .map(|(index, range)| {
            let part = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let entries = summary.entries[range].to_vec();
            event_of(&part_of(entries, part, parts), header.time)
        })
        .collect()
}

/// Splits `items` into consecutive groups (index ranges) such that a line of `base` bytes
/// plus the JSON of a group's items, embedded in a JSON string with a separator each, stays
/// within `max_bytes`; an item too large for any line still gets a group of its own. Always at
/// least one group (empty for no items). Shared by every record split for CloudWatch's event
/// limit (profile snapshots, image SBOMs).
pub fn split_by_size<T: Serialize>(
    items: &[T],
    base: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    groups.push(0..0);
    let mut size = base;
    for (index, item) in items.iter().enumerate() {
        let len = embedded_len(item) + 1;
        let Some(current) = groups.last_mut() else {
            break;
        };
        if current.start < current.end && size + len > max_bytes {
            groups.push(index..index);
            size = base;
        }
        size += len;
        if let Some(current) = groups.last_mut() {
            current.end = index + 1;
        }
    }
    groups
}

fn summary_header(summary: &ContainerSummary) -> ContainerSummary {
    ContainerSummary {
        container: summary.container.clone(),
        image_digests: summary.image_digests.clone(),
        first_seen: summary.first_seen,
        last_seen: summary.last_seen,
        events: summary.events,
        memory_bytes: summary.memory_bytes,
        endpoints: summary.endpoints.clone(),
        overflow: summary.overflow.clone(),
        entries: Vec::new(),
    }
}

fn event_of(part: &SnapshotPart, time: Timestamp) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.time = time;
    let json = serde_json::to_string(part).unwrap_or_default();
    event.evt.args = vec![
        ("snapshot".to_owned(), part.snapshot.clone()),
        ("part".to_owned(), part.part.to_string()),
        ("parts".to_owned(), part.parts.to_string()),
        ("container".to_owned(), part.profile.container.clone()),
        ("profile".to_owned(), json),
    ];
    event.internal = Some(Box::new(Internal {
        kind: KIND.to_owned(),
        message: format!(
            "profile snapshot of container {}: {} entries (part {} of {})",
            part.profile.container,
            part.profile.entries.len(),
            part.part,
            part.parts
        ),
        count: Some(part.profile.entries.len() as u64),
    }));
    event
}

/// Whether an event is a snapshot part.
pub fn is_snapshot(event: &Event) -> bool {
    event.evt.evt_type == EventType::Tasksentry
        && event.internal.as_ref().is_some_and(|i| i.kind == KIND)
}

/// The snapshot part an event's JSON value carries, if it is one.
fn part_of_value(value: &serde_json::Value) -> Option<Result<SnapshotPart, String>> {
    if value.pointer("/evt/type")?.as_str()? != "tasksentry"
        || value.pointer("/internal/kind")?.as_str()? != KIND
    {
        return None;
    }
    let text = value
        .pointer("/evt/args")?
        .as_array()?
        .iter()
        .filter_map(|pair| pair.as_array())
        .find(|pair| pair.first().and_then(|k| k.as_str()) == Some("profile"))?
        .get(1)?
        .as_str()?;
    Some(serde_json::from_str(text).map_err(|e| format!("bad profile snapshot: {e}")))
}

/// Snapshot parts found in one input text: NDJSON lines of events or alerts (other lines are
/// skipped), a line with a timestamp before the JSON (CloudWatch Logs exports), or one JSON
/// document with `events[].message` (`aws logs filter-log-events`). Problems (a part that does
/// not parse) are returned beside the parts, with their line number.
pub fn parts_in_text(text: &str) -> (Vec<SnapshotPart>, Vec<String>) {
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    let mut take = |value: &serde_json::Value, line: usize| match part_of_value(value) {
        Some(Ok(part)) => parts.push(part),
        Some(Err(error)) => problems.push(format!("line {line}: {error}")),
        None => {}
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(document) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Some(events) = document.get("events").and_then(|e| e.as_array())
    {
        for (index, event) in events.iter().enumerate() {
            if let Some(message) = event.get("message").and_then(|m| m.as_str())
                && let Ok(value) = serde_json::from_str::<serde_json::Value>(message)
            {
                take(&value, index + 1);
            }
        }
        return (parts, problems);
    }
    for (index, line) in text.lines().enumerate() {
        let Some(start) = line.find('{') else {
            continue;
        };
        // Cheap filter: most lines of a recording are not snapshots.
        if !line.contains(KIND) {
            continue;
        }
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line[start..]) {
            take(&value, index + 1);
        }
    }
    (parts, problems)
}

/// A whole snapshot of one container, its parts put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The header of its first part.
    pub run: String,
    /// Sequence number in the run.
    pub seq: u64,
    /// Task id.
    pub task: String,
    /// Why it was taken.
    pub reason: Reason,
    /// Start of the learning window.
    pub window_start: Timestamp,
    /// The profile, every part's entries.
    pub profile: ContainerSummary,
}

/// Puts parts back together: a snapshot whose parts did not all arrive is left out and named
/// in the problems. Repeated parts (the same record read twice) count once. Sorted by task,
/// container, run and sequence.
pub fn reassemble(parts: Vec<SnapshotPart>) -> (Vec<Snapshot>, Vec<String>) {
    let mut groups: BTreeMap<(String, String), BTreeMap<u32, SnapshotPart>> = BTreeMap::new();
    for part in parts {
        groups
            .entry((part.snapshot.clone(), part.profile.container.clone()))
            .or_default()
            .insert(part.part, part);
    }
    let mut snapshots = Vec::new();
    let mut problems = Vec::new();
    for ((id, container), parts) in groups {
        let expected = parts.values().next().map_or(0, |p| p.parts);
        let complete = expected > 0
            && parts.len() == expected as usize
            && (1..=expected).all(|n| parts.contains_key(&n))
            && parts.values().all(|p| p.parts == expected);
        if !complete {
            problems.push(format!(
                "snapshot {id} of container {container}: {} of {expected} parts, left out",
                parts.len()
            ));
            continue;
        }
        let mut iter = parts.into_values();
        let Some(first) = iter.next() else {
            continue;
        };
        let mut snapshot = Snapshot {
            run: first.run,
            seq: first.seq,
            task: first.task,
            reason: first.reason,
            window_start: first.window_start,
            profile: first.profile,
        };
        for part in iter {
            snapshot.profile.entries.extend(part.profile.entries);
        }
        snapshots.push(snapshot);
    }
    snapshots.sort_by(|a, b| {
        (&a.task, &a.profile.container, &a.run, a.seq).cmp(&(
            &b.task,
            &b.profile.container,
            &b.run,
            b.seq,
        ))
    });
    (snapshots, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::learner::{Entry, Learner, Limits};

    fn summary(entries: usize) -> ContainerSummary {
        let mut learner = Learner::new(Limits {
            max_entries: 100_000,
            ..Limits::default()
        });
        for n in 0..entries {
            let mut event = Event::new(EventType::Execve, Collector::Procscan);
            event.container = Some(Box::new(crate::event::Container {
                id: "c".into(),
                name: Some("web".into()),
                ..Default::default()
            }));
            event.proc = Some(Box::new(crate::event::Process {
                name: "tool".into(),
                exepath: Some(format!(
                    "/usr/local/lib/\"quoted\"/very/long/path/tool-{n:06}"
                )),
                ..Default::default()
            }));
            learner.observe(&event);
        }
        learner.summaries().remove(0)
    }

    fn header() -> SnapshotHeader<'static> {
        SnapshotHeader {
            run: "run1",
            seq: 3,
            task: "task1",
            reason: Reason::Interval,
            window_start: Timestamp(1),
            time: Timestamp(2),
        }
    }

    #[test]
    fn a_large_snapshot_is_split_into_lines_below_the_limit_and_put_back_together() {
        let summary = summary(5000);
        let events = snapshot_events(&summary, &header(), MAX_PART_BYTES);
        assert!(events.len() > 1, "{} parts", events.len());
        let lines: Vec<String> = events.iter().map(Event::to_json_line).collect();
        for line in &lines {
            assert!(line.len() <= MAX_PART_BYTES, "{} bytes", line.len());
            assert!(line.len() < 256 * 1024);
        }
        // Shuffled and one part repeated: the same snapshot comes back.
        let mut text: Vec<&str> = lines.iter().rev().map(String::as_str).collect();
        text.push(&lines[0]);
        let (parts, problems) = parts_in_text(&text.join("\n"));
        assert!(problems.is_empty(), "{problems:?}");
        let (snapshots, problems) = reassemble(parts);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].profile, summary);
        assert_eq!(snapshots[0].task, "task1");
    }

    #[test]
    fn a_snapshot_with_a_part_missing_is_left_out_and_named() {
        let events = snapshot_events(&summary(5000), &header(), MAX_PART_BYTES);
        let text: Vec<String> = events.iter().skip(1).map(Event::to_json_line).collect();
        let (parts, _) = parts_in_text(&text.join("\n"));
        let (snapshots, problems) = reassemble(parts);
        assert!(snapshots.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("run1.3"), "{problems:?}");
    }

    #[test]
    fn snapshots_are_read_from_filter_log_events_output_and_log_exports() {
        let events = snapshot_events(&summary(3), &header(), MAX_PART_BYTES);
        let line = events[0].to_json_line();
        let aws = serde_json::json!({
            "events": [
                {"logStreamName": "s", "timestamp": 1, "message": "{\"rule\":\"x\"}", "ingestionTime": 2, "eventId": "1"},
                {"logStreamName": "s", "timestamp": 1, "message": line, "ingestionTime": 2, "eventId": "2"}
            ],
            "searchedLogStreams": []
        });
        let pretty = serde_json::to_string_pretty(&aws).expect("json");
        let (parts, problems) = parts_in_text(&pretty);
        assert!(problems.is_empty());
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].profile.entries.len(), 3);
        let export =
            format!("2026-12-07T12:00:00.000Z {line}\n2026-12-07T12:00:01.000Z not json\n");
        let (parts, _) = parts_in_text(&export);
        assert_eq!(parts.len(), 1);
        assert!(matches!(
            parts[0].profile.entries[0].entry,
            Entry::Exec { .. }
        ));
    }
}

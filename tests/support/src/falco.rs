//! falcosidekick's input check, written again for the tests from its source (no code copied),
//! to prove that every line TaskSentry writes to its alert outputs is accepted by it.
//!
//! Source read: `falcosecurity/falcosidekick` at commit
//! `8807ab7b0e21d944d3b0b4ba065287db69cc8a72` (2026-08-17):
//!
//! - `handlers.go`, `mainHandler`: the POST body is decoded by `newFalcoPayload` (an
//!   `encoding/json` `Decoder` with `UseNumber`, into `types.FalcoPayload`) and answered
//!   `400 Please send a valid request body` when decoding returns an error or
//!   `falcopayload.Check()` is false. `newFalcoPayload` then asserts
//!   `output_fields["k8s.ns.name"]` and `["k8s.pod.name"]` to be strings when they are not null
//!   (`j.(string)`: any other type panics the handler).
//! - `types/types.go`, `FalcoPayload`: the members `uuid`, `output`, `priority`, `rule`,
//!   `time` (`time.Time`), `output_fields` (`map[string]interface{}`), `source`, `tags`
//!   (`[]string`), `hostname`. `Check()` accepts a payload only if the priority's `String()` is
//!   not empty, `rule` is not empty, `time` is not the zero time and `output_fields` has at
//!   least one entry. `output`, `source`, `tags` and `hostname` are not checked.
//! - `types/priority.go`, `PriorityType.UnmarshalJSON`: the value is unmarshalled into a Go
//!   string (so it must be a JSON string or `null`; anything else is a decode error) and
//!   compared case-insensitively with `emergency`, `alert`, `critical`, `error`, `warning`,
//!   `notice`, `informational`, `info`, `debug`; anything else (and `null`) becomes the
//!   `Default` priority, whose `String()` is empty, which `Check()` rejects.
//!
//! `time.Time.UnmarshalJSON` is Go's (`golang/go`, `src/time/format_rfc3339.go` at commit
//! `1e0d73188ffd96a06da0aa54707681ded46acaff`, `parseStrictRFC3339`): `null` leaves the zero
//! time (rejected by `Check()`); anything but a JSON string is an error; the string is parsed
//! by `parseRFC3339`: `YYYY-MM-DDTHH:MM:SS`, each part in range (the day within its month,
//! leap years included, year 0–9999, hour ≤ 23, minute and second ≤ 59), an upper-case `T`,
//! optional `.` and digits, then `Z` or `±HH:MM` (hour ≤ 23, minute ≤ 59). When that fast path
//! fails Go retries with the lenient `time.Parse(time.RFC3339, …)`; this checker does not: a
//! time only the lenient parser would take is reported, since TaskSentry must not depend on it.
//!
//! `encoding/json` rules applied: a top-level value that is not an object is an error (`null`
//! decodes to the empty payload, which `Check()` rejects); keys match the members
//! case-insensitively (two keys matching one member are reported as ambiguous: Go would keep
//! the last in document order); unknown keys are ignored; a member of the wrong JSON type is an
//! error; `null` leaves a member empty; `tags` must be an array of strings (or `null`s).

use serde_json::Value;

/// The members of `FalcoPayload` as `encoding/json` names them.
const MEMBERS: [&str; 9] = [
    "uuid",
    "output",
    "priority",
    "rule",
    "time",
    "output_fields",
    "source",
    "tags",
    "hostname",
];

/// The priority names `PriorityType.UnmarshalJSON` knows (compared in lower case).
const PRIORITIES: [&str; 9] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "info",
    "debug",
];

/// What falcosidekick reads from an accepted line.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The rule.
    pub rule: String,
    /// The priority, as falcosidekick names it (`Critical`, `Informational`, ...).
    pub priority: String,
    /// The time, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nanos: i128,
    /// The `output_fields` keys.
    pub output_fields: Vec<String>,
}

/// Applies falcosidekick's decoding and `Check()` to one line: `Ok` if its main handler would
/// accept the line as a request body, `Err` with the reason otherwise.
pub fn check(line: &str) -> Result<Accepted, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = match value {
        Value::Object(object) => object,
        Value::Null => return Err("null payload: Check() fails on every member".into()),
        other => return Err(format!("not a JSON object: {other}")),
    };
    // Case-insensitive member matching, as encoding/json does.
    let mut members: [Option<&Value>; 9] = [None; 9];
    for (key, value) in &object {
        if let Some(i) = MEMBERS.iter().position(|m| m.eq_ignore_ascii_case(key)) {
            if members[i].is_some() {
                return Err(format!(
                    "two keys decode into `{}`: ambiguous (Go keeps the last one)",
                    MEMBERS[i]
                ));
            }
            members[i] = Some(value);
        }
    }
    let [
        uuid,
        output,
        priority,
        rule,
        time,
        output_fields,
        source,
        tags,
        hostname,
    ] = members;
    for (name, member) in [
        ("uuid", uuid),
        ("output", output),
        ("rule", rule),
        ("source", source),
        ("hostname", hostname),
    ] {
        if !matches!(member, None | Some(Value::Null | Value::String(_))) {
            return Err(format!("`{name}` is not a string: decode error"));
        }
    }
    match tags {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.iter().any(|t| !(t.is_string() || t.is_null())) {
                return Err("`tags` has an element that is not a string: decode error".into());
            }
        }
        Some(_) => return Err("`tags` is not an array: decode error".into()),
    }
    let fields = match output_fields {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => Some(fields),
        Some(_) => return Err("`output_fields` is not an object: decode error".into()),
    };
    let priority = match priority {
        None | Some(Value::Null) => return Err("no priority: Check() fails".into()),
        Some(Value::String(name)) => {
            let lower = name.to_lowercase();
            match PRIORITIES.iter().position(|p| *p == lower) {
                Some(i) => priority_string(PRIORITIES[i]),
                None => return Err(format!("unknown priority {name:?}: Check() fails")),
            }
        }
        Some(_) => return Err("`priority` is not a string: decode error".into()),
    };
    let time_unix_nanos = match time {
        None | Some(Value::Null) => return Err("no time: Check() fails (zero time)".into()),
        Some(Value::String(text)) => parse_rfc3339(text)?,
        Some(_) => return Err("`time` is not a JSON string: decode error".into()),
    };
    if time_unix_nanos == GO_ZERO_TIME_UNIX_NANOS {
        return Err("time is Go's zero time: Check() fails".into());
    }
    let rule = match rule {
        Some(Value::String(rule)) if !rule.is_empty() => rule.clone(),
        _ => return Err("empty or missing rule: Check() fails".into()),
    };
    let fields = match fields {
        Some(fields) if !fields.is_empty() => fields,
        _ => return Err("empty or missing output_fields: Check() fails".into()),
    };
    for key in ["k8s.ns.name", "k8s.pod.name"] {
        if let Some(value) = fields.get(key) {
            if !(value.is_null() || value.is_string()) {
                return Err(format!(
                    "`output_fields.{key}` is not a string: handler panics"
                ));
            }
        }
    }
    Ok(Accepted {
        rule,
        priority: priority.to_owned(),
        time_unix_nanos,
        output_fields: fields.keys().cloned().collect(),
    })
}

/// `PriorityType.String()` of a known lower-case name.
fn priority_string(lower: &str) -> &'static str {
    match lower {
        "emergency" => "Emergency",
        "alert" => "Alert",
        "critical" => "Critical",
        "error" => "Error",
        "warning" => "Warning",
        "notice" => "Notice",
        "info" | "informational" => "Informational",
        _ => "Debug",
    }
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in nanoseconds since the Unix epoch.
const GO_ZERO_TIME_UNIX_NANOS: i128 = -62_135_596_800 * 1_000_000_000;

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Go's `parseRFC3339` fast path; returns nanoseconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Result<i128, String> {
    let fail = || Err(format!("time {text:?} is not RFC 3339 as Go parses it"));
    let b = text.as_bytes();
    if b.len() < 19 {
        return fail();
    }
    let number = |range: std::ops::Range<usize>, min: i64, max: i64| -> Option<i64> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        (min..=max).contains(&n).then_some(n)
    };
    let (Some(year), Some(month)) = (number(0..4, 0, 9999), number(5..7, 1, 12)) else {
        return fail();
    };
    let (Some(day), Some(hour), Some(minute), Some(second)) = (
        number(8..10, 1, days_in(month, year)),
        number(11..13, 0, 23),
        number(14..16, 0, 59),
        number(17..19, 0, 59),
    ) else {
        return fail();
    };
    if !(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':') {
        return fail();
    }
    let mut rest = &b[19..];
    let mut nanos: i128 = 0;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let n = 1 + rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        // Digits beyond the ninth are ignored, as Go's parseNanoseconds does.
        let digits: Vec<u8> = rest[1..n].iter().take(9).copied().collect();
        let mut value = digits
            .iter()
            .fold(0i128, |v, d| v * 10 + i128::from(d - b'0'));
        for _ in digits.len()..9 {
            value *= 10;
        }
        nanos = value;
        rest = &rest[n..];
    }
    let offset_seconds: i64 = if rest == b"Z" {
        0
    } else {
        if rest.len() != 6 || !(rest[0] == b'+' || rest[0] == b'-') || rest[3] != b':' {
            return fail();
        }
        let two = |d: &[u8]| -> Option<i64> {
            d.iter()
                .all(u8::is_ascii_digit)
                .then(|| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0'))
        };
        match (two(&rest[1..3]), two(&rest[4..6])) {
            (Some(h), Some(m)) if h <= 23 && m <= 59 => {
                let offset = (h * 60 + m) * 60;
                if rest[0] == b'-' { -offset } else { offset }
            }
            _ => return fail(),
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Ok(i128::from(seconds) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {}

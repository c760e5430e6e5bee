//! The two test oracles of `tests/alert_wire.rs`, checked on their sources' own examples:
//!
//! - the CloudWatch Logs filter-pattern evaluator (`support::filter`) on every example of the
//!   user guide's "Filter and Pattern Syntax" page (`awsdocs/amazon-cloudwatch-logs-user-guide`,
//!   `doc_source/FilterAndPatternSyntax.md`, commit `1487b9496d8366bf7039a1efbeeb3a0702b42c50`):
//!   the JSON examples, the compound conditions, the numeric comparisons, the wildcards and the
//!   term patterns, each with the result the guide gives;
//! - falcosidekick's input check (`support::falco`) on falcosidekick's own test event (the body
//!   `testHandler` in `handlers.go` posts) and on payloads its `Check()` or decoding refuses.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use support::filter::{Outcome, matches, parse};

fn outcome(pattern: &str, message: &str) -> Outcome {
    matches(pattern, message).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn assert_match(pattern: &str, message: &str) {
    assert_eq!(
        outcome(pattern, message),
        Outcome::Match,
        "{pattern} on {message}"
    );
}

fn assert_no_match(pattern: &str, message: &str) {
    assert_eq!(
        outcome(pattern, message),
        Outcome::NoMatch,
        "{pattern} on {message}"
    );
}

/// The guide's first JSON example.
const TRAIL: &str = r#"{
  "eventType": "UpdateTrail",
  "sourceIPAddress": "111.111.111.111",
  "arrayKey": ["value", "another value"],
  "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
  "SomeObject": null,
  "ThisFlag": true
}"#;

#[test]
fn the_guides_json_examples_match_as_it_says() {
    for pattern in [
        r#"{ $.eventType = "UpdateTrail" }"#,
        "{ $.sourceIPAddress != 123.123.* }",
        r#"{ $.arrayKey[0] = "value" }"#,
        "{ $.objectList[1].id = 2 }",
        "{ $.SomeObject IS NULL }",
        "{ $.SomeOtherObject NOT EXISTS }",
        "{ $.ThisFlag IS TRUE }",
    ] {
        assert_match(pattern, TRAIL);
    }
    for pattern in [
        r#"{ $.eventType = "CreateTrail" }"#,
        "{ $.sourceIPAddress != 111.111.* }",
        r#"{ $.arrayKey[1] = "value" }"#,
        "{ $.objectList[0].id = 2 }",
        // "If arrayKey is not an array this will be false."
        r#"{ $.eventType[0] = "UpdateTrail" }"#,
        // "If the items in objectList are not objects or do not have an id property, this will
        // be false."
        "{ $.arrayKey[0].id = 2 }",
        "{ $.ThisFlag IS FALSE }",
        "{ $.eventType IS NULL }",
        "{ $.Missing IS NULL }",
        "{ $.SomeObject NOT EXISTS }",
        "{ $.eventType NOT EXISTS }",
    ] {
        assert_no_match(pattern, TRAIL);
    }
}

#[test]
fn the_guides_compound_conditions_follow_its_precedence() {
    let users = r#"{
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [
            {"id": 2, "email": "John.Doe@example.com"},
            {"id": 3, "email": "Jane.Doe@example.com"}
        ],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]]
    }"#;
    assert_match(
        r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
        users,
    );
    assert_no_match(
        r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
        users,
    );
    // && binds tighter than ||: true || (… && …).
    assert_match(
        r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }"#,
        users,
    );
    assert_no_match(
        r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }"#,
        users,
    );
    // OR pattern matching in JSON filters.
    assert_match("{$.foo = bar}", r#"{"foo": "bar"}"#);
    assert_no_match("{$.foo = baz }", r#"{"foo": "bar"}"#);
    for message in [r#"{"foo": "bar"}"#, r#"{"foo": "baz"}"#] {
        assert_match("{$.foo = bar || $.foo = baz }", message);
    }
}

#[test]
fn a_selector_on_an_array_or_object_matches_neither_equal_nor_not_equal() {
    let message = r#"{"users": [1, 2, 3], "user": {"id": 1}}"#;
    for pattern in [
        "{$.users = 1}",
        "{$.users != 1}",
        "{$.user = 1}",
        "{$.user != 1}",
    ] {
        assert_no_match(pattern, message);
    }
}

#[test]
fn the_guides_numeric_comparisons() {
    let message = r#"{
        "latency": 1500,
        "numbers": [0.005],
        "processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}],
        "errorCode": 400
    }"#;
    for pattern in [
        "{ $.latency >= 500 }",
        "{ $.numbers[0] < 10e3 }",
        "{ $.numbers[0] < 10e-3 }",
        "{ $.processes[4].averageRuntime <= 55.5 }",
        "{ $.errorCode = 400 }",
        "{ $.errorCode != 500 }",
        "{ $.latency > +1000 }",
        // The metric-value example: any value.
        "{ $.latency = * }",
    ] {
        assert_match(pattern, message);
    }
    for pattern in [
        "{ $.latency < 500 }",
        "{ $.numbers[0] > 10e-3 }",
        "{ $.processes[4].averageRuntime < 55.5 }",
        "{ $.errorCode = 500 }",
        "{ $.errorCode != 400 }",
        "{ $.latency > +1500 }",
        "{ $.missing >= 0 }",
    ] {
        assert_no_match(pattern, message);
    }
}

#[test]
fn wildcards_only_at_the_ends_of_a_string() {
    for value in ["PutEvent", "GetEvent"] {
        assert_match("{ $.e = *Event }", &json!({ "e": value }).to_string());
    }
    for value in ["EventId", "EventName"] {
        assert_match("{ $.e = Event* }", &json!({ "e": value }).to_string());
        assert_no_match("{ $.e = *Event }", &json!({ "e": value }).to_string());
    }
    // "Ev*ent will only match the actual string Ev*ent."
    assert_no_match("{ $.e = Ev*ent }", r#"{"e": "Event"}"#);
    assert_match("{ $.e = Ev*ent }", r#"{"e": "Ev*ent"}"#);
    // Quoting does not turn the wildcard off.
    assert_match(r#"{ $.e = "*vent*" }"#, r#"{"e": "PutEvents"}"#);
    assert_match(r#"{ $.e = "*" }"#, r#"{"e": ""}"#);
}

#[test]
fn the_guides_term_patterns() {
    let fatal = "[ERROR] A fatal exception has occurred";
    let exiting = "Exiting with ERRORCODE: -1";
    assert_match("\"ERROR\"", fatal);
    assert_match("\"ERROR\"", exiting);
    assert_match("\"ERROR\" - \"Exiting\"", fatal);
    assert_no_match("\"ERROR\" - \"Exiting\"", exiting);
    assert_match("ERROR Exception", "[ERROR] Caught IllegalArgumentException");
    assert_match("ERROR Exception", "[ERROR] Unhandled Exception");
    assert_no_match("ERROR Exception", fatal);
    assert_match(
        "\"Failed to process the request\"",
        "[WARN] Failed to process the request",
    );
    assert_no_match(
        "\"Failed to process the request\"",
        "[WARN] Failed to process a request",
    );
    let events = ["ERROR WARN message", "ERROR message", "WARN message"];
    let hits = |pattern: &str| -> Vec<bool> {
        events
            .iter()
            .map(|e| outcome(pattern, e) == Outcome::Match)
            .collect()
    };
    assert_eq!(hits("ERROR"), [true, true, false]);
    assert_eq!(hits("?ERROR ?WARN"), [true, true, true]);
    assert_eq!(hits("ERROR WARN"), [true, false, false]);
    assert_eq!(hits("ERROR -WARN"), [false, true, false]);
    // The empty pattern matches every event.
    assert_eq!(hits(""), [true, true, true]);
    assert_eq!(outcome("", r#"{"_aws": {}}"#), Outcome::Match);
}

#[test]
fn what_the_guide_does_not_define_is_undefined_not_guessed() {
    let message = r#"{"a": 1, "s": "x", "n": null, "b": true}"#;
    for pattern in [
        r#"{ $.missing != "x" }"#,
        r#"{ $.n = "x" }"#,
        r#"{ $.b = "true" }"#,
        r#"{ $.a = "one" }"#,
        "{ $.s > 1 }",
    ] {
        assert!(
            matches!(outcome(pattern, message), Outcome::Undefined(_)),
            "{pattern}"
        );
    }
    // Three-valued logic: a defined side can decide.
    assert_match(r#"{ $.missing != "x" || $.a = 1 }"#, message);
    assert_no_match(r#"{ $.missing != "x" && $.a = 2 }"#, message);
    assert!(matches!(
        outcome(r#"{ $.missing != "x" && $.a = 1 }"#, message),
        Outcome::Undefined(_)
    ));
    // A JSON pattern never matches a message that is not JSON.
    assert_no_match("{ $.a = 1 }", "a = 1");
}

#[test]
fn malformed_and_unsupported_patterns_are_refused() {
    for pattern in [
        "{ $.a = }",
        "{ $. = 1 }",
        "{ $.a > \"x\" }",
        "{ $.a = 1",
        "{ ($.a = 1 }",
        "{ $.a IS MAYBE }",
        "{ $.a EXISTS }",
        "{ $[0] = 1 }",
        "{ $.a = x@y }",
        "[ip, user, status_code = 4*]",
        "%ERROR%",
        "ERROR:",
    ] {
        assert!(parse(pattern).is_err(), "{pattern} should be refused");
    }
}

/// The body falcosidekick's `testHandler` posts to its own main handler (`handlers.go`).
fn falcosidekick_test_event() -> serde_json::Value {
    json!({
        "output": "This is a test from falcosidekick",
        "source": "debug",
        "priority": "Debug",
        "hostname": "falcosidekick",
        "rule": "Test rule",
        "time": "2026-08-17T09:47:21Z",
        "output_fields": {"proc.name": "falcosidekick", "user.name": "falcosidekick"},
        "tags": ["test", "example"],
    })
}

#[test]
fn falcosidekick_accepts_its_own_test_event() {
    let accepted = support::falco::check(&falcosidekick_test_event().to_string()).unwrap();
    assert_eq!(accepted.rule, "Test rule");
    assert_eq!(accepted.priority, "Debug");
    assert_eq!(accepted.time_unix_nanos, 1_786_960_041_000_000_000);
    // Priorities are case-insensitive; `info` is Informational; unknown members are ignored.
    let mut event = falcosidekick_test_event();
    event["priority"] = json!("info");
    event["ecs"] = json!({"cluster": "c"});
    event["Hostname"] = json!(null);
    event.as_object_mut().unwrap().remove("hostname");
    assert_eq!(
        support::falco::check(&event.to_string()).unwrap().priority,
        "Informational"
    );
}

#[test]
fn falcosidekick_refuses_what_check_or_decoding_refuses() {
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "empty output_fields",
            Box::new(|e| e["output_fields"] = json!({})),
        ),
        (
            "no output_fields",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("output_fields");
            }),
        ),
        ("empty rule", Box::new(|e| e["rule"] = json!(""))),
        (
            "no rule",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("rule");
            }),
        ),
        (
            "unknown priority",
            Box::new(|e| e["priority"] = json!("Loud")),
        ),
        ("numeric priority", Box::new(|e| e["priority"] = json!(3))),
        ("null priority", Box::new(|e| e["priority"] = json!(null))),
        ("null time", Box::new(|e| e["time"] = json!(null))),
        (
            "numeric time",
            Box::new(|e| e["time"] = json!(1_786_960_041)),
        ),
        (
            "zero time",
            Box::new(|e| e["time"] = json!("0001-01-01T00:00:00Z")),
        ),
        (
            "zero time with an offset",
            Box::new(|e| e["time"] = json!("0001-01-01T01:00:00+01:00")),
        ),
        (
            "month 13",
            Box::new(|e| e["time"] = json!("2026-13-01T00:00:00Z")),
        ),
        (
            "30 February",
            Box::new(|e| e["time"] = json!("2026-02-30T00:00:00Z")),
        ),
        (
            "no zone",
            Box::new(|e| e["time"] = json!("2026-08-17T09:47:21")),
        ),
        (
            "space separator",
            Box::new(|e| e["time"] = json!("2026-08-17 09:47:21Z")),
        ),
        ("numeric output", Box::new(|e| e["output"] = json!(5))),
        ("numeric tag", Box::new(|e| e["tags"] = json!(["a", 1]))),
        ("tags not an array", Box::new(|e| e["tags"] = json!("a"))),
        (
            "output_fields not an object",
            Box::new(|e| e["output_fields"] = json!(["a"])),
        ),
        (
            "k8s.ns.name not a string",
            Box::new(|e| e["output_fields"]["k8s.ns.name"] = json!(5)),
        ),
        (
            "two keys for one member",
            Box::new(|e| e["Rule"] = json!("Other rule")),
        ),
    ];
    for (what, mutate) in cases {
        let mut event = falcosidekick_test_event();
        mutate(&mut event);
        assert!(
            support::falco::check(&event.to_string()).is_err(),
            "{what}: {event}"
        );
    }
    assert!(support::falco::check("[]").is_err());
    assert!(support::falco::check("null").is_err());
    assert!(support::falco::check("{").is_err());
}

#[test]
fn falcosidekick_times_are_parsed_as_go_does() {
    for (text, nanos) in [
        (
            "2023-05-25T13:44:05.478445995Z",
            1_685_022_245_478_445_995i128,
        ),
        ("2026-05-28T20:26:40.000Z", 1_780_000_000_000_000_000),
        ("2026-05-28T22:26:40+02:00", 1_780_000_000_000_000_000),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),
        ("1970-01-01T00:00:00.1234567891Z", 123_456_789),
    ] {
        assert_eq!(support::falco::parse_rfc3339(text), Ok(nanos), "{text}");
    }
}

#[test]
fn documented_patterns_are_found_in_markdown_and_templates() {
    let markdown = r#"
Use `{ $.priority = "Error" }` or `{ ($.a = 1) || ($.b = 2) }`; not `dimensions={Family=$.ecs.family}`.

| `{ $.a = 1 \|\| $.b = 2 }` | in a table |

```sh
aws logs put-subscription-filter --filter-name x --filter-pattern '' \
aws logs put-metric-filter --filter-pattern '{ $.rule = * }' --metric-transformations m
```
"#;
    let found: Vec<String> = support::filter::patterns_in_markdown("doc.md", markdown)
        .into_iter()
        .map(|f| f.pattern)
        .collect();
    assert_eq!(
        found,
        [
            r#"{ $.priority = "Error" }"#,
            "{ ($.a = 1) || ($.b = 2) }",
            "{ $.a = 1 || $.b = 2 }",
            "",
            "{ $.rule = * }"
        ]
    );
    let template =
        "  Filter:\n    Properties:\n      FilterPattern: '{ $.a = \"it''s\" }'\n      Other: x\n";
    let found = support::filter::patterns_in_template("t.yaml", template);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pattern, r#"{ $.a = "it's" }"#);
    assert_eq!(found[0].at, "t.yaml:3");
}

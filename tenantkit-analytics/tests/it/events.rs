//! The ingestion contract's validation: every limit crossed one by one, all
//! or nothing per batch, JSON arrays, single objects and NDJSON.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tenantkit::problem::Problem;
use tenantkit_analytics::event::{
    Body, MAX_BATCH, MAX_METADATA, MAX_NAME, MAX_USER_ID, parse_batch,
};

fn now() -> DateTime<Utc> {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn one(event: Value) -> Result<tenantkit_analytics::event::Event, String> {
    parse_batch(event.to_string().as_bytes(), Body::Json, now())
        .map(|mut events| events.remove(0))
        .map_err(|e| {
            e.invalid
                .first()
                .map_or(e.detail.clone(), |i| i.reason.clone())
        })
}

#[test]
fn a_minimal_event_gets_defaults() {
    let event = one(json!({ "event_type": "page_view" })).unwrap();
    assert_eq!(event.timestamp, now(), "received now");
    assert!(event.metadata.is_empty());
    assert_eq!((event.user_id, event.name), (None, None));
}

#[test]
fn event_types_are_built_in_or_custom_names() {
    for ok in [
        "page_view",
        "api_call",
        "feature_used",
        "billing.invoice:paid-v2",
        &"a".repeat(64),
    ] {
        assert!(one(json!({ "event_type": ok })).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Page_View",
        "page view",
        "émoji",
        "a/b",
        &"a".repeat(65),
    ] {
        let reason = one(json!({ "event_type": bad })).unwrap_err();
        assert!(reason.contains("event_type"), "{bad}: {reason}");
    }
    assert!(
        one(json!({ "user_id": "u1" }))
            .unwrap_err()
            .contains("event_type"),
        "it is required"
    );
}

#[test]
fn user_ids_and_names_keep_their_lengths() {
    let at = |field: &str, n: usize| one(json!({ "event_type": "x", field: "u".repeat(n) }));
    assert!(at("user_id", MAX_USER_ID).is_ok());
    assert!(
        at("user_id", MAX_USER_ID + 1)
            .unwrap_err()
            .contains("user_id")
    );
    assert!(at("user_id", 0).unwrap_err().contains("user_id"));
    assert!(at("name", MAX_NAME).is_ok());
    assert!(at("name", MAX_NAME + 1).unwrap_err().contains("name"));
    // Characters, not bytes.
    assert!(one(json!({ "event_type": "x", "user_id": "é".repeat(MAX_USER_ID) })).is_ok());
    assert!(
        one(json!({ "event_type": "x", "name": "a\u{7}b" }))
            .unwrap_err()
            .contains("control")
    );
}

#[test]
fn metadata_is_an_object_of_at_most_8_kib() {
    // `{"k":"…"}` is 8 bytes of framing.
    let fits = json!({ "event_type": "x", "metadata": { "k": "v".repeat(MAX_METADATA - 8) } });
    assert!(one(fits).is_ok());
    let over = json!({ "event_type": "x", "metadata": { "k": "v".repeat(MAX_METADATA - 7) } });
    assert!(one(over).unwrap_err().contains("metadata"));
    for not_object in [json!([1, 2]), json!("text"), json!(3)] {
        assert!(one(json!({ "event_type": "x", "metadata": not_object })).is_err());
    }
}

#[test]
fn timestamps_are_at_most_5_minutes_ahead_and_35_days_back() {
    let at = |t: DateTime<Utc>| one(json!({ "event_type": "x", "timestamp": t }));
    assert!(at(now() + Duration::minutes(5)).is_ok());
    assert!(
        at(now() + Duration::minutes(5) + Duration::seconds(1))
            .unwrap_err()
            .contains("future")
    );
    assert!(at(now() - Duration::days(35)).is_ok());
    assert!(
        at(now() - Duration::days(35) - Duration::seconds(1))
            .unwrap_err()
            .contains("past")
    );
    assert!(one(json!({ "event_type": "x", "timestamp": "yesterday" })).is_err());
}

#[test]
fn unknown_fields_are_refused() {
    let reason = one(json!({ "event_type": "x", "tenant_id": "someone-else" })).unwrap_err();
    assert!(reason.contains("tenant_id"), "{reason}");
}

#[test]
fn a_batch_is_all_or_nothing_and_names_every_bad_event() {
    let body = json!([
        { "event_type": "page_view" },
        { "event_type": "BAD" },
        { "event_type": "api_call" },
        { "event_type": "x", "user_id": "" },
        "not an object",
    ]);
    let err = parse_batch(body.to_string().as_bytes(), Body::Json, now()).unwrap_err();
    assert_eq!(
        err.invalid.iter().map(|i| i.index).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert!(
        err.detail.contains("3 of 5") && err.detail.contains("none was stored"),
        "{}",
        err.detail
    );
    let problem = Problem::from(&err);
    assert_eq!(problem.status, 422);
    let problem = serde_json::to_value(&problem).unwrap();
    assert_eq!(problem["invalid"][0]["index"], 1);
    assert!(
        problem["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("event_type")
    );
}

#[test]
fn at_most_1000_events_per_request() {
    let batch = |n: usize| Value::Array(vec![json!({ "event_type": "x" }); n]).to_string();
    assert_eq!(
        parse_batch(batch(MAX_BATCH).as_bytes(), Body::Json, now())
            .unwrap()
            .len(),
        MAX_BATCH
    );
    let err = parse_batch(batch(MAX_BATCH + 1).as_bytes(), Body::Json, now()).unwrap_err();
    assert!(
        err.detail.contains("1001") && err.detail.contains("1000"),
        "{}",
        err.detail
    );
    let err = parse_batch(b"[]", Body::Json, now()).unwrap_err();
    assert!(err.detail.contains("no event"));
}

#[test]
fn ndjson_is_one_event_per_line() {
    let body = "{\"event_type\":\"page_view\"}\n\n{\"event_type\":\"api_call\",\"name\":\"GET /users\"}\r\n";
    let events = parse_batch(body.as_bytes(), Body::Ndjson, now()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].name.as_deref(), Some("GET /users"));
    let err = parse_batch(b"{\"event_type\":\"x\"}\n{oops\n", Body::Ndjson, now()).unwrap_err();
    assert_eq!(err.invalid[0].index, 1);
    assert!(err.invalid[0].reason.contains("not JSON"));
    let lines = "{\"event_type\":\"x\"}\n".repeat(MAX_BATCH + 1);
    assert!(parse_batch(lines.as_bytes(), Body::Ndjson, now()).is_err());
    assert!(parse_batch(&[0xff, 0xfe], Body::Ndjson, now()).is_err());
}

#[test]
fn bodies_that_are_not_events_are_refused_whole() {
    for body in [&b"not json"[..], b"42", b"\"text\"", b"null"] {
        let err = parse_batch(body, Body::Json, now()).unwrap_err();
        assert!(err.invalid.is_empty(), "{err:?}");
    }
}

#[test]
fn nul_characters_are_refused_anywhere_in_an_event_naming_the_path() {
    for (event, path) in [
        (
            json!({ "event_type": "x", "metadata": { "k": "a\u{0}b" } }),
            "metadata.k",
        ),
        (
            json!({ "event_type": "x", "metadata": { "k\u{0}": 1 } }),
            "metadata.k",
        ),
        (
            json!({ "event_type": "x", "metadata": { "a": [{ "b": "\u{0}" }] } }),
            "metadata.a[0].b",
        ),
        (json!({ "event_type": "x", "user_id": "u\u{0}" }), "user_id"),
        (json!({ "event_type": "x", "name": "\u{0}" }), "name"),
    ] {
        let reason = one(event.clone()).unwrap_err();
        assert!(reason.contains(path), "{event}: {reason}");
    }
    // The same rule for an event built in Rust (`Analytics::record`).
    let built = tenantkit_analytics::event::NewEvent {
        event_type: "x".into(),
        metadata: Some(
            json!({ "deep": { "k": "\u{0}" } })
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..Default::default()
    };
    let reason = built.validate(now()).unwrap_err();
    assert!(reason.contains("metadata.deep.k"), "{reason}");
}

#[test]
fn duplicate_keys_are_refused_inside_metadata_too() {
    let body = br#"[{"event_type": "x"}, {"event_type": "x", "metadata": {"k": 1, "k": 2}}]"#;
    let err = parse_batch(body, Body::Json, now()).unwrap_err();
    assert_eq!(err.invalid.len(), 1);
    assert_eq!(err.invalid[0].index, 1);
    assert!(
        err.invalid[0]
            .reason
            .contains("`metadata.k` is given twice"),
        "{err:?}"
    );
    let top = br#"{"event_type": "x", "event_type": "y"}"#;
    assert!(parse_batch(top, Body::Json, now()).is_err());
    let ndjson = b"{\"event_type\": \"x\", \"metadata\": {\"a\": {\"b\": 1, \"b\": 1}}}\n";
    let err = parse_batch(ndjson, Body::Ndjson, now()).unwrap_err();
    assert!(err.invalid[0].reason.contains("metadata.a.b"), "{err:?}");
}

#[test]
fn timestamps_are_kept_to_the_microsecond_both_databases_store() {
    let event =
        one(json!({ "event_type": "x", "timestamp": "2026-11-26T23:59:59.999999999Z" })).unwrap();
    assert_eq!(
        event
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "2026-11-26T23:59:59.999999Z"
    );
}

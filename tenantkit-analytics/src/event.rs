//! The event model and the ingestion contract's validation: what an event
//! is, the limits it must keep, and how a request body (one event, a JSON
//! array, or NDJSON) becomes a batch that is stored whole or not at all.
//!
//! ```
//! use chrono::Utc;
//! use tenantkit_analytics::event::{Body, parse_batch};
//!
//! let body = br#"[{"event_type": "page_view", "user_id": "u1"},
//!                 {"event_type": "feature_used", "name": "export", "metadata": {"rows": 10}}]"#;
//! let events = parse_batch(body, Body::Json, Utc::now()).unwrap();
//! assert_eq!(events.len(), 2);
//!
//! let bad = parse_batch(br#"[{"event_type": "Bad Type"}, {"event_type": "ok"}]"#, Body::Json, Utc::now());
//! let problems = bad.unwrap_err();
//! assert_eq!(problems.invalid[0].index, 0);
//! ```

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};
use tenantkit::problem::Problem;

/// At most this many events per request.
pub const MAX_BATCH: usize = 1000;
/// The largest `metadata`, serialized, in bytes.
pub const MAX_METADATA: usize = 8 * 1024;
/// The longest `user_id`, in characters.
pub const MAX_USER_ID: usize = 128;
/// The longest `name`, in characters.
pub const MAX_NAME: usize = 200;
/// How far ahead of now a `timestamp` may be.
pub const MAX_AHEAD: Duration = Duration::minutes(5);
/// How far back a `timestamp` may be.
pub const MAX_BEHIND: Duration = Duration::days(35);

/// The built-in event types; any other name matching `[a-z0-9_.:-]{1,64}`
/// is a custom type.
pub const BUILT_IN: [&str; 3] = ["page_view", "api_call", "feature_used"];

/// An event as sent (`POST /analytics/events`, `Analytics::record`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEvent {
    /// `page_view`, `api_call`, `feature_used`, or a custom `[a-z0-9_.:-]{1,64}`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9_.:-]{1,64}$"))]
    pub event_type: String,
    /// The tenant's own end-user id (1 to 128 characters, no control
    /// characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub user_id: Option<String>,
    /// What it concerns, e.g. the feature (1 to 200 characters, no control
    /// characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// Anything else, a JSON object of at most 8 KiB (as JSON).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
    /// When it happened (default: when received); at most 5 minutes ahead
    /// and 35 days back.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// A valid event, ready to store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Its type.
    pub event_type: String,
    /// The tenant's end-user id.
    pub user_id: Option<String>,
    /// What it concerns.
    pub name: Option<String>,
    /// A JSON object (empty when none was sent).
    pub metadata: Map<String, Value>,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

/// Whether `name` is a valid event type: `[a-z0-9_.:-]{1,64}`.
pub fn valid_type(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b))
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    let count = value.chars().count();
    if count == 0 || count > max {
        return Err(format!(
            "`{field}` must be 1 to {max} characters (got {count})"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{field}` must not contain control characters"));
    }
    Ok(Some(value))
}

impl NewEvent {
    /// Checks every limit against `now` (the receiving time, also the
    /// default timestamp); `Err` says which and why.
    pub fn validate(self, now: DateTime<Utc>) -> Result<Event, String> {
        if !valid_type(&self.event_type) {
            return Err(format!(
                "`event_type` must match [a-z0-9_.:-]{{1,64}} (`page_view`, `api_call`, `feature_used` or your own); got `{}`",
                self.event_type.chars().take(80).collect::<String>()
            ));
        }
        let user_id = text("user_id", self.user_id, MAX_USER_ID)?;
        let name = text("name", self.name, MAX_NAME)?;
        let metadata = self.metadata.unwrap_or_default();
        check_text(&metadata)?;
        let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |v| v.len());
        if size > MAX_METADATA {
            return Err(format!(
                "`metadata` is {size} bytes as JSON; at most {MAX_METADATA} are accepted"
            ));
        }
        // Stored to the microsecond (PostgreSQL's precision; SQLite keeps
        // the same), so the rollups bucket exactly the stored instant.
        let timestamp = tenantkit::validate::storage_precision(self.timestamp.unwrap_or(now));
        if timestamp > now + MAX_AHEAD {
            return Err("`timestamp` is more than 5 minutes in the future".into());
        }
        if timestamp < now - MAX_BEHIND {
            return Err("`timestamp` is more than 35 days in the past".into());
        }
        Ok(Event {
            event_type: self.event_type,
            user_id,
            name,
            metadata,
            timestamp,
        })
    }
}

/// The text rule ([`tenantkit::validate::text`]) for every key and string
/// of `metadata`, at any depth, naming the path.
pub(crate) fn check_text(metadata: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in metadata {
        tenantkit::validate::text("metadata", key).map_err(|e| e.to_string())?;
        tenantkit::validate::json::check_field(&format!("metadata.{key}"), value)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How a request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `application/json`: one event object, or an array of them.
    Json,
    /// `application/x-ndjson`: one event object per line (blank lines skipped).
    Ndjson,
}

/// One refused event of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidEvent {
    /// Its position in the batch (0-based; the line for NDJSON, blank lines
    /// not counted).
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// Why a batch was refused; nothing of it is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct BatchError {
    /// What is wrong with the batch as a whole.
    pub detail: String,
    /// Each refused event, when events were refused.
    pub invalid: Vec<InvalidEvent>,
}

impl BatchError {
    fn whole(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            invalid: Vec::new(),
        }
    }
}

impl From<&BatchError> for Problem {
    fn from(err: &BatchError) -> Self {
        let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid events")
            .with_detail(err.detail.clone());
        if err.invalid.is_empty() {
            problem
        } else {
            problem.with_extension(
                "invalid",
                serde_json::to_value(&err.invalid).unwrap_or_default(),
            )
        }
    }
}

/// Parses and validates a request body: every event valid, or a
/// [`BatchError`] naming each bad one by index (and then nothing is stored).
pub fn parse_batch(
    body: &[u8],
    framing: Body,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, BatchError> {
    // Each event is kept as its raw text and parsed once, straight into a
    // `NewEvent`: no intermediate tree of the whole batch.
    let items: Vec<Result<&str, String>> = match framing {
        Body::Json => {
            let text = std::str::from_utf8(body)
                .map_err(|_| BatchError::whole("the body is not UTF-8"))?;
            match text.trim_start().as_bytes().first() {
                Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
                    .map_err(|e| {
                        BatchError::whole(format!("the body is not a JSON array of events: {e}"))
                    })?
                    .into_iter()
                    .map(|raw| Ok(raw.get()))
                    .collect(),
                Some(b'{') => vec![Ok(text)],
                _ => {
                    return Err(BatchError::whole(
                        "the body must be an event object or an array of them",
                    ));
                }
            }
        }
        Body::Ndjson => std::str::from_utf8(body)
            .map_err(|_| BatchError::whole("the body is not UTF-8"))?
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(Ok)
            .collect(),
    };
    if items.is_empty() {
        return Err(BatchError::whole("the batch holds no event"));
    }
    if items.len() > MAX_BATCH {
        return Err(BatchError::whole(format!(
            "the batch holds {} events; at most {MAX_BATCH} per request",
            items.len()
        )));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let checked = item.and_then(|raw| {
            // The JSON shape rule (no duplicate key, no NUL, at any depth),
            // naming the path inside the event.
            match tenantkit::validate::json::check(raw.as_bytes()) {
                Err(refused) if !refused.syntax => return Err(refused.message),
                _ => {}
            }
            if !raw.trim_start().starts_with('{') {
                return Err(match serde_json::from_str::<Value>(raw) {
                    Err(e) => format!("not JSON: {e}"),
                    Ok(_) => "an event must be a JSON object".to_owned(),
                });
            }
            serde_json::from_str::<NewEvent>(raw)
                .map_err(|e| match e.classify() {
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                        format!("not JSON: {e}")
                    }
                    _ => e.to_string(),
                })?
                .validate(now)
        });
        match checked {
            Ok(event) => events.push(event),
            Err(reason) => invalid.push(InvalidEvent { index, reason }),
        }
    }
    if invalid.is_empty() {
        Ok(events)
    } else {
        let first = &invalid[0];
        Err(BatchError {
            detail: format!(
                "{} of {} events are invalid (the first, #{}: {}); none was stored",
                invalid.len(),
                invalid.len() + events.len(),
                first.index,
                first.reason
            ),
            invalid,
        })
    }
}

//! The event types endpoints can subscribe to, each with a description, a
//! JSON Schema (draft 2020-12) for its `data` and an example payload
//! (`GET /webhooks/event-types`). An embedding application, or the server's
//! configuration, adds its own. A schema is compiled once, when its type is
//! added; every published message's `data` is checked against it
//! ([`EventCatalogue::check`]), and each example must satisfy its own.
//!
//! ```
//! use serde_json::json;
//! use tenantkit_webhooks::catalogue::{EventCatalogue, Refused};
//!
//! let catalogue = EventCatalogue::tenantkit()
//!     .with_schema(
//!         "invoice.paid",
//!         "An invoice was paid",
//!         json!({
//!             "type": "object",
//!             "required": ["invoice_id", "amount"],
//!             "properties": {
//!                 "invoice_id": { "type": "string" },
//!                 "amount": { "type": "integer", "minimum": 0 }
//!             }
//!         }),
//!         json!({ "invoice_id": "in_1", "amount": 4200 }),
//!     )
//!     .unwrap();
//! assert!(catalogue.get("user.created").is_some());
//! assert!(catalogue.check("invoice.paid", &json!({ "invoice_id": "in_2", "amount": 1 })).is_ok());
//! let Err(Refused::Schema(violations)) = catalogue.check("invoice.paid", &json!({ "amount": -5 })) else {
//!     panic!("refused")
//! };
//! let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
//! assert!(paths.contains(&"") && paths.contains(&"/amount"), "{paths:?}");
//! assert!(catalogue.clone().with("Bad Name", "", json!({})).is_err());
//! ```

use std::{collections::HashMap, sync::Arc};

use serde::Serialize;
use serde_json::{Value, json};

/// One event type.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventType {
    /// Its name, e.g. `user.created`.
    pub name: String,
    /// What it announces.
    pub description: String,
    /// The JSON Schema (draft 2020-12) its `data` satisfies; absent: any
    /// JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<Value>,
    /// An example of the `data` it carries (it satisfies the schema).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub example: Value,
}

/// Where and why `data` does not satisfy its event type's schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// A JSON Pointer into `data` (`""` is `data` itself).
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

/// Why [`EventCatalogue::check`] refused `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such event type in the catalogue.
    Unknown,
    /// `data` does not satisfy the type's schema: the first violations, at
    /// most [`MAX_VIOLATIONS`].
    Schema(Vec<Violation>),
}

/// At most this many violations are reported for one payload.
pub const MAX_VIOLATIONS: usize = 10;

/// The known event types, in the order they were added, with their
/// compiled schemas. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventCatalogue {
    types: Vec<EventType>,
    validators: HashMap<String, Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for EventCatalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCatalogue")
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EventCatalogue {
    fn eq(&self, other: &Self) -> bool {
        self.types == other.types
    }
}

/// Subscribes an endpoint to every event type.
pub const ALL_EVENTS: &str = "*";

/// Whether `name` is a valid event type name: `[a-z0-9_.:-]{1,64}`,
/// starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

impl EventCatalogue {
    /// The events the tenantkit reference server publishes, with their schemas.
    pub fn tenantkit() -> Self {
        let time = json!({ "type": "string", "format": "date-time" });
        let maybe_time = json!({ "type": ["string", "null"], "format": "date-time" });
        let id = json!({ "type": "string", "format": "uuid" });
        let user_schema = json!({
            "type": "object",
            "required": ["id", "tenant_id", "email", "role", "created_at"],
            "properties": {
                "id": id, "tenant_id": id,
                "email": { "type": "string", "format": "email" },
                "role": { "enum": ["member", "admin", "owner"] },
                "created_at": time,
            },
            "additionalProperties": false
        });
        let user = json!({
            "id": "01935c9e-7a10-7000-8000-000000000001",
            "tenant_id": "01935c9e-7a10-7000-8000-0000000000aa",
            "email": "ann@acme.example",
            "role": "admin",
            "created_at": "2026-11-27T10:00:00Z"
        });
        let api_key_schema = json!({
            "type": "object",
            "required": ["id", "tenant_id", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"],
            "properties": {
                "id": id, "tenant_id": id,
                "name": { "type": "string" },
                "prefix": { "type": "string" },
                "scopes": { "type": "array", "items": { "type": "string" } },
                "created_at": time, "last_used_at": maybe_time, "revoked_at": maybe_time,
            },
            "additionalProperties": false
        });
        let api_key = json!({
            "id": "01935c9e-7a10-7000-8000-000000000002",
            "tenant_id": "01935c9e-7a10-7000-8000-0000000000aa",
            "name": "ci",
            "prefix": "tk_3f9a2c1b",
            "scopes": ["users:read"],
            "created_at": "2026-11-27T10:00:00Z",
            "last_used_at": null,
            "revoked_at": null
        });
        let maybe_text = json!({ "type": ["string", "null"] });
        let subscription_schema = json!({
            "type": "object",
            "required": ["plan", "status", "previous_plan", "previous_status", "current_period_end", "cancel_at_period_end"],
            "properties": {
                "plan": { "type": "string" },
                "status": { "type": "string" },
                "previous_plan": maybe_text,
                "previous_status": maybe_text,
                "current_period_end": maybe_time,
                "cancel_at_period_end": { "type": "boolean" },
            },
            "additionalProperties": false
        });
        let subscription = json!({
            "plan": "pro",
            "status": "active",
            "previous_plan": "free",
            "previous_status": null,
            "current_period_end": "2026-12-27T10:00:00Z",
            "cancel_at_period_end": false
        });
        let test_schema = json!({
            "type": "object",
            "required": ["webhook_id", "message"],
            "properties": { "webhook_id": id, "message": { "type": "string" } },
            "additionalProperties": false
        });
        let test = json!({
            "webhook_id": "01935c9e-7a10-7000-8000-000000000003",
            "message": "hello from tenantkit"
        });
        [
            (
                "user.created",
                "A user was added to the tenant",
                &user_schema,
                &user,
            ),
            (
                "user.updated",
                "A user's e-mail or role changed",
                &user_schema,
                &user,
            ),
            (
                "user.deleted",
                "A user was removed from the tenant",
                &user_schema,
                &user,
            ),
            (
                "api_key.created",
                "An API key was created (never its secret)",
                &api_key_schema,
                &api_key,
            ),
            (
                "api_key.revoked",
                "An API key was revoked",
                &api_key_schema,
                &api_key,
            ),
            (
                "subscription.updated",
                "The tenant's plan or subscription status changed (from Stripe)",
                &subscription_schema,
                &subscription,
            ),
            (
                "webhook.test",
                "Sent by POST /webhooks/{id}/test",
                &test_schema,
                &test,
            ),
        ]
        .into_iter()
        .try_fold(
            Self::default(),
            |catalogue, (name, description, schema, example)| {
                catalogue.with_schema(name, description, schema.clone(), example.clone())
            },
        )
        .expect("the built-in event types are valid")
    }

    /// Adds an event type of the embedding application whose `data` may be
    /// any JSON object; `Err` when the name is not valid or already taken.
    pub fn with(self, name: &str, description: &str, example: Value) -> Result<Self, String> {
        self.add(name, description, None, example)
    }

    /// Adds an event type whose `data` must satisfy `schema` (JSON Schema
    /// draft 2020-12, formats checked, no remote references); `Err` when the
    /// name is not valid or taken, the schema does not compile, or
    /// `example` does not satisfy it.
    pub fn with_schema(
        self,
        name: &str,
        description: &str,
        schema: Value,
        example: Value,
    ) -> Result<Self, String> {
        self.add(name, description, Some(schema), example)
    }

    fn add(
        mut self,
        name: &str,
        description: &str,
        schema: Option<Value>,
        example: Value,
    ) -> Result<Self, String> {
        if !valid_name(name) {
            return Err(format!(
                "event type `{name}` must be 1 to 64 of a-z, 0-9, `_`, `.`, `:` and `-`"
            ));
        }
        if self.get(name).is_some() {
            return Err(format!("event type `{name}` is already in the catalogue"));
        }
        if !example.is_object() {
            return Err(format!(
                "event type `{name}`: its example must be a JSON object"
            ));
        }
        if let Some(schema) = &schema {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(schema)
                .map_err(|e| {
                    format!("event type `{name}`: its schema is not a valid JSON Schema: {e}")
                })?;
            let violations = violations(&validator, &example);
            if let Some(first) = violations.first() {
                return Err(format!(
                    "event type `{name}`: its example does not satisfy its schema: at `{}`: {}",
                    first.path, first.reason
                ));
            }
            self.validators.insert(name.to_owned(), Arc::new(validator));
        }
        self.types.push(EventType {
            name: name.into(),
            description: description.into(),
            schema,
            example,
        });
        Ok(self)
    }

    /// The event type called `name`.
    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Every event type.
    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// Whether `data` may be published as `event_type`: a known type, and
    /// `data` satisfies its schema.
    pub fn check(&self, event_type: &str, data: &Value) -> Result<(), Refused> {
        if self.get(event_type).is_none() {
            return Err(Refused::Unknown);
        }
        match self.validators.get(event_type) {
            Some(validator) => {
                let found = violations(validator, data);
                if found.is_empty() {
                    Ok(())
                } else {
                    Err(Refused::Schema(found))
                }
            }
            None => Ok(()),
        }
    }
}

/// The first [`MAX_VIOLATIONS`] violations of `data`, each reason at most
/// 200 characters.
fn violations(validator: &jsonschema::Validator, data: &Value) -> Vec<Violation> {
    validator
        .iter_errors(data)
        .take(MAX_VIOLATIONS)
        .map(|e| {
            let reason = e.to_string();
            let reason = match reason.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &reason[..cut]),
                None => reason,
            };
            Violation {
                path: e.instance_path().as_str().to_owned(),
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount() -> Value {
        json!({
            "type": "object",
            "required": ["amount"],
            "properties": { "amount": { "type": "integer", "minimum": 0 } }
        })
    }

    #[test]
    fn a_schema_is_compiled_once_and_checked_with_its_example() {
        let err = EventCatalogue::default()
            .with_schema("a.b", "", json!({ "type": "no-such-type" }), json!({}))
            .unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        let err = EventCatalogue::default()
            .with_schema("a.b", "", amount(), json!({ "amount": -1 }))
            .unwrap_err();
        assert!(
            err.contains("example does not satisfy") && err.contains("/amount"),
            "{err}"
        );
        let err = EventCatalogue::default()
            .with_schema("a.b", "", amount(), json!([1]))
            .unwrap_err();
        assert!(err.contains("must be a JSON object"), "{err}");
        let catalogue = EventCatalogue::default()
            .with_schema("a.b", "", amount(), json!({ "amount": 1 }))
            .unwrap();
        assert!(catalogue.check("a.b", &json!({ "amount": 0 })).is_ok());
        assert_eq!(catalogue.check("a.c", &json!({})), Err(Refused::Unknown));
    }

    #[test]
    fn remote_references_are_never_fetched() {
        let schema = json!({ "$ref": "http://169.254.169.254/latest/meta-data" });
        let err = EventCatalogue::default()
            .with_schema("a.b", "", schema, json!({}))
            .unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }

    #[test]
    fn formats_are_checked_and_violations_are_bounded() {
        let schema = json!({
            "type": "object",
            "properties": { "at": { "type": "string", "format": "date-time" } },
            "additionalProperties": { "type": "integer" }
        });
        let catalogue = EventCatalogue::default()
            .with_schema("a.b", "", schema, json!({ "at": "2026-12-07T10:00:00Z" }))
            .unwrap();
        let Err(Refused::Schema(found)) = catalogue.check("a.b", &json!({ "at": "yesterday" }))
        else {
            panic!("a date-time is checked")
        };
        assert_eq!(found[0].path, "/at");
        let many: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i}"), json!("x"))).collect();
        let Err(Refused::Schema(found)) = catalogue.check("a.b", &Value::Object(many)) else {
            panic!("refused")
        };
        assert_eq!(found.len(), MAX_VIOLATIONS);
        let long = json!({ "at": "y".repeat(10_000) });
        let Err(Refused::Schema(found)) = catalogue.check("a.b", &long) else {
            panic!("refused")
        };
        assert!(
            found[0].reason.chars().count() <= 201,
            "a reason is kept short"
        );
    }

    #[test]
    fn the_built_in_types_have_schemas_their_examples_satisfy() {
        let catalogue = EventCatalogue::tenantkit();
        for t in catalogue.types() {
            assert!(t.schema.is_some(), "{}", t.name);
            assert_eq!(catalogue.check(&t.name, &t.example), Ok(()), "{}", t.name);
        }
    }
}

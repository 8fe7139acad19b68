//! The event types endpoints can subscribe to, each with an example payload
//! (`GET /webhooks/event-types`). An embedding application adds its own.
//!
//! ```
//! use tenantkit_webhooks::catalogue::EventCatalogue;
//!
//! let catalogue = EventCatalogue::tenantkit()
//!     .with("invoice.paid", "An invoice was paid", serde_json::json!({ "invoice_id": "in_1" }))
//!     .unwrap();
//! assert!(catalogue.get("user.created").is_some());
//! assert!(catalogue.get("invoice.paid").is_some());
//! assert!(catalogue.with("Bad Name", "", serde_json::json!({})).is_err());
//! ```

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
    /// An example of the `data` it carries.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub example: Value,
}

/// The known event types, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventCatalogue {
    types: Vec<EventType>,
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
    /// The events the tenantkit reference server publishes.
    pub fn tenantkit() -> Self {
        let user = json!({
            "id": "01935c9e-7a10-7000-8000-000000000001",
            "tenant_id": "01935c9e-7a10-7000-8000-0000000000aa",
            "email": "ann@acme.example",
            "role": "admin",
            "created_at": "2026-11-27T10:00:00Z"
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
        let mut catalogue = Self::default();
        for (name, description, example) in [
            (
                "user.created",
                "A user was added to the tenant",
                user.clone(),
            ),
            (
                "user.updated",
                "A user's e-mail or role changed",
                user.clone(),
            ),
            ("user.deleted", "A user was removed from the tenant", user),
            (
                "api_key.created",
                "An API key was created (never its secret)",
                api_key.clone(),
            ),
            ("api_key.revoked", "An API key was revoked", api_key),
            (
                "subscription.updated",
                "The tenant's plan or subscription status changed (from Stripe)",
                json!({ "plan": "pro", "status": "active", "current_period_end": "2026-12-27T10:00:00Z" }),
            ),
            (
                "webhook.test",
                "Sent by POST /webhooks/{id}/test",
                json!({ "webhook_id": "01935c9e-7a10-7000-8000-000000000003", "message": "hello from tenantkit" }),
            ),
        ] {
            catalogue.types.push(EventType {
                name: name.into(),
                description: description.into(),
                example,
            });
        }
        catalogue
    }

    /// Adds an event type of the embedding application; `Err` when the name
    /// is not valid or already taken.
    pub fn with(mut self, name: &str, description: &str, example: Value) -> Result<Self, String> {
        if !valid_name(name) {
            return Err(format!(
                "event type `{name}` must be 1 to 64 of a-z, 0-9, `_`, `.`, `:` and `-`"
            ));
        }
        if self.get(name).is_some() {
            return Err(format!("event type `{name}` is already in the catalogue"));
        }
        self.types.push(EventType {
            name: name.into(),
            description: description.into(),
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
}

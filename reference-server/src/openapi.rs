//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they use.
//!
//! Routes are registered only through `utoipa_axum::routes!` (see
//! [`crate::app`]), so a route and its description are one declaration. What
//! every route of a kind shares is added here, once, by [`Conventions`]:
//!
//! | kind (tag) | security | added |
//! |---|---|---|
//! | tenant routes | bearer JWT or API key | `X-Tenant-Id` header; 400, 401, 402, 403, 404, 429 problems |
//! | `platform` | bearer JWT (platform admin) | 401, 403, 429 problems |
//! | `health`, `/webhooks/stripe`, `/openapi.json` | none | 429 problem |
//!
//! and, for every route with a JSON body, 413, 415 and 422 problems; for
//! every route, 500.
//!
//! `GET /openapi.json` serves it; `docs/openapi.json` and `docs/api.md` are
//! committed copies that a test keeps current (regenerate with
//! `TENANTKIT_UPDATE_OPENAPI=1 cargo test -p tenantkit-server openapi`).

use std::{collections::BTreeMap, sync::Arc};

use axum::{Extension, response::IntoResponse};
use http::header;
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, Ref, RefOr, Required,
        path::{Operation, ParameterBuilder, ParameterIn},
        response::{Response, ResponseBuilder},
        schema::{AdditionalProperties, ArrayItems, ObjectBuilder, Schema, SchemaType, Type},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

/// The document's fixed parts: metadata, tags, shared schemas, conventions.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenantkit-server",
        description = "The tenantkit reference platform: tenants, users, API keys, the audit trail and billing. \
            Every error is an RFC 9457 `application/problem+json` document. Tenant routes name their tenant \
            by subdomain or `X-Tenant-Id`, and authenticate with a JWT (`Authorization: Bearer`) or an API key \
            (`Authorization: Bearer tk_...` or `X-Api-Key`).",
        license(name = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "tenant", description = "The tenant the request is for"),
        (name = "users", description = "The tenant's users"),
        (name = "api-keys", description = "The tenant's API keys"),
        (name = "audit-logs", description = "The tenant's hash-chained audit trail"),
        (name = "billing", description = "Plans, Stripe Checkout and the billing portal, Stripe's webhooks"),
        (name = "platform", description = "Platform administration (platform-admin token)"),
        (name = "health", description = "Liveness, readiness and this document"),
        (name = "dashboard", description = "The tenant dashboard: a static page that signs in with a token and reads only this API"),
    ),
    components(schemas(tenantkit::problem::Problem, tenantkit_analytics::query::TimeZoneName))
)]
struct ApiDoc;

/// The OpenAPI document of a server whose routes are `routes` (their
/// descriptions, from `routes!`): the fixed parts added, then the
/// conventions and the text rule applied to every operation.
pub fn describe(routes: openapi::OpenApi) -> openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    Conventions.modify(&mut doc);
    TextRule.modify(&mut doc);
    doc
}

/// The text rule ([`tenantkit::validate::text`]: no string the server takes
/// may hold a NUL character), stated on every string a request carries (its
/// parameters and its body, with the component schemas a body refers to)
/// that does not already say more (a pattern, a format or a list of values).
/// Responses are left alone: what they say is theirs.
struct TextRule;

/// What [`TextRule`] adds.
const NO_NUL: &str = "^[^\\u0000]*$";

impl TextRule {
    /// States the rule on `schema` and what it holds; the component schemas
    /// it refers to are added to `refs`.
    fn schema(schema: &mut RefOr<Schema>, refs: &mut Vec<String>) {
        let schema = match schema {
            RefOr::Ref(r) => {
                if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                    refs.push(name.to_owned());
                }
                return;
            }
            RefOr::T(schema) => schema,
        };
        let mut each = |items: &mut Vec<RefOr<Schema>>| {
            items.iter_mut().for_each(|s| Self::schema(s, refs));
        };
        match schema {
            Schema::Object(object) => {
                let string = match &object.schema_type {
                    SchemaType::Type(t) => *t == Type::String,
                    SchemaType::Array(types) => types.contains(&Type::String),
                    SchemaType::AnyValue => false,
                };
                if string
                    && object.pattern.is_none()
                    && object.format.is_none()
                    && object.enum_values.is_none()
                {
                    object.pattern = Some(NO_NUL.to_owned());
                }
                for property in object.properties.values_mut() {
                    Self::schema(property, refs);
                }
                if let Some(AdditionalProperties::RefOr(extra)) =
                    object.additional_properties.as_deref_mut()
                {
                    Self::schema(extra, refs);
                }
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::schema(items, refs);
                }
            }
            Schema::OneOf(one) => each(&mut one.items),
            Schema::AllOf(all) => each(&mut all.items),
            Schema::AnyOf(any) => each(&mut any.items),
            _ => {}
        }
    }
}

impl Modify for TextRule {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let mut refs = Vec::new();
        for op in operations(doc) {
            for parameter in op.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(schema) = parameter.schema.as_mut()
                {
                    Self::schema(schema, &mut refs);
                }
            }
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content
                        && let Some(schema) = content.schema.as_mut()
                    {
                        Self::schema(schema, &mut refs);
                    }
                }
            }
        }
        // The component schemas requests refer to, each once, and those
        // they refer to in turn.
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let mut done = std::collections::BTreeSet::new();
        while let Some(name) = refs.pop() {
            if done.insert(name.clone())
                && let Some(schema) = components.schemas.get_mut(&name)
            {
                Self::schema(schema, &mut refs);
            }
        }
    }
}

/// The served document as JSON, which [`crate::app::app`] puts into the
/// request extensions.
#[derive(Clone, Debug)]
pub struct DocumentJson(pub Arc<str>);

/// `GET /openapi.json`: this server's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn serve(Extension(DocumentJson(json)): Extension<DocumentJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
}

/// Every operation of `doc`, whatever its method.
fn operations(doc: &mut openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}

/// What routes of one kind share (see the [module docs](self)).
struct Conventions;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Public,
    Platform,
    Tenant,
}

fn kind(op: &Operation) -> Kind {
    let tags = op.tags.as_deref().unwrap_or_default();
    if tags.iter().any(|t| t == "platform") {
        Kind::Platform
    } else if tags.iter().any(|t| t == "health") || op.security.is_none() {
        Kind::Public
    } else {
        Kind::Tenant
    }
}

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            tenantkit::problem::CONTENT_TYPE,
            openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (or an API key tk_...)")
                    .description(Some(
                        "A JWT naming a user of the tenant (role owner, admin or member), a platform-admin JWT, \
                         or an API key `tk_<prefix>_<secret>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key `tk_<prefix>_<secret>` of the tenant.",
            ))),
        );
        for op in operations(doc) {
            let kind = kind(op);
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| problem(description));
            };
            if kind == Kind::Tenant {
                add(
                    "400",
                    "No tenant named, a malformed or repeated `X-Tenant-Id`, or host and header disagree",
                );
                add(
                    "402",
                    "The tenant's plan does not include this (API keys need `api_access`)",
                );
                add("404", "No such tenant (or resource in it)");
            }
            if kind != Kind::Public {
                add(
                    "401",
                    "No, malformed, expired or revoked credential, or a token whose user no longer exists",
                );
                add(
                    "403",
                    "The credential belongs to another tenant, lacks the permission, or the tenant is suspended",
                );
            }
            add("429", "Too many requests; see `Retry-After`");
            let places: Vec<ParameterIn> = op
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    RefOr::T(p) => Some(p.parameter_in.clone()),
                    RefOr::Ref(_) => None,
                })
                .collect();
            let has = |place: ParameterIn| places.contains(&place);
            if has(ParameterIn::Path) {
                add("404", "No such resource (a malformed id names none either)");
            }
            if has(ParameterIn::Query) {
                add(
                    "400",
                    "A query parameter is unknown, repeated or not of its type",
                );
                add(
                    "422",
                    "A query parameter's value is out of range or breaks a rule (a NUL character, say), named in `parameter`",
                );
            }
            if op.request_body.is_some() {
                add("400", "The body is not JSON");
                add("413", "The body is larger than `server.max_body_bytes`");
                add("415", "The body is not `application/json`");
                add(
                    "422",
                    "The body is invalid: not an object, a key twice, a NUL character, or a field missing, malformed or unknown",
                );
            }
            add(
                "503",
                "Not now: the server is at its in-flight limit, or a transaction lost a race more often than it is retried; retry after `Retry-After`",
            );
            add(
                "500",
                "The server failed; the error is logged with the request id",
            );
            if kind == Kind::Tenant {
                let header = ParameterBuilder::new()
                    .name("X-Tenant-Id")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "The tenant (id or subdomain), unless the host's subdomain names it",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build();
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .insert(0, header.into());
            }
        }
    }
}

/// What an endpoint receives for each event type of `catalogue`, as the
/// document's `webhooks` (OpenAPI 3.1): the body `{type, timestamp, data}`
/// with `data`'s own schema, the signature headers, what the answers mean,
/// and an example.
pub fn webhooks(catalogue: &tenantkit_webhooks::catalogue::EventCatalogue) -> Value {
    let header = |name: &str, description: &str| {
        serde_json::json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": { "type": "string" }
        })
    };
    let parameters = [
        header(
            "webhook-id",
            "`msg_` and the message id: the same on every attempt (deduplicate on it)",
        ),
        header(
            "webhook-timestamp",
            "Seconds since the Unix epoch when this attempt was signed",
        ),
        header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated; two while a secret is rotated",
        ),
    ];
    let events = catalogue.types().iter().map(|t| {
        let data = t
            .schema
            .clone()
            .unwrap_or_else(|| serde_json::json!({ "type": "object" }));
        let operation = serde_json::json!({
            "post": {
                "summary": t.description,
                "tags": ["webhook events"],
                "parameters": parameters,
                "requestBody": {
                    "required": true,
                    "content": { "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["type", "timestamp", "data"],
                            "properties": {
                                "type": { "const": t.name },
                                "timestamp": { "type": "string", "format": "date-time" },
                                "data": data
                            },
                            "additionalProperties": false
                        },
                        "example": {
                            "type": t.name,
                            "timestamp": "2026-12-07T10:00:00.000Z",
                            "data": t.example
                        }
                    } }
                },
                "responses": {
                    "2XX": { "description": "Delivered (any 2xx within 10 s)" },
                    "410": { "description": "Gone: the endpoint is disabled at once" },
                    "default": { "description": "Retried (1 s, 5 s, 30 s, 5 min, 1 h, honouring `Retry-After`), then a dead letter" }
                }
            }
        });
        (t.name.clone(), operation)
    });
    Value::Object(events.collect())
}

/// The document as served: the routes, and [`webhooks`] for `catalogue`.
pub fn document_json(
    doc: &openapi::OpenApi,
    catalogue: &tenantkit_webhooks::catalogue::EventCatalogue,
) -> String {
    let mut spec = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    spec["webhooks"] = webhooks(catalogue);
    serde_json::to_string_pretty(&spec).expect("the OpenAPI document serializes")
}

/// The event types of `catalogue` in Markdown: what each announces, its
/// `data` schema and an example (`docs/api.md`, and
/// `tenantkit-server event-types` for a configured catalogue).
pub fn event_types_markdown(catalogue: &tenantkit_webhooks::catalogue::EventCatalogue) -> String {
    let mut out = String::from(
        "\n## Webhook events\n\n\
         What an endpoint receives (the `webhooks` of the OpenAPI document): a signed `POST` \
         of `{\"type\", \"timestamp\", \"data\"}`, `data` satisfying its type's JSON Schema \
         (draft 2020-12). A message published with other data is refused (`422`), so a \
         receiver can rely on the schema.\n",
    );
    for t in catalogue.types() {
        out.push_str(&format!("\n### `{}`\n\n{}\n", t.name, t.description.trim()));
        if let Some(schema) = &t.schema {
            out.push_str(&format!(
                "\nSchema of `data`:\n\n```json\n{}\n```\n",
                serde_json::to_string_pretty(schema).unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "\nExample `data`:\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(&t.example).unwrap_or_default()
        ));
    }
    out
}

/// `docs/api.md`: a human-readable reference rendered from the document.
pub fn markdown(doc: &openapi::OpenApi) -> String {
    let spec = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    let mut out = String::from(
        "# tenantkit-server API reference\n\n\
         Generated from the OpenAPI document (`GET /openapi.json`, committed as \
         [openapi.json](openapi.json)); do not edit by hand. Every error is an RFC 9457 \
         `application/problem+json` document with `type`, `title`, `status` and `detail`. \
         The document is the contract: every status a route answers is listed, every rule \
         on a parameter or field is in its schema, and CI fuzzes the server on both backends \
         against it with schemathesis (`.ci/schemathesis`).\n",
    );
    let mut by_tag: BTreeMap<String, Vec<(String, String, &Value)>> = BTreeMap::new();
    let tag_order: Vec<String> = spec["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(op) = item.get(method) {
                    let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                    by_tag
                        .entry(tag)
                        .or_default()
                        .push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
    }
    for tag in &tag_order {
        let Some(ops) = by_tag.get(tag) else { continue };
        out.push_str(&format!("\n## `{tag}` routes\n"));
        for (method, path, op) in ops {
            out.push_str(&format!("\n### `{method} {path}`\n\n"));
            if let Some(text) = op["description"].as_str().or(op["summary"].as_str()) {
                out.push_str(text.trim());
                out.push_str("\n\n");
            }
            let security: Vec<String> = op["security"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|r| r.as_object()?.keys().next().cloned())
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "Authentication: {}\n",
                if security.is_empty() {
                    "none".to_owned()
                } else {
                    security.join(" or ")
                }
            ));
            if let Some(params) = op["parameters"].as_array() {
                out.push_str("\n| parameter | in | required | description |\n|---|---|---|---|\n");
                for p in params {
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} |\n",
                        p["name"].as_str().unwrap_or_default(),
                        p["in"].as_str().unwrap_or_default(),
                        if p["required"].as_bool() == Some(true) {
                            "yes"
                        } else {
                            "no"
                        },
                        one_line(p["description"].as_str().unwrap_or_default()),
                    ));
                }
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (media, c) in content {
                    out.push_str(&format!(
                        "\nBody: `{media}` {}\n",
                        schema_name(&c["schema"])
                    ));
                }
            }
            out.push_str("\n| status | meaning | body |\n|---|---|---|\n");
            if let Some(responses) = op["responses"].as_object() {
                for (status, r) in responses {
                    let body = r["content"]
                        .as_object()
                        .and_then(|c| c.iter().next())
                        .map(|(media, c)| format!("`{media}` {}", schema_name(&c["schema"])))
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "| {status} | {} | {body} |\n",
                        one_line(r["description"].as_str().unwrap_or_default())
                    ));
                }
            }
        }
    }
    out.push_str("\n## Schemas\n");
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            out.push_str(&format!("\n### `{name}`\n\n"));
            if let Some(d) = schema["description"].as_str() {
                out.push_str(&format!("{}\n\n", d.trim()));
            }
            let parts: Vec<&Value> = match schema["allOf"].as_array() {
                Some(all) => all.iter().collect(),
                None => vec![schema],
            };
            for part in parts {
                out.push_str(&schema_fields(part));
            }
        }
    }
    out
}

/// The fields of an object schema as a table, the values of an enum, the
/// type of a scalar, or a link for a `$ref` (a flattened part).
fn schema_fields(schema: &Value) -> String {
    if schema.get("$ref").is_some() {
        return format!("All the fields of {}.\n\n", schema_name(schema));
    }
    if let Some(props) = schema["properties"].as_object() {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out =
            String::from("| field | type | required | description |\n|---|---|---|---|\n");
        for (field, p) in props {
            out.push_str(&format!(
                "| `{field}` | {} | {} | {} |\n",
                schema_name(p),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                one_line(p["description"].as_str().unwrap_or_default()),
            ));
        }
        return out + "\n";
    }
    if let Some(values) = schema["enum"].as_array() {
        if values.len() > 20 {
            return format!(
                "One of {} values, listed in [openapi.json](openapi.json).\n\n",
                values.len()
            );
        }
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        return format!("One of {}.\n\n", values.join(", "));
    }
    format!("A {}.\n\n", schema_name(schema))
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// A short name for a schema: its `$ref` name, `[T]` for arrays, or its type.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let names: Vec<String> = variants
            .iter()
            .filter(|v| v["type"] != "null")
            .map(schema_name)
            .collect();
        return names.join(" or ");
    }
    match &schema["type"] {
        Value::String(t) if t == "array" => format!("[{}]", schema_name(&schema["items"])),
        Value::String(t) => match schema["format"].as_str() {
            Some(f) => format!("{t} ({f})"),
            None => t.clone(),
        },
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{document_json, event_types_markdown};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tenantkit::auth::TokenRole;
    use tower::ServiceExt;

    use super::markdown;
    use crate::{app, app::document, config::Config};

    fn repo_file(relative: &str) -> PathBuf {
        // At run time, so the checkout under test is read.
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("..")
            .join(relative)
    }

    /// `docs/openapi.json` and `docs/api.md` are what the code generates
    /// (with the built-in event types);
    /// with `TENANTKIT_UPDATE_OPENAPI=1` they are rewritten instead.
    #[test]
    fn committed_copies_are_current() {
        let doc = document();
        let catalogue = tenantkit_webhooks::catalogue::EventCatalogue::tenantkit();
        let generated = [
            (
                "docs/openapi.json",
                format!("{}\n", document_json(&doc, &catalogue)),
            ),
            (
                "docs/api.md",
                markdown(&doc) + &event_types_markdown(&catalogue),
            ),
        ];
        let update = std::env::var("TENANTKIT_UPDATE_OPENAPI").is_ok_and(|v| v == "1");
        for (file, text) in generated {
            let path = repo_file(file);
            if update {
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{file} is stale: run `TENANTKIT_UPDATE_OPENAPI=1 cargo test -p tenantkit-server openapi` and commit it"
            );
        }
    }

    /// The router is built only from `routes!` declarations, so no route can
    /// exist without its description...
    #[test]
    fn routes_are_registered_only_with_their_description() {
        let source = std::fs::read_to_string(repo_file("reference-server/src/app.rs")).unwrap();
        for forbidden in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(
                !source.contains(forbidden),
                "app.rs registers a route with `{forbidden}`: use `utoipa_axum::routes!` so it is in the OpenAPI document"
            );
        }
    }

    /// ...and every described operation is served: with its method it reaches
    /// a handler (not the fallback, not 405), and a method it does not list is
    /// 405.
    #[tokio::test]
    async fn every_described_operation_is_routed_and_no_other_method_is() {
        let db = tenantkit::Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        tenantkit_billing::Billing::migrate(&db).await.unwrap();
        tenantkit_webhooks::Webhooks::migrate(&db).await.unwrap();
        tenantkit_analytics::storage::migrate(&db).await.unwrap();
        // A plan with every feature, so that only routing answers.
        let mut config = Config::default();
        config.billing.plans.default_plan = "enterprise".into();
        // The embedded webhook key is written here, not into the checkout.
        let data_dir = tempfile::tempdir().unwrap();
        config.database.data_dir = data_dir.path().to_path_buf();
        config.webhooks.worker = false;
        let keys = tenantkit::auth::JwtKeys::hs256(&[7; 32]).unwrap();
        let (tenant, owner) = db
            .platform()
            .create_tenant_with_owner(
                &tenantkit::NewTenant {
                    name: "Acme".into(),
                    subdomain: "acme".into(),
                },
                &tenantkit::NewUser {
                    email: "ann@acme.test".into(),
                    role: tenantkit::Role::Owner,
                },
                &tenantkit::audit::Actor::System,
            )
            .await
            .unwrap();
        let owner_token = keys
            .issue(&owner.id.to_string(), Some(tenant.id), TokenRole::Owner, 60)
            .unwrap();
        let admin_token = keys
            .issue("ops", None, TokenRole::PlatformAdmin, 60)
            .unwrap();
        let tasks = crate::tasks::Supervisor::new();
        let (state, _services) = app::AppState::start(config, db.clone(), keys, &tasks)
            .await
            .unwrap();
        let router = app::app(state).unwrap();
        let spec = serde_json::to_value(document()).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.len() >= 15, "{} paths", paths.len());
        for (path, item) in paths {
            let concrete = path
                .replace("{id}", &uuid::Uuid::now_v7().to_string())
                .replace("{message_id}", &uuid::Uuid::now_v7().to_string());
            // Refusals come before 405: send what the path's guards accept.
            let platform = item
                .as_object()
                .unwrap()
                .values()
                .any(|op| op["tags"][0] == "platform");
            let token = if platform { &admin_token } else { &owner_token };
            for method in ["get", "post", "put", "patch", "delete"] {
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&concrete)
                    .header("x-tenant-id", "acme")
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                let status = res.status();
                let body: Value =
                    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
                        .unwrap_or_default();
                let what = format!("{method} {path}: {status} {body}");
                if item.get(method).is_some() {
                    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
                    assert_ne!(body["detail"], "no such endpoint", "{what}");
                } else {
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
                }
            }
        }
    }

    #[test]
    fn every_operation_describes_its_security_and_problems() {
        let spec = serde_json::to_value(document()).unwrap();
        assert_eq!(spec["openapi"], "3.1.0");
        let schemes = &spec["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                let responses = op["responses"].as_object().unwrap();
                // A WebSocket's success is `101 Switching Protocols`.
                let success = |s: &str| s.starts_with('2') || s == "101";
                assert!(
                    responses.keys().any(|s| success(s)),
                    "{what}: no success response"
                );
                for (status, r) in responses {
                    if !success(status) {
                        assert_eq!(
                            r["content"]["application/problem+json"]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{what} {status}"
                        );
                    }
                }
                for status in ["429", "500"] {
                    assert!(responses.contains_key(status), "{what}: no {status}");
                }
                let tenant_route = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
                if tenant_route {
                    for status in ["400", "401", "402", "403", "404"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                    assert!(
                        op["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == "X-Tenant-Id" && p["in"] == "header"),
                        "{what}: no X-Tenant-Id"
                    );
                }
                if op.get("requestBody").is_some() {
                    for status in ["413", "415", "422"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                }
                if let Some(params) = op["parameters"].as_array() {
                    for p in params {
                        assert!(
                            p["schema"].is_object(),
                            "{what}: parameter {p} has no schema"
                        );
                    }
                }
            }
        }
    }
}

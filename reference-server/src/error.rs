//! The server's error type: every failure leaves as RFC 9457 problem+json.

use axum::{
    extract::rejection::{PathRejection, QueryRejection},
    response::{IntoResponse, Response},
};
use http::StatusCode;
use tenantkit::problem::Problem;

/// A handler error; converts from tenantkit errors, problems and extractor rejections.
#[derive(Debug)]
pub struct ApiError(pub Problem);

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

impl From<tenantkit::auth::Denied> for ApiError {
    fn from(d: tenantkit::auth::Denied) -> Self {
        Self(Problem::from(d))
    }
}

impl From<tenantkit::Error> for ApiError {
    fn from(e: tenantkit::Error) -> Self {
        Self(Problem::from(&e))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self(
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query string")
                .with_detail(r.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        // A malformed id cannot name an existing resource.
        Self(Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail(r.body_text()))
    }
}

/// A JSON request body, read strictly: `Content-Type: application/json`
/// (or `+json`), then [`tenantkit::validate::json::check`] (no duplicate
/// keys, no NUL, at any depth), then a JSON object, never an array (which
/// serde would map onto the fields by position), then `T` (unknown fields
/// refused by `T` itself). Refusals are problem+json: `415`, `400` for text
/// that is not JSON, `422` for JSON that breaks a rule (naming it), `413`
/// past the route's body limit.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError(
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                    .with_detail("Expected request with `Content-Type: application/json`"),
            ));
        }
        let body = bytes::Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let title = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "Payload too large"
            } else {
                "Malformed request body"
            };
            ApiError(Problem::new(status, title).with_detail(r.body_text()))
        })?;
        use tenantkit::validate::json::{Kind, check};
        match check(&body) {
            Ok(Kind::Object) => {}
            Ok(_) => {
                return Err(ApiError(
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request")
                        .with_detail("the body must be a JSON object"),
                ));
            }
            Err(refused) if refused.syntax => {
                return Err(ApiError(
                    Problem::new(StatusCode::BAD_REQUEST, "Malformed request body")
                        .with_detail(refused.message),
                ));
            }
            Err(refused) => {
                return Err(ApiError(
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request")
                        .with_detail(refused.message)
                        .with_extension("field", refused.path),
                ));
            }
        }
        serde_json::from_slice(&body).map(Json).map_err(|e| {
            ApiError(
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request").with_detail(
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                ),
            )
        })
    }
}

/// Whether the request says its body is JSON (`application/json` or a
/// `+json` type, parameters allowed).
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(essence) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string, read strictly: every name and value first keeps the text
/// rule ([`tenantkit::validate::text`]: `422` naming the parameter), then
/// `T` (unknown parameters refused by `T` itself: `400`).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            tenantkit::validate::text(&name, &name)
                .and_then(|()| tenantkit::validate::text(&name, &value))
                .map_err(|e| {
                    ApiError(
                        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid query parameter")
                            .with_detail(e.to_string())
                            .with_extension("parameter", name.escape_default().to_string()),
                    )
                })?;
        }
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Path` whose rejection is problem+json.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError(Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail("no such endpoint"))
}

/// Error responses that are not problem+json yet (the router's `405`, the
/// body limit's `413`, the timeout's `408`) become problem+json; see
/// [`tenantkit::problem::ensure_problem`].
pub async fn ensure_problem(res: Response) -> Response {
    tenantkit::problem::ensure_problem(res)
}

/// In the extensions of the response that replaced a handler's panic, so
/// metrics count it.
#[derive(Clone, Copy, Debug)]
pub struct Panicked;

/// What a panic becomes (`tower_http::catch_panic`'s handler): `500`
/// problem+json, logged once inside the request's span (so the log line has
/// the request id that the response's `X-Request-Id` names). The connection
/// stays open; nothing about the panic reaches the client.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(panic = %message, "a request handler panicked");
    let mut res = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        .with_detail("the server failed; the error has been logged")
        .into_response();
    res.extensions_mut().insert(Panicked);
    res
}

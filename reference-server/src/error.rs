//! The server's error type: every failure leaves as RFC 9457 problem+json.

use axum::{
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
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

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let title = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid request",
            _ => "Malformed request body",
        };
        Self(Problem::new(status, title).with_detail(r.body_text()))
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

/// `axum::Json` whose rejection is problem+json.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejection is problem+json.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

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

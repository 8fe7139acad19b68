//! RFC 9457 problem details: the one place errors become HTTP responses.
//!
//! ```
//! use http::StatusCode;
//! use tenantkit::problem::Problem;
//!
//! let response: http::Response<String> =
//!     Problem::new(StatusCode::NOT_FOUND, "Unknown tenant")
//!         .with_detail("no tenant has the subdomain `nope`")
//!         .into_response();
//! assert_eq!(response.status(), 404);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
//! assert_eq!(body["title"], "Unknown tenant");
//! assert_eq!(body["status"], 404);
//! ```

use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document plus the headers that go with it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` when only the status matters.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, human summary of the problem type.
    pub title: String,
    /// The HTTP status.
    #[serde(serialize_with = "serialize_status")]
    #[cfg_attr(feature = "openapi", schema(value_type = u16))]
    pub status: StatusCode,
    /// An explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, flattened into the document.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub extensions: Map<String, Value>,
    /// Extra response headers, e.g. `Retry-After` or `WWW-Authenticate`.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether the request may simply be run again ([`Error::Contention`]):
    /// the response then carries [`Contended`] in its extensions.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    contended: bool,
}

/// In the extensions of a response whose request failed only because its
/// transaction lost a race with a concurrent one ([`Error::Contention`]):
/// running the same request again is safe (nothing of it was committed) and
/// will most likely succeed. A retrying layer looks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contended;

fn serialize_status<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl Problem {
    /// A problem of type `about:blank`.
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Self {
            type_uri: "about:blank".into(),
            title: title.into(),
            status,
            detail: None,
            extensions: Map::new(),
            headers: Vec::new(),
            contended: false,
        }
    }

    /// Sets the `detail` member.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the `type` URI.
    pub fn with_type(mut self, type_uri: impl Into<String>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    /// Adds an extension member.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The response, with any body type that can be built from a `String`
    /// (`axum::body::Body`, `http_body_util::Full<Bytes>`, `String`, ...).
    pub fn into_response<B: From<String>>(self) -> http::Response<B> {
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned());
        let mut response = http::Response::new(B::from(body));
        if self.contended {
            response.extensions_mut().insert(Contended);
        }
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

/// `res` as a problem document if it is an error (4xx or 5xx) that is not one
/// yet: what a framework or middleware answers by itself (axum's empty `405`,
/// a body limit's `text/plain` `413`, a timeout's `408`) becomes
/// problem+json with the same status and headers (`Allow`, `Retry-After`).
/// Every other response passes unchanged. Wrap a whole service with it, e.g.
/// `tower::util::MapResponseLayer::new(ensure_problem::<axum::body::Body>)`.
///
/// ```
/// use http::{Response, StatusCode, header};
/// use tenantkit::problem::ensure_problem;
///
/// let bare = Response::builder()
///     .status(StatusCode::METHOD_NOT_ALLOWED)
///     .header(header::ALLOW, "GET,HEAD")
///     .body(String::new())
///     .unwrap();
/// let res = ensure_problem(bare);
/// assert_eq!(res.status(), 405);
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// assert_eq!(res.headers()["allow"], "GET,HEAD");
/// let body: serde_json::Value = serde_json::from_str(res.body()).unwrap();
/// assert_eq!(body["detail"], "this endpoint accepts only GET,HEAD");
/// ```
pub fn ensure_problem<B: From<String>>(res: http::Response<B>) -> http::Response<B> {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, _bare_body) = res.into_parts();
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => match parts.headers.get(header::ALLOW) {
            Some(allow) => format!(
                "this endpoint accepts only {}",
                allow.to_str().unwrap_or_default()
            ),
            None => "this endpoint does not accept this method".to_owned(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this server accepts".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long to be served".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "this endpoint does not accept this content type".to_owned()
        }
        other => format!("the request failed with status {}", other.as_u16()),
    };
    let mut problem = Problem::new(status, title).with_detail(detail);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem = problem.with_header(name.clone(), value.clone());
        }
    }
    let mut response = problem.into_response::<B>();
    *response.version_mut() = parts.version;
    response.extensions_mut().extend(parts.extensions);
    response
}

impl From<&Error> for Problem {
    fn from(err: &Error) -> Self {
        match err {
            Error::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "Not found")
                .with_detail(format!("{what} not found")),
            Error::Conflict(msg) => {
                Problem::new(StatusCode::CONFLICT, "Conflict").with_detail(msg.to_string())
            }
            Error::LimitExceeded {
                resource,
                limit,
                usage,
            } => Problem::new(StatusCode::PAYMENT_REQUIRED, "Limit reached")
                .with_detail(format!(
                    "the {resource} limit of {limit} is reached ({usage} in use)"
                ))
                .with_extension("resource", *resource)
                .with_extension("limit", *limit)
                .with_extension("usage", *usage),
            Error::Invalid(msg) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request")
                    .with_detail(msg.to_string())
            }
            Error::Contention(e) => {
                tracing::warn!(error = %e, "transaction lost a race with a concurrent one");
                let mut problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy with concurrent writes",
                )
                .with_detail(
                    "the change conflicted with concurrent changes and was not made; send it again",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
                problem.contended = true;
                problem
            }
            // Details of these are for the log, never for the client.
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Misconfigured(_)
            | Error::Internal(_) => {
                tracing::error!(error = %err, "internal error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                    .with_detail("the server failed; the error has been logged")
            }
        }
    }
}

impl From<Error> for Problem {
    fn from(err: Error) -> Self {
        Problem::from(&err)
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        Problem::into_response(self)
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        Problem::from(&self).into_response()
    }
}

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
pub struct Problem {
    /// A URI naming the problem type; `about:blank` when only the status matters.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, human summary of the problem type.
    pub title: String,
    /// The HTTP status.
    #[serde(serialize_with = "serialize_status")]
    pub status: StatusCode,
    /// An explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, flattened into the document.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    /// Extra response headers, e.g. `Retry-After` or `WWW-Authenticate`.
    #[serde(skip)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

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
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
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

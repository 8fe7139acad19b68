//! The in-flight request cap: past `server.max_in_flight_requests`, a
//! request is refused at once with `503` and `Retry-After` instead of
//! queueing, so an overloaded server keeps answering quickly and its memory
//! stays bounded however much load arrives.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderValue, StatusCode, header};
use tenantkit::problem::Problem;
use tokio::sync::Semaphore;

/// Room for this many requests in flight at once.
#[derive(Clone, Debug)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// Room for `max` requests.
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// Middleware: runs the request if there is room, else answers `503`.
pub async fn limit(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    match in_flight.0.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Server busy")
            .with_detail("too many requests are in flight; retry after a second")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .into_response(),
    }
}

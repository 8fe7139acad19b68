//! [`RetryContendedLayer`]: a request whose transaction lost a race with a
//! concurrent one (a deadlock or serialization failure, [`Error::Contention`])
//! is run again inside the server, a bounded number of times, instead of
//! answering the client with an error.
//!
//! The request body is read once (put the layer inside the body limit) and
//! handed to each attempt as a [`Full`] body; an attempt is repeated only when its response
//! carries [`Contended`], which [`Problem`] adds for
//! [`Error::Contention`]: nothing of such an attempt was committed, so
//! running it again is safe. Waits between attempts grow and are jittered,
//! so two racing requests do not collide again in step.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tenantkit::{Error, problem::Problem, retry::RetryContendedLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let calls = Arc::new(AtomicU32::new(0));
//! let layer = RetryContendedLayer::new(5);
//! let retries = layer.retries();
//! let seen = calls.clone();
//! let svc = ServiceBuilder::new().layer(layer).service_fn(move |req: Request<Full<Bytes>>| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let body = req.into_body().collect().await.unwrap().to_bytes();
//!         assert_eq!(body, "the same body each time");
//!         Ok::<_, std::convert::Infallible>(if n < 2 {
//!             // What a handler answers when its transaction deadlocked.
//!             let deadlock = std::io::Error::other("deadlock detected");
//!             let contended = Error::Contention(tenantkit::BackendError::new(deadlock));
//!             Problem::from(contended).into_response::<String>()
//!         } else {
//!             Response::new("done".to_owned())
//!         })
//!     }
//! });
//! let res = svc.oneshot(Request::new("the same body each time".to_owned())).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert_eq!(retries.get(), 2);
//! # });
//! ```
//!
//! [`Error::Contention`]: crate::Error::Contention
//! [`Problem`]: crate::problem::Problem

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use rand::Rng;
use tower::{Layer, Service, ServiceExt};

pub use crate::problem::Contended;
use crate::problem::Problem;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a request may keep being retried, from its first attempt.
const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// The first wait's upper bound; each further wait doubles it.
const FIRST_WAIT: Duration = Duration::from_millis(4);

/// How many attempts were repeated, across every request of a layer.
#[derive(Clone, Debug, Default)]
pub struct Retries(Arc<AtomicU64>);

impl Retries {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs a request again when its transaction lost a race (see the
/// [module docs](self)): at most `max_attempts` attempts, within 5 s.
#[derive(Clone, Debug)]
pub struct RetryContendedLayer {
    max_attempts: u32,
    retries: Retries,
}

impl RetryContendedLayer {
    /// At most `max_attempts` attempts of a request (at least one).
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            retries: Retries::default(),
        }
    }

    /// Counts repeated attempts in `retries` (shared with, say, a metrics
    /// registry) instead of a counter of its own.
    pub fn with_retries(mut self, retries: Retries) -> Self {
        self.retries = retries;
        self
    }

    /// The count of repeated attempts, shared by every service of this layer.
    pub fn retries(&self) -> Retries {
        self.retries.clone()
    }
}

impl<S> Layer<S> for RetryContendedLayer {
    type Service = RetryContended<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryContended {
            inner,
            max_attempts: self.max_attempts,
            retries: self.retries.clone(),
        }
    }
}

/// The service of [`RetryContendedLayer`].
#[derive(Clone, Debug)]
pub struct RetryContended<S> {
    inner: S,
    max_attempts: u32,
    retries: Retries,
}

impl<S> RetryContended<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for RetryContended<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is the one to drive later attempts; this one is ready.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let mut inner = self.inner.clone();
        let max_attempts = self.max_attempts;
        let retries = self.retries.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => return Ok(unreadable(&*e.into()).into_response()),
            };
            let started = Instant::now();
            let attempt = |parts: &http::request::Parts| {
                Request::from_parts(parts.clone(), Full::new(body.clone()))
            };
            let mut res = ready.call(attempt(&parts)).await?;
            let mut wait = FIRST_WAIT;
            for _ in 1..max_attempts {
                if res.extensions().get::<Contended>().is_none() || started.elapsed() > RETRY_BUDGET
                {
                    break;
                }
                let jitter = rand::rng().random_range(Duration::ZERO..=wait);
                tokio::time::sleep(jitter).await;
                wait *= 2;
                retries.0.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    method = %parts.method,
                    path = %parts.uri.path(),
                    "transaction lost a race; running the request again"
                );
                res = inner.ready().await?.call(attempt(&parts)).await?;
            }
            Ok(res)
        })
    }
}

/// The answer when the request body could not be read: `413` when it was
/// larger than the body limit allows, `400` otherwise.
fn unreadable(error: &(dyn std::error::Error + 'static)) -> Problem {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large")
                .with_detail("the request body is larger than this server accepts");
        }
        source = e.source();
    }
    Problem::new(StatusCode::BAD_REQUEST, "Unreadable request body")
        .with_detail("the request body could not be read")
}

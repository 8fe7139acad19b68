//! The supervisor of every background task: each a named unit whose `run`
//! the supervisor calls, and calls again, with back-off, when it fails
//! (returns an error or panics), or, for a unit that must not restart,
//! reports the process failed: `/readyz` answers 503 and `serve` exits, for
//! the orchestrator to replace the process. No task dies silently: each
//! failure is logged with the task's name and counted in
//! `tenantkit_task_restarts_total{task}`.
//!
//! A unit that returns `Ok` has finished (a one-shot job, or a loop told to
//! stop) and is not run again.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use tenantkit_server::tasks::{Policy, Supervisor};
//!
//! let supervisor = Supervisor::new();
//! let runs = Arc::new(AtomicU32::new(0));
//! let seen = runs.clone();
//! let unit = supervisor.spawn("flaky", Policy::Restart, move |_stop| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n == 0 {
//!             anyhow::bail!("the first run fails");
//!         }
//!         Ok(())
//!     }
//! });
//! unit.finished().await;
//! assert_eq!(runs.load(Ordering::SeqCst), 2, "run again after its failure");
//! assert_eq!(supervisor.restarts("flaky"), 1);
//! assert!(supervisor.failure().is_none());
//! # });
//! ```

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{FutureExt, future::BoxFuture};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What happens when a unit fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Run it again, after a back-off that doubles from 100 ms to 30 s (and
    /// starts over once a run has lasted a minute).
    Restart,
    /// The process cannot go on without it: the supervisor reports the
    /// failure ([`Supervisor::failure`], [`Supervisor::failed`]).
    Fatal,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

type Start = Box<dyn Fn(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Runs units and runs them again; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    restarts: Mutex<HashMap<String, u64>>,
    /// The units not finished for good.
    running: Mutex<std::collections::HashSet<String>>,
    /// Per unit: what makes its current run panic (fault injection).
    faults: Mutex<HashMap<String, Arc<Notify>>>,
    failure: watch::Sender<Option<String>>,
}

/// A unit started by [`Supervisor::spawn`].
#[derive(Clone, Debug)]
pub struct Unit {
    name: String,
    stop: CancellationToken,
    done: watch::Receiver<bool>,
}

impl Unit {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tells it to stop (the token its `run` was given is cancelled); see
    /// [`Unit::finished`] to wait for it.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until it has finished for good: returned `Ok`, or was stopped,
    /// or failed under [`Policy::Fatal`].
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Stops it and waits up to `grace` for it to finish.
    pub async fn stop_within(&self, grace: Duration) {
        self.stop();
        if tokio::time::timeout(grace, self.finished()).await.is_err() {
            tracing::warn!(task = %self.name, "background task did not stop in time");
        }
    }
}

impl Supervisor {
    /// A supervisor with no units yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `name`: `run` is called with a token that is cancelled when
    /// the unit is told to stop, and called again after each failure under
    /// [`Policy::Restart`].
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, policy: Policy, run: F) -> Unit
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        let start: Start = Box::new(move |stop| run(stop).boxed());
        let stop = CancellationToken::new();
        let (done_tx, done) = watch::channel(false);
        let fault = Arc::new(Notify::new());
        self.inner
            .faults
            .lock()
            .expect("not poisoned")
            .insert(name.clone(), fault.clone());
        self.inner
            .running
            .lock()
            .expect("not poisoned")
            .insert(name.clone());
        let inner = self.inner.clone();
        let unit = Unit {
            name: name.clone(),
            stop: stop.clone(),
            done,
        };
        tokio::spawn(async move {
            supervise(&inner, &name, policy, &start, &stop, &fault).await;
            inner.running.lock().expect("not poisoned").remove(&name);
            done_tx.send_replace(true);
        });
        unit
    }

    /// How many times `name` was run again after a failure.
    pub fn restarts(&self, name: &str) -> u64 {
        self.inner
            .restarts
            .lock()
            .expect("not poisoned")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Every unit's restarts, by name (for `/metrics`).
    pub fn all_restarts(&self) -> Vec<(String, u64)> {
        let mut all: Vec<_> = self
            .inner
            .faults
            .lock()
            .expect("not poisoned")
            .keys()
            .map(|name| (name.clone(), self.restarts(name)))
            .collect();
        all.sort();
        all
    }

    /// The unit whose failure the process cannot go on without, if one failed.
    pub fn failure(&self) -> Option<String> {
        self.inner.failure.borrow().clone()
    }

    /// Waits until a [`Policy::Fatal`] unit fails; its name.
    pub async fn failed(&self) -> String {
        let mut failure = self.inner.failure.subscribe();
        match failure.wait_for(Option::is_some).await {
            Ok(name) => name.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Makes the current run of `name` panic, as a bug in it would (for
    /// fault-injection tests: the run's future is dropped wherever it is
    /// waiting, with everything it holds). `false` when no unit has the name.
    pub fn inject_panic(&self, name: &str) -> bool {
        match self.inner.faults.lock().expect("not poisoned").get(name) {
            Some(fault) => {
                fault.notify_one();
                true
            }
            None => false,
        }
    }

    /// The names of the units that have not finished for good, in order.
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .inner
            .running
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The names of every unit started so far.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .inner
            .faults
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

async fn supervise(
    inner: &Inner,
    name: &str,
    policy: Policy,
    start: &Start,
    stop: &CancellationToken,
    fault: &Arc<Notify>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let run = start(stop.child_token());
        let fault = fault.clone();
        let task_name = name.to_owned();
        // Its own task, so a panic in it unwinds there and is seen here.
        let outcome = tokio::spawn(async move {
            tokio::select! {
                result = run => result,
                () = fault.notified() => panic!("fault injected into `{task_name}`"),
            }
        })
        .await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) if e.is_panic() => "it panicked".to_owned(),
            Err(_) => return,
        };
        if stop.is_cancelled() {
            return;
        }
        if policy == Policy::Fatal {
            tracing::error!(
                task = name,
                failure,
                "a background task the process needs failed; the process is not ready and stops"
            );
            inner.failure.send_replace(Some(name.to_owned()));
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(
            task = name,
            failure,
            retry_in_ms = backoff.as_millis() as u64,
            "a background task failed; running it again"
        );
        *inner
            .restarts
            .lock()
            .expect("not poisoned")
            .entry(name.to_owned())
            .or_default() += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// `fut` until `stop` is cancelled (for units whose loops have no
/// graceful stop of their own).
pub(crate) async fn until_stopped(
    stop: CancellationToken,
    fut: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::select! {
        () = fut => {}
        () = stop.cancelled() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicking_unit_is_run_again_and_counted() {
        let supervisor = Supervisor::new();
        let runs = Arc::new(AtomicU32::new(0));
        let seen = runs.clone();
        let unit = supervisor.spawn("loop", Policy::Restart, move |stop| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                stop.cancelled().await;
                Ok(())
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(supervisor.inject_panic("loop"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(supervisor.restarts("loop"), 1);
        unit.stop_within(Duration::from_secs(1)).await;
        assert!(*unit.done.borrow());
        assert!(!supervisor.inject_panic("nothing of that name"));
    }

    #[tokio::test]
    async fn a_fatal_unit_that_fails_fails_the_process() {
        let supervisor = Supervisor::new();
        let unit = supervisor.spawn("needed", Policy::Fatal, |_stop| async {
            anyhow::bail!("gone")
        });
        assert_eq!(supervisor.failed().await, "needed");
        assert_eq!(supervisor.failure().as_deref(), Some("needed"));
        unit.finished().await;
        assert_eq!(supervisor.restarts("needed"), 0);
    }

    #[tokio::test]
    async fn back_off_grows_between_failures() {
        let supervisor = Supervisor::new();
        let times = Arc::new(Mutex::new(Vec::new()));
        let seen = times.clone();
        let unit = supervisor.spawn("failing", Policy::Restart, move |_stop| {
            seen.lock().unwrap().push(Instant::now());
            async { anyhow::bail!("always") }
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        unit.stop_within(Duration::from_secs(1)).await;
        let times = times.lock().unwrap();
        assert!(times.len() >= 3, "{} runs", times.len());
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= FIRST_BACKOFF, "{gaps:?}");
        assert!(gaps[1] >= FIRST_BACKOFF * 2, "{gaps:?}");
    }
}

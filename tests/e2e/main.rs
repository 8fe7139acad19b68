//! End-to-end: the reference server on a real socket, driven by reqwest, on
//! SQLite and on PostgreSQL (as the runtime role).

mod access;
mod attacks;
mod concurrency;
mod identity_provider;
mod lifecycle;
mod live;
mod privileges;
mod publishing;
mod startup;
mod strict;
mod supervision;

/// Declares each `async fn name(backend: Backend)` as a test on both backends.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(tenantkit_e2e::Backend::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(tenantkit_e2e::Backend::Postgres).await;
            })+
        }
    };
}
pub(crate) use on_both_backends;

//! tenantkit-analytics integration tests (one binary; `common` is the harness).

mod common;

mod events;
mod ingest;
mod queries;
mod retention;
mod rollups;
mod storage;

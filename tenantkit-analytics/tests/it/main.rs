//! tenantkit-analytics integration tests (one binary; `common` is the harness).

mod common;

mod events;
mod ingest;
mod queries;
mod rollups;
mod storage;

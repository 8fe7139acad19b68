//! tenantkit-webhooks integration tests (one binary).

mod signature;
mod ssrf;

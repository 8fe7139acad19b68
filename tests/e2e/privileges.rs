//! Least privilege, read from PostgreSQL's catalog after the server's own
//! `migrate` (every crate's migrations): the runtime role can execute only
//! the functions named in an explicit allow-list, and none of them can
//! destroy what configuration keeps.

use tenantkit::store::RuntimeRole;
use tenantkit_e2e::{Backend, Server};

/// Every function of the schema the runtime role may execute. A new one
/// must be added here (and to `tenantkit::store::RUNTIME_FUNCTIONS`) on
/// purpose, after asking what it lets the role do to other tenants.
const ALLOWED: &[&str] = &[
    "tenantkit_analytics_drop_partitions_before(date)",
    "tenantkit_analytics_ensure_partitions(date,integer)",
    "tenantkit_audit_purge(uuid,timestamp with time zone)",
    "tenantkit_current_tenant()",
    "tenantkit_erase_tenant_audit(uuid,text,integer)",
    "tenantkit_finish_tenant_deletion(uuid)",
    "tenantkit_hold_tenant(uuid)",
    "tenantkit_link_external_id(text,text,uuid)",
    "tenantkit_linked_external_ids(uuid,text)",
    "tenantkit_lock_deleted_tenant(uuid)",
    "tenantkit_release_sso_issuer(text)",
    "tenantkit_resolve_external_id(text,text)",
    "tenantkit_set_tenant_status(uuid,text)",
    "tenantkit_start_tenant_deletion(uuid,text,text,text)",
    "tenantkit_tenant_deletion(uuid)",
    "tenantkit_tenant_deletion_failed(uuid,text)",
    "tenantkit_tenant_deletion_progress(uuid,text,bigint)",
    "tenantkit_unfinished_tenant_deletions()",
    "tenantkit_webhooks_due_tenants(timestamp with time zone,bigint,text)",
    "tenantkit_webhooks_expired_tenants(timestamp with time zone,bigint,text)",
    "tenantkit_webhooks_expired_key_tenants(timestamp with time zone,bigint,text)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_runtime_role_executes_only_the_allowed_functions() {
    let Some(s) = Server::start(Backend::Postgres).await else {
        return;
    };
    let owner_url = s.config.database.url.clone().expect("a PostgreSQL URL");
    let mut role = RuntimeRole::new(&s.config.database.runtime_role).unwrap();
    if let Some(password) = &s.config.database.runtime_password {
        role = role.with_password(password.expose());
    }
    let runtime = sqlx::PgPool::connect(&role.connection_url(&owner_url).unwrap())
        .await
        .unwrap();
    let mut executable: Vec<String> = sqlx::query_scalar(
        "SELECT regexp_replace(p.oid::regprocedure::text, ', ', ',', 'g') FROM pg_proc p \
         WHERE p.pronamespace = 'public'::regnamespace \
         AND has_function_privilege(current_user, p.oid, 'EXECUTE') ORDER BY 1",
    )
    .fetch_all(&runtime)
    .await
    .unwrap();
    executable.sort();
    let extra: Vec<&String> = executable
        .iter()
        .filter(|f| !ALLOWED.contains(&f.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "the runtime role can execute more than it needs: {extra:?}"
    );
    let mut listed: Vec<String> = tenantkit::store::RUNTIME_FUNCTIONS
        .iter()
        .map(|f| f.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        executable, listed,
        "the grants are exactly the library's list"
    );
    // Trigger functions and migration helpers are not among them.
    for f in [
        "tenantkit_isolate(regclass)",
        "tenantkit_audit_guard()",
        "tenantkit_require_deletion(uuid,text)",
    ] {
        assert!(!executable.contains(&f.to_owned()), "{f}");
    }
    runtime.close().await;
    s.stop().await;
}

//! The audit trail over HTTP: what is recorded, who may read it, export,
//! verify (moved from the socket tests, steps and assertions as they were).

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{Backend, auth::TokenRole};

use crate::{client::Server, on_both_backends, server};

on_both_backends!(
    changes_are_recorded_with_actor_and_request_details,
    security_events_are_recorded,
    export_streams_ndjson_and_is_itself_audited,
    verify_reports_a_valid_chain,
    only_admins_and_scoped_keys_read_the_trail,
    platform_admin_reads_across_tenants_only_through_the_audited_path,
    bad_audit_queries_get_problem_details,
);

async fn log(s: &Server, sub: &str, token: &str, query: &str) -> Vec<Value> {
    let res = s
        .request(Method::GET, &format!("/audit-logs{query}"), sub, token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// [`log`], once it has an entry (within 5 s).
async fn logged(s: &Server, sub: &str, token: &str, query: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let entries = log(s, sub, token, query).await;
        if !entries.is_empty() || std::time::Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn changes_are_recorded_with_actor_and_request_details(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    let token = s.token(id, TokenRole::Owner);
    let res = s
        .post("/users")
        .header("x-tenant-id", &sub)
        .header("user-agent", "e2e-agent/1.0")
        .bearer_auth(&token)
        .json(&json!({ "email": "audited@x.test" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let user: Value = res.json().await.unwrap();

    let entries = log(&s, &sub, &token, "?resource_type=user&action=create").await;
    let entry = entries
        .iter()
        .find(|e| e["resource_id"] == user["id"])
        .expect("creation audited");
    assert_eq!(entry["actor"]["type"], "user");
    assert_eq!(entry["user_id"], s.owner(id));
    assert_eq!(entry["request_id"], request_id);
    assert_eq!(entry["user_agent"], "e2e-agent/1.0");
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert_eq!(entry["changes"]["after"]["email"], "audited@x.test");
    assert!(entry["changes"]["before"].is_null());
}

async fn security_events_are_recorded(backend: Backend) {
    let s = server!(backend);
    let ((a, a_sub), (b, b_sub)) = (s.create_tenant().await, s.create_tenant().await);
    let a_owner = s.token(a, TokenRole::Owner);
    // A failed login at A, and A's token used at B.
    let failed = s
        .request(Method::GET, "/users", &a_sub, "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let mismatch = s
        .request(Method::GET, "/users", &b_sub, &a_owner)
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), StatusCode::FORBIDDEN);

    // Refusals are written in aggregate, a second later.
    let a_log = logged(&s, &a_sub, &a_owner, "?action=auth.failed").await;
    assert_eq!(a_log.len(), 1);
    assert_eq!(a_log[0]["changes"]["after"]["count"], 1);
    assert_eq!(a_log[0]["actor"]["type"], "anonymous");
    assert_eq!(a_log[0]["changes"]["after"]["status"], 401);
    let b_log = logged(
        &s,
        &b_sub,
        &s.token(b, TokenRole::Owner),
        "?action=auth.tenant_mismatch",
    )
    .await;
    assert_eq!(b_log.len(), 1);
    assert_eq!(
        b_log[0]["changes"]["after"]["claimed_tenant"],
        a.to_string()
    );
    assert_eq!(b_log[0]["user_id"], s.owner(a));

    // API key creation and revocation, and a role change.
    let key: Value = s
        .request(Method::POST, "/api-keys", &a_sub, &a_owner)
        .json(&json!({ "name": "k" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = key["id"].as_str().unwrap();
    let del = s
        .request(
            Method::DELETE,
            &format!("/api-keys/{key_id}"),
            &a_sub,
            &a_owner,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let user: Value = s
        .request(Method::POST, "/users", &a_sub, &a_owner)
        .json(&json!({ "email": "promote@x.test" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patch = s
        .request(
            Method::PATCH,
            &format!("/users/{}", user["id"].as_str().unwrap()),
            &a_sub,
            &a_owner,
        )
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::OK);

    let keys = log(&s, &a_sub, &a_owner, "?resource_type=api_key").await;
    let actions: Vec<_> = keys.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["api_key.revoked", "create"]);
    assert!(
        keys.iter()
            .all(|e| e["changes"]["after"].get("hash").is_none()),
        "key hashes stay out of the trail"
    );
    let roles = log(&s, &a_sub, &a_owner, "?action=user.role_changed").await;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["changes"]["before"]["role"], "member");
    assert_eq!(roles[0]["changes"]["after"]["role"], "admin");
}

async fn export_streams_ndjson_and_is_itself_audited(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    let token = s.token(id, TokenRole::Admin);
    let res = s
        .request(Method::GET, "/audit-logs/export", &sub, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<_> = lines
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Tenant created, owner created, then this export (recorded before it streams).
    assert_eq!(actions, ["create", "create", "audit_log.exported"]);
    let seqs: Vec<_> = lines.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);

    let future = s
        .request(
            Method::GET,
            "/audit-logs/export?from=2999-01-01T00:00:00Z",
            &sub,
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(future.status(), StatusCode::OK);
    assert_eq!(
        future.text().await.unwrap(),
        "",
        "an empty range exports nothing"
    );
}

async fn verify_reports_a_valid_chain(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    let token = s.token(id, TokenRole::Owner);
    for i in 0..3 {
        let res = s
            .request(Method::POST, "/users", &sub, &token)
            .json(&json!({ "email": format!("v{i}@x.test") }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let report: Value = s
        .request(Method::GET, "/audit-logs/verify", &sub, &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["checked"], 5);
    assert!(report["first_broken"].is_null());
}

async fn only_admins_and_scoped_keys_read_the_trail(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    s.subscribe(id, "price_pro").await;
    for path in ["/audit-logs", "/audit-logs/export", "/audit-logs/verify"] {
        let res = s
            .request(Method::GET, path, &sub, s.token(id, TokenRole::Member))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let admin = s.token(id, TokenRole::Admin);
    let mut keys = Vec::new();
    for scopes in [json!(["users:read"]), json!(["audit_logs:read"])] {
        let key: Value = s
            .request(Method::POST, "/api-keys", &sub, &admin)
            .json(&json!({ "name": "k", "scopes": scopes }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(key["key"].as_str().unwrap().to_owned());
    }
    let with = |key: &str| {
        s.get("/audit-logs")
            .header("x-tenant-id", &sub)
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(
        with(&keys[0]).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(with(&keys[1]).await.unwrap().status(), StatusCode::OK);
}

async fn platform_admin_reads_across_tenants_only_through_the_audited_path(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    // A platform token cannot use the tenant's own route.
    let direct = s
        .request(Method::GET, "/audit-logs", &sub, s.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
    // Tenant tokens cannot use the platform path.
    let path = format!("/tenants/{id}/audit-logs");
    let res = s
        .get(&path)
        .bearer_auth(s.token(id, TokenRole::Owner))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = s
        .get(&format!("{path}?action=create"))
        .bearer_auth(s.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let items = res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!items.is_empty() && items.iter().all(|e| e["tenant_id"] == id.to_string()));

    let reads = log(
        &s,
        &sub,
        &s.token(id, TokenRole::Owner),
        "?action=audit_log.platform_read",
    )
    .await;
    assert_eq!(
        reads.len(),
        1,
        "the tenant sees that the platform read its trail"
    );
    assert_eq!(reads[0]["actor"]["type"], "platform_admin");
    assert_eq!(reads[0]["changes"]["after"]["query"], "action=create");

    let unknown = s
        .get(&format!(
            "/tenants/{}/audit-logs",
            tenantkit::TenantId::new()
        ))
        .bearer_auth(s.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn bad_audit_queries_get_problem_details(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    let token = s.token(id, TokenRole::Owner);
    for (query, status) in [
        ("?actor_type=robot", StatusCode::UNPROCESSABLE_ENTITY),
        ("?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("?limit=501", StatusCode::UNPROCESSABLE_ENTITY),
        ("?from=yesterday", StatusCode::BAD_REQUEST),
        ("?colour=red", StatusCode::BAD_REQUEST),
    ] {
        let res = s
            .request(Method::GET, &format!("/audit-logs{query}"), &sub, &token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{query}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
    }
}

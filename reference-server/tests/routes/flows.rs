//! What a client does: CRUD, permissions, bad input, limits, compatibility
//! (moved from the socket tests, steps and assertions as they were).

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{Backend, auth::TokenRole};

use crate::{
    client::{Reply, Req, Server},
    on_both_backends, server,
};

on_both_backends!(
    user_crud_round_trip,
    roles_limit_what_users_may_do,
    api_key_lifecycle_and_scopes,
    bad_input_gets_problem_details_and_changes_nothing,
    body_over_the_limit_is_413,
    per_tenant_rate_limit_gives_429_with_retry_after,
    default_tenant_keeps_single_tenant_clients_working,
    health_needs_no_auth_and_metrics_count_per_tenant,
    listing_paginates,
);

struct As<'a> {
    s: &'a Server,
    id: tenantkit::TenantId,
    tenant: String,
    token: String,
}

impl As<'_> {
    fn req(&self, method: Method, path: &str) -> Req<'_> {
        self.s.request(method, path, &self.tenant, &self.token)
    }
    async fn get(&self, path: &str) -> Reply {
        self.req(Method::GET, path).send().await.unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.req(Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn delete(&self, path: &str) -> Reply {
        self.req(Method::DELETE, path).send().await.unwrap()
    }
}

async fn as_role(s: &Server, role: TokenRole) -> As<'_> {
    let (id, sub) = s.create_tenant().await;
    As {
        s,
        id,
        tenant: sub,
        token: s.token(id, role),
    }
}

async fn user_crud_round_trip(backend: Backend) {
    let s = server!(backend);
    let owner = as_role(&s, TokenRole::Owner).await;
    let res = owner
        .post(
            "/users",
            json!({ "email": "Carol@Example.test", "role": "admin" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let carol: Value = res.json().await.unwrap();
    assert_eq!(carol["email"], "carol@example.test");
    assert_eq!(
        location,
        format!("/users/{}", carol["id"].as_str().unwrap())
    );

    assert_eq!(
        owner.get(&location).await.json::<Value>().await.unwrap(),
        carol
    );
    let dup = owner
        .post("/users", json!({ "email": "carol@example.test" }))
        .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);

    let patched: Value = owner
        .patch(&location, json!({ "role": "member" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (patched["role"].as_str(), patched["email"].as_str()),
        (Some("member"), Some("carol@example.test"))
    );

    assert_eq!(
        owner.delete(&location).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(owner.get(&location).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        owner.delete(&location).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn roles_limit_what_users_may_do(backend: Backend) {
    let s = server!(backend);
    let (id, sub) = s.create_tenant().await;
    let member = As {
        s: &s,
        id,
        tenant: sub.clone(),
        token: s.token(id, TokenRole::Member),
    };
    let admin = As {
        s: &s,
        id,
        tenant: sub.clone(),
        token: s.token(id, TokenRole::Admin),
    };
    let owner = As {
        s: &s,
        id,
        tenant: sub,
        token: s.token(id, TokenRole::Owner),
    };

    assert_eq!(member.get("/users").await.status(), StatusCode::OK);
    assert_eq!(
        member
            .post("/users", json!({ "email": "m@x.test" }))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        member.get("/api-keys").await.status(),
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        admin
            .post("/users", json!({ "email": "boss@x.test", "role": "owner" }))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let res = admin
        .post("/users", json!({ "email": "staff@x.test" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let staff: Value = res.json().await.unwrap();
    let staff_path = format!("/users/{}", staff["id"].as_str().unwrap());
    assert_eq!(
        admin
            .patch(&staff_path, json!({ "role": "owner" }))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // The first owner can be changed only by an owner, and never leave the tenant ownerless.
    let first_owner: Value = owner.get("/users").await.json().await.unwrap();
    let first_owner_id = first_owner["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner_path = format!("/users/{first_owner_id}");
    assert_eq!(
        admin.delete(&owner_path).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        owner.delete(&owner_path).await.status(),
        StatusCode::CONFLICT,
        "last owner"
    );
    assert_eq!(
        owner
            .patch(&staff_path, json!({ "role": "owner" }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        owner.delete(&owner_path).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn api_key_lifecycle_and_scopes(backend: Backend) {
    let s = server!(backend);
    let admin = as_role(&s, TokenRole::Admin).await;
    s.subscribe(admin.id, "price_pro").await;
    let res = admin
        .post(
            "/api-keys",
            json!({ "name": "reader", "scopes": ["users:read", "api_keys:write"] }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(
        created.get("hash").is_none(),
        "hash never leaves the server"
    );

    let robot = As {
        s: &s,
        id: admin.id,
        tenant: admin.tenant.clone(),
        token: key.clone(),
    };
    assert_eq!(robot.get("/users").await.status(), StatusCode::OK);
    assert_eq!(
        robot
            .post("/users", json!({ "email": "r@x.test" }))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let escalate = robot
        .post(
            "/api-keys",
            json!({ "name": "more", "scopes": ["users:write"] }),
        )
        .await;
    assert_eq!(
        escalate.status(),
        StatusCode::FORBIDDEN,
        "a key cannot grant scopes it lacks"
    );
    let narrower = robot
        .post(
            "/api-keys",
            json!({ "name": "less", "scopes": ["users:read"] }),
        )
        .await;
    assert_eq!(narrower.status(), StatusCode::CREATED);

    let listed: Value = admin.get("/api-keys").await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("hash").is_none() && k.get("key").is_none())
    );

    let path = format!("/api-keys/{}", created["id"].as_str().unwrap());
    assert_eq!(admin.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        admin.delete(&path).await.status(),
        StatusCode::NO_CONTENT,
        "idempotent"
    );
    assert_eq!(
        robot.get("/users").await.status(),
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
}

async fn bad_input_gets_problem_details_and_changes_nothing(backend: Backend) {
    let s = server!(backend);
    let owner = as_role(&s, TokenRole::Owner).await;
    let cases: Vec<(Req<'_>, StatusCode)> = vec![
        (
            owner
                .req(Method::POST, "/users")
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            owner.req(Method::POST, "/users").body("email=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            owner
                .req(Method::POST, "/users")
                .json(&json!({ "email": 7 })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner
                .req(Method::POST, "/users")
                .json(&json!({ "email": "nope" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner
                .req(Method::POST, "/users")
                .json(&json!({ "email": "x@y.test", "role": "god" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner.req(Method::GET, "/users?limit=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner.req(Method::GET, "/users?limit=501"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner.req(Method::GET, "/users?limit=abc"),
            StatusCode::BAD_REQUEST,
        ),
        (
            owner.req(Method::GET, "/users/not-a-uuid"),
            StatusCode::NOT_FOUND,
        ),
        (
            owner
                .req(Method::POST, "/api-keys")
                .json(&json!({ "name": "" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            owner
                .req(Method::POST, "/api-keys")
                .json(&json!({ "name": "k", "scopes": ["root"] })),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (req, status) in cases {
        let res = req.send().await.unwrap();
        let url = res.url().to_owned();
        assert_eq!(res.status(), status, "{url}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], status.as_u16());
        assert!(
            !body["detail"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains("sql"),
            "{body}"
        );
    }
    let patch = owner
        .req(Method::PATCH, "/users/00000000-0000-7000-8000-000000000000")
        .json(&json!({ "rol": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        patch.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    let users: Value = owner.get("/users").await.json().await.unwrap();
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        1,
        "only the first owner exists"
    );
}

async fn body_over_the_limit_is_413(backend: Backend) {
    let s = server!(backend, |c| c.server.max_body_bytes = 1024);
    let owner = as_role(&s, TokenRole::Owner).await;
    let big = json!({ "email": format!("{}@x.test", "a".repeat(2000)) });
    let res = owner.post("/users", big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let small = owner
        .post("/users", json!({ "email": "fits@x.test" }))
        .await;
    assert_eq!(small.status(), StatusCode::CREATED);
}

async fn per_tenant_rate_limit_gives_429_with_retry_after(backend: Backend) {
    let s = server!(backend, |c| c.rate_limit.per_tenant_per_minute = 3);
    let a = as_role(&s, TokenRole::Member).await;
    let b = as_role(&s, TokenRole::Member).await;
    for i in 0..3 {
        assert_eq!(
            a.get("/tenant").await.status(),
            StatusCode::OK,
            "request {i}"
        );
    }
    let refused = a.get("/tenant").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry));
    assert_eq!(
        b.get("/tenant").await.status(),
        StatusCode::OK,
        "other tenants unaffected"
    );
}

async fn default_tenant_keeps_single_tenant_clients_working(backend: Backend) {
    // A tenant made after start is the default (requests resolve it then).
    let default = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let named = default.clone();
    let s = server!(backend, move |c| c.server.default_tenant = Some(named));
    let id = s.create_tenant_named(&default).await;
    let res = s
        .get("/tenant")
        .bearer_auth(s.cli_token(id, tenantkit::Role::Member).await)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "no tenant named, default used"
    );
    assert_eq!(res.json::<Value>().await.unwrap()["id"], id.to_string());
    let (other, other_sub) = s.create_tenant().await;
    let res = s
        .get("/tenant")
        .header("x-tenant-id", &other_sub)
        .bearer_auth(s.token(other, TokenRole::Member))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["id"],
        other.to_string(),
        "named tenants still win"
    );
}

async fn health_needs_no_auth_and_metrics_count_per_tenant(backend: Backend) {
    let s = server!(backend);
    assert_eq!(
        s.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get("/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
    let owner = as_role(&s, TokenRole::Owner).await;
    assert_eq!(owner.get("/users").await.status(), StatusCode::OK);
    let res = s
        .get("/metrics")
        .bearer_auth(s.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let line = format!(
        "tenantkit_http_requests_total{{tenant=\"{}\",method=\"GET\",status=\"200\"}} 1",
        owner.tenant
    );
    assert!(text.contains(&line), "{line} missing from:\n{text}");
    let missing = s.get("/no-such-thing").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("x-request-id"));
}

async fn listing_paginates(backend: Backend) {
    let s = server!(backend);
    let owner = as_role(&s, TokenRole::Owner).await;
    for i in 0..4 {
        assert_eq!(
            owner
                .post("/users", json!({ "email": format!("p{i}@x.test") }))
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let mut seen = 0;
    let mut path = "/users?limit=2".to_owned();
    loop {
        let page: Value = owner.get(&path).await.json().await.unwrap();
        seen += page["items"].as_array().unwrap().len();
        match page["next_after"].as_str() {
            Some(after) => path = format!("/users?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, 5, "owner plus four");
}

//! Random interleavings of operations by several tenants never let a read
//! return another tenant's data, on either backend.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tenantkit::{
    Db, Error, NewApiKey, NewUser, PageRequest, Role, TenantContext, UserId, UserPatch,
};

use crate::common::{postgres, sqlite, tenant};

const TENANTS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    CreateUser {
        tenant: usize,
        email: u8,
    },
    ListUsers {
        tenant: usize,
    },
    /// Reads a user created earlier (by any tenant), picked by index.
    GetUser {
        tenant: usize,
        pick: usize,
    },
    UpdateUser {
        tenant: usize,
        pick: usize,
        email: u8,
    },
    DeleteUser {
        tenant: usize,
        pick: usize,
    },
    CreateApiKey {
        tenant: usize,
    },
    ListApiKeys {
        tenant: usize,
    },
    /// Verifies a key created earlier (by any tenant).
    VerifyApiKey {
        tenant: usize,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    prop_oneof![
        3 => (t.clone(), any::<u8>()).prop_map(|(tenant, email)| Op::CreateUser { tenant, email }),
        2 => t.clone().prop_map(|tenant| Op::ListUsers { tenant }),
        3 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::GetUser { tenant, pick }),
        2 => (t.clone(), any::<usize>(), any::<u8>()).prop_map(|(tenant, pick, email)| Op::UpdateUser { tenant, pick, email }),
        1 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::DeleteUser { tenant, pick }),
        1 => t.clone().prop_map(|tenant| Op::CreateApiKey { tenant }),
        1 => t.clone().prop_map(|tenant| Op::ListApiKeys { tenant }),
        2 => (t, any::<usize>()).prop_map(|(tenant, pick)| Op::VerifyApiKey { tenant, pick }),
    ]
}

/// What each tenant should own, by the model.
#[derive(Default)]
struct Model {
    users: Vec<(usize, UserId)>,
    live_users: BTreeMap<usize, BTreeSet<UserId>>,
    keys: Vec<(usize, String)>,
}

impl Model {
    /// A user created earlier, by any tenant: `(owning tenant, id, not deleted)`.
    fn pick_user(&self, pick: usize) -> (usize, UserId, bool) {
        let (owner, id) = self.users[pick % self.users.len()];
        let live = self.live_users.get(&owner).is_some_and(|s| s.contains(&id));
        (owner, id, live)
    }
}

async fn run(db: Db, ops: Vec<Op>) {
    let mut tenants: Vec<TenantContext> = Vec::new();
    for _ in 0..TENANTS {
        tenants.push(tenant(&db).await);
    }
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::CreateUser { tenant: t, email } => {
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                // Owners, so deletes and role changes are never blocked by the last-owner rule.
                match tx
                    .create_user(&NewUser {
                        email: format!("u{email}@x.test"),
                        role: Role::Owner,
                    })
                    .await
                {
                    Ok(u) => {
                        assert_eq!(u.tenant_id, tenants[t].id());
                        tx.commit().await.unwrap();
                        model.users.push((t, u.id));
                        model.live_users.entry(t).or_default().insert(u.id);
                    }
                    Err(Error::Conflict(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            Op::ListUsers { tenant: t } => {
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                let listed = tx.list_users(PageRequest::first(500)).await.unwrap();
                assert!(
                    listed.iter().all(|u| u.tenant_id == tenants[t].id()),
                    "foreign row listed"
                );
                let ids: BTreeSet<_> = listed.iter().map(|u| u.id).collect();
                assert_eq!(ids, model.live_users.get(&t).cloned().unwrap_or_default());
            }
            Op::GetUser { tenant: t, pick } if !model.users.is_empty() => {
                let (owner, id, live) = model.pick_user(pick);
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                match tx.get_user(id).await {
                    Ok(u) => {
                        assert_eq!(
                            (u.tenant_id, owner, live),
                            (tenants[t].id(), t, true),
                            "read another tenant's user"
                        )
                    }
                    Err(Error::NotFound(_)) => assert!(owner != t || !live),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::UpdateUser {
                tenant: t,
                pick,
                email,
            } if !model.users.is_empty() => {
                let (owner, id, live) = model.pick_user(pick);
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                let patch = UserPatch {
                    email: Some(format!("v{email}@x.test")),
                    role: None,
                };
                match tx.update_user(id, &patch).await {
                    Ok(u) => {
                        assert_eq!((u.tenant_id, owner, live), (tenants[t].id(), t, true));
                        tx.commit().await.unwrap();
                    }
                    Err(Error::NotFound(_)) => assert!(owner != t || !live),
                    Err(Error::Conflict(_)) => assert_eq!(owner, t),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::DeleteUser { tenant: t, pick } if !model.users.is_empty() => {
                let (owner, id, live) = model.pick_user(pick);
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                match tx.delete_user(id).await {
                    Ok(u) => {
                        assert_eq!(
                            (u.tenant_id, owner, live),
                            (tenants[t].id(), t, true),
                            "deleted another tenant's user"
                        );
                        tx.commit().await.unwrap();
                        model.live_users.get_mut(&t).unwrap().remove(&id);
                    }
                    Err(Error::NotFound(_)) => assert!(owner != t || !live),
                    Err(Error::Conflict(_)) => {
                        assert_eq!(model.live_users[&t].len(), 1, "last owner")
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Op::CreateApiKey { tenant: t } => {
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                let k = tx
                    .create_api_key(&NewApiKey {
                        name: "k".into(),
                        scopes: vec![],
                    })
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                model.keys.push((t, k.key));
            }
            Op::ListApiKeys { tenant: t } => {
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                let listed = tx.list_api_keys(PageRequest::first(500)).await.unwrap();
                assert!(
                    listed.iter().all(|k| k.tenant_id == tenants[t].id()),
                    "foreign key listed"
                );
                assert_eq!(
                    listed.len(),
                    model.keys.iter().filter(|(o, _)| *o == t).count()
                );
            }
            Op::VerifyApiKey { tenant: t, pick } if !model.keys.is_empty() => {
                let (owner, key) = &model.keys[pick % model.keys.len()];
                let mut tx = db.begin(&tenants[t]).await.unwrap();
                let verified = tx.verify_api_key(key).await.unwrap();
                assert_eq!(
                    verified.is_some(),
                    *owner == t,
                    "key verified in the wrong tenant"
                );
                tx.commit().await.unwrap();
            }
            _ => {}
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_read_crosses_tenants_sqlite(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async { run(sqlite().await, ops).await });
    }

    #[test]
    fn no_read_crosses_tenants_postgres(ops in prop::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            if let Some(db) = postgres().await {
                run(db, ops).await;
            }
        });
    }
}

//! Users: tenant-owned, reached only through [`TenantTx`].

use chrono::Utc;

use crate::{
    Error, NewUser, PageRequest, Result, Role, TenantTx, User, UserId, UserPatch, audit::Audited,
    store::sql, validate,
};

impl TenantTx {
    /// The tenant's users in id (creation) order.
    pub async fn list_users(&mut self, page: PageRequest<UserId>) -> Result<Vec<User>> {
        let limit = validate::limit(page.limit)?;
        let q = self
            .query(sql::LIST_USERS)
            .bind(page.after.map(|id| id.as_uuid()))
            .bind(limit);
        self.fetch_all(q).await
    }

    /// One user; [`Error::NotFound`] when it does not exist in this tenant.
    pub async fn get_user(&mut self, id: UserId) -> Result<User> {
        let q = self.query(sql::GET_USER).bind(id);
        self.fetch_optional(q).await?.ok_or(Error::NotFound("user"))
    }

    /// Creates a user; [`Error::Conflict`] when the e-mail is taken in this tenant.
    pub async fn create_user(&mut self, new: &NewUser) -> Result<User> {
        self.create_user_within(new, None).await
    }

    /// Creates a user unless the tenant already has `max_users` users
    /// ([`Error::LimitExceeded`]). The count and the insert happen under the
    /// tenant's write lock, so concurrent creations never overshoot the limit.
    pub async fn create_user_within(
        &mut self,
        new: &NewUser,
        max_users: Option<u64>,
    ) -> Result<User> {
        self.add_user("create", new, max_users).await
    }

    /// Creates the user a token of the tenant's identity provider names on
    /// their first sign-in (just-in-time provisioning), within `max_users`
    /// like [`TenantTx::create_user_within`], audited as `user.provisioned`.
    /// A user created meanwhile by another request is returned as it is.
    pub async fn provision_user(&mut self, new: &NewUser, max_users: Option<u64>) -> Result<User> {
        let email = validate::email(&new.email)?;
        // Every user insert takes the tenant's write lock: once it is held,
        // a user created by a concurrent sign-in is seen here.
        self.lock_tenant_writes().await?;
        let q = self.query(sql::USER_BY_EMAIL).bind(email);
        if let Some(user) = self.fetch_optional(q).await? {
            return Ok(user);
        }
        self.add_user("user.provisioned", new, max_users).await
    }

    async fn add_user(
        &mut self,
        action: &str,
        new: &NewUser,
        max_users: Option<u64>,
    ) -> Result<User> {
        let email = validate::email(&new.email)?;
        if let Some(limit) = max_users {
            self.lock_tenant_writes().await?;
            let usage = u64::try_from(self.count_users().await?).unwrap_or(u64::MAX);
            if usage >= limit {
                return Err(Error::LimitExceeded {
                    resource: "users",
                    limit,
                    usage,
                });
            }
        }
        self.users_changed().await?;
        let q = self
            .query(sql::INSERT_USER)
            .bind(UserId::new())
            .bind(email)
            .bind(new.role)
            .bind(Utc::now());
        self.insert_as(action, q)
            .await
            .map_err(|e| e.conflict_if_unique("a user with this email already exists"))
    }

    /// Changes a user's e-mail and/or role. The last owner cannot be demoted.
    pub async fn update_user(&mut self, id: UserId, patch: &UserPatch) -> Result<User> {
        self.lock_tenant_writes().await?;
        let current = self.get_user(id).await?;
        let email = match &patch.email {
            Some(email) => validate::email(email)?,
            None => current.email.clone(),
        };
        let role = patch.role.unwrap_or(current.role);
        self.users_changed().await?;
        if current.role == Role::Owner && role != Role::Owner {
            self.ensure_another_owner(id).await?;
        }
        let q = self.query(sql::UPDATE_USER).bind(id).bind(email).bind(role);
        let action = if role == current.role {
            "update"
        } else {
            "user.role_changed"
        };
        self.update_as(action, &current, q)
            .await
            .map_err(|e| e.conflict_if_unique("a user with this email already exists"))
    }

    /// Deletes a user. The last owner cannot be deleted.
    pub async fn delete_user(&mut self, id: UserId) -> Result<User> {
        self.lock_tenant_writes().await?;
        let current = self.get_user(id).await?;
        if current.role == Role::Owner {
            self.ensure_another_owner(id).await?;
        }
        self.users_changed().await?;
        let q = self.query(sql::DELETE_USER).bind(id);
        self.delete(&current, q).await?;
        Ok(current)
    }

    /// The tenant's first owner (the oldest); [`Error::NotFound`] when it has none.
    pub async fn first_owner(&mut self) -> Result<User> {
        let q = self.query(sql::FIRST_OWNER);
        self.fetch_optional(q).await?.ok_or(Error::NotFound("user"))
    }

    /// How many users the tenant has.
    pub async fn count_users(&mut self) -> Result<i64> {
        let q = self.query(sql::COUNT_USERS);
        let (n,): (i64,) = self.fetch_one(q).await?;
        Ok(n)
    }

    async fn ensure_another_owner(&mut self, id: UserId) -> Result<()> {
        let q = self.query(sql::COUNT_OTHER_OWNERS).bind(id);
        let (others,): (i64,) = self.fetch_one(q).await?;
        if others == 0 {
            return Err(Error::Conflict(
                "a tenant must keep at least one owner".into(),
            ));
        }
        Ok(())
    }
}

impl Audited for User {
    const RESOURCE_TYPE: &'static str = "user";

    fn resource_id(&self) -> String {
        self.id.to_string()
    }
}

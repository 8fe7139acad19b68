//! How authentication reads a user: who they are and their role now.

use super::{
    TenantTx,
    access::{UserAccess, UserRef},
    sql,
};
use crate::{Result, UserId};

impl TenantTx {
    /// The user `user` names in this tenant, with their current role.
    pub async fn find_user_access(&mut self, user: &UserRef) -> Result<Option<UserAccess>> {
        let q = match user {
            UserRef::Id(id) => self.query(sql::USER_ACCESS_BY_ID).bind(*id),
            UserRef::Email(email) => self
                .query(sql::USER_ACCESS_BY_EMAIL)
                .bind(email.to_ascii_lowercase()),
        };
        let row: Option<(UserId, String)> = self.fetch_optional(q).await?;
        row.map(|(id, role)| {
            Ok(UserAccess {
                id,
                role: role.parse()?,
            })
        })
        .transpose()
    }
}

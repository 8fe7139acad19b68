//! Handlers, one module per resource.

pub mod analytics;
pub mod api_keys;
pub mod audit_logs;
pub mod billing;
pub mod dashboard;
pub mod health;
pub mod live;
pub mod sso;
pub mod tenant;
pub mod tenants;
pub mod users;
pub mod webhooks;

use serde::Serialize;

/// A page of a keyset-paginated listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T, Id> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `null` on the last page.
    // Every listing's ids are UUIDs; stated here because the generic `Id`
    // would lose its `null`.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_after: Option<Id>,
}

impl<T, Id> Page<T, Id> {
    /// A page; `next_after` is set when the page is full.
    pub fn new(items: Vec<T>, limit: u32, id: impl Fn(&T) -> Id) -> Self {
        let next_after = (items.len() == limit as usize)
            .then(|| items.last().map(&id))
            .flatten();
        Self { items, next_after }
    }
}

/// The tenant a platform route names by id, whatever its status: `404` if
/// there is none.
pub(crate) async fn named_tenant(
    db: &tenantkit::Db,
    id: tenantkit::TenantId,
) -> Result<tenantkit::TenantContext, tenantkit::Error> {
    db.resolve_id(id)
        .await?
        .ok_or(tenantkit::Error::NotFound("tenant"))
}

//! Every SQL statement of tenantkit-billing, by name, in one place. The
//! workspace's statement test prepares each on both backends.

use tenantkit::store::Sql;

tenantkit::statements! {
    /// The tenant's subscription row.
    pub const LOAD_SUBSCRIPTION: Sql = Sql::both(
        "SELECT tenant_id, stripe_customer_id, stripe_subscription_id, plan, status, current_period_end, \
         cancel_at_period_end, past_due_since, last_event_at, last_event_rank, updated_at \
         FROM subscriptions WHERE tenant_id = $1",
    );
    /// A Stripe event as received; nothing when it was already (a duplicate delivery).
    pub const RECORD_STRIPE_EVENT: Sql = Sql::both(
        "INSERT INTO stripe_events (tenant_id, event_id, event_type, event_created, received_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, event_id) DO NOTHING \
         RETURNING tenant_id, event_id, event_type, event_created, received_at",
    );
    /// The tenant's first subscription row (`$2`..`$11`: every column after `tenant_id`).
    pub const INSERT_SUBSCRIPTION: Sql = Sql::both(
        "INSERT INTO subscriptions (tenant_id, stripe_customer_id, stripe_subscription_id, plan, status, \
         current_period_end, cancel_at_period_end, past_due_since, last_event_at, last_event_rank, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         RETURNING tenant_id, stripe_customer_id, stripe_subscription_id, plan, status, \
         current_period_end, cancel_at_period_end, past_due_since, last_event_at, last_event_rank, \
         updated_at",
    );
    /// The tenant's subscription row, replaced (`$2`..`$11` as for `INSERT_SUBSCRIPTION`).
    pub const UPDATE_SUBSCRIPTION: Sql = Sql::both(
        "UPDATE subscriptions SET stripe_customer_id = $2, stripe_subscription_id = $3, plan = $4, \
         status = $5, current_period_end = $6, cancel_at_period_end = $7, past_due_since = $8, \
         last_event_at = $9, last_event_rank = $10, updated_at = $11 WHERE tenant_id = $1 \
         RETURNING tenant_id, stripe_customer_id, stripe_subscription_id, plan, status, \
         current_period_end, cancel_at_period_end, past_due_since, last_event_at, last_event_rank, \
         updated_at",
    );
}

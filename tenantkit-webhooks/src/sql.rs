//! Every SQL statement of tenantkit-webhooks, by name, in one place: one
//! text for both backends, a PostgreSQL/SQLite pair where the dialects
//! differ (JSON operators, row locks), or one backend's statement where its
//! algorithm differs (claiming and recording a batch). The workspace's
//! statement test prepares each on the backends that run it.

use tenantkit::store::Sql;

/// The columns of a `webhooks` row, in `Webhook`'s order.
macro_rules! columns {
    () => {
        "tenant_id, id, url, description, event_types, channels, header_names, secret_headers, \
         secret, previous_secret, previous_secret_expires_at, status, disabled_reason, \
         disabled_at, created_at, updated_at"
    };
}

/// [`columns`] of `webhooks` beside other tables' columns.
macro_rules! webhook_columns {
    () => {
        "webhooks.tenant_id AS tenant_id, webhooks.id AS id, webhooks.url AS url, \
         webhooks.description AS description, webhooks.event_types AS event_types, \
         webhooks.channels AS channels, webhooks.header_names AS header_names, \
         webhooks.secret_headers AS secret_headers, webhooks.secret AS secret, \
         webhooks.previous_secret AS previous_secret, \
         webhooks.previous_secret_expires_at AS previous_secret_expires_at, \
         webhooks.status AS status, webhooks.disabled_reason AS disabled_reason, \
         webhooks.disabled_at AS disabled_at, webhooks.created_at AS created_at, \
         webhooks.updated_at AS updated_at"
    };
}

/// Whether a `webhooks` row receives a message of type `$t` on channels `$c`
/// (a JSON array), on PostgreSQL: it subscribes to the type, to `*`, or to
/// a wildcard `prefix.*` the type starts with (`prefix.`); and it has no
/// channels, or shares one with the message. The one routing rule, also
/// `Webhook::receives`.
macro_rules! routed_pg {
    ($t:literal, $c:literal) => {
        concat!(
            "(event_types ? ", $t, " OR event_types ? '*' OR EXISTS (SELECT 1 FROM \
             jsonb_array_elements_text(event_types) AS p(pattern) WHERE right(p.pattern, 2) = '.*' \
             AND starts_with(", $t, ", left(p.pattern, -1)))) \
             AND (jsonb_array_length(channels) = 0 OR channels ?| ARRAY(SELECT \
             jsonb_array_elements_text(", $c, "::jsonb)))"
        )
    };
}

/// [`routed_pg`] on SQLite.
macro_rules! routed_sqlite {
    ($t:literal, $c:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM json_each(webhooks.event_types) AS p WHERE p.value IN (",
            $t,
            ", '*') \
             OR (substr(p.value, -2) = '.*' AND substr(",
            $t,
            ", 1, length(p.value) - 1) = \
             substr(p.value, 1, length(p.value) - 1))) \
             AND (json_array_length(webhooks.channels) = 0 OR EXISTS (SELECT 1 FROM \
             json_each(webhooks.channels) AS c, json_each(",
            $c,
            ") AS m WHERE c.value = m.value))"
        )
    };
}

/// The columns of a delivery (a queue row and its message).
macro_rules! delivery_columns {
    () => {
        "q.message_id, q.webhook_id, m.event_type, q.state, q.attempts, \
         q.lease_id IS NOT NULL AS in_flight, \
         CASE WHEN q.state = 'pending' AND q.lease_id IS NULL THEN q.next_attempt_at END AS next_attempt_at, \
         q.last_attempt_at, q.last_status, q.last_error, m.created_at"
    };
}

tenantkit::statements! {
    // Finding work (`tenantkit::store::DueWork`): tenant ids and times only.
    /// Tenants with due deliveries, the longest waiting first.
    pub const DUE_TENANTS: Sql = Sql::pair(
        "SELECT tenant_id, due_at FROM tenantkit_webhooks_due_tenants($1, $2, $3)",
        "SELECT tenant_id, MIN(next_attempt_at) AS due_at FROM webhook_queue \
         WHERE state = 'pending' GROUP BY tenant_id HAVING MIN(next_attempt_at) <= $1 \
         ORDER BY due_at LIMIT $2",
    );
    /// Tenants with messages published before `$1`.
    pub const EXPIRED_TENANTS: Sql = Sql::pair(
        "SELECT tenant_id, due_at FROM tenantkit_webhooks_expired_tenants($1, $2, $3)",
        "SELECT tenant_id, MIN(created_at) AS due_at FROM webhook_messages \
         GROUP BY tenant_id HAVING MIN(created_at) < $1 ORDER BY due_at LIMIT $2",
    );
    /// Tenants with idempotency keys claimed before `$1`.
    pub const EXPIRED_KEY_TENANTS: Sql = Sql::pair(
        "SELECT tenant_id, due_at FROM tenantkit_webhooks_expired_key_tenants($1, $2, $3)",
        "SELECT tenant_id, MIN(created_at) AS due_at FROM webhook_idempotency \
         GROUP BY tenant_id HAVING MIN(created_at) < $1 ORDER BY due_at LIMIT $2",
    );

    // Endpoints (audited).
    /// A new endpoint.
    pub const INSERT_WEBHOOK: Sql = Sql::both(concat!(
        "INSERT INTO webhooks (tenant_id, id, url, description, event_types, secret, status, \
         created_at, updated_at, channels, header_names, secret_headers) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING ",
        columns!()
    ));
    /// A page of the tenant's endpoints, oldest first (`$2`: after this id,
    /// `$3`: how many).
    pub const LIST_WEBHOOKS: Sql = Sql::both(concat!(
        "SELECT ",
        columns!(),
        " FROM webhooks WHERE tenant_id = $1 AND (id > $2 OR $2 IS NULL) ORDER BY id LIMIT $3"
    ));
    /// One endpoint.
    pub const GET_WEBHOOK: Sql = Sql::both(concat!(
        "SELECT ",
        columns!(),
        " FROM webhooks WHERE tenant_id = $1 AND id = $2"
    ));
    /// An endpoint's URL, event types, description, status, channels and
    /// custom headers (their names, `$11`, and the sealed set, `$12`).
    pub const UPDATE_WEBHOOK: Sql = Sql::both(concat!(
        "UPDATE webhooks SET url = $3, event_types = $4, description = $5, status = $6, \
         disabled_reason = $7, disabled_at = $8, updated_at = $9, channels = $10, \
         header_names = $11, secret_headers = $12 \
         WHERE tenant_id = $1 AND id = $2 RETURNING ",
        columns!()
    ));
    /// An endpoint removed.
    pub const DELETE_WEBHOOK: Sql = Sql::both(
        "DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2",
    );
    /// A new secret; the previous one kept until `$4`.
    pub const ROTATE_SECRET: Sql = Sql::both(concat!(
        "UPDATE webhooks SET previous_secret = secret, previous_secret_expires_at = $3, \
         secret = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2 RETURNING ",
        columns!()
    ));
    /// An endpoint disabled by the worker (failing too long).
    pub const DISABLE_WEBHOOK: Sql = Sql::both(concat!(
        "UPDATE webhooks SET status = 'disabled', disabled_reason = $3, disabled_at = $4, \
         updated_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING ",
        columns!()
    ));
    /// Every pending delivery of the tenant, failed (the tenant is leaving).
    pub const STOP_PENDING_DELIVERIES: Sql = Sql::both(
        "UPDATE webhook_queue SET state = 'failed', next_attempt_at = NULL, leased_until = NULL, \
         lease_id = NULL, last_error = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND (webhook_id = $2 OR $2 IS NULL) AND state = 'pending'",
    );

    // The outbox: messages and their queue rows, in the publisher's transaction.
    /// A test message's one delivery, to one endpoint.
    pub const QUEUE_TEST_DELIVERY: Sql = Sql::both(
        "INSERT INTO webhook_queue (tenant_id, message_id, webhook_id, state, attempts, \
         next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)",
    );
    /// A published message.
    pub const INSERT_MESSAGE: Sql = Sql::both(
        "INSERT INTO webhook_messages (tenant_id, id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    );
    /// Whether any active endpoint receives a message of type `$2` on
    /// channels `$3` (a JSON array).
    pub const ANY_SUBSCRIBER: Sql = Sql::sqlite_only(concat!(
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = $1 AND status = 'active' AND ",
        routed_sqlite!("$2", "$3"),
        ")"
    ));
    /// One queue row per active endpoint that receives message `$2` of type
    /// `$3` on channels `$5`, due at `$4`; with a lease `$6` (else NULL), up
    /// to `$8` of them leased to it until `$7` (`crate::dispatch`).
    pub const FAN_OUT: Sql = Sql::sqlite_only(concat!(
        "INSERT INTO webhook_queue (tenant_id, message_id, webhook_id, state, attempts, \
         next_attempt_at, leased_until, lease_id, created_at, updated_at) \
         SELECT tenant_id, $2, id, 'pending', \
         CASE WHEN $6 IS NOT NULL AND rank <= $8 THEN 1 ELSE 0 END, \
         CASE WHEN $6 IS NOT NULL AND rank <= $8 THEN $7 ELSE $4 END, \
         CASE WHEN $6 IS NOT NULL AND rank <= $8 THEN $7 END, \
         CASE WHEN $6 IS NOT NULL AND rank <= $8 THEN $6 END, $4, $4 \
         FROM (SELECT tenant_id, id, row_number() OVER (ORDER BY id) AS rank FROM webhooks \
         WHERE tenant_id = $1 AND status = 'active' AND ",
        routed_sqlite!("$3", "$5"),
        ")"
    ));
    /// PostgreSQL's publish in one round trip: message `$2` of type `$3`
    /// with body `$6`, stored at `$4` with one queue row per active endpoint
    /// that receives it on channels `$5` ([`ANY_SUBSCRIBER`], then
    /// [`INSERT_MESSAGE`] and [`FAN_OUT`]; nothing stored when no endpoint
    /// does). With a lease `$7` (else NULL), up to `$9` of the rows are
    /// inserted leased to it until `$8`, for this process's worker to send
    /// at once (`crate::dispatch`); where the tenant has a budget `$11`
    /// per minute (else NULL), they are counted in its window starting `$10`
    /// and, when they would exceed it, none is leased. Returns each
    /// receiving endpoint and whether its row was leased.
    pub const PUBLISH: Sql = Sql::postgres_only(concat!(
        "WITH targets AS (SELECT ",
        columns!(),
        ", row_number() OVER (ORDER BY id) AS rank FROM webhooks \
         WHERE tenant_id = $1 AND status = 'active' AND ",
        routed_pg!("$3", "$5"),
        "), message AS (INSERT INTO webhook_messages (tenant_id, id, event_type, payload, created_at) \
         SELECT $1, $2, $3, $6, $4 WHERE EXISTS (SELECT 1 FROM targets) RETURNING id), \
         spent AS (INSERT INTO webhook_rate_windows (tenant_id, window_start, used) \
         SELECT $1, $10::timestamptz, least(count(*), $9::bigint) FROM targets \
         HAVING $7::uuid IS NOT NULL AND $11::bigint IS NOT NULL AND count(*) > 0 \
         AND least(count(*), $9::bigint) <= $11::bigint \
         ON CONFLICT (tenant_id) DO UPDATE SET \
         used = CASE WHEN webhook_rate_windows.window_start < excluded.window_start \
         THEN 0 ELSE webhook_rate_windows.used END + excluded.used, \
         window_start = greatest(webhook_rate_windows.window_start, excluded.window_start) \
         WHERE CASE WHEN webhook_rate_windows.window_start < excluded.window_start \
         THEN 0 ELSE webhook_rate_windows.used END + excluded.used <= $11::bigint RETURNING 1), \
         direct AS (SELECT $7::uuid IS NOT NULL \
         AND ($11::bigint IS NULL OR EXISTS (SELECT 1 FROM spent)) AS leasing), \
         queued AS (INSERT INTO webhook_queue (tenant_id, message_id, webhook_id, state, attempts, \
         next_attempt_at, leased_until, lease_id, created_at, updated_at) \
         SELECT $1, message.id, targets.id, 'pending', \
         CASE WHEN leasing AND rank <= $9::bigint THEN 1 ELSE 0 END, \
         CASE WHEN leasing AND rank <= $9::bigint THEN $8::timestamptz ELSE $4 END, \
         CASE WHEN leasing AND rank <= $9::bigint THEN $8::timestamptz END, \
         CASE WHEN leasing AND rank <= $9::bigint THEN $7::uuid END, $4, $4 \
         FROM message, targets, direct \
         RETURNING webhook_id, lease_id IS NOT NULL AS leased) \
         SELECT queued.leased, ",
        webhook_columns!(),
        " FROM queued JOIN targets AS webhooks ON webhooks.id = queued.webhook_id"
    ));

    // The queue as the worker sees it: budget, claims, outcomes, releases.
    /// The tenant's budget window for this minute (reset when a new minute
    /// starts), locked until commit (so claims of every process share one
    /// budget): how much of it is used.
    pub const TAKE_RATE_WINDOW: Sql = Sql::both(
        "INSERT INTO webhook_rate_windows (tenant_id, window_start, used) VALUES ($1, $2, 0) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
         used = CASE WHEN webhook_rate_windows.window_start < excluded.window_start \
         THEN 0 ELSE webhook_rate_windows.used END, \
         window_start = CASE WHEN webhook_rate_windows.window_start < excluded.window_start \
         THEN excluded.window_start ELSE webhook_rate_windows.window_start END \
         RETURNING used",
    );
    /// Up to `$5` due deliveries leased to `$4` until `$3` (`$2`: now),
    /// returned with their bodies, skipping rows another worker is leasing;
    /// counted against the budget window when `$6`, each with its endpoint.
    /// One statement.
    pub const LEASE_DUE: Sql = Sql::postgres_only(concat!(
        "WITH leased AS (UPDATE webhook_queue q SET next_attempt_at = $3, leased_until = $3, \
         lease_id = $4, attempts = q.attempts + 1, updated_at = $2 \
         FROM (SELECT message_id, webhook_id FROM webhook_queue \
         WHERE tenant_id = $1 AND state = 'pending' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED) due, \
         webhook_messages m \
         WHERE q.tenant_id = $1 AND q.message_id = due.message_id AND q.webhook_id = due.webhook_id \
         AND m.tenant_id = $1 AND m.id = q.message_id \
         RETURNING q.message_id, q.webhook_id, q.attempts, m.payload), \
         spent AS (UPDATE webhook_rate_windows SET used = used + (SELECT count(*) FROM leased) \
         WHERE tenant_id = $1 AND $6 RETURNING 1) \
         SELECT leased.message_id, leased.attempts, leased.payload, ",
        webhook_columns!(),
        " FROM leased JOIN webhooks ON webhooks.tenant_id = $1 AND webhooks.id = leased.webhook_id"
    ));
    /// [`LEASE_DUE`] on SQLite: leases, and returns nothing (its one writer
    /// reads them next, by [`LEASED_WITH_PAYLOADS`], and spends the budget
    /// by [`SPEND_RATE_WINDOW`]).
    pub const LEASE_DUE_ONLY: Sql = Sql::sqlite_only(
        "UPDATE webhook_queue SET next_attempt_at = $3, leased_until = $3, lease_id = $4, \
         attempts = attempts + 1, updated_at = $2 \
         WHERE tenant_id = $1 AND (message_id, webhook_id) IN \
         (SELECT message_id, webhook_id FROM webhook_queue \
         WHERE tenant_id = $1 AND state = 'pending' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $5)",
    );
    /// The deliveries of a lease, with their bodies and endpoints.
    pub const LEASED_WITH_PAYLOADS: Sql = Sql::sqlite_only(concat!(
        "SELECT q.message_id, q.attempts, m.payload, ",
        webhook_columns!(),
        " FROM webhook_queue q \
         JOIN webhook_messages m ON m.tenant_id = q.tenant_id AND m.id = q.message_id \
         JOIN webhooks ON webhooks.tenant_id = q.tenant_id AND webhooks.id = q.webhook_id \
         WHERE q.tenant_id = $1 AND q.lease_id = $2"
    ));
    /// Deliveries counted against this minute's budget.
    pub const SPEND_RATE_WINDOW: Sql = Sql::sqlite_only(
        "UPDATE webhook_rate_windows SET used = used + $2 WHERE tenant_id = $1",
    );
    /// A whole batch of outcomes (`$2`, a JSON array) in one statement: the
    /// attempt log, every delivery's next state (only while it is still
    /// leased to the attempt's lease), and the endpoints whose latest attempt
    /// succeeded (`$3`, a JSON array of ids) no longer failing.
    pub const RECORD_OUTCOMES: Sql = Sql::postgres_only(
        "WITH o AS (SELECT * FROM jsonb_to_recordset($2) AS o(id uuid, message_id uuid, \
         webhook_id uuid, lease uuid, attempt bigint, at timestamptz, duration_ms bigint, \
         status bigint, error text, excerpt text, state text, next_attempt_at timestamptz)), \
         logged AS (INSERT INTO webhook_deliveries (tenant_id, id, message_id, webhook_id, attempt, \
         attempted_at, duration_ms, response_status, error_class, response_excerpt) \
         SELECT $1, o.id, o.message_id, o.webhook_id, o.attempt, o.at, o.duration_ms, \
         o.status, o.error, o.excerpt FROM o \
         JOIN webhook_queue q ON q.tenant_id = $1 AND q.message_id = o.message_id \
         AND q.webhook_id = o.webhook_id RETURNING 1), \
         applied AS (UPDATE webhook_queue q SET state = o.state, next_attempt_at = o.next_attempt_at, \
         leased_until = NULL, lease_id = NULL, last_attempt_at = o.at, \
         last_status = o.status, last_error = o.error, updated_at = o.at FROM o \
         WHERE q.tenant_id = $1 AND q.message_id = o.message_id \
         AND q.webhook_id = o.webhook_id AND q.lease_id = o.lease RETURNING 1), \
         healthy AS (UPDATE webhook_health SET failing_since = NULL \
         WHERE tenant_id = $1 AND failing_since IS NOT NULL \
         AND webhook_id IN (SELECT h.id::uuid FROM jsonb_array_elements_text($3) AS h(id)) \
         RETURNING 1) \
         SELECT (SELECT count(*) FROM logged) AS logged, (SELECT count(*) FROM applied) AS applied",
    );
    /// One attempt logged.
    pub const LOG_ATTEMPT: Sql = Sql::sqlite_only(
        "INSERT INTO webhook_deliveries (tenant_id, id, message_id, webhook_id, attempt, \
         attempted_at, duration_ms, response_status, error_class, response_excerpt) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM webhook_queue \
         WHERE tenant_id = $1 AND message_id = $3 AND webhook_id = $4",
    );
    /// One delivery's next state.
    pub const APPLY_OUTCOME: Sql = Sql::sqlite_only(
        "UPDATE webhook_queue SET state = $4, next_attempt_at = $5, leased_until = NULL, \
         lease_id = NULL, last_attempt_at = $6, last_status = $7, last_error = $8, updated_at = $6 \
         WHERE tenant_id = $1 AND message_id = $2 AND webhook_id = $3 AND lease_id = $9",
    );
    /// Endpoints that succeeded are no longer failing.
    pub const CLEAR_FAILING: Sql = Sql::both(
        "UPDATE webhook_health SET failing_since = NULL \
         WHERE tenant_id = $1 AND webhook_id = $2 AND failing_since IS NOT NULL",
    );
    /// Endpoints that failed: failing since now, unless they already were.
    pub const MARK_FAILING: Sql = Sql::both(
        "INSERT INTO webhook_health (tenant_id, webhook_id, failing_since) \
         SELECT $1, $2, $3 WHERE EXISTS \
         (SELECT 1 FROM webhooks WHERE tenant_id = $1 AND id = $2) \
         ON CONFLICT (tenant_id, webhook_id) DO UPDATE \
         SET failing_since = COALESCE(webhook_health.failing_since, excluded.failing_since) \
         RETURNING failing_since",
    );
    /// Leased deliveries given back unattempted (shutdown).
    pub const RELEASE_LEASED: Sql = Sql::both(
        "UPDATE webhook_queue SET next_attempt_at = $5, leased_until = NULL, lease_id = NULL, \
         attempts = attempts - 1, updated_at = $5 \
         WHERE tenant_id = $1 AND message_id = $2 AND webhook_id = $3 AND lease_id = $4",
    );

    // Deliveries as the tenant sees them.
    /// A page of deliveries, with filters.
    pub const LIST_DELIVERIES: Sql = Sql::both(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_queue q JOIN webhook_messages m \
         ON m.tenant_id = q.tenant_id AND m.id = q.message_id \
         WHERE q.tenant_id = $1 AND q.webhook_id = $2 \
         AND (q.state = $3 OR $3 IS NULL) AND (m.event_type = $4 OR $4 IS NULL) \
         AND (m.created_at >= $5 OR $5 IS NULL) AND (m.created_at < $6 OR $6 IS NULL) \
         AND (q.message_id < $7 OR $7 IS NULL) \
         ORDER BY q.message_id DESC LIMIT $8"
    ));
    /// One delivery.
    pub const GET_DELIVERY: Sql = Sql::both(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_queue q JOIN webhook_messages m \
         ON m.tenant_id = q.tenant_id AND m.id = q.message_id \
         WHERE q.tenant_id = $1 AND q.webhook_id = $2 AND q.message_id = $3"
    ));
    /// A delivery's attempts, in order.
    pub const LIST_ATTEMPTS: Sql = Sql::both(
        "SELECT id, attempt, attempted_at, duration_ms, response_status, error_class, \
         response_excerpt FROM webhook_deliveries \
         WHERE tenant_id = $1 AND webhook_id = $2 AND message_id = $3 ORDER BY id",
    );
    /// A page of dead letters (deliveries that failed for good).
    pub const LIST_DEAD_LETTERS: Sql = Sql::both(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_queue q JOIN webhook_messages m \
         ON m.tenant_id = q.tenant_id AND m.id = q.message_id \
         WHERE q.tenant_id = $1 AND q.state = 'dead' AND (q.message_id < $2 OR $2 IS NULL) \
         ORDER BY q.message_id DESC LIMIT $3"
    ));
    /// A failed delivery, due again now.
    pub const RETRY_DELIVERY: Sql = Sql::both(
        "UPDATE webhook_queue SET state = 'pending', attempts = 0, next_attempt_at = $4, \
         leased_until = NULL, lease_id = NULL, updated_at = $4 \
         WHERE tenant_id = $1 AND webhook_id = $2 AND message_id = $3 AND state <> 'pending'",
    );
    /// Every failed delivery of an endpoint since a time, due again now.
    pub const RECOVER_DELIVERIES: Sql = Sql::both(
        "UPDATE webhook_queue SET state = 'pending', attempts = 0, next_attempt_at = $4, \
         leased_until = NULL, lease_id = NULL, updated_at = $4 \
         WHERE tenant_id = $1 AND webhook_id = $2 AND state IN ('failed', 'dead') \
         AND created_at >= $3",
    );

    // Retention.
    /// Messages past retention with nothing pending, in batches.
    pub const PURGE_EXPIRED_MESSAGES: Sql = Sql::both(
        "DELETE FROM webhook_messages WHERE tenant_id = $1 AND id IN \
         (SELECT m.id FROM webhook_messages m WHERE m.tenant_id = $1 AND m.created_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM webhook_queue q WHERE q.tenant_id = $1 \
         AND q.message_id = m.id AND q.state = 'pending') \
         ORDER BY m.created_at LIMIT $3)",
    );

    // Idempotency keys of publishing over HTTP.
    /// Claims key `$2` with fingerprint `$3` at `$4`, or takes it over when
    /// it was claimed before `$5` (expired, not yet purged); returns the key
    /// when claimed, nothing when it is another's answer.
    pub const CLAIM_KEY: Sql = Sql::both(
        "INSERT INTO webhook_idempotency (tenant_id, key, fingerprint, answer, created_at) \
         VALUES ($1, $2, $3, NULL, $4) \
         ON CONFLICT (tenant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
         answer = NULL, created_at = excluded.created_at \
         WHERE webhook_idempotency.created_at < $5 RETURNING key",
    );
    /// The fingerprint and answer of a claimed key.
    pub const KEY_ANSWER: Sql = Sql::both(
        "SELECT fingerprint, answer FROM webhook_idempotency WHERE tenant_id = $1 AND key = $2",
    );
    /// The answer of a key claimed in this transaction.
    pub const RECORD_ANSWER: Sql = Sql::both(
        "UPDATE webhook_idempotency SET answer = $3 WHERE tenant_id = $1 AND key = $2",
    );
    /// Up to `$3` of the tenant's keys claimed before `$2`, removed.
    pub const PURGE_EXPIRED_KEYS: Sql = Sql::both(
        "DELETE FROM webhook_idempotency WHERE tenant_id = $1 AND key IN \
         (SELECT k.key FROM webhook_idempotency k WHERE k.tenant_id = $1 AND k.created_at < $2 \
         ORDER BY k.created_at LIMIT $3)",
    );
}

//! The summary and time-series queries. Both read only the rollups (never
//! raw events), inside a [`tenantkit::TenantTx`] of the asking tenant.
//!
//! Parameters arrive as text ([`SummaryParams`], [`SeriesParams`]) and are
//! checked into a [`SummaryQuery`] or [`SeriesQuery`]; a bad one is a
//! [`ParamError`] naming it (HTTP 422).
//!
//! - `from`, `to`: an RFC 3339 time, or a day `YYYY-MM-DD` (`from`: its
//!   start; `to`: its end, so the day is included), in `tz` when given.
//!   The range is `[from, to)`, read at hour granularity: an hour counts
//!   when it starts inside the range, in the summary and the time series
//!   alike. Default: the 30 days up to now.
//! - `tz`: an IANA zone (`Europe/Paris`) for day boundaries; default UTC. A
//!   day bucket holds the (UTC) hours that start in that local day, also in
//!   zones off the hour (Asia/Kolkata, Asia/Kathmandu).

use chrono::{
    DateTime, Datelike, Days, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantkit::{Db, Result, TenantContext, problem::Problem};

use crate::{
    rollup::{BLOCK_STRIDE, block_of, day_bit, epoch_day, hour_of},
    sql,
};

/// The most points one time series returns.
pub const MAX_POINTS: i64 = 1000;
/// The longest summary range, in days.
pub const MAX_SUMMARY_DAYS: i64 = 400;
/// Rolling MAU counts the users of this many days up to the last day.
pub const MAU_DAYS: i64 = 30;
/// How many features `top_features` lists.
pub const TOP_FEATURES: i64 = 10;

/// A query parameter that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{parameter}`: {detail}")]
pub struct ParamError {
    /// The parameter's name.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub detail: String,
}

impl ParamError {
    fn new(parameter: &'static str, detail: impl Into<String>) -> Self {
        Self {
            parameter,
            detail: detail.into(),
        }
    }
}

impl From<&ParamError> for Problem {
    fn from(err: &ParamError) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid query parameter")
            .with_detail(err.to_string())
            .with_extension("parameter", err.parameter)
    }
}

/// An IANA time zone name, as `tz` takes it: its OpenAPI schema (component
/// `TimeZoneName`) lists every name this build knows.
#[cfg(feature = "openapi")]
pub struct TimeZoneName;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{Type, schema::ObjectBuilder};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An IANA time zone name, e.g. `Europe/Paris`"))
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TimeZoneName {}

/// The schema of a `tz` parameter: a reference to [`TimeZoneName`].
#[cfg(feature = "openapi")]
fn time_zone_schema() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("TimeZoneName")
}

/// `GET /analytics/summary` parameters, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SummaryParams {
    /// Start (RFC 3339 or `YYYY-MM-DD`, from 1970 to 9999); default 30 days
    /// before `to`. At most 400 days before `to`.
    #[cfg_attr(
        feature = "openapi",
        param(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz]))$"
        )
    )]
    pub from: Option<String>,
    /// End, exclusive (RFC 3339) or a day included (`YYYY-MM-DD`); default now.
    #[cfg_attr(
        feature = "openapi",
        param(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz]))$"
        )
    )]
    pub to: Option<String>,
    /// IANA time zone of `YYYY-MM-DD` bounds; default UTC.
    #[cfg_attr(feature = "openapi", param(schema_with = time_zone_schema))]
    pub tz: Option<String>,
}

/// `GET /analytics/timeseries` parameters, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SeriesParams {
    /// `events`, `api_calls`, `page_views`, `dau` or `feature:NAME` (a
    /// `feature_used` name of 1 to 200 characters). Required.
    #[cfg_attr(
        feature = "openapi",
        param(
            required = true,
            pattern = r"^(events|api_calls|page_views|dau|feature:[^\u0000]{1,200})$"
        )
    )]
    pub metric: Option<String>,
    /// `hour` or `day` (default `day`; `dau` is per day only).
    #[cfg_attr(feature = "openapi", param(pattern = "^(hour|day)$"))]
    pub interval: Option<String>,
    /// Start (RFC 3339 or `YYYY-MM-DD`, from 1970 to 9999); default 30 days
    /// before `to`. The range holds at most 1,000 buckets.
    #[cfg_attr(
        feature = "openapi",
        param(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz]))$"
        )
    )]
    pub from: Option<String>,
    /// End, exclusive (RFC 3339) or a day included (`YYYY-MM-DD`); default now.
    #[cfg_attr(
        feature = "openapi",
        param(
            pattern = r"^((19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz]))$"
        )
    )]
    pub to: Option<String>,
    /// IANA time zone for day boundaries; default UTC (`dau`: UTC only).
    #[cfg_attr(feature = "openapi", param(schema_with = time_zone_schema))]
    pub tz: Option<String>,
}

/// What a time series counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Every event.
    Events,
    /// `api_call` events.
    ApiCalls,
    /// `page_view` events.
    PageViews,
    /// Distinct users per day.
    Dau,
    /// `feature_used` events of one name.
    Feature(String),
}

/// Bucket width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// UTC hours.
    Hour,
    /// Days (local days of `tz`).
    Day,
}

/// A checked summary query.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryQuery {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// The zone whose day `dau` and `mau` end with.
    pub tz: Tz,
}

/// A checked time-series query.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesQuery {
    /// What to count.
    pub metric: Metric,
    /// Bucket width.
    pub interval: Interval,
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// Zone of day boundaries.
    pub tz: Tz,
}

fn parse_tz(tz: Option<&str>) -> std::result::Result<Tz, ParamError> {
    match tz {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| ParamError::new("tz", format!("`{name}` is not an IANA time zone"))),
    }
}

/// Local midnight of `day` in `tz` (or the first instant of the day when a
/// clock change skips midnight).
pub(crate) fn day_start(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(h, 0, 0)?))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc())
}

fn parse_bound(
    parameter: &'static str,
    text: &str,
    tz: Tz,
    end: bool,
) -> std::result::Result<DateTime<Utc>, ParamError> {
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else {
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            // Bounded before any arithmetic: the next day always exists.
            Ok(day) if !(1970..=9999).contains(&day.year()) => {
                return Err(ParamError::new(
                    parameter,
                    "must be between 1970-01-01 and 9999-12-31",
                ));
            }
            Ok(day) if end => day_start(tz, day + Days::new(1)),
            Ok(day) => day_start(tz, day),
            Err(_) => {
                return Err(ParamError::new(
                    parameter,
                    format!("`{text}` is neither an RFC 3339 time nor a YYYY-MM-DD day"),
                ));
            }
        }
    };
    // `to` may be the very end of 9999 (a day's end is the next midnight).
    let latest = tenantkit::validate::latest();
    if t < tenantkit::validate::EARLIEST || t > latest || (t == latest && !end) {
        return Err(ParamError::new(
            parameter,
            "must be between 1970-01-01 and 9999-12-31",
        ));
    }
    Ok(t)
}

fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: Tz,
    now: DateTime<Utc>,
) -> std::result::Result<(DateTime<Utc>, DateTime<Utc>), ParamError> {
    let to = match to {
        Some(text) => parse_bound("to", text, tz, true)?,
        None => now,
    };
    let from = match from {
        Some(text) => parse_bound("from", text, tz, false)?,
        None => to - Duration::days(30),
    };
    if from >= to {
        return Err(ParamError::new("from", "must be before `to`"));
    }
    Ok((from, to))
}

impl SummaryQuery {
    /// Checks the parameters.
    pub fn parse(
        params: &SummaryParams,
        now: DateTime<Utc>,
    ) -> std::result::Result<Self, ParamError> {
        let tz = parse_tz(params.tz.as_deref())?;
        let (from, to) = parse_range(params.from.as_deref(), params.to.as_deref(), tz, now)?;
        if to - from > Duration::days(MAX_SUMMARY_DAYS) {
            return Err(ParamError::new(
                "from",
                format!("a summary spans at most {MAX_SUMMARY_DAYS} days"),
            ));
        }
        Ok(Self { from, to, tz })
    }
}

impl SeriesQuery {
    /// Checks the parameters.
    pub fn parse(
        params: &SeriesParams,
        now: DateTime<Utc>,
    ) -> std::result::Result<Self, ParamError> {
        let metric = match params.metric.as_deref() {
            None => return Err(ParamError::new("metric", "is required")),
            Some("events") => Metric::Events,
            Some("api_calls") => Metric::ApiCalls,
            Some("page_views") => Metric::PageViews,
            Some("dau") => Metric::Dau,
            Some(other) => match other.strip_prefix("feature:") {
                Some(name)
                    if !name.is_empty() && name.chars().count() <= crate::event::MAX_NAME =>
                {
                    Metric::Feature(name.to_owned())
                }
                _ => {
                    return Err(ParamError::new(
                        "metric",
                        format!(
                            "`{other}` is not one of events, api_calls, page_views, dau, feature:NAME"
                        ),
                    ));
                }
            },
        };
        let interval = match params.interval.as_deref() {
            None | Some("day") => Interval::Day,
            Some("hour") => Interval::Hour,
            Some(other) => {
                return Err(ParamError::new(
                    "interval",
                    format!("`{other}` is not `hour` or `day`"),
                ));
            }
        };
        let tz = parse_tz(params.tz.as_deref())?;
        if metric == Metric::Dau && interval == Interval::Hour {
            return Err(ParamError::new("interval", "`dau` is counted per day"));
        }
        if metric == Metric::Dau && tz != Tz::UTC {
            return Err(ParamError::new(
                "tz",
                "`dau` is kept per UTC day; omit `tz` (or use UTC) for it",
            ));
        }
        let (from, to) = parse_range(params.from.as_deref(), params.to.as_deref(), tz, now)?;
        let query = Self {
            metric,
            interval,
            from,
            to,
            tz,
        };
        let points = query.buckets_bounded(MAX_POINTS + 1).len() as i64;
        if points > MAX_POINTS {
            return Err(ParamError::new(
                "from",
                format!(
                    "the range holds more than {MAX_POINTS} {}s; narrow it or use a wider interval",
                    interval.name()
                ),
            ));
        }
        Ok(query)
    }

    /// The starts of the buckets meeting `[from, to)`, at most `limit`.
    fn buckets_bounded(&self, limit: i64) -> Vec<DateTime<Utc>> {
        let mut starts = Vec::new();
        match self.interval {
            Interval::Hour => {
                // The first hour that starts inside the range.
                let mut t = first_hour(self.from);
                while t < self.to && (starts.len() as i64) < limit {
                    starts.push(t);
                    t += Duration::hours(1);
                }
            }
            Interval::Day => {
                let mut day = self.from.with_timezone(&self.tz).date_naive();
                let mut t = day_start(self.tz, day);
                while t < self.to && (starts.len() as i64) < limit {
                    starts.push(t);
                    day = day + Days::new(1);
                    t = day_start(self.tz, day);
                }
            }
        }
        starts
    }
}

impl Interval {
    fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

/// How often a feature was used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureCount {
    /// The `name` of the `feature_used` events.
    pub name: String,
    /// How many.
    pub count: i64,
}

/// `GET /analytics/summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// Distinct users of the range's last (UTC) day.
    pub dau: i64,
    /// Distinct users of the 30 (UTC) days ending with that day.
    pub mau: i64,
    /// `api_call` events in the range.
    pub api_calls: i64,
    /// `page_view` events in the range.
    pub page_views: i64,
    /// All events in the range.
    pub events: i64,
    /// The 10 most used features (`feature_used` names), most used first.
    pub top_features: Vec<FeatureCount>,
}

/// One bucket of a time series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    /// The bucket's start, in the query's zone.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub t: DateTime<FixedOffset>,
    /// Its value (0 when nothing happened).
    pub value: i64,
}

/// The first UTC hour that starts at or after `t`: the first one the range
/// `[t, ..)` counts.
fn first_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let hour = hour_of(t);
    if hour == t {
        hour
    } else {
        hour + Duration::hours(1)
    }
}

/// The last UTC day of `[.., to)`.
fn last_day(to: DateTime<Utc>) -> NaiveDate {
    (to - Duration::nanoseconds(1)).date_naive()
}

/// Distinct users of the [`MAU_DAYS`] UTC days ending with `day`, from the
/// one block that holds the whole window.
async fn mau(tx: &mut tenantkit::TenantTx, day: NaiveDate) -> Result<i64> {
    let first = day - Days::new(MAU_DAYS as u64 - 1);
    let block = block_of(first);
    debug_assert!(epoch_day(day) - epoch_day(block) < 2 * BLOCK_STRIDE);
    let mask = (0..MAU_DAYS as u64).fold(0i64, |m, i| m | day_bit(block, first + Days::new(i)));
    let (n,): (i64,) = tx
        .fetch_one(tx.query(sql::USERS_IN_WINDOW).bind(block).bind(mask))
        .await?;
    Ok(n)
}

/// The summary of `ctx`'s tenant.
///
/// Rolling MAU (one row per user of the tenant) is counted on a second
/// connection at the same time as the rest, so a large tenant's summary
/// costs the longer of the two, not their sum.
pub async fn summary(db: &Db, ctx: &TenantContext, q: &SummaryQuery) -> Result<Summary> {
    let day = last_day(q.to);
    let rolling = async {
        let mut tx = db.begin_snapshot(ctx).await?;
        let n = mau(&mut tx, day).await?;
        tx.commit().await?;
        Ok(n)
    };
    let (mut summary, mau) =
        futures_util::future::try_join(counts(db, ctx, q, day), rolling).await?;
    summary.mau = mau;
    Ok(summary)
}

/// The summary but for MAU.
async fn counts(db: &Db, ctx: &TenantContext, q: &SummaryQuery, day: NaiveDate) -> Result<Summary> {
    let mut tx = db.begin_snapshot(ctx).await?;
    // The hours that start inside `[from, to)`.
    let start = first_hour(q.from);
    let by_type: Vec<(String, i64)> = tx
        .fetch_all(tx.query(sql::EVENTS_PER_TYPE).bind(start).bind(q.to))
        .await?;
    let of = |ty: &str| by_type.iter().find(|(t, _)| t == ty).map_or(0, |(_, n)| *n);
    let top_features: Vec<(String, i64)> = tx
        .fetch_all(
            tx.query(sql::TOP_FEATURES)
                .bind(start)
                .bind(q.to)
                .bind(TOP_FEATURES),
        )
        .await?;
    let dau: Option<(i64,)> = tx
        .fetch_optional(tx.query(sql::DAILY_ACTIVE).bind(day))
        .await?;
    tx.commit().await?;
    Ok(Summary {
        from: q.from,
        to: q.to,
        dau: dau.map_or(0, |(n,)| n),
        mau: 0,
        api_calls: of("api_call"),
        page_views: of("page_view"),
        events: by_type.iter().map(|(_, n)| n).sum(),
        top_features: top_features
            .into_iter()
            .map(|(name, count)| FeatureCount { name, count })
            .collect(),
    })
}

/// The time series of `ctx`'s tenant: one point per bucket, zeros included.
pub async fn timeseries(db: &Db, ctx: &TenantContext, q: &SeriesQuery) -> Result<Vec<Point>> {
    let starts = q.buckets_bounded(MAX_POINTS);
    let Some(&first) = starts.first() else {
        return Ok(Vec::new());
    };
    let mut values = vec![0i64; starts.len()];
    // Counted: the hours that start inside `[from, to)`, each in the bucket
    // holding its start (as the summary counts them).
    let counted_from = first_hour(q.from);
    let mut tx = db.begin_snapshot(ctx).await?;
    match &q.metric {
        Metric::Dau => {
            let days: Vec<(NaiveDate, i64)> = tx
                .fetch_all(
                    tx.query(sql::DAILY_ACTIVE_BETWEEN)
                        .bind(first.date_naive())
                        .bind(last_day(q.to)),
                )
                .await?;
            for (day, users) in days {
                let t = day.and_time(NaiveTime::MIN).and_utc();
                if let Ok(i) = starts.binary_search(&t) {
                    values[i] = users;
                }
            }
        }
        metric => {
            let hours: Vec<(DateTime<Utc>, i64)> = match metric {
                Metric::Events => {
                    tx.fetch_all(tx.query(sql::EVENTS_PER_HOUR).bind(counted_from).bind(q.to))
                        .await?
                }
                Metric::Feature(name) => {
                    tx.fetch_all(
                        tx.query(sql::FEATURE_PER_HOUR)
                            .bind(counted_from)
                            .bind(q.to)
                            .bind(name.clone()),
                    )
                    .await?
                }
                _ => {
                    let ty = if *metric == Metric::ApiCalls {
                        "api_call"
                    } else {
                        "page_view"
                    };
                    tx.fetch_all(
                        tx.query(sql::TYPE_PER_HOUR)
                            .bind(counted_from)
                            .bind(q.to)
                            .bind(ty),
                    )
                    .await?
                }
            };
            for (hour, n) in hours {
                // The bucket holding the hour: the last start at or before it.
                let i = starts.partition_point(|s| *s <= hour);
                if i > 0 {
                    values[i - 1] += n;
                }
            }
        }
    }
    tx.commit().await?;
    Ok(starts
        .into_iter()
        .zip(values)
        .map(|(t, value)| Point {
            t: t.with_timezone(&q.tz).fixed_offset(),
            value,
        })
        .collect())
}

//! Summary and time series: every metric and interval, zero filling, time
//! zones, bounds and bad parameters, top features, rolling MAU, and another
//! tenant's events never counted.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use tenantkit::{Db, TenantContext, testing};
use tenantkit_analytics::query::{
    self, MAX_POINTS, ParamError, Point, SeriesParams, SeriesQuery, SummaryParams, SummaryQuery,
};

use crate::common::{analytics, event};

tenantkit::backend_tests!(crate::common, multi_thread;
    events_per_hour_fill_empty_hours_with_zero,
    every_count_metric_per_day,
    a_feature_series_counts_only_that_name,
    dau_per_day_counts_distinct_users,
    a_time_zone_moves_day_boundaries,
    a_day_bound_includes_the_whole_day,
    summary_counts_and_ranks_top_features,
    mau_is_the_distinct_users_of_thirty_days,
    another_tenants_events_are_never_counted,
    late_and_out_of_order_events_land_in_their_hour,
    unaligned_bounds_count_the_same_hours_in_summary_and_series,
    zones_off_the_hour_count_each_hour_in_the_day_it_starts,
);

/// Midnight (UTC) five days ago: every test's events are in the accepted window.
fn base() -> DateTime<Utc> {
    (Utc::now().date_naive() - Days::new(5))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

fn at(hours: i64, minutes: i64) -> DateTime<Utc> {
    base() + Duration::hours(hours) + Duration::minutes(minutes)
}

/// Day 0: page views at 10:00 (u1) and 10:30 (u2), an API call at 11:00, a
/// feature at 23:30 (u1); day 1: features at 00:30 (u3) and 05:00 (u1).
async fn seeded(db: &Db) -> TenantContext {
    let t = testing::tenant(db).await;
    let a = analytics(db);
    a.ingest(
        &t,
        vec![
            event("page_view", Some("/"), Some("u1"), at(10, 0)),
            event("page_view", Some("/"), Some("u2"), at(10, 30)),
            event("api_call", Some("GET /users"), None, at(11, 0)),
            event("feature_used", Some("export"), Some("u1"), at(23, 30)),
            event("feature_used", Some("export"), Some("u3"), at(24, 30)),
            event("feature_used", Some("import"), Some("u1"), at(29, 0)),
        ],
    )
    .await
    .unwrap();
    t
}

fn params(metric: &str, interval: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> SeriesParams {
    SeriesParams {
        metric: Some(metric.into()),
        interval: Some(interval.into()),
        from: Some(from.to_rfc3339()),
        to: Some(to.to_rfc3339()),
        tz: None,
    }
}

async fn series(db: &Db, t: &TenantContext, p: &SeriesParams) -> Vec<Point> {
    let q = SeriesQuery::parse(p, Utc::now()).unwrap();
    query::timeseries(db, t, &q).await.unwrap()
}

fn values(points: &[Point]) -> Vec<i64> {
    points.iter().map(|p| p.value).collect()
}

async fn events_per_hour_fill_empty_hours_with_zero(db: Db) {
    let t = seeded(&db).await;
    let points = series(&db, &t, &params("events", "hour", at(0, 0), at(24, 0))).await;
    assert_eq!(points.len(), 24);
    let mut expected = vec![0; 24];
    expected[10] = 2;
    expected[11] = 1;
    expected[23] = 1;
    assert_eq!(values(&points), expected);
    assert_eq!(points[10].t, at(10, 0).fixed_offset());
}

async fn every_count_metric_per_day(db: Db) {
    let t = seeded(&db).await;
    let (from, to) = (at(-24, 0), at(48, 0));
    for (metric, expected) in [
        ("events", vec![0, 4, 2]),
        ("page_views", vec![0, 2, 0]),
        ("api_calls", vec![0, 1, 0]),
    ] {
        let points = series(&db, &t, &params(metric, "day", from, to)).await;
        assert_eq!(values(&points), expected, "{metric}");
    }
}

async fn a_feature_series_counts_only_that_name(db: Db) {
    let t = seeded(&db).await;
    let (from, to) = (at(0, 0), at(48, 0));
    let export = series(&db, &t, &params("feature:export", "day", from, to)).await;
    assert_eq!(values(&export), vec![1, 1]);
    let import = series(
        &db,
        &t,
        &params("feature:import", "hour", at(24, 0), at(30, 0)),
    )
    .await;
    assert_eq!(values(&import), vec![0, 0, 0, 0, 0, 1]);
    let none = series(&db, &t, &params("feature:nothing", "day", from, to)).await;
    assert_eq!(values(&none), vec![0, 0]);
}

async fn dau_per_day_counts_distinct_users(db: Db) {
    let t = seeded(&db).await;
    // Day 0: u1 and u2 (u1 twice); day 1: u3 and u1.
    let points = series(&db, &t, &params("dau", "day", at(-24, 0), at(72, 0))).await;
    assert_eq!(values(&points), vec![0, 2, 2, 0]);
    // One more event of a known user changes nothing; a new user adds one.
    let a = analytics(&db);
    a.ingest(
        &t,
        vec![
            event("page_view", None, Some("u2"), at(12, 0)),
            event("page_view", None, Some("u9"), at(13, 0)),
        ],
    )
    .await
    .unwrap();
    let points = series(&db, &t, &params("dau", "day", at(0, 0), at(24, 0))).await;
    assert_eq!(values(&points), vec![3]);
}

async fn a_time_zone_moves_day_boundaries(db: Db) {
    let t = seeded(&db).await;
    // Tokyo is UTC+9 all year: its day 0 is 15:00 UTC the day before to
    // 15:00 UTC on day 0, so the 23:30 and 00:30 features share Tokyo day 1.
    let day0 = base().date_naive();
    let p = SeriesParams {
        metric: Some("events".into()),
        interval: Some("day".into()),
        from: Some(day0.to_string()),
        to: Some((day0 + Days::new(1)).to_string()),
        tz: Some("Asia/Tokyo".into()),
    };
    let points = series(&db, &t, &p).await;
    assert_eq!(values(&points), vec![3, 3]);
    assert_eq!(points[0].t.offset().local_minus_utc(), 9 * 3600);
    assert_eq!(points[0].t.to_utc(), at(-9, 0));
    // The same days in UTC.
    let p = SeriesParams { tz: None, ..p };
    assert_eq!(values(&series(&db, &t, &p).await), vec![4, 2]);
}

async fn a_day_bound_includes_the_whole_day(db: Db) {
    let t = seeded(&db).await;
    let day0 = base().date_naive();
    let q = SummaryQuery::parse(
        &SummaryParams {
            from: Some(day0.to_string()),
            to: Some(day0.to_string()),
            tz: None,
        },
        Utc::now(),
    )
    .unwrap();
    assert_eq!((q.from, q.to), (at(0, 0), at(24, 0)));
    let s = query::summary(&db, &t, &q).await.unwrap();
    assert_eq!((s.events, s.dau), (4, 2));
}

async fn summary_counts_and_ranks_top_features(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    let mut events = Vec::new();
    // Twelve features used 12, 11, ... 1 times; "b" and "a" tie at 5.
    for (i, name) in ["l", "k", "j", "i", "h", "g", "f", "e", "d", "b", "a", "c"]
        .iter()
        .enumerate()
    {
        let uses = match *name {
            "a" | "b" => 5,
            _ => 12 - i,
        };
        for _ in 0..uses {
            events.push(event("feature_used", Some(name), None, at(30, 0)));
        }
    }
    events.push(event("custom.signup", None, None, at(30, 0)));
    a.ingest(&t, events.clone()).await.unwrap();
    let q = SummaryQuery::parse(
        &SummaryParams {
            from: Some(at(0, 0).to_rfc3339()),
            to: Some(at(48, 0).to_rfc3339()),
            tz: None,
        },
        Utc::now(),
    )
    .unwrap();
    let s = query::summary(&db, &t, &q).await.unwrap();
    let top: Vec<(&str, i64)> = s
        .top_features
        .iter()
        .map(|f| (f.name.as_str(), f.count))
        .collect();
    assert_eq!(
        top,
        vec![
            ("l", 12),
            ("k", 11),
            ("j", 10),
            ("i", 9),
            ("h", 8),
            ("g", 7),
            ("f", 6),
            ("a", 5),
            ("b", 5),
            ("e", 5)
        ]
    );
    assert_eq!(s.events, events.len() as i64);
    assert_eq!((s.page_views, s.api_calls, s.dau, s.mau), (0, 0, 0, 0));
    // The default range is the 30 days up to now.
    let d = SummaryQuery::parse(&SummaryParams::default(), Utc::now()).unwrap();
    assert_eq!(d.to - d.from, Duration::days(30));
    assert_eq!(
        query::summary(&db, &t, &d).await.unwrap().events,
        events.len() as i64
    );
}

async fn mau_is_the_distinct_users_of_thirty_days(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    let today = Utc::now().date_naive();
    // User k is active only on day today-k (k = 0..34), user "all" every day.
    let mut events = Vec::new();
    for k in 0..35u64 {
        let day = (today - Days::new(k))
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc();
        events.push(event("page_view", None, Some(&format!("u{k}")), day));
        events.push(event("page_view", None, Some("all"), day));
    }
    a.ingest(&t, events).await.unwrap();
    // For every last day d in the window, MAU = users of d-29..=d.
    for back in 0..6u64 {
        let last: NaiveDate = today - Days::new(back);
        let q = SummaryQuery::parse(
            &SummaryParams {
                from: Some((last - Days::new(29)).to_string()),
                to: Some(last.to_string()),
                tz: None,
            },
            Utc::now(),
        )
        .unwrap();
        let s = query::summary(&db, &t, &q).await.unwrap();
        // u{back}..u{back+29} and "all".
        assert_eq!(s.mau, 31, "MAU ending {last}");
        assert_eq!(s.dau, 2, "DAU of {last}");
    }
}

async fn another_tenants_events_are_never_counted(db: Db) {
    let (a_t, b_t) = (seeded(&db).await, testing::tenant(&db).await);
    let a = analytics(&db);
    let noise: Vec<_> = (0..50)
        .map(|i| event("page_view", Some("/"), Some(&format!("b{i}")), at(10, 0)))
        .collect();
    a.ingest(&b_t, noise).await.unwrap();
    let p = params("page_views", "day", at(0, 0), at(24, 0));
    assert_eq!(values(&series(&db, &a_t, &p).await), vec![2]);
    assert_eq!(values(&series(&db, &b_t, &p).await), vec![50]);
    let dau = params("dau", "day", at(0, 0), at(24, 0));
    assert_eq!(values(&series(&db, &a_t, &dau).await), vec![2]);
    let q = SummaryQuery::parse(
        &SummaryParams {
            from: Some(at(0, 0).to_rfc3339()),
            to: Some(at(24, 0).to_rfc3339()),
            tz: None,
        },
        Utc::now(),
    )
    .unwrap();
    let s = query::summary(&db, &a_t, &q).await.unwrap();
    assert_eq!((s.page_views, s.dau, s.mau), (2, 2, 2));
}

async fn late_and_out_of_order_events_land_in_their_hour(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    a.ingest(&t, vec![event("page_view", None, Some("u1"), at(30, 0))])
        .await
        .unwrap();
    // Arrives later, happened earlier, in another batch.
    a.ingest(
        &t,
        vec![
            event("page_view", None, Some("u1"), at(2, 15)),
            event("page_view", None, Some("u2"), at(30, 59)),
        ],
    )
    .await
    .unwrap();
    let points = series(&db, &t, &params("page_views", "hour", at(0, 0), at(31, 0))).await;
    let v = values(&points);
    assert_eq!((v[2], v[30], v.iter().sum::<i64>()), (1, 2, 3));
    let dau = series(&db, &t, &params("dau", "day", at(0, 0), at(48, 0))).await;
    assert_eq!(values(&dau), vec![1, 2]);
}

fn refused(p: SeriesParams) -> ParamError {
    SeriesQuery::parse(&p, Utc::now()).unwrap_err()
}

#[test]
fn bad_series_parameters_are_named() {
    let ok = params("events", "day", at(0, 0), at(24, 0));
    let cases = [
        (
            SeriesParams {
                metric: None,
                ..ok.clone()
            },
            "metric",
        ),
        (
            SeriesParams {
                metric: Some("clicks".into()),
                ..ok.clone()
            },
            "metric",
        ),
        (
            SeriesParams {
                metric: Some("feature:".into()),
                ..ok.clone()
            },
            "metric",
        ),
        (
            SeriesParams {
                interval: Some("week".into()),
                ..ok.clone()
            },
            "interval",
        ),
        (
            SeriesParams {
                tz: Some("Mars/Olympus".into()),
                ..ok.clone()
            },
            "tz",
        ),
        (
            SeriesParams {
                from: Some("yesterday".into()),
                ..ok.clone()
            },
            "from",
        ),
        (
            SeriesParams {
                to: Some("2026-13-01".into()),
                ..ok.clone()
            },
            "to",
        ),
        (
            SeriesParams {
                from: ok.to.clone(),
                to: ok.from.clone(),
                ..ok.clone()
            },
            "from",
        ),
        (
            SeriesParams {
                metric: Some("dau".into()),
                interval: Some("hour".into()),
                ..ok.clone()
            },
            "interval",
        ),
        (
            SeriesParams {
                metric: Some("dau".into()),
                tz: Some("Europe/Paris".into()),
                ..ok.clone()
            },
            "tz",
        ),
    ];
    for (p, parameter) in cases {
        let e = refused(p.clone());
        assert_eq!(e.parameter, parameter, "{p:?}: {e}");
        let problem = tenantkit::problem::Problem::from(&e);
        assert_eq!(problem.status, 422);
    }
}

#[test]
fn a_series_holds_at_most_1000_points() {
    let from = at(0, 0);
    let just = params("events", "hour", from, from + Duration::hours(MAX_POINTS));
    assert!(SeriesQuery::parse(&just, Utc::now()).is_ok());
    let over = params(
        "events",
        "hour",
        from,
        from + Duration::hours(MAX_POINTS) + Duration::minutes(1),
    );
    let e = refused(over);
    assert_eq!(e.parameter, "from");
    assert!(e.detail.contains("1000"), "{e}");
    // Days: 1000 fit, 1001 do not.
    let days = params("events", "day", from, from + Duration::days(1000));
    assert!(SeriesQuery::parse(&days, Utc::now()).is_ok());
    let days = params("events", "day", from, from + Duration::days(1001));
    assert_eq!(refused(days).parameter, "from");
}

#[test]
fn a_summary_spans_at_most_400_days() {
    let to = Utc::now();
    let p = |days: i64| SummaryParams {
        from: Some((to - Duration::days(days)).to_rfc3339()),
        to: Some(to.to_rfc3339()),
        tz: None,
    };
    assert!(SummaryQuery::parse(&p(400), to).is_ok());
    assert_eq!(
        SummaryQuery::parse(&p(401), to).unwrap_err().parameter,
        "from"
    );
}

async fn summary_of(db: &Db, t: &TenantContext, from: String, to: String, tz: Option<&str>) -> i64 {
    let q = SummaryQuery::parse(
        &SummaryParams {
            from: Some(from),
            to: Some(to),
            tz: tz.map(Into::into),
        },
        Utc::now(),
    )
    .unwrap();
    query::summary(db, t, &q).await.unwrap().events
}

/// One rule for both endpoints: an hour counts when it starts inside
/// `[from, to)`. From 10:15 to 23:45 that is 11:00 to 23:00: the API call
/// and the 23:30 feature, not the 10:00 and 10:30 page views.
async fn unaligned_bounds_count_the_same_hours_in_summary_and_series(db: Db) {
    let t = seeded(&db).await;
    let (from, to) = (at(10, 15), at(23, 45));
    assert_eq!(
        summary_of(&db, &t, from.to_rfc3339(), to.to_rfc3339(), None).await,
        2
    );
    let hours = series(&db, &t, &params("events", "hour", from, to)).await;
    assert_eq!(
        hours.first().unwrap().t,
        at(11, 0).fixed_offset(),
        "the first hour inside"
    );
    assert_eq!(hours.len(), 13);
    assert_eq!(values(&hours).iter().sum::<i64>(), 2);
    let days = series(&db, &t, &params("events", "day", from, to)).await;
    assert_eq!(values(&days), vec![2]);
    // Aligned bounds count every hour they hold.
    assert_eq!(
        summary_of(
            &db,
            &t,
            at(10, 0).to_rfc3339(),
            at(24, 0).to_rfc3339(),
            None
        )
        .await,
        4
    );
    // No hour starts inside: nothing counted, by either.
    let (from, to) = (at(10, 5), at(10, 55));
    assert_eq!(
        summary_of(&db, &t, from.to_rfc3339(), to.to_rfc3339(), None).await,
        0
    );
    assert!(
        series(&db, &t, &params("events", "hour", from, to))
            .await
            .is_empty()
    );
}

/// Asia/Kolkata (+05:30) and Asia/Kathmandu (+05:45): a local day starts
/// off the UTC hour, and each (UTC) hour counts in the local day in which it
/// starts. An event at 18:40 UTC on day 0 is 00:10 on day 1 in Kolkata, but
/// its hour starts at 23:30 on day 0, so it counts on day 0 (as documented).
async fn zones_off_the_hour_count_each_hour_in_the_day_it_starts(db: Db) {
    let t = seeded(&db).await;
    analytics(&db)
        .ingest(&t, vec![event("page_view", None, None, at(18, 40))])
        .await
        .unwrap();
    let day0 = base().date_naive();
    for (tz, offset) in [
        ("Asia/Kolkata", 5 * 3600 + 1800),
        ("Asia/Kathmandu", 5 * 3600 + 2700),
    ] {
        let p = SeriesParams {
            metric: Some("events".into()),
            interval: Some("day".into()),
            from: Some(day0.to_string()),
            to: Some((day0 + Days::new(1)).to_string()),
            tz: Some(tz.into()),
        };
        let points = series(&db, &t, &p).await;
        assert_eq!(values(&points), vec![4, 3], "{tz}");
        assert_eq!(points[0].t.offset().local_minus_utc(), offset, "{tz}");
        assert_eq!(
            points[0].t.to_utc(),
            base() - Duration::seconds(offset.into()),
            "{tz}"
        );
        // The summary of each local day says the same.
        for (i, day) in [day0, day0 + Days::new(1)].into_iter().enumerate() {
            let n = summary_of(&db, &t, day.to_string(), day.to_string(), Some(tz)).await;
            assert_eq!(n, points[i].value, "{tz} {day}");
        }
    }
}

//! Audit-trail figures: append throughput, chain verification speed, and the
//! memory an export of 100,000 entries needs.
//!
//! ```text
//! cargo bench -p tenantkit --bench audit
//! ```
//!
//! Runs on a SQLite file (no server needed); prints one line per figure.

use std::time::Instant;

use futures_util::StreamExt;
use tenantkit::{Db, NewTenant, audit::Actor};

const ENTRIES: usize = 100_000;

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> tenantkit::Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    db.platform()
        .create_tenant(
            &NewTenant {
                name: "Bench".into(),
                subdomain: "bench".into(),
            },
            &Actor::System,
        )
        .await?;
    let ctx = db.resolve_subdomain("bench").await?.expect("created");

    // Append: 100 transactions of 1,000 events each.
    let started = Instant::now();
    for batch in 0..ENTRIES / 1000 {
        let mut tx = db.begin(&ctx).await?;
        for i in 0..1000 {
            let details = serde_json::json!({ "batch": batch, "i": i, "note": "x".repeat(200) });
            tx.record_event(
                "bench.event",
                "bench",
                Some(format!("{batch}-{i}")),
                details,
            )
            .await?;
        }
        tx.commit().await?;
    }
    let append = started.elapsed();
    println!(
        "append: {ENTRIES} entries in {:.2} s = {:.0} entries/s (1,000 per transaction, SQLite file)",
        append.as_secs_f64(),
        ENTRIES as f64 / append.as_secs_f64()
    );

    let started = Instant::now();
    let report = db.begin(&ctx).await?.verify_audit_chain().await?;
    let verify = started.elapsed();
    assert!(report.valid);
    println!(
        "verify: {} entries in {:.2} s = {:.0} entries/s",
        report.checked,
        verify.as_secs_f64(),
        report.checked as f64 / verify.as_secs_f64()
    );

    let baseline = rss_kib().unwrap_or(0);
    let mut peak = baseline;
    let (mut bytes, mut lines) = (0usize, 0usize);
    let started = Instant::now();
    let mut export = Box::pin(db.export_audit_logs(ctx, None, None));
    while let Some(chunk) = export.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.lines().count();
        peak = peak.max(rss_kib().unwrap_or(0));
    }
    let took = started.elapsed();
    println!(
        "export: {lines} entries, {:.1} MiB of NDJSON in {:.2} s; RSS grew by at most {:.1} MiB (from {:.1} MiB)",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        (peak - baseline) as f64 / 1024.0,
        baseline as f64 / 1024.0
    );
    Ok(())
}

//! Tenant export: every tenant-owned table of every crate, found from the
//! catalog ([`tenantkit::Db::tenant_tables`]), as NDJSON files in a tar
//! archive with a `manifest.json` (rows and SHA-256 of each file).
//!
//! Rows are read from one snapshot and written to disk as they come, so
//! memory stays bounded whatever the tenant's size. Secret columns of every
//! crate are left out. The export is recorded in the tenant's audit trail
//! with the archive's SHA-256.

use std::path::Path;

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tenantkit::{Db, TenantContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

/// The archive format, in the manifest.
pub const FORMAT: &str = "tenantkit-export/1";

/// Columns no export contains, of every crate the server runs.
pub fn secret_columns() -> Vec<(&'static str, &'static str)> {
    tenantkit::store::SECRET_COLUMNS
        .iter()
        .chain(tenantkit_webhooks::SECRET_COLUMNS)
        .copied()
        .collect()
}

/// `manifest.json`, the archive's first entry.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The tenant.
    pub tenant_id: tenantkit::TenantId,
    /// Its subdomain at export time.
    pub subdomain: String,
    /// When the snapshot was taken.
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// `postgres` or `sqlite` (values are as that backend stores them).
    pub backend: &'static str,
    /// One entry per tenant-owned table, parents first.
    pub tables: Vec<ExportedTable>,
    /// `table.column` left out of every row.
    pub omitted_columns: Vec<String>,
}

/// One table's file in the archive.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedTable {
    /// The table.
    pub table: String,
    /// Its file: `tables/<table>.ndjson`, one JSON object per line.
    pub file: String,
    /// Rows written.
    pub rows: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// What [`export_tenant`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Exported {
    /// The manifest (also in the archive).
    pub manifest: Manifest,
    /// SHA-256 of the whole archive, hex (also in the audit entry).
    pub archive_sha256: String,
    /// The archive's size in bytes.
    pub bytes: u64,
}

/// Writes `tenant`'s export to `out` (a tar archive; replaced atomically
/// once complete) and records it in the tenant's audit trail.
pub async fn export_tenant(
    db: &Db,
    tenant: &TenantContext,
    out: &Path,
) -> anyhow::Result<Exported> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::tempdir_in(dir).context("a working directory beside the archive")?;
    let tables = db.tenant_tables().await?;
    let secrets = secret_columns();
    tokio::fs::create_dir(work.path().join("tables")).await?;

    let exported_at = chrono::Utc::now();
    let mut entries = Vec::with_capacity(tables.len());
    let mut tx = db.begin_snapshot(tenant).await?;
    for table in &tables {
        let omit: Vec<&str> = secrets
            .iter()
            .filter(|(t, _)| *t == table.name)
            .map(|(_, c)| *c)
            .collect();
        let file = format!("tables/{}.ndjson", table.name);
        let mut writer = BufWriter::new(tokio::fs::File::create(work.path().join(&file)).await?);
        let mut hash = Sha256::new();
        let mut rows = 0;
        let mut stream = tx.export_rows(table, &omit);
        while let Some(row) = stream.try_next().await? {
            hash.update(row.as_bytes());
            hash.update(b"\n");
            writer.write_all(row.as_bytes()).await?;
            writer.write_all(b"\n").await?;
            rows += 1;
        }
        drop(stream);
        writer.flush().await?;
        entries.push(ExportedTable {
            table: table.name.clone(),
            file,
            rows,
            sha256: hex(&hash.finalize()),
        });
    }
    drop(tx); // read only: nothing to keep

    let manifest = Manifest {
        format: FORMAT,
        tenant_id: tenant.id(),
        subdomain: tenant.tenant().subdomain.clone(),
        exported_at,
        backend: match db.backend() {
            tenantkit::Backend::Postgres => "postgres",
            tenantkit::Backend::Sqlite => "sqlite",
        },
        tables: entries,
        omitted_columns: secrets.iter().map(|(t, c)| format!("{t}.{c}")).collect(),
    };
    tokio::fs::write(
        work.path().join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .await?;

    // The tar is written by a blocking task, file by file from disk.
    let partial = work.path().join("archive.tar");
    let (root, files, target) = (
        work.path().to_owned(),
        manifest
            .tables
            .iter()
            .map(|t| t.file.clone())
            .collect::<Vec<_>>(),
        partial.clone(),
    );
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&target)?));
        tar.mode(tar::HeaderMode::Deterministic);
        tar.append_path_with_name(root.join("manifest.json"), "manifest.json")?;
        for file in files {
            tar.append_path_with_name(root.join(&file), &file)?;
        }
        tar.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })
    .await??;
    let (archive_sha256, bytes) = sha256_of(&partial).await?;
    tokio::fs::rename(&partial, out)
        .await
        .with_context(|| format!("writing {}", out.display()))?;

    let mut tx = db.begin(tenant).await?;
    tx.record_event(
        "tenant.exported",
        "tenant",
        Some(tenant.id().to_string()),
        serde_json::json!({
            "archive_sha256": archive_sha256,
            "bytes": bytes,
            "format": FORMAT,
            "exported_at": exported_at,
            "tables": manifest.tables.iter().map(|t| (t.table.clone(), t.rows)).collect::<std::collections::BTreeMap<_, _>>(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Exported {
        manifest,
        archive_sha256,
        bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) and size of a file, read in 64 KiB pieces.
async fn sha256_of(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok((hex(&hash.finalize()), total));
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
}

//! Tenant export: every tenant-owned table of every crate, found from the
//! catalog ([`tenantkit::Db::tenant_tables`]), as NDJSON files in a tar
//! archive with a `manifest.json` (rows and SHA-256 of each file).
//!
//! Rows are read from one snapshot and written to disk as they come, so
//! memory stays bounded whatever the tenant's size. Secret columns of every
//! crate (marked in the catalog) are left out. The export is recorded in the tenant's audit trail
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
    tokio::fs::create_dir(work.path().join("tables")).await?;

    let exported_at = chrono::Utc::now();
    let mut entries = Vec::with_capacity(tables.len());
    let mut tx = db.begin_snapshot(tenant).await?;
    for table in &tables {
        let file = format!("tables/{}.ndjson", table.name);
        let mut writer = BufWriter::new(tokio::fs::File::create(work.path().join(&file)).await?);
        let mut hash = Sha256::new();
        let mut rows = 0;
        let mut stream = tx.export_rows(table);
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
        omitted_columns: tables
            .iter()
            .flat_map(|t| {
                t.secret_columns
                    .iter()
                    .map(move |c| format!("{}.{c}", t.name))
            })
            .collect(),
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

/// What [`verify_archive`] found in an export archive.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveCheck {
    /// Whether every file matches the manifest and the audit chain holds.
    pub valid: bool,
    /// The exported tenant, as the manifest names it.
    pub tenant_id: String,
    /// Files whose rows or SHA-256 differ from the manifest, or that are
    /// missing from the archive or missing from the manifest.
    pub mismatched_files: Vec<String>,
    /// The audit chain, checked link by link from its anchor to its head
    /// (`tables/audit_logs.ndjson` against `tables/audit_heads.ndjson`).
    pub audit_chain: tenantkit::audit::ChainReport,
}

/// Checks an export archive without any database: each file's row count
/// and SHA-256 against the manifest, then the tenant's audit chain, entry
/// by entry (each entry's hash recomputed, each link to the one before,
/// no gap, the last one the recorded head). Reads the archive twice, a file
/// at a time, so memory stays bounded whatever its size. This is
/// `tenantkit-server audit verify-export --archive FILE`.
pub fn verify_archive(path: &Path) -> anyhow::Result<ArchiveCheck> {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read};

    let open = || -> anyhow::Result<tar::Archive<std::fs::File>> {
        Ok(tar::Archive::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    // Pass 1: the manifest, each file's hash and rows, the chain's head.
    let mut archive = open()?;
    let mut entries = archive.entries()?;
    let mut first = entries.next().context("an empty archive")??;
    anyhow::ensure!(
        first.path()?.as_os_str() == "manifest.json",
        "the archive does not start with manifest.json"
    );
    let mut raw = String::new();
    first.read_to_string(&mut raw)?;
    let manifest: serde_json::Value = serde_json::from_str(&raw).context("manifest.json")?;
    anyhow::ensure!(
        manifest["format"] == FORMAT,
        "not a {FORMAT} archive: format {}",
        manifest["format"]
    );
    let sqlite = manifest["backend"] == "sqlite";
    let mut expected: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for table in manifest["tables"].as_array().context("manifest: tables")? {
        let file = table["file"].as_str().context("manifest: file")?;
        let rows = table["rows"].as_u64().context("manifest: rows")?;
        let sha = table["sha256"].as_str().context("manifest: sha256")?;
        expected.insert(file.to_owned(), (rows, sha.to_owned()));
    }
    let mut mismatched = Vec::new();
    let mut head: Option<serde_json::Value> = None;
    for entry in entries {
        let entry = entry?;
        let name = entry.path()?.display().to_string();
        let mut reader = BufReader::new(entry);
        let (mut hash, mut rows, mut line) = (Sha256::new(), 0_u64, Vec::new());
        while reader.read_until(b'\n', &mut line)? > 0 {
            hash.update(&line);
            rows += 1;
            if name == "tables/audit_heads.ndjson" {
                head = Some(serde_json::from_slice(&line).context("audit_heads row")?);
            }
            line.clear();
        }
        match expected.remove(&name) {
            Some((want_rows, want_sha))
                if want_rows == rows && want_sha == hex(&hash.finalize()) => {}
            _ => mismatched.push(name),
        }
    }
    mismatched.extend(expected.into_keys());

    // Pass 2: the chain, entry by entry.
    let field = |row: &serde_json::Value, name: &str| row[name].clone();
    let (anchor_seq, anchor_hash, head_seq, head_hash) = match &head {
        Some(h) => (
            field(h, "anchor_seq").as_i64().unwrap_or(0),
            field(h, "anchor_hash").as_str().unwrap_or("").to_owned(),
            field(h, "seq").as_i64().unwrap_or(0),
            field(h, "hash").as_str().unwrap_or("").to_owned(),
        ),
        None => (0, String::new(), 0, String::new()),
    };
    let mut check = tenantkit::audit::ChainCheck::new(anchor_seq, &anchor_hash);
    let mut archive = open()?;
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.path()?.as_os_str() != "tables/audit_logs.ndjson" {
            continue;
        }
        for line in BufReader::new(entry).lines() {
            let row: serde_json::Value = serde_json::from_str(&line?).context("audit_logs row")?;
            if !check.push(&exported_audit_entry(row, sqlite)?) {
                break;
            }
        }
    }
    let audit_chain = check.finish(head_seq, &head_hash);
    Ok(ArchiveCheck {
        valid: mismatched.is_empty() && audit_chain.valid,
        tenant_id: manifest["tenant_id"].as_str().unwrap_or("").to_owned(),
        mismatched_files: mismatched,
        audit_chain,
    })
}

/// An `audit_logs` row as exported, back into the entry it was. SQLite
/// exports keep JSON columns as strings; PostgreSQL nests them.
fn exported_audit_entry(
    mut row: serde_json::Value,
    sqlite: bool,
) -> anyhow::Result<tenantkit::audit::AuditEntry> {
    use serde_json::Value;
    let mut take = |name: &str| row[name].take();
    let text = |v: Value| v.as_str().map(str::to_owned);
    let json = |v: Value| -> anyhow::Result<Option<Value>> {
        Ok(match v {
            Value::Null => None,
            Value::String(s) if sqlite => Some(serde_json::from_str(&s)?),
            other => Some(other),
        })
    };
    let required = |v: Value, name: &str| text(v).with_context(|| format!("audit_logs: no {name}"));
    let occurred_at = required(take("occurred_at"), "occurred_at")?;
    let occurred_at = chrono::DateTime::parse_from_rfc3339(&occurred_at)
        .or_else(|_| chrono::DateTime::parse_from_str(&occurred_at, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .with_context(|| format!("audit_logs: occurred_at `{occurred_at}`"))?
        .with_timezone(&chrono::Utc);
    Ok(tenantkit::audit::AuditEntry {
        tenant_id: required(take("tenant_id"), "tenant_id")?.parse()?,
        seq: take("seq").as_i64().context("audit_logs: no seq")?,
        id: required(take("id"), "id")?.parse()?,
        actor_type: required(take("actor_type"), "actor_type")?,
        actor_id: text(take("actor_id")),
        action: required(take("action"), "action")?,
        resource_type: required(take("resource_type"), "resource_type")?,
        resource_id: text(take("resource_id")),
        before: json(take("before"))?,
        after: json(take("after"))?,
        request_id: text(take("request_id")),
        client_ip: text(take("client_ip")),
        user_agent: text(take("user_agent")),
        occurred_at,
        prev_hash: required(take("prev_hash"), "prev_hash")?,
        hash: required(take("hash"), "hash")?,
    })
}

//! The `tenantkit-server` command line, run as a user would: `migrate`,
//! `tenant create`, `token issue` (tokens name real users), `audit verify`
//! and `audit purge`, on the embedded default in a temporary directory.

mod common;

use std::process::{Command, Output};

use tenantkit::auth::JwtKeys;

const SECRET: &str = "cli-secret-cli-secret-cli-secret-!!";

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenantkit-server"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Spawned binaries of a coverage run report their coverage too.
            .envs(std::env::var("LLVM_PROFILE_FILE").map(|v| ("LLVM_PROFILE_FILE", v)))
            .env("TENANTKIT_DATABASE__DATA_DIR", self.dir.path().join("data"))
            .env("TENANTKIT_AUTH__JWT_SECRET", SECRET)
            .env("TENANTKIT_LOG", "warn");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("tenantkit-server runs")
    }

    /// The embedded database's URL.
    fn db_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("data/tenantkit.db").display()
        )
    }

    /// Runs `args`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `migrate`, then `tenant create` of `acme` with owner `ann@acme.test`;
    /// what `tenant create` printed.
    fn acme(&self) -> serde_json::Value {
        assert!(self.ok(&["migrate"]).contains("migrated"));
        serde_json::from_str(&self.ok(&[
            "tenant",
            "create",
            "--name",
            "Acme",
            "--subdomain",
            "acme",
            "--owner-email",
            "ann@acme.test",
        ]))
        .unwrap()
    }

    /// Runs `args`, which must fail; its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }
}

fn claims(token: &str) -> tenantkit::auth::Claims {
    JwtKeys::hs256(SECRET.as_bytes())
        .unwrap()
        .verify(token.trim())
        .expect("a valid token")
}

#[test]
fn tokens_name_real_users_and_never_more_than_their_role() {
    let cli = Cli::new();
    let created = cli.acme();
    let owner = created["owner"]["id"].as_str().unwrap();
    let tenant = created["tenant"]["id"].as_str().unwrap();

    // Default: the tenant's first owner, with the owner's role.
    let c = claims(&cli.ok(&["token", "issue", "--tenant", "acme"]));
    assert_eq!(c.sub, owner);
    assert_eq!(c.tenant.unwrap().to_string(), tenant);
    assert_eq!(c.role, tenantkit::auth::TokenRole::Owner);
    // By e-mail (any case) or id, with a lower role.
    let c = claims(&cli.ok(&[
        "token",
        "issue",
        "--tenant",
        tenant,
        "--user",
        "ANN@acme.test",
        "--role",
        "member",
    ]));
    assert_eq!(
        (c.sub.as_str(), c.role),
        (owner, tenantkit::auth::TokenRole::Member)
    );
    let c = claims(&cli.ok(&[
        "token", "issue", "--tenant", "acme", "--user", owner, "--ttl", "60",
    ]));
    assert!(c.exp <= c.iat + 60);

    // No such user, no such tenant, no owner: clear refusals, no token.
    assert!(
        cli.fails(&[
            "token",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "bob@acme.test"
        ])
        .contains("no user `bob@acme.test`")
    );
    assert!(
        cli.fails(&["token", "issue", "--tenant", "nope"])
            .contains("no tenant `nope`")
    );
    cli.ok(&[
        "tenant",
        "create",
        "--name",
        "Empty",
        "--subdomain",
        "empty",
    ]);
    assert!(
        cli.fails(&["token", "issue", "--tenant", "empty"])
            .contains("has no owner")
    );

    // A platform-admin token names no tenant.
    let c = claims(&cli.ok(&["token", "issue", "--platform-admin", "--sub", "ops"]));
    assert_eq!((c.sub.as_str(), c.tenant), ("ops", None));

    // The trail of what the commands did verifies; purging keeps recent entries.
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["audit", "verify", "--tenant", "acme"])).unwrap();
    assert_eq!(report["valid"], true);
    assert!(
        cli.ok(&["audit", "purge", "--retention-days", "400"])
            .contains("purged 0 audit entries")
    );
    // Fewer days than the configured floor (365) is refused before any work.
    let err = cli.fails(&["audit", "purge", "--retention-days", "30"]);
    assert!(err.contains("below audit.retention_days (365)"), "{err}");
}

#[test]
fn a_role_above_the_users_own_is_refused() {
    let cli = Cli::new();
    cli.acme();
    // Only the owner exists: asking for more than a user's role fails. Make a
    // member through the store the server uses.
    let db_url = format!(
        "sqlite://{}",
        cli.dir.path().join("data/tenantkit.db").display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = tenantkit::Db::connect(&db_url).await.unwrap();
        let ctx = db.resolve_subdomain("acme").await.unwrap().unwrap();
        let mut tx = db.begin(&ctx).await.unwrap();
        tx.create_user(&tenantkit::NewUser {
            email: "max@acme.test".into(),
            role: tenantkit::Role::Member,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        db.close().await;
    });
    let err = cli.fails(&[
        "token",
        "issue",
        "--tenant",
        "acme",
        "--user",
        "max@acme.test",
        "--role",
        "admin",
    ]);
    assert!(err.contains("cannot carry the higher role admin"), "{err}");
    let c = claims(&cli.ok(&[
        "token",
        "issue",
        "--tenant",
        "acme",
        "--user",
        "max@acme.test",
    ]));
    assert_eq!(c.role, tenantkit::auth::TokenRole::Member);
}

#[test]
fn analytics_rebuild_and_purge_run_from_the_command_line() {
    let cli = Cli::new();
    cli.acme();
    let today = chrono::Utc::now().date_naive();
    let week_ago = today - chrono::Days::new(7);
    let out = cli.ok(&[
        "analytics",
        "rebuild",
        "--tenant",
        "acme",
        "--from",
        &week_ago.to_string(),
        "--to",
        &today.to_string(),
    ]);
    assert!(
        out.contains("rebuilt the rollups") && out.contains("from 0 events"),
        "{out}"
    );
    let err = cli.fails(&[
        "analytics",
        "rebuild",
        "--tenant",
        "acme",
        "--from",
        "2026-13-01",
        "--to",
        "2026-12-01",
    ]);
    assert!(err.contains("--from"), "{err}");
    let err = cli.fails(&[
        "analytics",
        "rebuild",
        "--tenant",
        "acme",
        "--from",
        &today.to_string(),
        "--to",
        &week_ago.to_string(),
    ]);
    assert!(err.contains("before"), "{err}");
    let err = cli.fails(&[
        "analytics",
        "rebuild",
        "--tenant",
        "nobody",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
    ]);
    assert!(err.contains("no tenant"), "{err}");
    let out = cli.ok(&["analytics", "purge", "--retention-days", "400"]);
    assert!(out.contains("removed analytics before"), "{out}");
    let err = cli.fails(&["analytics", "purge", "--retention-days", "399"]);
    assert!(
        err.contains("below analytics.retention_days (400)"),
        "{err}"
    );
}

#[test]
fn tenants_are_suspended_and_reactivated_with_an_audit_entry() {
    let cli = Cli::new();
    cli.acme();
    let suspended: serde_json::Value =
        serde_json::from_str(&cli.ok(&["tenant", "suspend", "acme"])).unwrap();
    assert_eq!(suspended["status"], "suspended");
    // A suspended tenant is still found by the commands that look after it.
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["audit", "verify", "--tenant", "acme"])).unwrap();
    assert_eq!(report["valid"], true);
    let active: serde_json::Value =
        serde_json::from_str(&cli.ok(&["tenant", "reactivate", "acme"])).unwrap();
    assert_eq!(active["status"], "active");
    assert!(
        cli.fails(&["tenant", "suspend", "nope"])
            .contains("no tenant `nope`")
    );

    let db_url = cli.db_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let changes = rt.block_on(async {
        let db = tenantkit::Db::connect(&db_url).await.unwrap();
        let ctx = db.resolve_subdomain("acme").await.unwrap().unwrap();
        let mut tx = db.begin(&ctx).await.unwrap();
        let filter: tenantkit::audit::AuditFilter =
            serde_json::from_value(serde_json::json!({ "action": "tenant.status_changed" }))
                .unwrap();
        let page = tx.list_audit_logs(&filter).await.unwrap();
        drop(tx);
        db.close().await;
        page
    });
    let by: Vec<_> = changes
        .iter()
        .map(|e| {
            (
                e.after.as_ref().unwrap()["status"].clone(),
                e.actor_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            (serde_json::json!("active"), Some("cli".to_owned())),
            (serde_json::json!("suspended"), Some("cli".to_owned()))
        ],
        "newest first, each by the CLI"
    );
}

#[test]
fn a_tenant_is_exported_to_an_archive_with_a_manifest() {
    let cli = Cli::new();
    cli.acme();
    let out = cli.dir.path().join("acme.tar");
    let printed: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "tenant",
        "export",
        "--tenant",
        "acme",
        "--out",
        out.to_str().unwrap(),
    ]))
    .unwrap();
    let tables = printed["manifest"]["tables"].as_array().unwrap();
    let rows = |name: &str| {
        tables.iter().find(|t| t["table"] == name).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("users"), 1, "the owner");
    assert!(rows("audit_logs") >= 2);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(printed["bytes"], bytes.len());
    let mut names = Vec::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names[0], "manifest.json");
    assert!(
        names.contains(&"tables/users.ndjson".to_owned()),
        "{names:?}"
    );
    assert!(
        cli.fails(&["tenant", "export", "--tenant", "nope", "--out", "x.tar"])
            .contains("no tenant `nope`")
    );
}

/// The files of a tar archive, in order.
fn files_of(archive: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.push((name, bytes));
    }
    files
}

/// Writes `files` as a tar archive at `to`; with `rehash`, the manifest's
/// rows and SHA-256 are made to match the files (a forger's careful copy).
fn write_archive(to: &std::path::Path, mut files: Vec<(String, Vec<u8>)>, rehash: bool) {
    use sha2::Digest;
    if rehash {
        let mut manifest: serde_json::Value = serde_json::from_slice(&files[0].1).unwrap();
        for table in manifest["tables"].as_array_mut().unwrap() {
            let (_, bytes) = files.iter().find(|(n, _)| table["file"] == *n).unwrap();
            let sha: String = sha2::Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            table["sha256"] = sha.into();
            table["rows"] = bytes.iter().filter(|b| **b == b'\n').count().into();
        }
        files[0].1 = serde_json::to_vec(&manifest).unwrap();
    }
    let mut tar = tar::Builder::new(std::fs::File::create(to).unwrap());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    tar.finish().unwrap();
}

#[test]
fn an_export_verifies_offline_and_any_tampering_is_found() {
    let cli = Cli::new();
    cli.acme();
    // A few more audit entries: a suspension and a reactivation.
    cli.ok(&["tenant", "suspend", "acme"]);
    cli.ok(&["tenant", "reactivate", "acme"]);
    let archive = cli.dir.path().join("acme.tar");
    let archive_arg = archive.to_str().unwrap();
    cli.ok(&["tenant", "export", "--tenant", "acme", "--out", archive_arg]);
    // No database needed: it is gone before the check.
    std::fs::remove_dir_all(cli.dir.path().join("data")).unwrap();
    let check: serde_json::Value =
        serde_json::from_str(&cli.ok(&["audit", "verify-export", "--archive", archive_arg]))
            .unwrap();
    assert_eq!(check["valid"], true, "{check}");
    assert_eq!(check["mismatched_files"], serde_json::json!([]));
    assert_eq!(
        check["audit_chain"]["checked"], 4,
        "create x2, suspend, reactivate: {check}"
    );
    assert_eq!(check["audit_chain"]["head_seq"], 4);

    let verify = |archive: &std::path::Path| {
        let out = cli.run(&[
            "audit",
            "verify-export",
            "--archive",
            archive.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "a tampered archive verified");
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let files = files_of(&archive);
    let audit = files
        .iter()
        .position(|(n, _)| n == "tables/audit_logs.ndjson")
        .unwrap();
    let lines = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let forged = cli.dir.path().join("forged.tar");

    // One entry altered, the manifest carefully re-hashed: the chain breaks there.
    let mut altered = files.clone();
    let mut rows = lines(&altered[audit].1);
    rows[1] = rows[1].replace("\"create\"", "\"forged\"");
    altered[audit].1 = (rows.join("\n") + "\n").into_bytes();
    write_archive(&forged, altered.clone(), true);
    let check = verify(&forged);
    assert_eq!(check["mismatched_files"], serde_json::json!([]), "{check}");
    assert_eq!(
        check["audit_chain"]["first_broken"]["reason"],
        "hash_mismatch"
    );
    assert_eq!(check["audit_chain"]["first_broken"]["seq"], 2);
    // The same without re-hashing: the manifest gives it away too.
    write_archive(&forged, altered, false);
    let check = verify(&forged);
    assert_eq!(
        check["mismatched_files"],
        serde_json::json!(["tables/audit_logs.ndjson"])
    );

    // The newest entry dropped: the head no longer matches.
    let mut cut = files.clone();
    let rows = lines(&cut[audit].1);
    cut[audit].1 = (rows[..rows.len() - 1].join("\n") + "\n").into_bytes();
    write_archive(&forged, cut, true);
    assert_eq!(
        verify(&forged)["audit_chain"]["first_broken"]["reason"],
        "head_mismatch"
    );

    // An entry from the middle dropped: a gap.
    let mut gap = files.clone();
    let mut rows = lines(&gap[audit].1);
    rows.remove(1);
    gap[audit].1 = (rows.join("\n") + "\n").into_bytes();
    write_archive(&forged, gap, true);
    assert_eq!(
        verify(&forged)["audit_chain"]["first_broken"]["reason"],
        "missing_entry"
    );

    // A file dropped from the archive.
    let mut missing = files.clone();
    missing.retain(|(n, _)| n != "tables/users.ndjson");
    write_archive(&forged, missing, false);
    assert_eq!(
        verify(&forged)["mismatched_files"],
        serde_json::json!(["tables/users.ndjson"])
    );

    // Not an archive of ours at all.
    std::fs::write(&forged, b"hello").unwrap();
    assert!(
        !cli.fails(&[
            "audit",
            "verify-export",
            "--archive",
            forged.to_str().unwrap()
        ])
        .is_empty()
    );
}

#[test]
fn a_deletion_killed_mid_way_finishes_when_run_again() {
    let cli = Cli::new();
    cli.acme();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(tenantkit::Db::connect(&cli.db_url())).unwrap();
    let ctx = rt.block_on(db.resolve_subdomain("acme")).unwrap().unwrap();
    // 1,500 more users: with their audit entries, some 3,000 rows.
    rt.block_on(async {
        let mut tx = db.begin(&ctx).await.unwrap();
        for i in 0..1500 {
            tx.create_user(&tenantkit::NewUser {
                email: format!("u{i}@acme.test"),
                role: tenantkit::Role::Member,
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    });
    let before = rt.block_on(common::rows_of(&db, &ctx));
    assert!(before > 3000, "{before}");

    assert!(
        cli.fails(&[
            "tenant",
            "delete",
            "--tenant",
            "acme",
            "--confirm",
            "globex"
        ])
        .contains("--confirm must be the tenant's subdomain")
    );
    assert_eq!(
        rt.block_on(common::rows_of(&db, &ctx)),
        before,
        "refused: nothing gone"
    );
    assert!(
        cli.fails(&[
            "tenant",
            "delete",
            "--tenant",
            "acme",
            "--confirm",
            "acme",
            "--batch-size",
            "0"
        ])
        .contains("batch")
    );

    // One row per transaction: slow enough to be killed part-way.
    let args = [
        "tenant",
        "delete",
        "--tenant",
        "acme",
        "--confirm",
        "acme",
        "--batch-size",
        "1",
    ];
    let child = cli
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(common::kill_part_way(child, &db, &ctx, before));
    let suspended = rt.block_on(db.resolve_id(ctx.id())).unwrap().unwrap();
    assert_eq!(
        suspended.tenant().status,
        tenantkit::TenantStatus::Suspended
    );

    // Run again: it finishes, and each row was counted once.
    let done: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "tenant",
        "delete",
        "--tenant",
        "acme",
        "--confirm",
        "acme",
    ]))
    .unwrap();
    assert!(done["finished_at"].is_string(), "{done}");
    let rows = done["rows_removed"].as_object().unwrap();
    let total: i64 = rows
        .iter()
        .filter(|(t, _)| *t != "tenants")
        .map(|(_, n)| n.as_i64().unwrap())
        .sum();
    assert_eq!(total, before + 1, "{done}");
    assert_eq!(rows["users"], 1501);
    assert_eq!(rt.block_on(common::rows_of(&db, &ctx)), 0);
    assert!(rt.block_on(db.resolve_subdomain("acme")).unwrap().is_none());
    // Once gone, by id: the tombstone again.
    let id = ctx.id().to_string();
    let again: serde_json::Value =
        serde_json::from_str(&cli.ok(&["tenant", "delete", "--tenant", &id, "--confirm", "acme"]))
            .unwrap();
    assert_eq!(again, done);
    rt.block_on(db.close());
}

#[test]
fn trusted_issuers_come_from_the_environment_as_json_and_are_checked() {
    let cli = Cli::new();
    let issuers = |json: &str| {
        let mut command = cli.command(&["migrate"]);
        command.env("TENANTKIT_AUTH__ISSUERS", json);
        command.output().expect("tenantkit-server runs")
    };
    let ok = issuers(
        r#"[{"name": "corp", "issuer": "https://login.example.com/", "audience": ["api"],
            "tenant_claim": "org_id", "user_claim": "email"}]"#,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for (json, complaint) in [
        (
            r#"[{"name": "corp", "issuer": "http://login.example.com/", "audience": "api"}]"#,
            "must use https",
        ),
        (
            r#"[{"name": "corp", "issuer": "https://login.example.com/", "audience": "api", "algorithms": ["HS256"]}]"#,
            "algorithm `HS256` is not allowed",
        ),
        (r#"{"name": "corp"}"#, "TENANTKIT_AUTH__ISSUERS"),
    ] {
        let out = issuers(json);
        assert!(!out.status.success(), "{json} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(complaint), "{json}: {stderr}");
    }
}

#[test]
fn event_types_come_from_configuration_checked_and_print_as_markdown() {
    let cli = Cli::new();
    let event_types = |json: &str| {
        let mut command = cli.command(&["event-types"]);
        command.env("TENANTKIT_WEBHOOKS__EVENT_TYPES", json);
        command.output().expect("tenantkit-server runs")
    };
    let ok = event_types(
        r#"[{"name": "invoice.paid", "description": "An invoice was paid",
            "schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}},
            "example": {"amount": 4200}},
           {"name": "note.added", "example": {"text": "hi"}}]"#,
    );
    let printed = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for expected in [
        "### `user.created`",
        "### `invoice.paid`",
        "An invoice was paid",
        "\"amount\": 4200",
        "### `note.added`",
    ] {
        assert!(printed.contains(expected), "{expected} in {printed}");
    }
    assert!(
        printed.find("`invoice.paid`") > printed.find("`webhook.test`"),
        "configured after the built-in ones"
    );
    for (json, complaint) in [
        (
            r#"[{"name": "invoice.paid", "schema": {"type": "object", "required": ["amount"]}, "example": {}}]"#,
            "its example does not satisfy its schema",
        ),
        (
            r#"[{"name": "invoice.paid", "schema": {"type": 12}, "example": {}}]"#,
            "not a valid JSON Schema",
        ),
        (
            r#"[{"name": "user.created", "example": {}}]"#,
            "already in the catalogue",
        ),
        (
            r#"[{"name": "Bad Name", "example": {}}]"#,
            "must be 1 to 64",
        ),
        (r#"[{"name": "a.b"}]"#, "example"),
        (r#"{"name": "a.b"}"#, "TENANTKIT_WEBHOOKS__EVENT_TYPES"),
    ] {
        let out = event_types(json);
        assert!(!out.status.success(), "{json} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(complaint), "{json}: {stderr}");
    }
}

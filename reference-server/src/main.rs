//! `tenantkit-server`: serve, migrate, create tenants, issue tokens.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tenantkit::{NewTenant, Role, TenantStatus, audit::Actor, auth::TokenRole};
use tenantkit_server::{
    config::{Config, LogFormat},
    create_tenant, delete_tenant, find_tenant, issue_user_token, load_keys, migrate,
    open_runtime_db, purge_audit_logs, start,
};

/// The tenantkit reference server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML config file (default: ./tenantkit.toml if present).
    #[arg(long, short, env = "TENANTKIT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Migrate the database at DATABASE_URL (as its owner) and set up the runtime role.
    Migrate,
    /// Deliver webhooks only (no HTTP); run any number beside `serve` with
    /// `webhooks.worker = false` there, or to add delivery capacity.
    Worker,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Issue tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Audit trail maintenance.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Analytics maintenance.
    Analytics {
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
    /// Print the webhook event types (built-in and `webhooks.event_types`)
    /// with their schemas and examples, as Markdown, for your docs.
    EventTypes,
}

#[derive(Debug, Subcommand)]
enum AnalyticsCommand {
    /// Recompute a tenant's rollups of some UTC days from its raw events.
    Rebuild {
        /// The tenant (id or subdomain).
        #[arg(long)]
        tenant: String,
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day, included (YYYY-MM-DD).
        #[arg(long)]
        to: chrono::NaiveDate,
    },
    /// Remove events and rollups older than the retention period now.
    Purge {
        /// Days to keep (default: analytics.retention_days; never fewer:
        /// the configured floor holds, lower it in the configuration and
        /// run `migrate`).
        #[arg(long)]
        retention_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Purge entries older than the retention period, in every tenant (audited).
    Purge {
        /// Days to keep (default: audit.retention_days; never fewer: the
        /// configured floor holds, lower it in the configuration and run
        /// `migrate`).
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// Check a tenant's hash chain.
    Verify {
        /// The tenant (id or subdomain).
        #[arg(long)]
        tenant: String,
    },
    /// Check an export archive offline (no database): every file against
    /// the manifest, and the audit chain entry by entry. Exits non-zero
    /// when anything does not hold.
    VerifyExport {
        /// The archive (`tenant export --out`, or `POST /tenants/{id}/export`).
        #[arg(long)]
        archive: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Subdomain (DNS label).
        #[arg(long)]
        subdomain: String,
        /// Also create its first owner with this e-mail.
        #[arg(long)]
        owner_email: Option<String>,
    },
    /// Suspend a tenant: its requests, WebSockets, ingestion and webhook
    /// deliveries stop; its data is kept.
    Suspend {
        /// The tenant (id or subdomain).
        tenant: String,
    },
    /// Reactivate a suspended tenant.
    Reactivate {
        /// The tenant (id or subdomain).
        tenant: String,
    },
    /// Delete a tenant for good: suspended, its Stripe subscription
    /// canceled, its webhook deliveries stopped, then every row it owns in
    /// every crate's tables removed in batches, and a tombstone kept (who,
    /// when, rows removed, the last export's hash). Run it again to finish a
    /// deletion that was interrupted. The subdomain is free afterwards.
    Delete {
        /// The tenant (id or subdomain; its id once it is gone).
        #[arg(long)]
        tenant: String,
        /// The tenant's subdomain again, to confirm.
        #[arg(long)]
        confirm: String,
        /// Rows removed per transaction (1 to 10000).
        #[arg(long, default_value_t = tenantkit::store::ERASE_BATCH)]
        batch_size: u32,
    },
    /// Export every row the tenant owns, in every crate's tables, to a tar
    /// archive of NDJSON files with a manifest (rows and SHA-256 of each);
    /// secrets are left out. Recorded in the tenant's audit trail.
    Export {
        /// The tenant (id or subdomain).
        #[arg(long)]
        tenant: String,
        /// Where the archive goes (replaced once complete).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a JWT for a user of a tenant, or a platform-admin token.
    Issue {
        /// The tenant (id or subdomain).
        #[arg(
            long,
            required_unless_present = "platform_admin",
            conflicts_with = "platform_admin"
        )]
        tenant: Option<String>,
        /// The user (id or e-mail) the token acts for; default: the tenant's first owner.
        #[arg(long, conflicts_with = "platform_admin")]
        user: Option<String>,
        /// The role the token carries (default: the user's role; never more).
        #[arg(long, value_parser = ["owner", "admin", "member"], conflicts_with = "platform_admin")]
        role: Option<String>,
        /// A platform-admin token (manages tenants; belongs to no tenant).
        #[arg(long)]
        platform_admin: bool,
        /// The platform admin's name (`sub` claim).
        #[arg(long, default_value = "cli")]
        sub: String,
        /// Lifetime in seconds (default: auth.token_ttl_secs).
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// `tenant suspend|reactivate`: the status change, audited as done by the CLI.
async fn set_status(config: &Config, tenant: &str, status: TenantStatus) -> anyhow::Result<()> {
    let db = open_runtime_db(config).await?;
    let id = find_tenant(&db, tenant).await?.id();
    let tenant = db
        .platform()
        .set_tenant_status(id, status, &Actor::PlatformAdmin("cli".into()))
        .await?;
    println!("{}", serde_json::to_string_pretty(&tenant)?);
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENANTKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    init_tracing(config.server.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            println!("{}", migrate(&config).await?);
            Ok(())
        }
        Command::Worker => tenantkit_server::run_worker(config).await,
        Command::EventTypes => {
            let catalogue = tenantkit_server::webhooks::catalogue(&config)?;
            print!(
                "{}",
                tenantkit_server::openapi::event_types_markdown(&catalogue)
            );
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    subdomain,
                    owner_email,
                },
        } => {
            let db = open_runtime_db(&config).await?;
            let (tenant, owner) = create_tenant(
                &db,
                &NewTenant { name, subdomain },
                owner_email,
                &Actor::System,
            )
            .await?;
            let out = serde_json::json!({ "tenant": tenant, "owner": owner });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Suspend { tenant },
        } => set_status(&config, &tenant, TenantStatus::Suspended).await,
        Command::Tenant {
            command: TenantCommand::Reactivate { tenant },
        } => set_status(&config, &tenant, TenantStatus::Active).await,
        Command::Tenant {
            command: TenantCommand::Export { tenant, out },
        } => {
            let db = open_runtime_db(&config).await?;
            let ctx = find_tenant(&db, &tenant)
                .await?
                .with_actor(Actor::PlatformAdmin("cli".into()));
            let exported = tenantkit_server::export::export_tenant(&db, &ctx, &out).await?;
            println!("{}", serde_json::to_string_pretty(&exported)?);
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Delete {
                    tenant,
                    confirm,
                    batch_size,
                },
        } => {
            let done = delete_tenant(&config, &tenant, &confirm, batch_size).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Purge { retention_days },
        } => {
            let days = keep_days("audit", retention_days, config.audit.retention_days)?;
            let db = open_runtime_db(&config).await?;
            let (tenants, entries) = purge_audit_logs(&db, days).await?;
            println!(
                "purged {entries} audit entries older than {days} days from {tenants} tenants"
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::VerifyExport { archive },
        } => {
            let check = tenantkit_server::export::verify_archive(&archive)?;
            println!("{}", serde_json::to_string_pretty(&check)?);
            anyhow::ensure!(
                check.valid,
                "the archive does not verify: see mismatched_files and audit_chain above"
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => {
            let db = open_runtime_db(&config).await?;
            let ctx = find_tenant(&db, &tenant).await?;
            let report = db.begin_snapshot(&ctx).await?.verify_audit_chain().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.valid {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Analytics {
            command: AnalyticsCommand::Rebuild { tenant, from, to },
        } => {
            let db = open_runtime_db(&config).await?;
            let ctx = find_tenant(&db, &tenant).await?;
            let rebuilt = tenantkit_analytics::rollup::rebuild(&db, &ctx, from, to).await?;
            println!(
                "rebuilt the rollups of {from}..={to} from {} events ({} hour/type/name rows, {} daily user rows)",
                rebuilt.events, rebuilt.count_rows, rebuilt.daily_user_rows
            );
            Ok(())
        }
        Command::Analytics {
            command: AnalyticsCommand::Purge { retention_days },
        } => {
            let days =
                keep_days("analytics", retention_days, config.analytics.retention_days)?.max(36);
            let db = open_runtime_db(&config).await?;
            let before = chrono::Utc::now()
                .date_naive()
                .checked_sub_days(chrono::Days::new(u64::from(days)))
                .context("--retention-days reaches before the calendar")?;
            let purged = tenantkit_analytics::retention::purge(&db, before).await?;
            println!(
                "removed analytics before {before}: {} day partitions, {} rows",
                purged.partitions, purged.rows
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Issue {
                    tenant,
                    user,
                    role,
                    platform_admin,
                    sub,
                    ttl,
                },
        } => {
            let keys = load_keys(&config)?;
            let ttl = ttl.unwrap_or(config.auth.token_ttl_secs);
            let token = if platform_admin {
                keys.issue(&sub, None, TokenRole::PlatformAdmin, ttl)?
            } else {
                let db = open_runtime_db(&config).await?;
                let tenant =
                    find_tenant(&db, tenant.as_deref().context("--tenant is required")?).await?;
                let role = role.map(|r| r.parse::<Role>()).transpose()?;
                issue_user_token(&db, &keys, &tenant, user.as_deref(), role, ttl).await?
            };
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let config_base_domain = config.server.base_domain.clone();
    let running = start(config).await?;
    let scheme = if running.tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", running.addr);
    tracing::info!(addr = %running.addr, backend = ?running.db.backend(), "listening");
    if let Some(demo) = &running.demo {
        let dashboard = match &config_base_domain {
            Some(domain) => format!(
                "Open the dashboard (the token travels in the fragment, never to the server):\n\n  \
                 {scheme}://{sub}.{domain}:{port}/dashboard#token={token}\n\n",
                sub = demo.subdomain,
                port = running.addr.port(),
                token = demo.token,
            ),
            None => "Set `server.base_domain` to open the dashboard at <subdomain>.<base_domain>/dashboard.\n\n".into(),
        };
        println!(
            "\nFirst start: created tenant `{sub}` with an owner.\n\n{dashboard}Or try the API:\n\n  \
             export TOKEN={token}\n  \
             curl -H \"Authorization: Bearer $TOKEN\" -H 'X-Tenant-Id: {sub}' {base}/tenant\n  \
             curl -H \"Authorization: Bearer $TOKEN\" -H 'X-Tenant-Id: {sub}' {base}/users\n\n\
             (the token expires; mint another with `tenantkit-server token issue --tenant {sub}`)\n",
            sub = demo.subdomain,
            token = demo.token,
        );
    }
    let failed = tokio::select! {
        () = tenantkit_server::shutdown_signal() => None,
        task = running.failed() => Some(task),
    };
    tracing::info!("shutting down; letting in-flight requests finish");
    running.shutdown(grace).await?;
    match failed {
        // For the orchestrator to replace the process.
        Some(task) => anyhow::bail!("stopped: the background task `{task}` failed"),
        None => Ok(()),
    }
}

/// The days a purge keeps: `asked` (`--retention-days`) or the configured
/// floor, never fewer than the floor (on PostgreSQL the database holds the
/// runtime role to it anyway; this says so on both backends, before work).
fn keep_days(what: &str, asked: Option<u32>, configured: u32) -> anyhow::Result<u32> {
    let days = asked.unwrap_or(configured);
    anyhow::ensure!(
        days >= configured,
        "--retention-days {days} is below {what}.retention_days ({configured}): \
         lower it in the configuration and run `migrate` to keep fewer days"
    );
    Ok(days)
}

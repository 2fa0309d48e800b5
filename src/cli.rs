//! The command line of the service: `snorq [serve]`, `worker`, `migrate`, `replay`, `retention`,
//! `tokens`, `keys`, `admin`. The demo, the simulator and the load generators are `snorq-tools`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::app::{self, App, auth, ingest, keys, orgs};
use crate::config::{Config, LogFormat, Overrides};
use crate::crypto::EncryptionKey;
use crate::domain::{Plan, Role};
use crate::store::ReplayFilter;
use crate::{server, telemetry};

#[derive(Debug, Parser)]
#[command(name = "snorq", version, about = "Omnichannel inbox integration service")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SNORQ_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://... or postgres://...); overrides DATABASE_URL.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Directory for the embedded database and the development key.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Development mode: use (and create) a local encryption key when none is configured.
    #[arg(long, global = true)]
    pub dev: bool,
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations and serve HTTP (the default).
    Serve {
        /// Listen address, e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Serve the API only; run the send workers elsewhere (`snorq worker`).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run only the send workers (no HTTP), e.g. as extra processes on one PostgreSQL.
    Worker,
    /// Run database migrations and exit.
    Migrate,
    /// Apply stored webhooks again: unroutable and failed ones by default (e.g. after the
    /// missing connection was added). Idempotent.
    Replay(ReplayArgs),
    /// Delete what is past its retention now (FREE organizations' messages older than 30 days,
    /// live events older than event_retention_hours) and index for search the conversations
    /// written before the search index existed; the workers also do it every 10 minutes.
    Retention,
    /// Platform tokens: `snorq tokens refresh` refreshes the TikTok tokens that are due now
    /// (the workers do it every token_refresh_interval_secs).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Encryption keys for stored platform tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator commands for servers with signup switched off.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only this stored webhook.
    #[arg(long)]
    pub id: Option<Uuid>,
    /// Only this platform (whatsapp, facebook, tiktok).
    #[arg(long)]
    pub platform: Option<snorq_connectors::Platform>,
    /// Only webhooks received at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only webhooks received before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Also replay webhooks that were processed fully.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (base64) for SNORQ_ENCRYPTION_KEYS.
    Generate,
    /// Re-encrypt every stored token under the first configured key.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Refresh the TikTok access tokens expiring within token_refresh_window_mins, once.
    Refresh,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from standard input (one line).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Create an organization owned by an existing user.
    CreateOrg {
        #[arg(long)]
        name: String,
        /// Email of the owner.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        slug: Option<String>,
        #[arg(long, default_value = "free", value_parser = parse_plan)]
        plan: Plan,
    },
    /// Add an existing user to an organization.
    AddMember {
        /// Organization id or slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "member", value_parser = parse_role)]
        role: Role,
    },
    /// Change an organization's plan.
    SetPlan {
        /// Organization id or slug.
        #[arg(long)]
        org: String,
        #[arg(long, value_parser = parse_plan)]
        plan: Plan,
    },
}

fn parse_plan(s: &str) -> Result<Plan, String> {
    serde_json::from_value(serde_json::Value::String(s.to_lowercase()))
        .map_err(|_| "expected free, pro or business".to_owned())
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s.to_lowercase().as_str() {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        _ => Err("expected member or admin (ownership is transferred through the API)".to_owned()),
    }
}

impl GlobalArgs {
    fn overrides(&self, listen: Option<String>, workers: Option<bool>) -> Overrides {
        Overrides {
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            listen,
            dev: self.dev,
            log_format: self.log_format.as_deref().map(|f| match f {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            }),
            workers,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve {
        listen: None,
        no_workers: false,
    });
    if let Command::Keys(KeysCommand::Generate) = command {
        println!("{}", EncryptionKey::generate_base64());
        return Ok(());
    }
    let (listen, workers) = match &command {
        Command::Serve { listen, no_workers } => (listen.clone(), no_workers.then_some(false)),
        _ => (None, None),
    };
    let config = Config::load(
        cli.global.config.as_deref(),
        &cli.global.overrides(listen, workers),
    )?;
    telemetry::init_tracing(config.log_format);
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Worker => {
            let app = server::bootstrap(&config).await?;
            tracing::info!("snorq send workers running");
            server::run_workers(app, &config, server::shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            server::bootstrap(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Replay(args) => replay(&config, args).await,
        Command::Retention => {
            let app = server::bootstrap(&config).await?;
            let done = crate::app::retention::run(
                &*app.store,
                crate::domain::now(),
                config.outbound.event_retention,
            )
            .await?;
            println!(
                "deleted {} messages and {} live events; indexed {} conversations for search",
                done.messages, done.events, done.indexed
            );
            Ok(())
        }
        Command::Tokens(TokensCommand::Refresh) => {
            let app = server::bootstrap(&config).await?;
            let done = crate::app::token_refresh::run_once(&app).await?;
            println!(
                "refreshed {}, expired {}, failed {}, lost {}",
                done.refreshed, done.expired, done.failed, done.lost
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => rotate_keys(&config).await,
        Command::Keys(KeysCommand::Generate) => Ok(()),
        Command::Admin(admin) => run_admin(&config, admin).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = server::bootstrap(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, workers = config.workers, "snorq is serving");
    if config.dev {
        println!("{}", dev_banner(listener.local_addr()?));
    }
    server::run(app, &config, listener, server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// What a developer who just ran `--dev` can do next.
fn dev_banner(address: std::net::SocketAddr) -> String {
    let base = format!("http://{address}");
    format!(
        "\nSnorq is running (development mode) at {base}\n\
         \n  Dashboard   {base}/dashboard\
         \n  API docs    {base}/docs\
         \n  Health      {base}/readyz\n\
         \nNext steps:\
         \n  1. Sign up:  curl -s {base}/api/v1/auth/signup -H 'content-type: application/json' \\\
         \n                 -d '{{\"email\":\"you@example.com\",\"name\":\"You\",\"password\":\"correct horse battery\"}}'\
         \n     then sign in at {base}/api/v1/auth/login for a token.\
         \n  2. See customers write without any Meta or TikTok account: `cargo run -p snorq-tools -- demo` runs the\
         \n     whole loop; `snorq-tools simulate` drives this service (docs/simulator.md).\
         \n  3. Connect real accounts: docs/connecting.md.\n"
    )
}

async fn replay(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let app = server::bootstrap(config).await?;
    let filter = ReplayFilter {
        id: args.id,
        platform: args.platform,
        since: args.since,
        until: args.until,
        include_processed: args.all || args.id.is_some(),
    };
    let report = ingest::replay(app.store.as_ref(), &filter, |r| {
        eprintln!(
            "  {} replayed: {} processed, {} still unroutable, {} failed",
            r.examined, r.processed, r.unroutable, r.failed
        );
    })
    .await?;
    println!(
        "replayed {} webhooks: {} processed, {} unroutable, {} failed",
        report.examined, report.processed, report.unroutable, report.failed
    );
    Ok(())
}

async fn rotate_keys(config: &Config) -> anyhow::Result<()> {
    let app = server::bootstrap(config).await?;
    let primary = app.vault.keyring().primary().id().to_owned();
    eprintln!("re-encrypting stored tokens under key {primary}");
    let report = keys::rotate(&app, |r| {
        eprintln!(
            "  {} examined, {} rotated, {} already current, {} changed meanwhile, {} failed",
            r.examined,
            r.rotated,
            r.already_current,
            r.changed_meanwhile,
            r.failed.len()
        );
    })
    .await?;
    for (id, reason) in &report.failed {
        eprintln!("  connection {id}: {reason}");
    }
    println!(
        "done: {} rotated, {} already current, {} failed",
        report.rotated,
        report.already_current,
        report.failed.len()
    );
    if !report.failed.is_empty() {
        bail!("some tokens could not be decrypted: add their old key to SNORQ_ENCRYPTION_KEYS and run again");
    }
    Ok(())
}

async fn run_admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let app = server::bootstrap(config).await?;
    match command {
        AdminCommand::CreateUser { email, name } => {
            let password = read_password()?;
            let user = auth::register_user(
                &app,
                auth::NewAccount {
                    email: &email,
                    name: &name,
                    password: &password,
                },
            )
            .await?;
            println!("created user {} <{}>", user.id, user.email);
        }
        AdminCommand::CreateOrg {
            name,
            owner,
            slug,
            plan,
        } => {
            let owner = user_by_email(&app, &owner).await?;
            let created = orgs::create(&app, owner, &name, slug.as_deref(), plan).await?;
            let org = created.organization;
            println!(
                "created organization {} ({}), plan {:?}",
                org.id, org.slug, org.plan
            );
        }
        AdminCommand::AddMember { org, email, role } => {
            let org_id = org_by_id_or_slug(&app, &org).await?;
            let member = orgs::add_member_as_operator(&app, org_id, &email, role).await?;
            println!("added {} as {:?}", member.email, member.role);
        }
        AdminCommand::SetPlan { org, plan } => {
            let org_id = org_by_id_or_slug(&app, &org).await?;
            let org = orgs::set_plan(&app, org_id, plan).await?;
            println!("organization {} is now on plan {:?}", org.slug, org.plan);
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (e.g. `echo \"$PASSWORD\" | snorq admin create-user ...`)");
    }
    Ok(password)
}

async fn user_by_email(app: &App, email: &str) -> anyhow::Result<Uuid> {
    app.store
        .user_credentials(&email.trim().to_lowercase())
        .await
        .map_err(app::AppError::from)?
        .map(|c| c.user.id)
        .with_context(|| format!("no user with email {email}"))
}

async fn org_by_id_or_slug(app: &App, org: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(org) {
        return Ok(id);
    }
    app.store
        .organization_by_slug(org)
        .await
        .map_err(app::AppError::from)?
        .map(|o| o.id)
        .with_context(|| format!("no organization with slug {org}"))
}

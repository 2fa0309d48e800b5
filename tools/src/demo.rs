//! `snorq-tools demo`: the whole loop on one machine with no platform account. The service runs on
//! a temporary SQLite database (or the configured one) with a demo organization, an agent
//! and one connection per platform, all pointed at the built-in simulator, whose customers
//! start writing at once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use futures::StreamExt;
use secrecy::SecretString;
use snorq_connectors::Platform;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::simulator::command::SimulationArgs;
use crate::simulator::{Accounts, FailureKind, Secrets, Simulator, WhatsAppAccount};
use snorq::app::auth::{self, NewAccount};
use snorq::app::connections::{self, Credentials, NewConnection};
use snorq::app::live::{self, LiveItem};
use snorq::app::orgs::{self, OrgAccess};
use snorq::app::replies::{self, ReplyRequest};
use snorq::app::{App, AppError};
use snorq::config::{Config, DatabaseUrl, Overrides};
use snorq::crypto::EncryptionKey;
use snorq::domain::{self, Plan};
use snorq::{server, telemetry};

/// What the demo's platforms get wrong unless `--fail` says otherwise: enough to see retries
/// and a failed send or two in the dashboard.
const DEMO_FAILURES: [&str; 3] = ["rate-limited=0.1", "server-error=0.05", "window-closed=0.05"];

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the service listens (127.0.0.1:0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where the simulated platform APIs listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub simulator_listen: String,
    /// Do not greet new conversations (the demo agent answers each one's first message, and
    /// the first Messenger greeting fails on purpose, to show a failed send).
    #[arg(long)]
    pub no_auto_reply: bool,
    #[command(flatten)]
    pub simulation: SimulationArgs,
}

/// The demo agent's answer to every new conversation.
const GREETING: &str = "Hi! Thanks for writing to Demo Shop. An agent will be with you shortly.";

/// The demo organization, its agent and its connections.
struct Seeded {
    email: String,
    password: String,
    token: String,
    organization_id: Uuid,
    access: OrgAccess,
}

/// Runs the demo until Ctrl-C. `config_file` and `overrides` are the global flags; the data
/// directory is temporary unless one was given.
pub async fn run(
    config_file: Option<PathBuf>,
    mut overrides: Overrides,
    args: DemoArgs,
) -> anyhow::Result<()> {
    let failures = args.simulation.failures(&DEMO_FAILURES)?;
    let temp_dir = match overrides.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("snorq-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?,
        ),
    };
    if let Some(dir) = &temp_dir {
        overrides.data_dir = Some(dir.path().to_owned());
    }
    overrides.listen = Some(args.listen.clone());
    overrides.workers = Some(true);
    let mut config = Config::load(config_file.as_deref(), &overrides)?;
    if config.encryption_keys.is_empty() {
        // A key for this run only: the demo's tokens are fake, and on a kept database its
        // connections are disconnected on exit.
        config
            .encryption_keys
            .push(SecretString::from(EncryptionKey::generate_base64()));
    }
    // Quiet by default: the banner is the interface; SNORQ_LOG=info shows the service's logs.
    telemetry::init_tracing_or(config.log_format, "warn");
    let temporary_database = temp_dir.is_some()
        && matches!(&config.database_url, DatabaseUrl::Sqlite(_))
        && config
            .database_url
            .redacted()
            .contains(&*config.data_dir.to_string_lossy());

    let simulator_listener = TcpListener::bind(&args.simulator_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the simulator", args.simulator_listen))?;
    let simulator_url = format!("http://{}", simulator_listener.local_addr()?);
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: is another service using it? `--listen 127.0.0.1:0` picks a free port",
            config.listen
        )
    })?;
    let service_url = format!("http://{}", listener.local_addr()?);

    let accounts = demo_accounts();
    let secrets = Secrets {
        whatsapp: Some(random_secret()),
        facebook: Some(random_secret()),
        tiktok: Some(random_secret()),
    };
    point_at_simulator(&mut config, &simulator_url, &service_url, &secrets, &accounts);

    let app = server::bootstrap(&config).await?;
    let simulator_config = args.simulation.config(
        accounts.clone(),
        Some((service_url.clone(), secrets)),
        failures.clone(),
    )?;
    // The simulated platforms answer first: connecting the accounts asks them for proof.
    let mut simulator = Simulator::serve(simulator_listener, simulator_config).await?;
    let seeded = seed(&app, &accounts).await?;
    // Following events from before the first customer writes: no conversation is missed.
    let greeter = match args.no_auto_reply {
        true => None,
        false => Some(live::follow(app.clone(), &seeded.access, None).await?),
    };
    simulator.start_customers();
    if let Some(events) = greeter {
        // The first Messenger greeting fails as outside the reply window: the dashboard has a
        // failed send to retry within seconds.
        simulator.fail_next(Platform::Facebook, FailureKind::WindowClosed);
        tokio::spawn(greet_new_conversations(
            app.clone(),
            seeded.access.clone(),
            events,
        ));
    }

    let database = if temporary_database {
        format!("SQLite in {} (deleted on exit)", config.data_dir.display())
    } else {
        format!(
            "{} (kept; the demo's connections are disconnected on exit)",
            config.database_url.redacted()
        )
    };
    let platforms: Vec<&str> = args.simulation.platforms.iter().map(|p| p.as_str()).collect();
    print_banner(&Banner {
        service_url: &service_url,
        simulator_url: simulator.url(),
        seeded: &seeded,
        database: &database,
        customers: &format!("{}/s on {}", args.simulation.rate, platforms.join(", ")),
        auto_reply: !args.no_auto_reply,
        failures: &failures.to_string(),
    });

    let stop_simulator = simulator.stopper();
    let shutdown = async move {
        server::shutdown_signal().await;
        // Customers, pending receipts and held platform calls end first, so that the service
        // drains at once.
        stop_simulator();
    };
    server::run(app.clone(), &config, listener, shutdown).await?;
    let stats = simulator.stop().await;
    if !temporary_database {
        disconnect(&app, &seeded).await;
    }
    println!("simulator: {}", stats.summary());
    if let Some(dir) = temp_dir {
        let path = dir.path().display().to_string();
        drop(app);
        dir.close().with_context(|| format!("cannot delete {path}"))?;
        println!("deleted {path}");
    }
    Ok(())
}

/// The demo agent answers each new conversation (the stream ends when the service stops).
async fn greet_new_conversations(
    app: Arc<App>,
    access: OrgAccess,
    events: impl futures::Stream<Item = LiveItem> + Send + 'static,
) {
    let mut events = std::pin::pin!(events);
    while let Some(item) = events.next().await {
        let LiveItem::Event(event) = item else {
            continue; // stream.opened
        };
        if event.kind != "conversation.created" {
            continue;
        }
        let Some(conversation_id) = event.payload.0["conversation_id"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok())
        else {
            continue;
        };
        let greeting = ReplyRequest::text(GREETING);
        if let Err(error) = replies::reply(&app, &access, conversation_id, greeting).await {
            tracing::warn!(%error, %conversation_id, "the demo agent could not greet a conversation");
        }
    }
}

/// Fresh account ids per run, so runs on a kept database do not collide.
pub(crate) fn demo_accounts() -> Accounts {
    let digits = |lead: char| {
        let n: u64 = rand::random::<u64>() % 10u64.pow(14);
        format!("{lead}{n:014}")
    };
    let tag = Uuid::new_v4().simple().to_string();
    Accounts {
        whatsapp: WhatsAppAccount {
            phone_number_id: digits('1'),
            waba_id: digits('2'),
            display_phone_number: "15550100".to_owned(),
        },
        facebook_page_id: digits('3'),
        tiktok_business_id: format!("-000SIMbusiness{}", &tag[..10]),
        tiktok_app_id: "sim-tiktok-app".to_owned(),
        meta_app_id: "sim-meta-app".to_owned(),
    }
}

pub(crate) fn random_secret() -> SecretString {
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()))
}

/// Webhook secrets shared with the simulator, every platform call sent to it, and app ids so
/// token refresh and connection checks run against it too.
fn point_at_simulator(
    config: &mut Config,
    simulator_url: &str,
    service_url: &str,
    secrets: &Secrets,
    accounts: &Accounts,
) {
    config.webhooks.whatsapp_app_secret = secrets.whatsapp.clone();
    config.webhooks.facebook_app_secret = secrets.facebook.clone();
    config.webhooks.tiktok_app_secret = secrets.tiktok.clone();
    let platforms = &mut config.outbound.platforms;
    platforms.graph_base_url = simulator_url.to_owned();
    platforms.tiktok_base_url = simulator_url.to_owned();
    platforms.facebook_dialog_base_url = simulator_url.to_owned();
    platforms.tiktok_authorize_url = format!("{simulator_url}/v2/auth/authorize/");
    config.oauth.public_url = Some(service_url.to_owned());
    config.oauth.whatsapp_app_id = Some(accounts.meta_app_id.clone());
    config.oauth.facebook_app_id = Some(accounts.meta_app_id.clone());
    config.oauth.tiktok_app_id = Some(accounts.tiktok_app_id.clone());
    config.workers = true;
}

/// The agent (owner of the organization, so the dashboard is open to them), the organization
/// (BUSINESS) and one connection per platform.
async fn seed(app: &Arc<App>, accounts: &Accounts) -> anyhow::Result<Seeded> {
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>());
    let mut email = "agent@example.com".to_owned();
    let user = loop {
        let account = NewAccount {
            email: &email,
            name: "Demo Agent",
            password: &password,
        };
        match auth::register_user(app, account).await {
            Ok(user) => break user,
            // A kept database from an earlier run: another address.
            Err(AppError::Conflict { .. }) if email == "agent@example.com" => {
                email = format!("agent-{}@example.com", &Uuid::new_v4().simple().to_string()[..8]);
            }
            Err(error) => return Err(error.into()),
        }
    };
    let membership = orgs::create(app, user.id, "Demo Shop", None, Plan::Business).await?;
    let access = OrgAccess {
        user_id: user.id,
        membership,
        token_hash: None,
    };
    let now = domain::now();
    let connections = [
        (
            Platform::WhatsApp,
            accounts.whatsapp.phone_number_id.clone(),
            "Demo Shop WhatsApp (+1 555 0100)",
        ),
        (
            Platform::Facebook,
            accounts.facebook_page_id.clone(),
            "Demo Shop Page",
        ),
        (
            Platform::TikTok,
            accounts.tiktok_business_id.clone(),
            "@demo_shop",
        ),
    ];
    for (platform, account_id, name) in connections {
        let tiktok = platform == Platform::TikTok;
        connections::create(
            app,
            &access,
            NewConnection {
                platform,
                platform_user_id: account_id,
                name: Some(name.to_owned()),
                waba_id: (platform == Platform::WhatsApp).then(|| accounts.whatsapp.waba_id.clone()),
                credentials: Credentials {
                    access_token: format!("sim-{platform}-access-token"),
                    refresh_token: tiktok.then(|| "sim-tiktok-refresh-token".to_owned()),
                    access_token_expires_at: tiktok.then(|| now + chrono::Duration::hours(24)),
                    refresh_token_expires_at: tiktok.then(|| now + chrono::Duration::days(365)),
                },
            },
        )
        .await?;
    }
    let logged_in = auth::login(app, &email, &password, None).await?;
    Ok(Seeded {
        email,
        token: logged_in.token.expose().to_owned(),
        password,
        organization_id: access.org_id(),
        access,
    })
}

/// On a kept database, nothing of the demo stays connected (no refresh would ever succeed
/// once the simulator is gone).
async fn disconnect(app: &App, seeded: &Seeded) {
    let list = match connections::list(app, &seeded.access).await {
        Ok(list) => list,
        Err(error) => {
            tracing::warn!(%error, "cannot list the demo's connections");
            return;
        }
    };
    for connection in list {
        if let Err(error) = connections::disconnect(app, &seeded.access, connection.id).await {
            tracing::warn!(%error, connection_id = %connection.id, "cannot disconnect a demo connection");
        }
    }
}

struct Banner<'a> {
    service_url: &'a str,
    simulator_url: &'a str,
    seeded: &'a Seeded,
    database: &'a str,
    customers: &'a str,
    failures: &'a str,
    auto_reply: bool,
}

fn print_banner(b: &Banner<'_>) {
    let api = format!("{}/api/v1", b.service_url);
    let org = format!("{api}/orgs/{}", b.seeded.organization_id);
    let auth = "-H \"Authorization: Bearer $TOKEN\"";
    println!("Snorq demo: the service, with a simulator playing WhatsApp, Messenger and TikTok.");
    println!();
    println!("  Docs          {}/docs", b.service_url);
    println!("  Dashboard     {}/dashboard", b.service_url);
    println!("  API           {api}");
    println!("  Simulator     {}/_simulator/sends", b.simulator_url);
    println!("  Email         {}", b.seeded.email);
    println!("  Password      {}", b.seeded.password);
    println!("  Organization  {}", b.seeded.organization_id);
    println!("  Database      {}", b.database);
    println!("  Customers     {}", b.customers);
    println!("  Failures      {}", b.failures);
    if b.auto_reply {
        println!(
            "  Auto-reply    the agent greets each new conversation; the first Messenger greeting fails"
        );
        println!("                (window closed) so that the dashboard has a failed send to retry");
    }
    println!();
    println!("Try it (TOKEN is a fresh login of the agent):");
    println!("  export TOKEN={}", b.seeded.token);
    println!("  curl -s {auth} '{org}/conversations?limit=5'");
    println!(
        "  CONV=$(curl -s {auth} '{org}/conversations?limit=1' | grep -o '\"id\":\"[^\"]*\"' | head -1 | cut -d'\"' -f4)"
    );
    println!(
        "  curl -s {auth} -H 'content-type: application/json' -d '{{\"text\":\"Hi! How can I help?\"}}' \"{org}/conversations/$CONV/messages\""
    );
    println!("  curl -s {auth} \"{org}/conversations/$CONV/messages?limit=5\"");
    println!("  curl -s {auth} '{org}/sends?status=failed'");
    println!("  curl -s -N {auth} '{org}/events'");
    println!("  curl -s '{}/_simulator/sends'", b.simulator_url);
    println!();
    println!("Press Ctrl-C to stop.");
}

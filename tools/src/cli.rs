//! The command line of `snorq-tools`: `demo`, `simulate`, `chaos` and the `bench-*` load generators.
//! Each command takes only the flags that apply to it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use snorq::config::{Config, LogFormat, Overrides};
use snorq::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "snorq-tools",
    version,
    about = "Try and measure Snorq: the demo, the platform simulator and the load generators"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try everything in one command: the service on a temporary SQLite database (or
    /// DATABASE_URL) with a demo organization, an agent and one connection per platform, all
    /// pointed at the built-in platform simulator. Stops on Ctrl-C.
    Demo {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        demo: Box<crate::demo::DemoArgs>,
    },
    /// Play WhatsApp, Messenger and TikTok for a running service: customers' signed webhooks,
    /// the send and token APIs with injected failures, receipts, and a record of every send.
    Simulate(Box<crate::simulator::command::SimulateArgs>),
    /// Load-test webhook ingest against a running service (see benches/ingest.sh).
    BenchIngest(crate::bench::IngestBenchArgs),
    /// Measure outbound sends through the queue against an in-process fake platform, on the
    /// configured database (see docs/benchmarks.md).
    BenchSend {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        bench: crate::bench::send::SendBenchArgs,
    },
    /// Measure inbox read latency (listing, filters, search, history) on a large seeded
    /// organization, on the configured database (see benches/inbox.sh).
    BenchInbox {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        bench: crate::bench::inbox::InboxBenchArgs,
    },
    /// Bursts of concurrent signups against a running service: its resident memory (peak and
    /// settled) and /readyz latency meanwhile (see benches/signup.sh).
    BenchSignup(crate::bench::signup::SignupBenchArgs),
    /// The delivery guarantees under faults: `snorq serve` and `snorq worker` against the
    /// simulator under webhook and reply load, SIGKILLed mid-load, the database restarted
    /// (PostgreSQL); checks that nothing was lost, stored twice or sent twice, and prints the counts.
    Chaos(crate::chaos::ChaosArgs),
}

/// The service's own configuration, for the tools that run it in-process.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// TOML configuration file of the service.
    #[arg(long, env = "SNORQ_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://... or postgres://...); overrides DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Directory for the embedded database (temporary when not given, for the demo).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

impl ServiceArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            log_format: self.log_format.as_deref().map(|f| match f {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            }),
            ..Overrides::default()
        }
    }

    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref(), &self.overrides())?)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // The generators are clients of the service: they need none of its configuration.
        Command::BenchIngest(args) => crate::bench::run(args).await,
        Command::BenchSignup(args) => crate::bench::signup::run(args).await,
        Command::Chaos(args) => {
            telemetry::init_tracing_or(LogFormat::Text, "warn");
            crate::chaos::run(args).await
        }
        Command::Simulate(args) => {
            telemetry::init_tracing_or(LogFormat::Text, "warn");
            crate::simulator::command::run(*args).await
        }
        // The demo builds its own configuration around the simulator.
        Command::Demo { service, demo } => {
            let overrides = service.overrides();
            crate::demo::run(service.config, overrides, *demo).await
        }
        Command::BenchSend { service, bench } => {
            let config = service.load()?;
            telemetry::init_tracing(config.log_format);
            crate::bench::send::run(config, bench).await
        }
        Command::BenchInbox { service, bench } => {
            let config = service.load()?;
            telemetry::init_tracing(config.log_format);
            crate::bench::inbox::run(config, bench).await
        }
    }
}

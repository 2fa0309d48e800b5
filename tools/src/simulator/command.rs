//! `snorq-tools simulate`: the simulator beside a running service, and the flags it shares with
//! `snorq-tools demo`.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use secrecy::SecretString;
use snorq_connectors::Platform;
use tokio::net::TcpListener;

use super::{Accounts, FailureMix, FailureRule, Secrets, Simulator, SimulatorConfig, WhatsAppAccount};

/// How customers and platforms behave (shared by `snorq-tools simulate` and `snorq-tools demo`).
#[derive(Debug, Clone, Args)]
pub struct SimulationArgs {
    /// Customer messages per second, over all platforms (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Customers per platform.
    #[arg(long, default_value_t = 12)]
    pub customers: usize,
    /// The platforms customers write on, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "whatsapp,facebook,tiktok")]
    pub platforms: Vec<Platform>,
    /// A failure to inject: [SCOPE:]KIND=SHARE, repeatable. KIND: rate-limited, server-error,
    /// timeout, window-closed, token-expired, slow-accept (accepted, answered only after
    /// --timeout-hold-secs), reset-after-accept (accepted, then the connection is cut). SCOPE: whatsapp, facebook or tiktok (that send
    /// API), tokens (the token endpoints), or left out (every send API). `--fail none`: no
    /// failures. Default: none for `simulate`; rate-limited=0.1, server-error=0.05 and
    /// window-closed=0.05 for `demo`.
    #[arg(long = "fail", value_name = "[SCOPE:]KIND=SHARE")]
    pub fail: Vec<FailArg>,
    /// How long the send APIs take to answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Retry-After of injected rate limits, in seconds.
    #[arg(long, default_value_t = 2)]
    pub retry_after_secs: u64,
    /// How long an injected timeout holds a request, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_hold_secs: u64,
    /// From an accepted send to its delivery receipt, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub receipt_delay_ms: u64,
    /// The share of delivered messages customers read (0 to 1).
    #[arg(long, default_value_t = 0.7)]
    pub read_share: f64,
    /// From delivery to the read receipt, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub read_delay_ms: u64,
    /// From an accepted send to its echo (Messenger, TikTok), in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub echo_delay_ms: u64,
}

/// The longest delay a flag may ask for.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// One `--fail` value.
#[derive(Debug, Clone, Copy)]
pub enum FailArg {
    None,
    Rule(FailureRule),
}

impl FromStr for FailArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "none" {
            Ok(FailArg::None)
        } else {
            s.parse().map(FailArg::Rule)
        }
    }
}

impl SimulationArgs {
    /// The failures asked for; `default` when no `--fail` was given.
    pub fn failures(&self, default: &[&str]) -> anyhow::Result<FailureMix> {
        let rules: Vec<FailureRule> = if self.fail.is_empty() {
            default
                .iter()
                .map(|r| r.parse())
                .collect::<Result<_, String>>()
                .map_err(anyhow::Error::msg)?
        } else {
            self.fail
                .iter()
                .filter_map(|f| match f {
                    FailArg::Rule(rule) => Some(*rule),
                    FailArg::None => None,
                })
                .collect()
        };
        FailureMix::new(rules).map_err(anyhow::Error::msg)
    }

    /// The simulator's configuration for these flags.
    pub fn config(
        &self,
        accounts: Accounts,
        target: Option<(String, Secrets)>,
        failures: FailureMix,
    ) -> anyhow::Result<SimulatorConfig> {
        if !(self.rate == 0.0 || (super::MIN_RATE..=super::MAX_RATE).contains(&self.rate)) {
            bail!(
                "--rate must be 0 or between {} and {} messages per second",
                super::MIN_RATE,
                super::MAX_RATE
            );
        }
        if !(0.0..=1.0).contains(&self.read_share) {
            bail!("--read-share must be between 0 and 1");
        }
        let delay = |flag: &str, value: Duration| {
            if value > MAX_DELAY {
                bail!("--{flag} may be an hour at most");
            }
            Ok(value)
        };
        let mut config = SimulatorConfig::new(accounts, target, self.rate);
        config.customers = self.customers.clamp(1, 10_000);
        config.platforms = Vec::new();
        for platform in &self.platforms {
            if !config.platforms.contains(platform) {
                config.platforms.push(*platform);
            }
        }
        config.failures = failures;
        config.latency = delay("latency-ms", Duration::from_millis(self.latency_ms))?;
        config.retry_after = delay(
            "retry-after-secs",
            Duration::from_secs(self.retry_after_secs.max(1)),
        )?;
        config.hold = delay("timeout-hold-secs", Duration::from_secs(self.timeout_hold_secs))?;
        config.receipt_delay = delay("receipt-delay-ms", Duration::from_millis(self.receipt_delay_ms))?;
        config.read_share = self.read_share;
        config.read_delay = delay("read-delay-ms", Duration::from_millis(self.read_delay_ms))?;
        config.echo_delay = delay("echo-delay-ms", Duration::from_millis(self.echo_delay_ms))?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The service's base URL: customers post to {target}/webhooks/{platform}.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Where the simulated platform APIs listen; point the service's graph_base_url and
    /// tiktok_base_url here.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Stop after this many seconds (default: on Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// The WhatsApp connection's phone_number_id (its platform_user_id in the service).
    #[arg(long, default_value = "100000000000001")]
    pub whatsapp_phone_number_id: String,
    #[arg(long, default_value = "100000000000002")]
    pub whatsapp_waba_id: String,
    /// The Messenger connection's Page id.
    #[arg(long, default_value = "100000000000003")]
    pub facebook_page_id: String,
    /// The TikTok connection's business open_id.
    #[arg(long, default_value = "-000SIMbusiness")]
    pub tiktok_business_id: String,
    #[arg(long, env = "SNORQ_TIKTOK_APP_ID", default_value = "sim-tiktok-app")]
    pub tiktok_app_id: String,
    #[arg(long, env = "SNORQ_FACEBOOK_APP_ID", default_value = "sim-meta-app")]
    pub meta_app_id: String,
    /// The secret the service verifies WhatsApp webhooks with.
    #[arg(long, env = "SNORQ_WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub whatsapp_app_secret: Option<String>,
    /// The secret the service verifies Messenger webhooks with.
    #[arg(long, env = "SNORQ_FACEBOOK_APP_SECRET", hide_env_values = true)]
    pub facebook_app_secret: Option<String>,
    /// The secret the service verifies TikTok webhooks with.
    #[arg(long, env = "SNORQ_TIKTOK_APP_SECRET", hide_env_values = true)]
    pub tiktok_app_secret: Option<String>,
    #[command(flatten)]
    pub simulation: SimulationArgs,
}

impl SimulateArgs {
    /// The secrets given; customers' platforms must have one. Without one, a platform's
    /// receipts are not posted (the simulator warns once).
    fn secrets(&self) -> anyhow::Result<Secrets> {
        let secret = |platform: Platform, value: &Option<String>| -> anyhow::Result<Option<SecretString>> {
            match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                Some(value) => Ok(Some(SecretString::from(value.to_owned()))),
                None if self.simulation.platforms.contains(&platform) && self.simulation.rate > 0.0 => bail!(
                    "customers write on {platform}: give --{platform}-app-secret (or SNORQ_{}_APP_SECRET), \
                     the secret the service verifies its webhooks with",
                    platform.as_str().to_uppercase()
                ),
                None => Ok(None),
            }
        };
        Ok(Secrets {
            whatsapp: secret(Platform::WhatsApp, &self.whatsapp_app_secret)?,
            facebook: secret(Platform::Facebook, &self.facebook_app_secret)?,
            tiktok: secret(Platform::TikTok, &self.tiktok_app_secret)?,
        })
    }

    fn accounts(&self) -> Accounts {
        Accounts {
            whatsapp: WhatsAppAccount {
                phone_number_id: self.whatsapp_phone_number_id.clone(),
                waba_id: self.whatsapp_waba_id.clone(),
                display_phone_number: "15550100".to_owned(),
            },
            facebook_page_id: self.facebook_page_id.clone(),
            tiktok_business_id: self.tiktok_business_id.clone(),
            tiktok_app_id: self.tiktok_app_id.clone(),
            meta_app_id: self.meta_app_id.clone(),
        }
    }
}

/// Runs the simulator until Ctrl-C (or `--seconds`), then prints what it did.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let failures = args.simulation.failures(&[])?;
    let config = args.simulation.config(
        args.accounts(),
        Some((args.target.clone(), args.secrets()?)),
        failures.clone(),
    )?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let simulator = Simulator::start(listener, config).await?;
    let url = simulator.url().to_owned();
    println!("simulating WhatsApp, Messenger and TikTok at {url}");
    println!(
        "  customers post to {}/webhooks/{{platform}} at {}/s",
        args.target, args.simulation.rate
    );
    println!("  failures: {failures}");
    println!("  point the service here: SNORQ_GRAPH_BASE_URL={url} SNORQ_TIKTOK_BASE_URL={url}");
    println!(
        "  its connections: whatsapp {}, facebook {}, tiktok {}",
        args.whatsapp_phone_number_id, args.facebook_page_id, args.tiktok_business_id
    );
    println!("  sends: {url}/_simulator/sends, counters: {url}/_simulator/stats");
    match args.seconds {
        Some(seconds) => tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            () = snorq::server::shutdown_signal() => {}
        },
        None => snorq::server::shutdown_signal().await,
    }
    let stats = simulator.stop().await;
    println!("{}", stats.summary());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        simulation: SimulationArgs,
    }

    fn flags(args: &[&str]) -> SimulationArgs {
        Flags::try_parse_from(std::iter::once("snorq").chain(args.iter().copied()))
            .unwrap()
            .simulation
    }

    #[test]
    fn failures_default_none_or_given() {
        let default = ["rate-limited=0.1"];
        assert_eq!(
            flags(&[]).failures(&default).unwrap().to_string(),
            "rate-limited=0.1"
        );
        assert_eq!(
            flags(&["--fail", "none"]).failures(&default).unwrap().to_string(),
            "none"
        );
        let given = flags(&["--fail", "tiktok:timeout=0.5", "--fail", "tokens:server-error=1"]);
        assert_eq!(
            given.failures(&default).unwrap().to_string(),
            "tiktok:timeout=0.5, tokens:server-error=1"
        );
        assert!(Flags::try_parse_from(["snorq", "--fail", "tiktok:slow=1"]).is_err());
        let over = flags(&["--fail", "timeout=0.7", "--fail", "server-error=0.7"]);
        assert!(over.failures(&default).is_err());
    }

    #[test]
    fn bad_rates_and_shares_are_refused() {
        let accounts = || super::super::payloads::tests::accounts();
        for bad in [
            "--rate=1e-20",
            "--rate=NaN",
            "--rate=inf",
            "--receipt-delay-ms=3600001",
        ] {
            assert!(
                flags(&[bad])
                    .config(accounts(), None, FailureMix::none())
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            flags(&["--rate=0"])
                .config(accounts(), None, FailureMix::none())
                .is_ok()
        );
        assert!(
            flags(&["--rate=-1"])
                .config(accounts(), None, FailureMix::none())
                .is_err()
        );
        assert!(
            flags(&["--read-share", "1.5"])
                .config(accounts(), None, FailureMix::none())
                .is_err()
        );
        let config = flags(&["--platforms", "tiktok", "--rate", "5"])
            .config(accounts(), None, FailureMix::none())
            .unwrap();
        assert_eq!((config.platforms, config.rate), (vec![Platform::TikTok], 5.0));
    }
}

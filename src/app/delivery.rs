//! Delivering one send job (docs/architecture.md, "The flow of a reply", steps 4-5): load the
//! message and its connection, decrypt the token, pace, claim the attempt, call the platform,
//! and record what happened. Claims and outcomes are written with group commit, and the job is
//! acknowledged only after its outcome is committed.
//!
//! The claim is what makes a send happen once: it is committed before the platform call, so a
//! job handed out twice (a crash, a lost lease, a sweep's new job) finds the attempt made and
//! leaves it alone. An attempt whose outcome is never recorded is the sweep's to settle
//! (`store::SweepPolicy`), never a reason to call again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use snorq_connectors::{ErrorClass, OutboundContent, OutboundMessage, Platform, Secret, SendError};
use uuid::Uuid;

use crate::crypto::{SecretField, Vault};
use crate::domain::delivery::{REASON_OUTCOME_UNKNOWN, confirms_by_correlation};
use crate::domain::{self, ConnectionStatus, MessageStatus, StoredContent};
use crate::queue::{QueuedJob, RetrySchedule, SendJob, SendRates};
use crate::store::{
    OutboundStore, REASON_CONNECTION_UNAVAILABLE, SendClaim, SendContext, SendOutcome, SendResult,
    StoreResult,
};

use super::batcher::{Batched, Batcher};
use super::pacing::Pacer;
use super::replies::{human_agent_allowed, window_expires_at};

/// How sends are made and retried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub schedule: RetrySchedule,
    pub rates: SendRates,
    /// Most outcomes committed in one transaction.
    pub max_batch: usize,
    /// Outcome transactions in flight at once.
    pub writers: usize,
    /// How long a send whose outcome is unknown waits for the platform's status or echo.
    pub confirm_window: chrono::Duration,
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The outcome was recorded (`sent`, `retry`, `failed` or `unconfirmed`).
    Recorded(&'static str),
    /// Nothing to do: the message is gone, no longer pending, or this attempt was claimed already.
    Skipped(&'static str),
}

/// Runs send jobs; shared by all worker tasks of a process.
pub struct Delivery {
    vault: Vault,
    client: snorq_connectors::Client,
    pacer: Pacer,
    schedule: RetrySchedule,
    confirm_window: chrono::Duration,
    outcomes: Batcher<OutcomeWrite>,
    contexts: Batcher<ContextLoad>,
    claims: Batcher<ClaimWrite>,
}

/// Concurrent jobs' messages are loaded together, one query per batch.
struct ContextLoad(Arc<dyn OutboundStore>);

#[async_trait]
impl Batched for ContextLoad {
    type Item = Uuid;
    type Output = Option<SendContext>;
    const BATCH_SIZE_METRIC: &'static str = "send_load_batch_size";
    const ITEMS: &'static str = "sends to load";
    const QUEUE_DEPTH_METRIC: &'static str = "send_load_queue_depth";
    const QUEUE_WAIT_METRIC: &'static str = "send_load_queue_oldest_wait_seconds";
    const COMMIT_SECONDS_METRIC: &'static str = "send_load_duration_seconds";

    async fn call(&self, ids: &[Uuid]) -> StoreResult<Vec<Option<SendContext>>> {
        let mut found: std::collections::HashMap<Uuid, SendContext> = self
            .0
            .send_contexts(ids)
            .await?
            .into_iter()
            .map(|c| (c.message.id, c))
            .collect();
        Ok(ids.iter().map(|id| found.remove(id)).collect())
    }
}

struct ClaimWrite(Arc<dyn OutboundStore>);

#[async_trait]
impl Batched for ClaimWrite {
    type Item = SendClaim;
    type Output = bool;
    const BATCH_SIZE_METRIC: &'static str = "send_claim_batch_size";
    const ITEMS: &'static str = "send claims";
    const QUEUE_DEPTH_METRIC: &'static str = "send_claim_queue_depth";
    const QUEUE_WAIT_METRIC: &'static str = "send_claim_queue_oldest_wait_seconds";
    const COMMIT_SECONDS_METRIC: &'static str = "send_claim_commit_duration_seconds";

    async fn call(&self, claims: &[SendClaim]) -> StoreResult<Vec<bool>> {
        self.0.claim_sends(claims).await
    }
}

struct OutcomeWrite(Arc<dyn OutboundStore>);

#[async_trait]
impl Batched for OutcomeWrite {
    type Item = SendOutcome;
    type Output = bool;
    const BATCH_SIZE_METRIC: &'static str = "send_outcome_batch_size";
    const ITEMS: &'static str = "send outcomes";
    const QUEUE_DEPTH_METRIC: &'static str = "send_outcome_queue_depth";
    const QUEUE_WAIT_METRIC: &'static str = "send_outcome_queue_oldest_wait_seconds";
    const COMMIT_SECONDS_METRIC: &'static str = "send_outcome_commit_duration_seconds";

    async fn call(&self, outcomes: &[SendOutcome]) -> StoreResult<Vec<bool>> {
        self.0.record_send_outcomes(outcomes).await
    }
}

impl Delivery {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        vault: Vault,
        client: snorq_connectors::Client,
        settings: DeliverySettings,
    ) -> Self {
        Delivery {
            outcomes: Batcher::start(
                OutcomeWrite(store.clone()),
                settings.max_batch,
                settings.writers,
                settings.max_batch * settings.writers * 4,
            ),
            claims: Batcher::start(
                ClaimWrite(store.clone()),
                settings.max_batch,
                settings.writers,
                settings.max_batch * settings.writers * 4,
            ),
            contexts: Batcher::start(
                ContextLoad(store),
                settings.max_batch,
                settings.writers,
                settings.max_batch * settings.writers * 4,
            ),
            vault,
            client,
            pacer: Pacer::new(settings.rates),
            schedule: settings.schedule,
            confirm_window: settings.confirm_window,
        }
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Makes the attempt `job` stands for, once. An `Err` is a database problem before the
    /// platform was called: the job should run again later (nothing was sent).
    pub async fn run(&self, job: SendJob) -> StoreResult<Delivered> {
        let Some(context) = patiently(|| self.contexts.submit(job.message_id)).await? else {
            return Ok(Delivered::Skipped("message deleted"));
        };
        let message = &context.message;
        if message.status != MessageStatus::Pending {
            return Ok(Delivered::Skipped("message no longer pending"));
        }
        if message.unconfirmed_until.is_some() {
            return Ok(Delivered::Skipped(
                "awaiting the platform's word on an earlier attempt",
            ));
        }
        if message.attempts != job.attempt - 1 {
            return Ok(Delivered::Skipped("attempt already claimed"));
        }
        let platform = message.platform.0;
        let prepared = self.prepare(&context);
        let mut started_at = domain::now();
        let clock = Instant::now();
        let claimed = prepared.is_ok();
        let attempt = match prepared {
            Err(failure) => Err(failure),
            Ok((outbound, token)) => {
                self.pacer.wait(platform, message.connection_id).await;
                started_at = domain::now();
                let claim = SendClaim {
                    message_id: message.id,
                    organization_id: message.organization_id,
                    attempt: job.attempt,
                    started_at,
                };
                if !patiently(|| self.claims.submit(claim.clone())).await? {
                    return Ok(Delivered::Skipped("attempt already claimed"));
                }
                tracing::debug!(message_id = %message.id, attempt = job.attempt, %platform, "calling the platform");
                self.client
                    .send(platform, &context.account_id, &token, &outbound)
                    .await
                    .map(|receipt| receipt.message_id)
                    .map_err(Failure::platform)
            }
        };
        let finished_at = domain::now();
        let (result, error, connection_problem) = match attempt {
            Ok(external_id) => (SendResult::Sent { external_id }, None, None),
            Err(failure) => {
                let result = self.after_failure(job, platform, &failure, finished_at);
                let problem = (failure.class == Some(ErrorClass::Auth)).then_some(ConnectionStatus::Expired);
                (result, Some(failure), problem)
            }
        };
        let kind = result.outcome();
        metrics::counter!("sends_total", "platform" => platform.as_str(), "outcome" => kind).increment(1);
        metrics::histogram!("send_call_duration_seconds", "platform" => platform.as_str())
            .record(clock.elapsed().as_secs_f64());
        let outcome = SendOutcome {
            message_id: message.id,
            organization_id: message.organization_id,
            conversation_id: message.conversation_id,
            connection_id: message.connection_id,
            platform,
            attempt: job.attempt,
            claimed,
            started_at,
            finished_at,
            result,
            http_status: error.as_ref().and_then(|e| e.http_status),
            error_code: error.as_ref().and_then(|e| e.code.clone()),
            error_subcode: error.as_ref().and_then(|e| e.subcode.clone()),
            error_message: error.map(|e| e.message),
            connection_problem,
        };
        let applied = self.record(outcome).await;
        Ok(if applied {
            Delivered::Recorded(kind)
        } else {
            Delivered::Skipped("settled meanwhile (the platform's word or another run came first)")
        })
    }

    /// Records an outcome, however long the database takes to come back: the platform was
    /// called, and giving the job back to apalis is pointless (its claim stops a second call).
    /// If this process dies meanwhile, the claim stays open and the sweep settles it.
    async fn record(&self, outcome: SendOutcome) -> bool {
        let mut pause = Duration::from_millis(500);
        loop {
            match self.outcomes.submit(outcome.clone()).await {
                Ok(applied) => return applied,
                Err(err) => {
                    tracing::warn!(message_id = %outcome.message_id, error = %err,
                        "cannot record a send outcome yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Everything checked before a platform call, and the request to make. A failure here
    /// called nobody: it is recorded as an unclaimed attempt.
    fn prepare(&self, context: &SendContext) -> Result<(OutboundMessage, Secret), Box<Failure>> {
        let message = &context.message;
        let platform = message.platform.0;
        if context.connection_status != ConnectionStatus::Active {
            return Err(Failure::ours(
                REASON_CONNECTION_UNAVAILABLE,
                format!(
                    "the connection is {}; reconnect it, then retry",
                    context.connection_status.as_db().to_lowercase()
                ),
            ));
        }
        let Some(envelope) = &context.access_token_enc else {
            return Err(Failure::ours("auth", "the connection has no access token"));
        };
        let token = self
            .vault
            .decrypt(
                SecretField::ConnectionAccessToken,
                message.connection_id,
                envelope,
            )
            .map_err(|e| {
                Failure::ours(
                    "token_unreadable",
                    format!("the stored token cannot be decrypted: {e}"),
                )
            })?;
        let mut outbound = OutboundMessage::new(
            context.recipient.clone(),
            content(&message.content_type, &message.content.0)?,
        )
        .correlation(format!("outbound:{}", message.id));
        let now = domain::now();
        let settings = &context.connection_settings.0;
        if let Some(closes) = window_expires_at(platform, context.last_inbound_at, settings)
            && now > closes
        {
            return Err(Failure::ours(
                "window_closed",
                format!(
                    "the reply window closed at {} before this attempt",
                    closes.to_rfc3339()
                ),
            ));
        }
        if platform == Platform::Facebook
            && let Some(last_inbound) = context.last_inbound_at
            && let Some(kind) = snorq_connectors::window::messenger_messaging_type(
                last_inbound,
                now,
                human_agent_allowed(settings),
            )
        {
            outbound = outbound.messaging_type(kind);
        }
        Ok((outbound, Secret::new(token)))
    }

    fn after_failure(
        &self,
        job: SendJob,
        platform: Platform,
        failure: &Failure,
        now: chrono::DateTime<chrono::Utc>,
    ) -> SendResult {
        // The platform may have accepted it: never call again on a schedule. Wait for its word
        // where it can give it; elsewhere say plainly that nobody knows.
        if failure.class == Some(ErrorClass::OutcomeUnknown) {
            return if confirms_by_correlation(platform) {
                SendResult::Unconfirmed {
                    until: now + self.confirm_window,
                }
            } else {
                SendResult::Failed {
                    reason: REASON_OUTCOME_UNKNOWN.to_owned(),
                }
            };
        }
        let retryable = failure.class.is_some_and(ErrorClass::is_retryable);
        if retryable
            && let Some(delay) = self
                .schedule
                .next_delay(job.attempt_in_round(), failure.retry_after)
        {
            // `delay` is at most a day (the schedule caps Retry-After), so this cannot overflow.
            let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
            return SendResult::Retry {
                next: QueuedJob {
                    job: job.next(),
                    delay,
                },
                at,
            };
        }
        SendResult::Failed {
            reason: failure.reason.clone(),
        }
    }
}

/// Runs a store call, trying again a few times (1, 2, 4, 8 s apart) when it fails: before the
/// platform is called, a failure is harmless to repeat.
async fn patiently<T, F, Fut>(mut call: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut result = call().await;
    for pause in [1, 2, 4, 8] {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(pause)).await;
        result = call().await;
    }
    result
}

/// Why an attempt did not send: the platform's classified error, or a check of ours.
#[derive(Debug)]
struct Failure {
    /// `failure_reason` if this ends the send.
    reason: String,
    class: Option<ErrorClass>,
    http_status: Option<i32>,
    code: Option<String>,
    subcode: Option<String>,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn ours(reason: &str, message: impl Into<String>) -> Box<Self> {
        Box::new(Failure {
            reason: reason.to_owned(),
            class: None,
            http_status: None,
            code: None,
            subcode: None,
            message: message.into(),
            retry_after: None,
        })
    }

    fn platform(err: SendError) -> Box<Self> {
        let message = match &err.details {
            Some(details) => format!("{} ({details})", err.message),
            None => err.message.clone(),
        };
        Box::new(Failure {
            reason: err.class.as_str().to_owned(),
            class: Some(err.class),
            http_status: err.http_status.map(i32::from),
            code: err.code.map(|c| c.to_string()),
            subcode: err.subcode.map(|c| c.to_string()),
            message,
            retry_after: err.retry_after,
        })
    }
}

/// The stored content back into what the connector sends.
fn content(content_type: &str, content: &Value) -> Result<OutboundContent, Box<Failure>> {
    let stored = StoredContent::read(content_type, content).content;
    super::content::to_platform(&stored).ok_or_else(|| {
        Failure::ours(
            "invalid_request",
            format!(
                "a message of kind {} without a public URL cannot be sent",
                stored.kind()
            ),
        )
    })
}

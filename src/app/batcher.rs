//! Batching of concurrent database calls: callers' items go to the database together, one
//! call (for writes, one transaction: group commit) per batch, with no added wait (a batch is
//! whatever queued while the previous call ran, up to a size). Each caller is answered once its
//! own item is done. Webhook ingest and send outcomes write this way; the send worker loads its
//! jobs' messages this way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// One kind of batched call.
#[async_trait]
pub trait Batched: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    /// Histogram of batch sizes.
    const BATCH_SIZE_METRIC: &'static str;
    /// Histogram of call durations (seconds).
    const COMMIT_SECONDS_METRIC: &'static str;
    /// What the items are, for the log line that says the writers are behind ("webhooks").
    const ITEMS: &'static str;
    /// Gauge: items waiting for a writer.
    const QUEUE_DEPTH_METRIC: &'static str;
    /// Gauge: how long the oldest item taken last had waited (seconds).
    const QUEUE_WAIT_METRIC: &'static str;

    /// Handles every item in one call (writes: one transaction); one output per item, in order.
    async fn call(&self, items: &[Self::Item]) -> StoreResult<Vec<Self::Output>>;
}

struct Pending<W: Batched> {
    item: W::Item,
    reply: oneshot::Sender<StoreResult<W::Output>>,
    queued_at: Instant,
}

/// Hands items to the writer tasks; cheap to clone.
pub struct Batcher<W: Batched> {
    queue: mpsc::Sender<Pending<W>>,
}

impl<W: Batched> Clone for Batcher<W> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
        }
    }
}

/// The queue is at its limit: the writers are behind; the caller should come back later.
#[derive(Debug)]
pub struct QueueFull;

impl<W: Batched> Batcher<W> {
    /// Starts `writers` writer tasks (transactions in flight at once); they end when the last
    /// clone is dropped. At most `queue_limit` items wait for a writer.
    pub fn start(op: W, max_batch: usize, writers: usize, queue_limit: usize) -> Self {
        let max_batch = max_batch.max(1);
        let writers = writers.max(1);
        let (queue, receiver) = mpsc::channel(queue_limit.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let op = Arc::new(op);
        let last_warning = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        for _ in 0..writers {
            let queue = queue.downgrade();
            let lag = Lag {
                queue,
                last_warning: last_warning.clone(),
                started,
            };
            tokio::spawn(run_batches(op.clone(), receiver.clone(), max_batch, lag));
        }
        Batcher { queue }
    }

    /// Hands over one item; returns its output once its batch is done, waiting for room in the
    /// queue. `Unavailable` when the batcher's tasks are gone.
    pub async fn submit(&self, item: W::Item) -> StoreResult<W::Output> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            item,
            reply,
            queued_at: Instant::now(),
        };
        self.queue.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Like [`Batcher::submit`], but refuses the item at once when the queue is full.
    pub async fn try_submit(&self, item: W::Item) -> Result<StoreResult<W::Output>, QueueFull> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            item,
            reply,
            queued_at: Instant::now(),
        };
        match self.queue.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(Err(gone())),
        }
        metrics::gauge!(W::QUEUE_DEPTH_METRIC).set(depth(&self.queue) as f64);
        Ok(answer.await.map_err(|_| gone()).and_then(|output| output))
    }
}

fn depth<T>(queue: &mpsc::Sender<T>) -> usize {
    queue.max_capacity() - queue.capacity()
}

/// Watches how far the writers are behind: gauges, and a warning at most every
/// [`LAG_WARNING_EVERY`] while the oldest item waits longer than [`LAG_WARNING_AFTER`].
struct Lag<W: Batched> {
    queue: mpsc::WeakSender<Pending<W>>,
    /// Milliseconds after `started` of the last warning (shared by the writers).
    last_warning: Arc<AtomicU64>,
    started: Instant,
}

const LAG_WARNING_AFTER: Duration = Duration::from_secs(1);
const LAG_WARNING_EVERY: Duration = Duration::from_secs(10);

impl<W: Batched> Lag<W> {
    fn observe(&self, oldest: Instant) {
        let waited = oldest.elapsed();
        let waiting = self.queue.upgrade().map_or(0, |queue| depth(&queue));
        metrics::gauge!(W::QUEUE_DEPTH_METRIC).set(waiting as f64);
        metrics::gauge!(W::QUEUE_WAIT_METRIC).set(waited.as_secs_f64());
        if waited < LAG_WARNING_AFTER {
            return;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LAG_WARNING_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                waiting,
                oldest_waited_secs = waited.as_secs_f64(),
                "writers are behind: {waiting} {} waiting, the oldest for {:.1} s",
                W::ITEMS,
                waited.as_secs_f64()
            );
        }
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn run_batches<W: Batched>(
    op: Arc<W>,
    queue: Arc<Mutex<mpsc::Receiver<Pending<W>>>>,
    max_batch: usize,
    lag: Lag<W>,
) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else { return };
            lag.observe(first.queued_at);
            batch.push(first);
            // Everything waiting, up to `max_batch`: one commit shares its WAL flush among them.
            // (Splitting the queue evenly among idle writers showed no gain: more, smaller
            // transactions; docs/benchmarks.md, "Ingest benchmark".)
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
        }
        commit(op.as_ref(), batch).await;
    }
}

async fn commit<W: Batched>(op: &W, batch: Vec<Pending<W>>) {
    metrics::histogram!(W::BATCH_SIZE_METRIC).record(batch.len() as f64);
    let started = Instant::now();
    let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    match op.call(&items).await {
        Ok(outputs) => {
            metrics::histogram!(W::COMMIT_SECONDS_METRIC).record(started.elapsed().as_secs_f64());
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        // One item may have broken the shared transaction (a deadlock, a bad row): commit each
        // alone so the others still land.
        Err(err) if items.len() > 1 && !matches!(err, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %err, size = items.len(), "batch failed; committing its items one by one");
            for (item, reply) in items.iter().zip(replies) {
                let result = op.call(std::slice::from_ref(item)).await;
                let _ = reply.send(result.and_then(|mut outputs| outputs.pop().ok_or_else(missing_output)));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, size = items.len(), "batch could not be written");
            for reply in replies {
                let _ = reply.send(Err(err.kind_copy()));
            }
        }
    }
}

fn missing_output() -> StoreError {
    StoreError::Database(sqlx::Error::Protocol("a batch write returned no output".into()))
}

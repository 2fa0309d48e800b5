//! Batching of concurrent database calls: callers' items go to the database together, one
//! call (for writes, one transaction: group commit) per batch, with no added wait (a batch is
//! whatever queued while the previous call ran, up to a size). Each caller is answered once its
//! own item is done. Webhook ingest and send outcomes write this way; the send worker loads its
//! jobs' messages this way.

use std::sync::Arc;
use std::time::Instant;

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

    /// Handles every item in one call (writes: one transaction); one output per item, in order.
    async fn call(&self, items: &[Self::Item]) -> StoreResult<Vec<Self::Output>>;
}

struct Pending<W: Batched> {
    item: W::Item,
    reply: oneshot::Sender<StoreResult<W::Output>>,
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

impl<W: Batched> Batcher<W> {
    /// Starts `writers` writer tasks (transactions in flight at once); they end when the last
    /// clone is dropped.
    pub fn start(op: W, max_batch: usize, writers: usize) -> Self {
        let max_batch = max_batch.max(1);
        let writers = writers.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * writers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let op = Arc::new(op);
        for _ in 0..writers {
            tokio::spawn(run_batches(op.clone(), receiver.clone(), max_batch));
        }
        Batcher { queue }
    }

    /// Hands over one item; returns its output once its batch is done. `Unavailable` when the
    /// batcher's tasks are gone.
    pub async fn submit(&self, item: W::Item) -> StoreResult<W::Output> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { item, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn run_batches<W: Batched>(
    op: Arc<W>,
    queue: Arc<Mutex<mpsc::Receiver<Pending<W>>>>,
    max_batch: usize,
) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else { return };
            batch.push(first);
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

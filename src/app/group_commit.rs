//! Group commit: concurrent callers' writes go to the database together, one transaction per
//! batch, with no added wait (a batch is whatever queued while the previous commit ran, up to a
//! size). Each caller is answered once its own item is committed. Webhook ingest and send
//! outcomes both write this way.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// One kind of batched write.
#[async_trait]
pub trait BatchWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    /// Histogram of batch sizes.
    const BATCH_SIZE_METRIC: &'static str;
    /// Histogram of commit durations (seconds).
    const COMMIT_SECONDS_METRIC: &'static str;

    /// Writes every item in one transaction; one output per item, in order.
    async fn write(&self, items: &[Self::Item]) -> StoreResult<Vec<Self::Output>>;
}

struct Pending<W: BatchWrite> {
    item: W::Item,
    reply: oneshot::Sender<StoreResult<W::Output>>,
}

/// Hands items to the writer tasks; cheap to clone.
pub struct GroupCommit<W: BatchWrite> {
    queue: mpsc::Sender<Pending<W>>,
}

impl<W: BatchWrite> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
        }
    }
}

impl<W: BatchWrite> GroupCommit<W> {
    /// Starts `writers` writer tasks (transactions in flight at once); they end when the last
    /// clone is dropped.
    pub fn start(write: W, max_batch: usize, writers: usize) -> Self {
        let max_batch = max_batch.max(1);
        let writers = writers.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * writers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let write = Arc::new(write);
        for _ in 0..writers {
            tokio::spawn(write_batches(write.clone(), receiver.clone(), max_batch));
        }
        GroupCommit { queue }
    }

    /// Writes one item; returns when it is committed. `Unavailable` when the writers are gone.
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

async fn write_batches<W: BatchWrite>(
    write: Arc<W>,
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
        commit(write.as_ref(), batch).await;
    }
}

async fn commit<W: BatchWrite>(write: &W, batch: Vec<Pending<W>>) {
    metrics::histogram!(W::BATCH_SIZE_METRIC).record(batch.len() as f64);
    let started = Instant::now();
    let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    match write.write(&items).await {
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
                let result = write.write(std::slice::from_ref(item)).await;
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

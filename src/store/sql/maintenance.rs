//! Housekeeping: retention, the search backfill, finished jobs, expired OAuth states and
//! the inbox count deltas.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::messages::BULK_ROWS;
use super::search::{lock_conversations, reindex_conversations, unindexed_conversations};
use super::{
    Backend, DELETE_FINISHED_JOBS, Db, begin_write, compact_conversation_counts, db_error, job_time,
};
use crate::queue::SEND_QUEUE;
use crate::store::{Cleanup, MaintenanceStore, StoreResult};

#[async_trait]
impl MaintenanceStore for Backend {
    async fn cleanup(
        &self,
        jobs_before: DateTime<Utc>,
        receipts_before: DateTime<Utc>,
    ) -> StoreResult<Cleanup> {
        let jobs = sqlx::query(DELETE_FINISHED_JOBS)
            .bind(SEND_QUEUE)
            .bind(job_time(jobs_before))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        let receipts = sqlx::query("DELETE FROM pending_receipts WHERE received_at < $1")
            .bind(receipts_before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(Cleanup {
            finished_jobs: jobs.rows_affected(),
            pending_receipts: receipts.rows_affected(),
        })
    }

    async fn delete_messages_before(
        &self,
        plan: crate::domain::Plan,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<u64> {
        let mut tx = begin_write(&self.pool).await?;
        let doomed: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT m.id, m.conversation_id FROM organizations o \
             JOIN conversations c ON c.organization_id = o.id \
             JOIN messages m ON m.conversation_id = c.id \
             WHERE o.plan = $1 AND m.created_at < $2 AND m.status <> 'PENDING' LIMIT $3",
        )
        .bind(plan.as_db())
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        if doomed.is_empty() {
            return Ok(0);
        }
        let conversations: Vec<Uuid> = doomed
            .iter()
            .map(|(_, conversation)| *conversation)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Their words are rebuilt from what is left, so search stops finding what was deleted.
        // The rebuild locks the conversations before the messages are deleted: the order in
        // which ingest takes them.
        lock_conversations(&mut tx, &conversations).await?;
        let mut deleted = 0;
        for chunk in doomed.chunks(BULK_ROWS) {
            let mut delete =
                sqlx::QueryBuilder::<Db>::new("DELETE FROM messages WHERE status <> 'PENDING' AND id IN (");
            let mut list = delete.separated(", ");
            for (id, _) in chunk {
                list.push_bind(*id);
            }
            delete.push(")");
            deleted += delete
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        reindex_conversations(&mut tx, &conversations).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn index_for_search(&self, limit: i64) -> StoreResult<u64> {
        let mut tx = begin_write(&self.pool).await?;
        let ids = unindexed_conversations(&mut tx, limit).await?;
        reindex_conversations(&mut tx, &ids).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(ids.len() as u64)
    }

    async fn delete_events_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected())
    }

    async fn compact_conversation_counts(&self) -> StoreResult<u64> {
        compact_conversation_counts(&self.pool).await
    }

    async fn delete_oauth_states_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected())
    }
}

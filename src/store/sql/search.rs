//! Search by conversation (`q`): the words index (`conversation_terms`), keeping it, and
//! what a searched listing asks of it. Every word of a search must start a word of the
//! conversation: of its contact's name or username, or of any of its messages.

use std::collections::BTreeMap;

use crate::domain::search::{Terms, WORD_BITS_COLUMNS, WordBits, prefix_end};
use futures::TryStreamExt;
use sqlx::types::Json;
use uuid::Uuid;

use super::messages::BULK_ROWS;
use super::{Db, DbConn, FOR_UPDATE, db_error};
use crate::store::{ConversationFilter, StoreResult};

/// How many conversations one backfill or rebuild statement covers.
pub(super) const INDEX_BATCH: usize = 200;

/// Adds words to conversations' entries in the index (words already there are kept). `rows`
/// are (conversation, organization, word), sorted, so concurrent writers insert in one order.
pub(super) async fn insert_terms(conn: &mut DbConn, rows: &[(Uuid, Uuid, &str)]) -> StoreResult<()> {
    for chunk in rows.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO conversation_terms (conversation_id, organization_id, term) ",
        );
        insert.push_values(chunk, |mut row, (conversation, org, term)| {
            row.push_bind(*conversation).push_bind(*org).push_bind(*term);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The words each conversation gained, to be added to the index in one go.
#[derive(Default)]
pub(super) struct TermsGained(BTreeMap<Uuid, (Uuid, Terms)>);

impl TermsGained {
    pub(super) fn of(&mut self, conversation_id: Uuid, organization_id: Uuid) -> &mut Terms {
        &mut self
            .0
            .entry(conversation_id)
            .or_insert_with(|| (organization_id, Terms::default()))
            .1
    }

    /// Adds the words to the index, and their bits to the conversations' bits (or replaces
    /// those, for a rebuild).
    pub(super) async fn insert(&self, conn: &mut DbConn, how: BitsWrite) -> StoreResult<()> {
        let rows: Vec<(Uuid, Uuid, &str)> = self
            .0
            .iter()
            .flat_map(|(conversation, (org, terms))| terms.iter().map(|t| (*conversation, *org, t)))
            .collect();
        insert_terms(conn, &rows).await?;
        let bits: Vec<(Uuid, WordBits)> = self
            .bits()
            .filter(|(_, bits)| how == BitsWrite::Rebuild || *bits != WordBits::default())
            .collect();
        write_word_bits(conn, &bits, how).await
    }

    pub(super) fn bits(&self) -> impl Iterator<Item = (Uuid, WordBits)> + '_ {
        self.0
            .iter()
            .map(|(conversation, (_, terms))| (*conversation, WordBits::of(terms.iter())))
    }
}

/// Whether [`write_word_bits`] adds to the conversations' bits or replaces them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BitsWrite {
    Add,
    /// Replaces them with the bits of what the conversation holds now, and marks it indexed.
    Rebuild,
}

/// Writes conversations' word bits (`rows` sorted by conversation, as they are locked).
pub(super) async fn write_word_bits(
    conn: &mut DbConn,
    rows: &[(Uuid, WordBits)],
    how: BitsWrite,
) -> StoreResult<()> {
    for chunk in rows.chunks(BULK_ROWS) {
        let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE conversations SET ");
        for column in 0..WORD_BITS_COLUMNS {
            // VALUES columns are column1 (the id), column2.. (the bits).
            let value = format!("v.column{}", column + 2);
            let set = match how {
                BitsWrite::Add => format!("word_bits_{column} = word_bits_{column} | {value}"),
                BitsWrite::Rebuild => format!("word_bits_{column} = {value}"),
            };
            update.push(if column == 0 { "" } else { ", " }).push(set);
        }
        if how == BitsWrite::Rebuild {
            update.push(", search_indexed = TRUE");
        }
        update.push(" FROM (");
        update.push_values(chunk, |mut row, (conversation, bits)| {
            row.push_bind(*conversation);
            for word in bits.0 {
                row.push_bind(word);
            }
        });
        update.push(") AS v WHERE conversations.id = v.column1");
        update
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Rebuilds the index entries of `ids` from what the conversations hold now (their contact,
/// their messages) and marks them indexed: the backfill of conversations written before the
/// index existed, and the repair after retention deletes messages.
pub(super) async fn reindex_conversations(conn: &mut DbConn, ids: &[Uuid]) -> StoreResult<()> {
    for chunk in ids.chunks(INDEX_BATCH) {
        let in_list = |query: &mut sqlx::QueryBuilder<Db>| {
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(")");
        };
        // The conversations first, locked in id order as every writer locks them: a message
        // arriving meanwhile waits, then adds its words to the rebuilt entry.
        let mut contacts = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, organization_id, contact_name, contact_username FROM conversations WHERE id IN (",
        );
        in_list(&mut contacts);
        contacts.push(" ORDER BY id").push(FOR_UPDATE);
        let rows: Vec<(Uuid, Uuid, Option<String>, Option<String>)> = contacts
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        let mut delete =
            sqlx::QueryBuilder::<Db>::new("DELETE FROM conversation_terms WHERE conversation_id IN (");
        in_list(&mut delete);
        delete
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;

        let mut gained = TermsGained::default();
        for (id, org, name, username) in rows {
            let terms = gained.of(id, org);
            for text in [name, username].iter().flatten() {
                terms.add_text(text);
            }
        }
        let mut messages = sqlx::QueryBuilder::<Db>::new(
            "SELECT conversation_id, organization_id, content FROM messages WHERE conversation_id IN (",
        );
        in_list(&mut messages);
        // Streamed: a long history is read once, never held.
        let mut rows = messages
            .build_query_as::<(Uuid, Uuid, Json<serde_json::Value>)>()
            .persistent(false)
            .fetch(&mut *conn);
        while let Some((conversation, org, content)) = rows.try_next().await.map_err(db_error)? {
            gained.of(conversation, org).add_message(&content);
        }
        drop(rows);
        // Exact bits (a word that is gone no longer sets one), and indexed.
        gained.insert(conn, BitsWrite::Rebuild).await?;
    }
    Ok(())
}

/// Locks conversations in id order, as every writer locks them.
pub(super) async fn lock_conversations(conn: &mut DbConn, ids: &[Uuid]) -> StoreResult<()> {
    for chunk in ids.chunks(BULK_ROWS) {
        let mut lock = sqlx::QueryBuilder::<Db>::new("SELECT id FROM conversations WHERE id IN (");
        let mut list = lock.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        lock.push(") ORDER BY id").push(FOR_UPDATE);
        lock.build()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// How a searched listing finds its rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum SearchPlan {
    /// No search.
    None,
    /// Few conversations have word `n` (the rarest): start from them, sort them by activity.
    FromMatches(usize),
    /// Every word is common: walk the listing in activity order, probing each conversation's
    /// words; the page fills after a few conversations.
    Walk,
}

/// Picks the plan: counts (up to `walk_above`) the index entries of each word's prefix in the
/// organization, an index-only range read that stops at the cap.
pub(super) async fn plan_search(
    pool: &sqlx::Pool<Db>,
    filter: &ConversationFilter,
) -> StoreResult<SearchPlan> {
    if filter.search.is_empty() {
        return Ok(SearchPlan::None);
    }
    let mut rarest: Option<(usize, i64)> = None;
    for (n, word) in filter.search.iter().enumerate() {
        // The cap is written into the statement so that it gets one generic plan (a range read
        // of the index, whatever the word), see `push_plain_limit`.
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM conversation_terms WHERE organization_id = $1 \
             AND term >= $2 AND term < $3 LIMIT {}) AS capped",
            filter.search_walk_above + 1
        )))
        .bind(filter.organization_id)
        .bind(word)
        .bind(prefix_end(word))
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
        if rarest.is_none_or(|(_, fewest)| count < fewest) {
            rarest = Some((n, count));
        }
    }
    Ok(match rarest {
        Some((n, count)) if count <= filter.search_walk_above => SearchPlan::FromMatches(n),
        _ => SearchPlan::Walk,
    })
}

/// `FROM` the conversations that have word `word` (each once), for [`SearchPlan::FromMatches`].
pub(super) fn push_search_matches(query: &mut sqlx::QueryBuilder<Db>, org_id: Uuid, word: &str) {
    query
        .push(
            " FROM (SELECT DISTINCT t.conversation_id FROM conversation_terms t \
             WHERE t.organization_id = ",
        )
        .push_bind(org_id)
        .push(" AND t.term >= ")
        .push_bind(word.to_owned())
        .push(" AND t.term < ")
        .push_bind(prefix_end(word))
        .push(
            ") AS hits JOIN conversations c ON c.id = hits.conversation_id \
             JOIN platform_connections pc ON pc.id = c.platform_connection_id WHERE 1 = 1",
        );
}

/// ` AND` conversation `c` has a word starting with each of `words`: its word bits first (on the
/// row already read), then one index probe each for the rows that pass.
pub(super) fn push_search_probes<'w>(
    query: &mut sqlx::QueryBuilder<Db>,
    words: impl Iterator<Item = &'w String>,
) {
    for word in words {
        for (column, mask) in WordBits::required(word) {
            query
                .push(format!(" AND (c.word_bits_{column} & "))
                .push_bind(mask)
                .push(") <> 0");
        }
        query
            .push(
                " AND EXISTS (SELECT 1 FROM conversation_terms t WHERE t.conversation_id = c.id \
                 AND t.term >= ",
            )
            .push_bind(word.clone())
            .push(" AND t.term < ")
            .push_bind(prefix_end(word))
            .push(")");
    }
}

/// Conversations not indexed yet (written before migration 11), oldest ids first.
pub(super) async fn unindexed_conversations(conn: &mut DbConn, limit: i64) -> StoreResult<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM conversations WHERE NOT search_indexed ORDER BY id LIMIT $1")
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)
}

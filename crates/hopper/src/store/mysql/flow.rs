//! The MySQL/MariaDB answers to a flow-controlled claim's reads and writes
//! ([`FlowTx`]), in a transaction that holds the queue's row from the
//! first read on (`SELECT … FOR UPDATE`), so the queue's flow-controlled
//! claims run one at a time, whichever process makes them. Lists travel as
//! placeholders (MariaDB has no arrays), one statement per step.

use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};

use super::{locked_job, optional_text, sql, text};
use crate::job::JobId;
use crate::store::rows::{from_micros, lease_micros, micros};
use crate::store::{
    Candidate, ClaimRequest, ClaimedJob, FlowTx, LockedFlow, QueueFlow, StoreError,
};

/// A flow-controlled claim's steps on an open transaction.
pub(super) struct MysqlFlow<'c>(pub(super) &'c mut MySqlConnection);

/// The flow settings in a row of [`sql::FLOW`] or [`sql::LOCK_FLOW`].
pub(super) fn flow_of(row: &MySqlRow) -> Result<QueueFlow, sqlx::Error> {
    crate::store::rows::flow_of(row)
}

/// Rows of an optional key and a count.
type KeyCounts = Vec<(Option<String>, i64)>;

/// The key and count of each row (`partition_key`, `n`).
fn key_counts(rows: &[MySqlRow]) -> Result<KeyCounts, sqlx::Error> {
    rows.iter()
        .map(|row| Ok((optional_text(row, "partition_key")?, row.try_get("n")?)))
        .collect()
}

/// The candidates in rows of `id`, `partition_key`, `priority`.
fn candidates(rows: &[MySqlRow]) -> Result<Vec<Candidate>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok(Candidate {
                id: row.try_get("id")?,
                key: optional_text(row, "partition_key")?,
                priority: row.try_get("priority")?,
            })
        })
        .collect()
}

/// The `partition_key` of each row.
fn keys(rows: &[MySqlRow]) -> Result<Vec<String>, sqlx::Error> {
    rows.iter().map(|row| text(row, "partition_key")).collect()
}

impl FlowTx for MysqlFlow<'_> {
    async fn lock_flow(
        &mut self,
        queue: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<Option<LockedFlow>, StoreError> {
        let row = sqlx::query(sql::LOCK_FLOW)
            .bind(now.map(micros))
            .bind(queue)
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(LockedFlow {
            flow: flow_of(&row)?,
            key_cursor: text(&row, "key_cursor")?,
            now: from_micros(0, row.try_get("now")?)?,
        }))
    }

    async fn running(&mut self, queue: &str) -> Result<KeyCounts, StoreError> {
        let rows = sqlx::query(sql::RUNNING_BY_KEY)
            .bind(queue)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(key_counts(&rows)?)
    }

    async fn starts_since(
        &mut self,
        queue: &str,
        since: DateTime<Utc>,
        keys: Option<&[String]>,
    ) -> Result<KeyCounts, StoreError> {
        sqlx::query(sql::FORGET_STARTS)
            .bind(queue)
            .bind(micros(since))
            .execute(&mut *self.0)
            .await?;
        let statement = sql::starts_since(keys.map(<[String]>::len));
        let mut query = sqlx::query(&statement).bind(queue).bind(micros(since));
        for key in keys.unwrap_or_default() {
            query = query.bind(key);
        }
        Ok(key_counts(&query.fetch_all(&mut *self.0).await?)?)
    }

    async fn ready_keys(
        &mut self,
        queue: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(sql::READY_KEYS)
            .bind(queue)
            .bind(after)
            .bind(limit)
            .bind(queue)
            .bind(after)
            .bind(limit)
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((text(row, "partition_key")?, row.try_get("version")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn ready_key_count(&mut self, queue: &str, at_most: u64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(sql::READY_KEY_COUNT)
            .bind(queue)
            .bind(i64::try_from(at_most).unwrap_or(i64::MAX))
            .fetch_one(&mut *self.0)
            .await?;
        Ok(crate::store::rows::from_count(count))
    }

    async fn key_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        heads: &[(String, u32)],
    ) -> Result<Vec<Candidate>, StoreError> {
        let (firsts, more): (Vec<_>, Vec<_>) = heads.iter().partition(|(_, n)| *n == 1);
        let mut found = Vec::new();
        if !firsts.is_empty() {
            let keys: Vec<&str> = firsts.iter().map(|(key, _)| key.as_str()).collect();
            let keys = serde_json::Value::from(keys).to_string();
            let rows = sqlx::query(sql::KEY_FIRSTS)
                .bind(keys)
                .bind(queue)
                .bind(micros(due_by))
                .fetch_all(&mut *self.0)
                .await?;
            found.extend(candidates(&rows)?);
        }
        if !more.is_empty() {
            let statement = sql::key_heads(more.len());
            let mut query = sqlx::query(&statement);
            for (key, n) in more {
                query = query.bind(queue).bind(key).bind(micros(due_by)).bind(*n);
            }
            found.extend(candidates(&query.fetch_all(&mut *self.0).await?)?);
        }
        Ok(found)
    }

    async fn queue_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        limit: u32,
        unkeyed: bool,
    ) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(sql::QUEUE_HEADS)
            .bind(queue)
            .bind(micros(due_by))
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        let mut found = candidates(&rows)?;
        if unkeyed {
            found.retain(|c| c.key.is_none());
        }
        Ok(found)
    }

    async fn keys_pending(
        &mut self,
        queue: &str,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sql::keys_pending(keys.len());
        let mut query = sqlx::query(&statement).bind(queue);
        for key in keys {
            query = query.bind(key);
        }
        Ok(self::keys(&query.fetch_all(&mut *self.0).await?)?)
    }

    async fn start(
        &mut self,
        request: &ClaimRequest<'_>,
        ids: &[JobId],
        start_now: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let statement = sql::lock_pending(ids.len());
        let mut lock = sqlx::query(&statement);
        for id in ids {
            lock = lock.bind(*id);
        }
        let rows = lock.fetch_all(&mut *self.0).await?;
        let mut jobs = rows
            .iter()
            .map(|row| locked_job(row, request.token, false))
            .collect::<Result<Vec<_>, _>>()?;
        if jobs.is_empty() {
            return Ok(jobs);
        }
        crate::store::flow::in_chosen_order(&mut jobs, ids);
        for job in jobs.iter_mut().take(start_now) {
            job.run_started = true;
        }
        let starting = start_now.min(jobs.len());
        let statement = sql::claim_update(jobs.len(), starting);
        let mut update = sqlx::query(&statement).bind(micros(now));
        for job in jobs.iter().take(starting) {
            update = update.bind(job.id);
        }
        update = update
            .bind(request.token)
            .bind(request.worker)
            .bind(micros(now))
            .bind(lease_micros(request.lease));
        for job in &jobs {
            update = update.bind(job.id);
        }
        update.execute(&mut *self.0).await?;
        Ok(jobs)
    }

    async fn settle_keys(
        &mut self,
        queue: &str,
        idle: &[(String, i64)],
        cursor: Option<&str>,
    ) -> Result<(), StoreError> {
        if !idle.is_empty() {
            let statement = sql::lock_keys(idle.len());
            let mut lock = sqlx::query(&statement).bind(queue);
            for (key, _) in idle {
                lock = lock.bind(key);
            }
            let free = self::keys(&lock.fetch_all(&mut *self.0).await?)?;
            let idle: Vec<&(String, i64)> =
                idle.iter().filter(|(key, _)| free.contains(key)).collect();
            if !idle.is_empty() {
                let statement = sql::keys_idle(idle.len());
                let mut update = sqlx::query(&statement).bind(queue);
                for (key, version) in &idle {
                    update = update.bind(key).bind(version);
                }
                update.execute(&mut *self.0).await?;
            }
        }
        if let Some(cursor) = cursor {
            sqlx::query(sql::SET_KEY_CURSOR)
                .bind(cursor)
                .bind(queue)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn record_starts(
        &mut self,
        queue: &str,
        keys: &[Option<String>],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let statement = sql::record_starts(keys.len());
        let mut query = sqlx::query(&statement);
        for key in keys {
            query = query.bind(queue).bind(key).bind(micros(at));
        }
        query.execute(&mut *self.0).await?;
        Ok(())
    }
}

//! The PostgreSQL answers to a flow-controlled claim's reads and writes
//! ([`FlowTx`]), in a transaction that holds the queue's row from the
//! first read on (`SELECT … FOR UPDATE`), so the queue's flow-controlled
//! claims run one at a time, whichever process makes them.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{claim_query, claimed, sql};
use crate::job::JobId;
use crate::store::rows::lease_micros;
use crate::store::{
    Candidate, ClaimRequest, ClaimedJob, FlowTx, LockedFlow, QueueFlow, StoreError,
};

/// A flow-controlled claim's steps on an open transaction.
pub(super) struct PgFlow<'c>(pub(super) &'c mut PgConnection);

/// The flow settings in a row of [`sql::FLOW`] or [`sql::LOCK_FLOW`].
pub(super) fn flow_of(row: &PgRow) -> Result<QueueFlow, sqlx::Error> {
    crate::store::rows::flow_of(row)
}

impl FlowTx for PgFlow<'_> {
    async fn lock_flow(
        &mut self,
        queue: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<Option<LockedFlow>, StoreError> {
        let row = sqlx::query(sql::LOCK_FLOW)
            .bind(queue)
            .bind(now)
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(LockedFlow {
            flow: flow_of(&row)?,
            key_cursor: row.try_get("key_cursor")?,
            now: row.try_get("now")?,
        }))
    }

    async fn running(&mut self, queue: &str) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        Ok(sqlx::query_as(sql::RUNNING_BY_KEY)
            .bind(queue)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn starts_since(
        &mut self,
        queue: &str,
        since: DateTime<Utc>,
        keys: Option<&[String]>,
    ) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        sqlx::query(sql::FORGET_STARTS)
            .bind(queue)
            .bind(since)
            .execute(&mut *self.0)
            .await?;
        Ok(sqlx::query_as(sql::STARTS_SINCE)
            .bind(queue)
            .bind(since)
            .bind(keys)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn ready_keys(
        &mut self,
        queue: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(sql::READY_KEYS)
            .bind(queue)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.0)
            .await?)
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
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let (keys, counts): (Vec<&str>, Vec<i32>) = heads
            .iter()
            .map(|(key, n)| (key.as_str(), i32::try_from(*n).unwrap_or(i32::MAX)))
            .unzip();
        let rows: Vec<(JobId, String, i32)> = sqlx::query_as(sql::KEY_HEADS)
            .bind(queue)
            .bind(keys)
            .bind(counts)
            .bind(due_by)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, key, priority)| Candidate {
                id,
                key: Some(key),
                priority,
            })
            .collect())
    }

    async fn queue_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        limit: u32,
        unkeyed: bool,
    ) -> Result<Vec<Candidate>, StoreError> {
        let rows: Vec<(JobId, Option<String>, i32)> = sqlx::query_as(sql::QUEUE_HEADS)
            .bind(queue)
            .bind(due_by)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, key, _)| !unkeyed || key.is_none())
            .map(|(id, key, priority)| Candidate { id, key, priority })
            .collect())
    }

    async fn keys_pending(
        &mut self,
        queue: &str,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::KEYS_PENDING)
            .bind(queue)
            .bind(keys)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn start(
        &mut self,
        request: &ClaimRequest<'_>,
        ids: &[JobId],
        start_now: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let rows = sqlx::query(sql::START_JOBS)
            .bind(now)
            .bind(request.worker)
            .bind(request.token)
            .bind(lease_micros(request.lease))
            .bind(ids)
            .bind(&ids[..start_now.min(ids.len())])
            .fetch_all(&mut *self.0)
            .await?;
        let mut jobs = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        // RETURNING's order is unspecified: answer them in the order chosen.
        crate::store::flow::in_chosen_order(&mut jobs, ids);
        Ok(jobs)
    }

    async fn claim_in_order(
        &mut self,
        request: &ClaimRequest<'_>,
        limit: u32,
        _now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        // The usual claim reads the same now itself (the request's, or the
        // server's at the transaction's start).
        let rows = claim_query(sql::CLAIM_IN_ORDER, request, limit)
            .fetch_all(&mut *self.0)
            .await?;
        let mut jobs = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.id));
        Ok(jobs)
    }

    async fn settle_keys(
        &mut self,
        queue: &str,
        idle: &[(String, i64)],
        cursor: Option<&str>,
    ) -> Result<(), StoreError> {
        if !idle.is_empty() {
            let (keys, versions): (Vec<&str>, Vec<i64>) =
                idle.iter().map(|(key, v)| (key.as_str(), *v)).unzip();
            sqlx::query(sql::KEYS_IDLE)
                .bind(queue)
                .bind(keys)
                .bind(versions)
                .execute(&mut *self.0)
                .await?;
        }
        if let Some(cursor) = cursor {
            sqlx::query(sql::SET_KEY_CURSOR)
                .bind(queue)
                .bind(cursor)
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
        sqlx::query(sql::RECORD_STARTS)
            .bind(queue)
            .bind(keys)
            .bind(at)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

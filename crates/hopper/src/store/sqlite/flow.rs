//! The SQLite answers to a flow-controlled claim's reads and writes
//! ([`FlowTx`]): synchronous calls on the writer's transaction, which
//! holds the database's write lock, so no other claim of any process runs
//! between them.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::{all, claimed, sql};
use crate::job::JobId;
use crate::store::rows::{from_micros, json_list, lease_micros, micros};
use crate::store::{
    Candidate, ClaimRequest, ClaimedJob, FlowTx, LockedFlow, QueueFlow, Rate, StoreError,
};

/// A flow-controlled claim's steps on the writer's open transaction.
pub(super) struct SqliteFlow<'t, 'c>(pub(super) &'t Transaction<'c>);

/// The flow settings in the first six columns of `row` (as [`sql::FLOW`] reads them).
pub(super) fn flow_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueueFlow> {
    let limit = |n: usize| -> rusqlite::Result<Option<u32>> {
        Ok(row
            .get::<_, Option<i64>>(n)?
            .and_then(|v| u32::try_from(v).ok()))
    };
    Ok(QueueFlow {
        concurrency: limit(0)?,
        key_concurrency: limit(1)?,
        rate: Rate::stored(row.get(2)?, row.get(3)?, row.get(4)?),
        fair: row.get(5)?,
    })
}

impl FlowTx for SqliteFlow<'_, '_> {
    async fn lock_flow(
        &mut self,
        queue: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<Option<LockedFlow>, StoreError> {
        let found = all(
            self.0,
            sql::LOCK_FLOW,
            params![queue, now.map(micros)],
            |row| {
                Ok((
                    flow_of(row)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, i64>(7)?,
                ))
            },
        )?;
        found
            .into_iter()
            .next()
            .map(|(flow, key_cursor, now)| {
                Ok(LockedFlow {
                    flow,
                    key_cursor,
                    now: from_micros(0, now)?,
                })
            })
            .transpose()
    }

    async fn running(&mut self, queue: &str) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        all(self.0, sql::RUNNING_BY_KEY, [queue], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    async fn starts_since(
        &mut self,
        queue: &str,
        since: DateTime<Utc>,
        keys: Option<&[String]>,
    ) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        self.0
            .prepare_cached(sql::FORGET_STARTS)?
            .execute(params![queue, micros(since)])?;
        let keys = keys.map(json_list).transpose()?;
        all(
            self.0,
            sql::STARTS_SINCE,
            params![queue, micros(since), keys],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    async fn ready_keys(
        &mut self,
        queue: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        all(
            self.0,
            sql::READY_KEYS,
            params![queue, after, limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    async fn ready_key_count(&mut self, queue: &str, at_most: u64) -> Result<u64, StoreError> {
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let count: i64 = self
            .0
            .prepare_cached(sql::READY_KEY_COUNT)?
            .query_row(params![queue, at_most], |row| row.get(0))?;
        Ok(crate::store::rows::from_count(count))
    }

    async fn key_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        heads: &[(String, u32)],
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut candidates = Vec::new();
        for (key, count) in heads {
            let params = params![queue, key, micros(due_by), count];
            candidates.extend(all(self.0, sql::KEY_HEADS, params, |row| {
                Ok(Candidate {
                    id: row.get(0)?,
                    key: Some(key.clone()),
                    priority: row.get(1)?,
                })
            })?);
        }
        Ok(candidates)
    }

    async fn queue_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        limit: u32,
        unkeyed: bool,
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut candidates = all(
            self.0,
            sql::QUEUE_HEADS,
            params![queue, micros(due_by), limit],
            |row| {
                Ok(Candidate {
                    id: row.get(0)?,
                    key: row.get(1)?,
                    priority: row.get(2)?,
                })
            },
        )?;
        if unkeyed {
            candidates.retain(|c| c.key.is_none());
        }
        Ok(candidates)
    }

    async fn keys_pending(
        &mut self,
        queue: &str,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut statement = self.0.prepare_cached(sql::KEY_PENDING)?;
        let mut pending = Vec::new();
        for key in keys {
            if statement.query_row(params![queue, key], |row| row.get::<_, bool>(0))? {
                pending.push(key.clone());
            }
        }
        Ok(pending)
    }

    async fn start(
        &mut self,
        request: &ClaimRequest<'_>,
        ids: &[JobId],
        start_now: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let params = params![
            micros(now),
            request.worker,
            request.token,
            micros(now),
            lease_micros(request.lease),
            json_list(ids)?,
            json_list(&ids[..start_now.min(ids.len())])?,
        ];
        let mut jobs = all(self.0, sql::START_JOBS, params, |row| {
            claimed(row, row.get(11)?)
        })?;
        // RETURNING's order is unspecified: answer them in the order chosen.
        crate::store::flow::in_chosen_order(&mut jobs, ids);
        Ok(jobs)
    }

    async fn claim_in_order(
        &mut self,
        request: &ClaimRequest<'_>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        super::claim_in(self.0, sql::CLAIM_IN_ORDER, request, limit, Some(now))
    }

    async fn settle_keys(
        &mut self,
        queue: &str,
        idle: &[(String, i64)],
        cursor: Option<&str>,
    ) -> Result<(), StoreError> {
        // One indexed statement per key: joined to a JSON list instead,
        // the planner walks every key of the queue and parses the list
        // again for each.
        if !idle.is_empty() {
            let mut statement = self.0.prepare_cached(sql::KEY_IDLE)?;
            for (key, version) in idle {
                statement.execute(params![queue, key, version])?;
            }
        }
        if let Some(cursor) = cursor {
            self.0
                .prepare_cached(sql::SET_KEY_CURSOR)?
                .execute(params![queue, cursor])?;
        }
        Ok(())
    }

    async fn record_starts(
        &mut self,
        queue: &str,
        keys: &[Option<String>],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut record = self.0.prepare_cached(sql::RECORD_START)?;
        for key in keys {
            record.execute(params![queue, key, micros(at)])?;
        }
        Ok(())
    }
}

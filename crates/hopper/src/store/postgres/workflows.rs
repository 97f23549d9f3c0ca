//! The PostgreSQL answers to a workflow's reads and writes
//! ([`WorkflowTx`]), in a transaction: events are taken skipping rows
//! another transaction holds, dependents locked in id order.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::batches::PgBatch;
use crate::job::JobId;
use crate::store::rows::state_of;
use crate::store::workflows::{DependencyColumns, EdgeOut, shape};
use crate::store::{DepEvent, Dependency, Dependent, NewStep, StoreError, Waiting, WorkflowTx};

/// Sets each job of $1 (bigint[]) its waiting count ($2, int[]) and whether others depend on it ($3, bool[]).
const LINK_JOBS: &str = "UPDATE jobs SET waiting_on = c.waiting, has_dependents = c.depended \
     FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::int[]), (SELECT $3::bool[])) AS c(id, waiting, depended) \
     WHERE jobs.id = c.id";

/// Records the edges: dependencies $1, dependents $2 (bigint[]), steps $3 (text[]), any outcome $4 (bool[]).
const ADD_EDGES: &str = "INSERT INTO job_deps (depends_on, job_id, step, any_outcome) \
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bool[])";

/// Up to $1 events, oldest first, skipping rows another transaction holds.
const TAKE_EVENTS: &str = "SELECT id, job_id, state, settled_through FROM dep_events ORDER BY id LIMIT $1 \
     FOR UPDATE SKIP LOCKED";

/// The edges out of each job of $1 (bigint[]) to dependents after the id at the same place in $2 (bigint[]), up to $3 per job, in dependent id order.
const EDGES: &str = "SELECT d.depends_on, d.job_id, d.any_outcome, d.holds \
     FROM UNNEST($1::bigint[], $2::bigint[]) AS e(dep, after) \
     CROSS JOIN LATERAL (SELECT depends_on, job_id, any_outcome, holds FROM job_deps \
         WHERE depends_on = e.dep AND job_id > e.after ORDER BY job_id LIMIT $3) AS d";

/// Records $2 as the last dependent settled for the events $1 (bigint[]).
const SET_THROUGH: &str = "UPDATE dep_events SET settled_through = $2 WHERE id = ANY($1::bigint[])";

/// Locks the jobs $1 (bigint[]) in id order: id, queue, waiting count, state.
const DEPENDENTS: &str = "SELECT id, queue, waiting_on::bigint AS waiting_on, state FROM jobs \
     WHERE id = ANY((SELECT $1::bigint[])::bigint[]) ORDER BY id FOR UPDATE";

/// Sets each job of $1 (bigint[]) its waiting count ($2, int[]), due at $3 (timestamptz[]) where given.
const SET_WAITING: &str = "UPDATE jobs SET waiting_on = c.waiting, \
         available_at = COALESCE(c.due, jobs.available_at) \
     FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::int[]), (SELECT $3::timestamptz[])) AS c(id, waiting, due) \
     WHERE jobs.id = c.id";

/// Lowers by $2 (bigint[]) the waiting count of each job of $1 (bigint[], sorted) still pending and waiting, making it due at $3 once none is left: each job's queue and new count.
/// The ids, a parameter of unknown length to the planner, drive a nested loop over the primary key, so the rows are locked in id order.
const SATISFY: &str = "UPDATE jobs SET waiting_on = GREATEST(jobs.waiting_on - c.n, 0), \
         available_at = CASE WHEN jobs.waiting_on <= c.n THEN $3 ELSE jobs.available_at END \
     FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::bigint[])) AS c(id, n) \
     WHERE jobs.id = c.id AND jobs.state = 'pending' AND jobs.waiting_on > 0 \
     RETURNING jobs.queue, jobs.waiting_on::bigint AS waiting_on";

/// Cancels the pending job $1 at $2 with error $3.
const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', finished_at = $2, last_error = $3 \
     WHERE id = $1 AND state = 'pending'";

/// Deletes the events $1 (bigint[]).
const DELETE_EVENTS: &str = "DELETE FROM dep_events WHERE id = ANY($1::bigint[])";

/// The dependencies of the jobs $1 (bigint[]): job waiting, step, job, state, output.
const DEPENDENCIES: &str = "SELECT d.job_id, d.step, j.id, j.state, j.output FROM job_deps AS d \
     JOIN jobs AS j ON j.id = d.depends_on \
     WHERE d.job_id = ANY((SELECT $1::bigint[])::bigint[]) ORDER BY d.job_id, j.id";

impl WorkflowTx for PgBatch<'_> {
    async fn link(&mut self, ids: &[JobId], steps: &[NewStep]) -> Result<(), StoreError> {
        let (flags, edges) = shape(steps);
        let (mut jobs, mut waiting, mut depended) = (Vec::new(), Vec::new(), Vec::new());
        for (id, (waiting_on, has_dependents)) in ids.iter().zip(flags) {
            if waiting_on > 0 || has_dependents {
                jobs.push(*id);
                waiting.push(i32::try_from(waiting_on).unwrap_or(i32::MAX));
                depended.push(has_dependents);
            }
        }
        sqlx::query(LINK_JOBS)
            .bind(jobs)
            .bind(waiting)
            .bind(depended)
            .execute(&mut *self.0)
            .await?;
        let (mut from, mut to, mut names, mut any) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (after, index, step, any_outcome) in edges {
            if let (Some(dependency), Some(job)) = (ids.get(after), ids.get(index)) {
                from.push(*dependency);
                to.push(*job);
                names.push(step.to_owned());
                any.push(any_outcome);
            }
        }
        sqlx::query(ADD_EDGES)
            .bind(from)
            .bind(to)
            .bind(names)
            .bind(any)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn take_events(&mut self, limit: u32) -> Result<Vec<DepEvent>, StoreError> {
        let rows: Vec<(i64, JobId, String, JobId)> = sqlx::query_as(TAKE_EVENTS)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.0)
            .await?;
        rows.into_iter()
            .map(|(id, job_id, state, through)| {
                Ok(DepEvent {
                    id,
                    job_id,
                    state: state_of(job_id, &state)?,
                    through,
                })
            })
            .collect()
    }

    async fn edges(
        &mut self,
        from: &[(JobId, JobId)],
        limit: u32,
    ) -> Result<Vec<EdgeOut>, StoreError> {
        let (jobs, after): (Vec<JobId>, Vec<JobId>) = from.iter().copied().unzip();
        Ok(sqlx::query_as(EDGES)
            .bind(jobs)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn set_through(&mut self, ids: &[i64], through: JobId) -> Result<(), StoreError> {
        sqlx::query(SET_THROUGH)
            .bind(ids)
            .bind(through)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn lock_dependents(&mut self, ids: &[JobId]) -> Result<Vec<Dependent>, StoreError> {
        let rows = sqlx::query(DEPENDENTS)
            .bind(ids)
            .fetch_all(&mut *self.0)
            .await?;
        let mut dependents = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: JobId = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            dependents.push(Dependent {
                id,
                queue: row.try_get("queue")?,
                waiting_on: row.try_get("waiting_on")?,
                state: state_of(id, &state)?,
            });
        }
        Ok(dependents)
    }

    async fn set_waiting(&mut self, jobs: &[Waiting]) -> Result<(), StoreError> {
        let ids: Vec<JobId> = jobs.iter().map(|(id, _, _)| *id).collect();
        let waiting: Vec<i32> = jobs
            .iter()
            .map(|(_, n, _)| i32::try_from(*n).unwrap_or(i32::MAX))
            .collect();
        let due: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|(_, _, due)| *due).collect();
        sqlx::query(SET_WAITING)
            .bind(ids)
            .bind(waiting)
            .bind(due)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn satisfy(
        &mut self,
        jobs: &[(JobId, i64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let (ids, satisfied): (Vec<JobId>, Vec<i64>) = jobs.iter().copied().unzip();
        let rows: Vec<(String, i64)> = sqlx::query_as(SATISFY)
            .bind(ids)
            .bind(satisfied)
            .bind(now)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(queue, left)| (left == 0).then_some(queue))
            .collect())
    }

    async fn cancel_dependent(
        &mut self,
        id: JobId,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(CANCEL)
            .bind(id)
            .bind(now)
            .bind(reason)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn delete_events(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(DELETE_EVENTS)
            .bind(ids)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// The dependencies of the jobs `ids`.
pub(super) async fn dependencies(
    pool: &super::Db,
    ids: &[JobId],
) -> Result<Vec<Dependency>, StoreError> {
    let rows: Vec<DependencyColumns> = sqlx::query_as(DEPENDENCIES)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Dependency::from_columns).collect()
}

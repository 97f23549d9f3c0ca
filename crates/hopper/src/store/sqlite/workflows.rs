//! The SQLite answers to a workflow's reads and writes ([`WorkflowTx`]):
//! synchronous calls on the writer's transaction, which holds the
//! database's write lock, so no other process writes between them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::batches::SqliteBatch;
use super::{all, state_of};
use crate::job::JobId;
use crate::store::rows::{json_list, micros};
use crate::store::workflows::{EdgeOut, shape};
use crate::store::{DepEvent, Dependency, Dependent, NewStep, StoreError, Waiting, WorkflowTx};

/// Sets job `?1`'s waiting count to `?2` and whether others depend on it to `?3`.
const LINK_JOB: &str = "UPDATE jobs SET waiting_on = ?2, has_dependents = ?3 WHERE id = ?1";

/// Records that job `?2` waits on job `?1` (step `?3`; any outcome `?4`).
const ADD_EDGE: &str =
    "INSERT INTO job_deps (depends_on, job_id, step, any_outcome) VALUES (?1, ?2, ?3, ?4)";

/// Up to `?1` events, oldest first.
const TAKE_EVENTS: &str =
    "SELECT id, job_id, state, settled_through FROM dep_events ORDER BY id LIMIT ?1";

/// The edges out of job `?1` to dependents after `?2`, up to `?3`, in dependent id order.
const EDGES: &str = "SELECT depends_on, job_id, any_outcome, holds FROM job_deps \
    WHERE depends_on = ?1 AND job_id > ?2 ORDER BY job_id LIMIT ?3";

/// Records `?2` as the last dependent settled for the events of the JSON array `?1`.
const SET_THROUGH: &str = "UPDATE dep_events SET settled_through = ?2 \
    WHERE id IN (SELECT value FROM json_each(?1))";

/// The jobs of the JSON array `?1`, in id order: id, queue, waiting count, state.
const DEPENDENTS: &str = "SELECT id, queue, waiting_on, state FROM jobs \
    WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id";

/// Sets job `?1`'s waiting count to `?2`, due at `?3` if given.
const SET_WAITING: &str =
    "UPDATE jobs SET waiting_on = ?2, available_at = COALESCE(?3, available_at) WHERE id = ?1";

/// Cancels the pending job `?1` at `?2` with error `?3`.
const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', finished_at = ?2, last_error = ?3 \
    WHERE id = ?1 AND state = 'pending'";

/// Deletes the events of the JSON array `?1`.
const DELETE_EVENTS: &str = "DELETE FROM dep_events WHERE id IN (SELECT value FROM json_each(?1))";

/// The dependencies of the jobs of the JSON array `?1`: job waiting, step, job, state, output.
const DEPENDENCIES: &str = "SELECT d.job_id, d.step, j.id, j.state, j.output FROM job_deps AS d \
    JOIN jobs AS j ON j.id = d.depends_on \
    WHERE d.job_id IN (SELECT value FROM json_each(?1)) ORDER BY d.job_id, j.id";

impl WorkflowTx for SqliteBatch<'_, '_> {
    async fn link(&mut self, ids: &[JobId], steps: &[NewStep]) -> Result<(), StoreError> {
        let (flags, edges) = shape(steps);
        let mut link = self.0.prepare_cached(LINK_JOB)?;
        for (id, (waiting_on, has_dependents)) in ids.iter().zip(flags) {
            if waiting_on > 0 || has_dependents {
                link.execute(params![id, waiting_on, has_dependents])?;
            }
        }
        let mut add = self.0.prepare_cached(ADD_EDGE)?;
        for (after, index, step, any_outcome) in edges {
            if let (Some(dependency), Some(job)) = (ids.get(after), ids.get(index)) {
                add.execute(params![dependency, job, step, any_outcome])?;
            }
        }
        Ok(())
    }

    async fn take_events(&mut self, limit: u32) -> Result<Vec<DepEvent>, StoreError> {
        let rows = all(self.0, TAKE_EVENTS, [limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, JobId>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, JobId>(3)?,
            ))
        })?;
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
        // One indexed read per job: each walks its own edges in order.
        let mut edges = Vec::new();
        for (job, after) in from {
            edges.extend(all(self.0, EDGES, params![job, after, limit], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?);
        }
        Ok(edges)
    }

    async fn set_through(&mut self, ids: &[i64], through: JobId) -> Result<(), StoreError> {
        self.0
            .prepare_cached(SET_THROUGH)?
            .execute(params![json_list(ids)?, through])?;
        Ok(())
    }

    async fn lock_dependents(&mut self, ids: &[JobId]) -> Result<Vec<Dependent>, StoreError> {
        let rows = all(self.0, DEPENDENTS, [json_list(ids)?], |row| {
            Ok((
                row.get::<_, JobId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        rows.into_iter()
            .map(|(id, queue, waiting_on, state)| {
                Ok(Dependent {
                    id,
                    queue,
                    waiting_on,
                    state: state_of(id, &state)?,
                })
            })
            .collect()
    }

    async fn set_waiting(&mut self, jobs: &[Waiting]) -> Result<(), StoreError> {
        let mut set = self.0.prepare_cached(SET_WAITING)?;
        for (id, waiting_on, due) in jobs {
            set.execute(params![id, waiting_on, due.map(micros)])?;
        }
        Ok(())
    }

    async fn cancel_dependent(
        &mut self,
        id: JobId,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(CANCEL)?
            .execute(params![id, micros(now), reason])?;
        Ok(())
    }

    async fn delete_events(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.0
            .prepare_cached(DELETE_EVENTS)?
            .execute([json_list(ids)?])?;
        Ok(())
    }
}

/// The dependencies of the jobs `ids`, read on `conn`.
pub(super) fn dependencies(
    conn: &Connection,
    ids: &[JobId],
) -> Result<Vec<Dependency>, StoreError> {
    let rows = all(conn, DEPENDENCIES, [json_list(ids)?], |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ))
    })?;
    rows.into_iter().map(Dependency::from_columns).collect()
}

//! The MySQL/MariaDB answers to a workflow's reads and writes
//! ([`WorkflowTx`]), in a transaction: events are taken skipping rows
//! another transaction holds, dependents locked in id order.

use chrono::{DateTime, Utc};
use sqlx::{MySqlPool, Row};

use super::batches::MySqlBatch;
use super::sql::placeholders;
use super::{INSERT_CHUNK, optional_text, text};
use crate::job::JobId;
use crate::store::rows::{json_list, micros, state_of};
use crate::store::workflows::{EdgeOut, shape};
use crate::store::{DepEvent, Dependency, Dependent, NewStep, StoreError, Waiting, WorkflowTx};

// Lists of rows reach these statements as one JSON array read with
// `JSON_TABLE`, so each has one text for any length: a statement with a
// placeholder or a `UNION ALL` branch per row is parsed, planned and
// prepared anew for every length, branch by branch.

/// The edges out of a job to dependents after an id, up to a limit, in dependent id order; `?`: job, after, limit.
const EDGES_AFTER: &str = "SELECT depends_on, job_id, any_outcome, holds FROM job_deps \
     WHERE depends_on = ? AND job_id > ? ORDER BY job_id LIMIT ?";

/// The edges out of each job of a JSON array of `[job, after]` pairs to
/// its dependents after `after`, up to a limit per job: those up to the
/// job's limit-th one; `?`: the pairs, the limit less one.
const EDGES_OF: &str = "SELECT d.depends_on, d.job_id, d.any_outcome, d.holds \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (dep BIGINT PATH '$[0]', after BIGINT PATH '$[1]')) AS e \
     JOIN job_deps AS d ON d.depends_on = e.dep AND d.job_id > e.after \
         AND d.job_id <= COALESCE((SELECT b.job_id FROM job_deps AS b \
             WHERE b.depends_on = e.dep AND b.job_id > e.after ORDER BY b.job_id LIMIT 1 OFFSET ?), \
             9223372036854775807)";

/// Sets a job's waiting count and whether others depend on it: waiting, depended, id.
const LINK_JOB: &str = "UPDATE jobs SET waiting_on = ?, has_dependents = ? WHERE id = ?";

/// Up to `?` events, oldest first, skipping rows another transaction holds.
const TAKE_EVENTS: &str = "SELECT id, job_id, state, settled_through FROM dep_events ORDER BY id LIMIT ? \
     FOR UPDATE SKIP LOCKED";

/// Sets jobs their waiting counts, each due at a time if given; `?`: a
/// JSON array of `[id, waiting]`, or `[id, waiting, due]` for a job made
/// due: a missing element reads as NULL (`JSON_TABLE`'s default on
/// empty), where a JSON `null` would be a value to convert.
const SET_WAITING: &str = "UPDATE jobs \
     JOIN JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', waiting BIGINT PATH '$[1]', due BIGINT PATH '$[2]')) AS c \
         ON jobs.id = c.id \
     SET jobs.waiting_on = c.waiting, jobs.available_at = COALESCE(c.due, jobs.available_at)";

/// Records a dependent as the last settled for events; `?`: the
/// dependent, a JSON array of the events' ids.
const SET_THROUGH: &str = "UPDATE dep_events \
     JOIN JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS e ON dep_events.id = e.id \
     SET dep_events.settled_through = ?";

/// Deletes events; `?`: a JSON array of their ids.
const DELETE_EVENTS: &str = "DELETE dep_events FROM dep_events \
     JOIN JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS e ON dep_events.id = e.id";

/// Cancels a pending job: finished at, error, id.
const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', finished_at = ?, last_error = ? \
     WHERE id = ? AND state = 'pending'";

/// The dependencies of `n` jobs: job waiting, step, job, state, output; `?`: the jobs.
fn dependencies_of(n: usize) -> String {
    format!(
        "SELECT d.job_id, d.step, j.id, j.state, j.output FROM job_deps AS d \
         JOIN jobs AS j ON j.id = d.depends_on WHERE d.job_id IN ({}) ORDER BY d.job_id, j.id",
        placeholders(n)
    )
}

/// Records `n` edges: (dependency, dependent, step, any outcome) each.
fn add_edges(n: usize) -> String {
    format!(
        "INSERT INTO job_deps (depends_on, job_id, step, any_outcome) VALUES {}",
        vec!["(?, ?, ?, ?)"; n].join(", ")
    )
}

impl WorkflowTx for MySqlBatch<'_> {
    async fn link(&mut self, ids: &[JobId], steps: &[NewStep]) -> Result<(), StoreError> {
        let (flags, edges) = shape(steps);
        for (id, (waiting_on, has_dependents)) in ids.iter().zip(flags) {
            if waiting_on > 0 || has_dependents {
                sqlx::query(LINK_JOB)
                    .bind(waiting_on)
                    .bind(has_dependents)
                    .bind(id)
                    .execute(&mut *self.0)
                    .await?;
            }
        }
        let edges: Vec<(JobId, JobId, &str, bool)> = edges
            .into_iter()
            .filter_map(|(after, index, step, any)| {
                Some((*ids.get(after)?, *ids.get(index)?, step, any))
            })
            .collect();
        for chunk in edges.chunks(INSERT_CHUNK) {
            let statement = add_edges(chunk.len());
            let mut query = sqlx::query(&statement);
            for (dependency, job, step, any) in chunk {
                query = query.bind(dependency).bind(job).bind(*step).bind(any);
            }
            query.execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn take_events(&mut self, limit: u32) -> Result<Vec<DepEvent>, StoreError> {
        let rows = sqlx::query(TAKE_EVENTS)
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| {
                let job_id: JobId = row.try_get("job_id")?;
                Ok(DepEvent {
                    id: row.try_get("id")?,
                    job_id,
                    state: state_of(job_id, &text(row, "state")?)?,
                    through: row.try_get("settled_through")?,
                })
            })
            .collect()
    }

    async fn edges(
        &mut self,
        from: &[(JobId, JobId)],
        limit: u32,
    ) -> Result<Vec<EdgeOut>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One job (a fan-out's step) reads just its next edges by index.
        let query = match from {
            [] => return Ok(Vec::new()),
            [(job, after)] => sqlx::query_as(EDGES_AFTER)
                .bind(job)
                .bind(after)
                .bind(limit),
            from => sqlx::query_as(EDGES_OF)
                .bind(json_list(from)?)
                .bind(limit - 1),
        };
        Ok(query.fetch_all(&mut *self.0).await?)
    }

    async fn set_through(&mut self, ids: &[i64], through: JobId) -> Result<(), StoreError> {
        sqlx::query(SET_THROUGH)
            .bind(json_list(ids)?)
            .bind(through)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn lock_dependents(&mut self, ids: &[JobId]) -> Result<Vec<Dependent>, StoreError> {
        let mut dependents = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let statement = format!(
                "SELECT id, queue, CAST(waiting_on AS SIGNED) AS waiting_on, state FROM jobs \
                 WHERE id IN ({}) ORDER BY id FOR UPDATE",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&statement);
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(&mut *self.0).await? {
                let id: JobId = row.try_get("id")?;
                dependents.push(Dependent {
                    id,
                    queue: text(&row, "queue")?,
                    waiting_on: row.try_get("waiting_on")?,
                    state: state_of(id, &text(&row, "state")?)?,
                });
            }
        }
        Ok(dependents)
    }

    async fn set_waiting(&mut self, jobs: &[Waiting]) -> Result<(), StoreError> {
        let rows: Vec<Vec<i64>> = jobs
            .iter()
            .map(|(id, waiting_on, due)| {
                let mut row = vec![*id, *waiting_on];
                row.extend(due.map(micros));
                row
            })
            .collect();
        sqlx::query(SET_WAITING)
            .bind(json_list(&rows)?)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn cancel_dependent(
        &mut self,
        id: JobId,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(CANCEL)
            .bind(micros(now))
            .bind(reason)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn delete_events(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(DELETE_EVENTS)
            .bind(json_list(ids)?)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// The dependencies of the jobs `ids`.
pub(super) async fn dependencies(
    pool: &MySqlPool,
    ids: &[JobId],
) -> Result<Vec<Dependency>, StoreError> {
    let mut dependencies = Vec::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        let statement = dependencies_of(chunk.len());
        let mut query = sqlx::query(&statement);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(pool).await? {
            dependencies.push(Dependency::from_columns((
                row.try_get("job_id")?,
                text(&row, "step")?,
                row.try_get("id")?,
                text(&row, "state")?,
                optional_text(&row, "output")?,
            ))?);
        }
    }
    Ok(dependencies)
}

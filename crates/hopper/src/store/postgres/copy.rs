//! Bulk inserts as one binary `COPY`: the ids are drawn from the jobs
//! table's own sequence first, in one statement, then every row travels
//! in PostgreSQL's binary copy format, with no statement to parse, no
//! per-row expression to evaluate and no `RETURNING` to send back. It is
//! the fastest way into a table PostgreSQL has: about a fifth quicker than
//! one `INSERT … SELECT FROM UNNEST` of the same rows.
//!
//! `COPY` writes the ids it is given even into the identity column (as
//! `INSERT … OVERRIDING SYSTEM VALUE` would), and fires the table's
//! triggers as an insert does, so a copied job is marked, counted and
//! woken for exactly as an inserted one. A copy costs a few more round
//! trips than a statement, so small dispatches keep the `INSERT`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::job::JobId;
use crate::store::{NewJob, StoreError};

/// The fewest jobs a bulk insert copies instead of inserting.
pub(super) const COPY_FROM: usize = 256;

/// Bytes of copy data sent per message.
const SEND_BYTES: usize = 1 << 20;

// `OFFSET 0` keeps the sequence's lookup out of the row loop: flattened
// into it, it is made for every id (50 ms for 20,000 instead of 7).
/// Draws `$1` ids from the jobs table's identity sequence, in order.
const NEXT_IDS: &str = "SELECT nextval(s.id) FROM \
     (SELECT pg_get_serial_sequence('jobs', 'id')::regclass AS id OFFSET 0) AS s, \
     generate_series(1, $1)";

/// The copy, its columns in the order [`encode`] writes them.
const COPY_JOBS: &str = "COPY jobs (id, type, queue, payload, priority, max_attempts, \
     available_at, created_at, partition_key, trace_context) FROM STDIN (FORMAT binary)";

/// The start of binary copy data: its signature, no flags, no extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end of binary copy data: a tuple of -1 fields.
const TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Copies `jobs` into the jobs table on `conn`, inside whatever
/// transaction it is in, and wakes their queues on commit (`channel`);
/// their ids, in order.
pub(super) async fn insert(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    channel: &str,
) -> Result<Vec<JobId>, StoreError> {
    let count = i64::try_from(jobs.len()).unwrap_or(i64::MAX);
    let mut ids: Vec<JobId> = sqlx::query_scalar(NEXT_IDS)
        .bind(count)
        .fetch_all(&mut *conn)
        .await?;
    // One session's draws from a sequence rise; sorted, the first job
    // surely gets the lowest.
    ids.sort_unstable();
    let data = encode(jobs, &ids);
    let mut copy = conn.copy_in_raw(COPY_JOBS).await?;
    for chunk in data.chunks(SEND_BYTES) {
        if let Err(error) = copy.send(chunk).await {
            // The connection must leave copy mode before its next use.
            let _ = copy.abort("the job data could not be sent").await;
            return Err(error.into());
        }
    }
    copy.finish().await?;
    let mut queues: Vec<&str> = jobs.iter().map(|job| job.queue.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    sqlx::query(super::sql::NOTIFY_QUEUES)
        .bind(channel)
        .bind(queues)
        .execute(&mut *conn)
        .await?;
    Ok(ids)
}

/// `jobs`, with `ids`, as binary copy data for [`COPY_JOBS`].
fn encode(jobs: &[NewJob], ids: &[JobId]) -> Vec<u8> {
    let mut data = Vec::with_capacity(HEADER.len() + jobs.len() * 128 + TRAILER.len());
    data.extend_from_slice(HEADER);
    for (job, id) in jobs.iter().zip(ids) {
        data.extend_from_slice(&10i16.to_be_bytes());
        field(&mut data, &id.to_be_bytes());
        field(&mut data, job.job_type.as_bytes());
        field(&mut data, job.queue.as_bytes());
        field(&mut data, job.payload.as_bytes());
        field(&mut data, &job.priority.to_be_bytes());
        let max_attempts = i32::try_from(job.max_attempts).unwrap_or(i32::MAX);
        field(&mut data, &max_attempts.to_be_bytes());
        field(&mut data, &timestamp(job.available_at).to_be_bytes());
        field(&mut data, &timestamp(job.created_at).to_be_bytes());
        optional(&mut data, job.partition_key.as_deref());
        optional(&mut data, job.trace_context.as_deref());
    }
    data.extend_from_slice(TRAILER);
    data
}

/// Appends one field: its length, then its bytes.
fn field(data: &mut Vec<u8>, bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    data.extend_from_slice(&len.to_be_bytes());
    data.extend_from_slice(bytes);
}

/// Appends a text field, or NULL (length -1).
fn optional(data: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => field(data, text.as_bytes()),
        None => data.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// A `timestamptz` as binary copy data holds it: microseconds since
/// 2000-01-01 UTC.
fn timestamp(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros() - PG_EPOCH_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(queue: &str, key: Option<&str>) -> NewJob {
        let at = DateTime::from_timestamp(946_684_801, 0).unwrap_or_default();
        NewJob {
            job_type: "mail".into(),
            queue: queue.into(),
            payload: "{}".into(),
            priority: -2,
            max_attempts: 3,
            available_at: at,
            created_at: at,
            unique_key: None,
            partition_key: key.map(str::to_owned),
            sequence: None,
            trace_context: None,
        }
    }

    #[test]
    fn copy_data_is_the_header_a_tuple_per_job_and_the_trailer() {
        let data = encode(&[job("q", Some("k"))], &[7]);
        assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(data.ends_with(&[0xff, 0xff]));
        let tuple = &data[HEADER.len()..data.len() - TRAILER.len()];
        let mut expected = 10i16.to_be_bytes().to_vec();
        for bytes in [
            &7i64.to_be_bytes()[..],
            b"mail",
            b"q",
            b"{}",
            &(-2i32).to_be_bytes(),
            &3i32.to_be_bytes(),
            // One second past PostgreSQL's epoch.
            &1_000_000i64.to_be_bytes(),
            &1_000_000i64.to_be_bytes(),
            b"k",
        ] {
            expected.extend_from_slice(&i32::try_from(bytes.len()).unwrap().to_be_bytes());
            expected.extend_from_slice(bytes);
        }
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(tuple, expected.as_slice());
    }
}

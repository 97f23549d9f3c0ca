//! Dispatching jobs in the application's own transaction: the jobs exist
//! if and only if the application's writes commit, and once they have,
//! the dispatch is recorded (metrics, hook events) and this process's idle
//! workers are woken, as for any other dispatch.
//!
//! On PostgreSQL and MySQL, [`Hopper::transaction`] wraps a transaction the
//! application began; on SQLite, whose one writing connection Hopper's
//! store owns, [`Hopper::sqlite_transaction`] runs the application's writes
//! in a transaction on it.

use std::ops::{Deref, DerefMut};

use crate::core::Hopper;
use crate::dispatch::{DispatchError, DispatchOptions};
use crate::job::{Job, JobId};
use crate::store::NewJob;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::store::StoreError;

/// An application's transaction that jobs are dispatched in: it derefs to
/// the transaction, so the application's own statements run on it too.
/// Jobs dispatched through it exist once it commits, and not at all if it
/// is rolled back or dropped.
///
/// ```
/// # use hopper::{Hopper, Job, JobContext, JobResult};
/// # struct Welcome;
/// # impl Job for Welcome {
/// #     const TYPE: &'static str = "welcome";
/// #     type Payload = String;
/// #     async fn handle(&self, _: String, _: JobContext) -> JobResult { Ok(()) }
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = Hopper::builder().register(Welcome).unwrap().connect("sqlite::memory:").await.unwrap();
/// let id = hopper
///     .sqlite_transaction(|tx| {
///         tx.execute_batch("CREATE TABLE signups (email TEXT)")?;
///         tx.execute("INSERT INTO signups VALUES (?1)", ["ada@example.com"])?;
///         tx.dispatch::<Welcome>("ada@example.com".into())
///     })
///     .await
///     .unwrap();
/// assert!(hopper.job(id).await.unwrap().is_some());
/// # });
/// ```
#[derive(Debug)]
pub struct JobTransaction<'h, T> {
    hopper: &'h Hopper,
    tx: T,
    dispatched: Dispatched,
}

/// The jobs a transaction inserted, to record once it commits.
#[derive(Debug, Default)]
struct Dispatched {
    ids: Vec<JobId>,
    jobs: Vec<NewJob>,
}

impl<'h, T> JobTransaction<'h, T> {
    fn new(hopper: &'h Hopper, tx: T) -> Self {
        Self {
            hopper,
            tx,
            dispatched: Dispatched::default(),
        }
    }

    /// The ids of the jobs dispatched so far, in order (a job whose unique
    /// key a live job held has that job's id).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let none = hopper.sqlite_transaction(|tx| Ok(tx.ids().len())).await.unwrap();
    /// assert_eq!(none, 0);
    /// # });
    /// ```
    pub fn ids(&self) -> &[JobId] {
        &self.dispatched.ids
    }

    /// The checked rows of a dispatch of many jobs of type `J`, all
    /// stamped with one time.
    fn prepare_many<J: Job>(
        &self,
        payloads: impl IntoIterator<Item = J::Payload>,
        options: &DispatchOptions,
    ) -> Result<Vec<NewJob>, DispatchError> {
        payloads
            .into_iter()
            .map(|payload| self.hopper.prepare::<J>(payload, options.clone()))
            .collect()
    }

    fn inserted(&mut self, ids: &[JobId], jobs: Vec<NewJob>) {
        self.dispatched.ids.extend_from_slice(ids);
        self.dispatched.jobs.extend(jobs);
    }
}

impl<T> Deref for JobTransaction<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.tx
    }
}

impl<T> DerefMut for JobTransaction<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.tx
    }
}

impl Dispatched {
    fn record(self, hopper: &Hopper) {
        if !self.jobs.is_empty() {
            hopper.dispatched(&self.ids, &self.jobs);
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use crate::store::sqlite::{SqliteStore, insert_in};

    impl JobTransaction<'_, &rusqlite::Transaction<'_>> {
        /// Dispatches a job of type `J` in this transaction (see
        /// [`Hopper::dispatch`]).
        ///
        /// ```
        /// # use hopper::{Hopper, Job, JobContext, JobResult};
        /// # struct Ping;
        /// # impl Job for Ping {
        /// #     const TYPE: &'static str = "ping";
        /// #     type Payload = u32;
        /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
        /// # }
        /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
        /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
        /// let id = hopper.sqlite_transaction(|tx| tx.dispatch::<Ping>(1)).await.unwrap();
        /// assert!(id > 0);
        /// # });
        /// ```
        pub fn dispatch<J: Job>(&mut self, payload: J::Payload) -> Result<JobId, DispatchError> {
            self.dispatch_with::<J>(payload, DispatchOptions::default())
        }

        /// Dispatches a job of type `J` with `options` in this transaction
        /// (see [`Hopper::dispatch_with`]).
        ///
        /// ```
        /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
        /// # struct Ping;
        /// # impl Job for Ping {
        /// #     const TYPE: &'static str = "ping";
        /// #     type Payload = u32;
        /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
        /// # }
        /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
        /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
        /// let options = DispatchOptions::new().queue("pings");
        /// let id = hopper.sqlite_transaction(|tx| tx.dispatch_with::<Ping>(1, options)).await.unwrap();
        /// assert_eq!(hopper.job(id).await.unwrap().unwrap().queue, "pings");
        /// # });
        /// ```
        pub fn dispatch_with<J: Job>(
            &mut self,
            payload: J::Payload,
            options: DispatchOptions,
        ) -> Result<JobId, DispatchError> {
            let job = self.hopper.prepare::<J>(payload, options)?;
            Ok(self.insert(vec![job])?[0])
        }

        /// Dispatches a job by type name with a JSON payload in this
        /// transaction (see [`Hopper::dispatch_json`]).
        ///
        /// ```
        /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
        /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
        /// let refused = hopper
        ///     .sqlite_transaction(|tx| tx.dispatch_json("ghost", &serde_json::json!({}), Default::default()))
        ///     .await;
        /// assert_eq!(refused.unwrap_err().to_string(), "no job registered for type ghost");
        /// # });
        /// ```
        pub fn dispatch_json(
            &mut self,
            job_type: &str,
            payload: &serde_json::Value,
            options: DispatchOptions,
        ) -> Result<JobId, DispatchError> {
            let job = self.hopper.prepare_json(job_type, payload, options)?;
            Ok(self.insert(vec![job])?[0])
        }

        /// Dispatches a job of type `J` per payload in this transaction,
        /// in one statement where the database allows (see
        /// [`Hopper::dispatch_many`]). Returns their ids in order.
        ///
        /// ```
        /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
        /// # struct Ping;
        /// # impl Job for Ping {
        /// #     const TYPE: &'static str = "ping";
        /// #     type Payload = u32;
        /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
        /// # }
        /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
        /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
        /// let ids = hopper
        ///     .sqlite_transaction(|tx| tx.dispatch_many::<Ping>(0..10, DispatchOptions::new()))
        ///     .await
        ///     .unwrap();
        /// assert_eq!(ids.len(), 10);
        /// # });
        /// ```
        pub fn dispatch_many<J: Job>(
            &mut self,
            payloads: impl IntoIterator<Item = J::Payload>,
            options: DispatchOptions,
        ) -> Result<Vec<JobId>, DispatchError> {
            let jobs = self.prepare_many::<J>(payloads, &options)?;
            self.insert(jobs)
        }

        fn insert(&mut self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, DispatchError> {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            let ids = insert_in(self.tx, &jobs)?;
            self.inserted(&ids, jobs);
            Ok(ids)
        }
    }

    impl Hopper {
        /// Runs `work` in a transaction on this handle's SQLite database and
        /// commits it, or rolls it back if `work` fails. `work` runs the
        /// application's own statements on the transaction (it derefs to a
        /// [`rusqlite::Transaction`]) and dispatches jobs in it, which exist
        /// if and only if it commits; once it has, they are recorded and
        /// this process's workers woken.
        ///
        /// The transaction holds the file's write lock (see
        /// [`SqliteStore::transaction`]): keep `work` short. A handle on
        /// another database refuses with [`DispatchError::WrongDatabase`].
        ///
        /// ```
        /// # use hopper::{Hopper, Job, JobContext, JobResult, DispatchError};
        /// # struct Welcome;
        /// # impl Job for Welcome {
        /// #     const TYPE: &'static str = "welcome";
        /// #     type Payload = String;
        /// #     async fn handle(&self, _: String, _: JobContext) -> JobResult { Ok(()) }
        /// # }
        /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
        /// let hopper = Hopper::builder().register(Welcome).unwrap().connect("sqlite::memory:").await.unwrap();
        /// let failed: Result<(), DispatchError> = hopper
        ///     .sqlite_transaction(|tx| {
        ///         tx.dispatch::<Welcome>("ada@example.com".into())?;
        ///         tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        ///         Ok(())
        ///     })
        ///     .await;
        /// assert!(failed.is_err());
        /// assert_eq!(hopper.counts().await.unwrap().len(), 0, "rolled back: no job exists");
        /// # });
        /// ```
        pub async fn sqlite_transaction<T>(
            &self,
            work: impl FnOnce(
                &mut JobTransaction<'_, &rusqlite::Transaction<'_>>,
            ) -> Result<T, DispatchError>,
        ) -> Result<T, DispatchError> {
            let store = self
                .store_as::<SqliteStore>()
                .ok_or(DispatchError::WrongDatabase { expected: "sqlite" })?;
            let (value, dispatched) = store
                .transaction_with(|tx| {
                    let mut jobs = JobTransaction::new(self, tx);
                    let value = work(&mut jobs)?;
                    Ok::<_, DispatchError>((value, jobs.dispatched))
                })
                .await?;
            dispatched.record(self);
            Ok(value)
        }
    }
}

/// A database whose [`sqlx::Transaction`]s jobs can be dispatched in:
/// PostgreSQL and MySQL.
///
/// ```
/// fn takes_jobs<D: hopper::transaction::TransactionDatabase>() {}
/// # #[cfg(feature = "postgres")]
/// takes_jobs::<sqlx::Postgres>();
/// ```
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "mysql"))))]
pub trait TransactionDatabase: sqlx::Database + private::Sealed {
    /// Inserts `jobs` on `conn`, inside whatever transaction it is in.
    #[doc(hidden)]
    fn insert_in<'a>(
        conn: &'a mut Self::Connection,
        jobs: &'a [NewJob],
    ) -> futures::future::BoxFuture<'a, Result<Vec<JobId>, StoreError>>;
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod private {
    pub trait Sealed {}
}

#[cfg(feature = "postgres")]
impl private::Sealed for sqlx::Postgres {}

#[cfg(feature = "postgres")]
impl TransactionDatabase for sqlx::Postgres {
    fn insert_in<'a>(
        conn: &'a mut sqlx::PgConnection,
        jobs: &'a [NewJob],
    ) -> futures::future::BoxFuture<'a, Result<Vec<JobId>, StoreError>> {
        Box::pin(crate::store::postgres::insert_in(conn, jobs))
    }
}

#[cfg(feature = "mysql")]
impl private::Sealed for sqlx::MySql {}

#[cfg(feature = "mysql")]
impl TransactionDatabase for sqlx::MySql {
    fn insert_in<'a>(
        conn: &'a mut sqlx::MySqlConnection,
        jobs: &'a [NewJob],
    ) -> futures::future::BoxFuture<'a, Result<Vec<JobId>, StoreError>> {
        Box::pin(crate::store::mysql::insert_in(conn, jobs))
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "mysql"))))]
impl Hopper {
    /// Wraps `tx`, a transaction the application began on the database
    /// this handle uses, so that jobs are dispatched in it: they exist if
    /// and only if it commits, through [`JobTransaction::commit`], which
    /// then records them and wakes this process's workers.
    ///
    /// ```no_run
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Ship;
    /// # impl Job for Ship {
    /// #     const TYPE: &'static str = "ship";
    /// #     type Payload = i64;
    /// #     async fn handle(&self, _: i64, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # #[cfg(feature = "postgres")]
    /// # async fn order(hopper: Hopper, pool: sqlx::PgPool) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut **tx).await?;
    /// tx.dispatch::<Ship>(42).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<'c, D: TransactionDatabase>(
        &self,
        tx: sqlx::Transaction<'c, D>,
    ) -> JobTransaction<'_, sqlx::Transaction<'c, D>> {
        JobTransaction::new(self, tx)
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<D: TransactionDatabase> JobTransaction<'_, sqlx::Transaction<'_, D>> {
    /// Dispatches a job of type `J` in this transaction (see
    /// [`Hopper::dispatch`]).
    ///
    /// ```no_run
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Ship;
    /// # impl Job for Ship {
    /// #     const TYPE: &'static str = "ship";
    /// #     type Payload = i64;
    /// #     async fn handle(&self, _: i64, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// let id = tx.dispatch::<Ship>(42).await?;
    /// tx.commit().await?;
    /// # let _ = id;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dispatch<J: Job>(&mut self, payload: J::Payload) -> Result<JobId, DispatchError> {
        self.dispatch_with::<J>(payload, DispatchOptions::default())
            .await
    }

    /// Dispatches a job of type `J` with `options` in this transaction
    /// (see [`Hopper::dispatch_with`]).
    ///
    /// ```no_run
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Ship;
    /// # impl Job for Ship {
    /// #     const TYPE: &'static str = "ship";
    /// #     type Payload = i64;
    /// #     async fn handle(&self, _: i64, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// tx.dispatch_with::<Ship>(42, DispatchOptions::new().queue("shipping")).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dispatch_with<J: Job>(
        &mut self,
        payload: J::Payload,
        options: DispatchOptions,
    ) -> Result<JobId, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, options)?;
        Ok(self.insert(vec![job]).await?[0])
    }

    /// Dispatches a job by type name with a JSON payload in this
    /// transaction (see [`Hopper::dispatch_json`]).
    ///
    /// ```no_run
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: hopper::Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// tx.dispatch_json("ship", &serde_json::json!(42), Default::default()).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dispatch_json(
        &mut self,
        job_type: &str,
        payload: &serde_json::Value,
        options: DispatchOptions,
    ) -> Result<JobId, DispatchError> {
        let job = self.hopper.prepare_json(job_type, payload, options)?;
        Ok(self.insert(vec![job]).await?[0])
    }

    /// Dispatches a job of type `J` per payload in this transaction
    /// (see [`Hopper::dispatch_many`]). Returns their ids in order.
    ///
    /// ```no_run
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Ship;
    /// # impl Job for Ship {
    /// #     const TYPE: &'static str = "ship";
    /// #     type Payload = i64;
    /// #     async fn handle(&self, _: i64, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// let ids = tx.dispatch_many::<Ship>([1, 2, 3], DispatchOptions::new()).await?;
    /// tx.commit().await?;
    /// assert_eq!(ids.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dispatch_many<J: Job>(
        &mut self,
        payloads: impl IntoIterator<Item = J::Payload>,
        options: DispatchOptions,
    ) -> Result<Vec<JobId>, DispatchError> {
        let jobs = self.prepare_many::<J>(payloads, &options)?;
        self.insert(jobs).await
    }

    async fn insert(&mut self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, DispatchError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = D::insert_in(&mut *self.tx, &jobs).await?;
        self.inserted(&ids, jobs);
        Ok(ids)
    }

    /// Commits the transaction; then records the jobs dispatched in it and
    /// wakes this process's workers. Returns their ids.
    ///
    /// ```no_run
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: hopper::Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let tx = hopper.transaction(pool.begin().await?);
    /// let ids = tx.commit().await?;
    /// assert!(ids.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit(self) -> Result<Vec<JobId>, StoreError> {
        self.tx.commit().await?;
        let ids = self.dispatched.ids.clone();
        self.dispatched.record(self.hopper);
        Ok(ids)
    }

    /// Rolls the transaction back: nothing dispatched in it exists.
    /// Dropping it does the same.
    ///
    /// ```no_run
    /// # async fn order<D: hopper::transaction::TransactionDatabase>(hopper: hopper::Hopper, pool: sqlx::Pool<D>) -> anyhow::Result<()> {
    /// let mut tx = hopper.transaction(pool.begin().await?);
    /// tx.dispatch_json("ship", &serde_json::json!(42), Default::default()).await?;
    /// tx.rollback().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.tx.rollback().await?)
    }
}

//! Dispatching a job in the application's own sqlx transaction on
//! PostgreSQL: the order row and the job that ships it commit together, or
//! neither exists.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop \
//!     cargo run -p hopper --features postgres --example transaction_postgres
//! ```

use std::time::Duration;

use anyhow::Context as _;
use hopper::{Hopper, Job, JobContext, JobResult, WorkerConfig};
use sqlx::PgPool;

/// Ships the order with this id.
struct ShipOrder;

impl Job for ShipOrder {
    const TYPE: &'static str = "ship_order";
    type Payload = i64;

    async fn handle(&self, order: i64, _ctx: JobContext) -> JobResult {
        println!("shipping order {order}");
        Ok(())
    }
}

/// Inserts an order in the transaction and returns its id.
async fn insert_order(conn: &mut sqlx::PgConnection, item: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO orders (item) VALUES ($1) RETURNING id")
        .bind(item)
        .fetch_one(conn)
        .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL to a PostgreSQL database")?;
    let pool = PgPool::connect(&url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, item TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    // Hopper keeps its tables in the same database (created on connect).
    let hopper = Hopper::builder().register(ShipOrder)?.connect(&url).await?;
    let workers = hopper.start(WorkerConfig::new(2))?;

    // Committed: the order and its job exist, and the workers are woken.
    let mut tx = hopper.transaction(pool.begin().await?);
    let order = insert_order(&mut tx, "teapot").await?;
    let job = tx.dispatch::<ShipOrder>(order).await?;
    tx.commit().await?;
    let outcome = hopper.wait_for(job, Duration::from_secs(10)).await?;
    println!("order {order}: job {job} {outcome:?}");

    // Rolled back (or dropped, or failed): neither exists.
    let mut tx = hopper.transaction(pool.begin().await?);
    let order = insert_order(&mut tx, "kettle").await?;
    let job = tx.dispatch::<ShipOrder>(order).await?;
    tx.rollback().await?;
    assert!(hopper.job(job).await?.is_none());
    println!("order {order} rolled back: job {job} was never stored");

    workers.stop().await?;
    Ok(())
}

//! Seeders: an application's code that fills a database with data for
//! development or a demo, run by `db:seed`.

use async_trait::async_trait;
use hopper::Hopper;

use crate::output::{Output, Progress};

/// Whatever a seeder's work can fail with.
pub type SeedError = Box<dyn std::error::Error + Send + Sync>;

/// One seeder. Implement it with [`async_trait`](crate::async_trait).
///
/// ```
/// use hopper_cli::seeder::{SeedContext, SeedError, Seeder};
///
/// struct Nothing;
///
/// #[hopper_cli::async_trait]
/// impl Seeder for Nothing {
///     fn name(&self) -> &'static str { "nothing" }
///     async fn run(&self, ctx: &SeedContext) -> Result<(), SeedError> {
///         ctx.progress().set_length(1);
///         ctx.progress().inc(1);
///         Ok(())
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// Nothing.run(&SeedContext::new(hopper)).await.unwrap();
/// # });
/// ```
#[async_trait]
pub trait Seeder: Send + Sync + 'static {
    /// The name `db:seed <name>` selects it by, in snake case.
    fn name(&self) -> &'static str;

    /// One line for `db:seed --help` and the seed report.
    fn description(&self) -> &'static str {
        ""
    }

    /// Does the seeding.
    async fn run(&self, ctx: &SeedContext) -> Result<(), SeedError>;
}

/// What a seeder works with: the job queue and a progress bar.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let ctx = hopper_cli::seeder::SeedContext::new(hopper);
/// assert!(ctx.hopper().jobs(&Default::default()).await.unwrap().jobs.is_empty());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SeedContext {
    hopper: Hopper,
    progress: Progress,
}

impl SeedContext {
    /// A context over `hopper` with a progress bar that draws nowhere (for tests).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let ctx = hopper_cli::seeder::SeedContext::new(hopper);
    /// # let _ = ctx;
    /// # });
    /// ```
    pub fn new(hopper: Hopper) -> Self {
        Self::with_progress(hopper, Output::buffer().progress(None, ""))
    }

    pub(crate) fn with_progress(hopper: Hopper, progress: Progress) -> Self {
        Self { hopper, progress }
    }

    /// The job queue.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let ctx = hopper_cli::seeder::SeedContext::new(hopper);
    /// let _ = ctx.hopper().registry();
    /// # });
    /// ```
    pub fn hopper(&self) -> &Hopper {
        &self.hopper
    }

    /// This seeder's progress bar: set its length, then count steps.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let ctx = hopper_cli::seeder::SeedContext::new(hopper);
    /// ctx.progress().set_length(3);
    /// ctx.progress().inc(3);
    /// # });
    /// ```
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

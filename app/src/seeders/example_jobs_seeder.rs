//! `example_jobs`: a few example jobs to watch the workers run.

use hopper::DispatchOptions;
use hopper_cli::seeder::{SeedContext, SeedError, Seeder};

use crate::jobs::email_job::EmailPayload;
use crate::jobs::image_processor_job::ImagePayload;
use crate::jobs::{EmailJob, ImageProcessorJob};

/// Dispatches three welcome emails and two image jobs (a resize and a
/// compress), so `queue:work` or `serve` has something to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExampleJobsSeeder;

/// The addresses the example emails go to.
pub const RECIPIENTS: [&str; 3] = ["ada@example.com", "grace@example.com", "edsger@example.com"];

#[hopper_cli::async_trait]
impl Seeder for ExampleJobsSeeder {
    fn name(&self) -> &'static str {
        "example_jobs"
    }

    fn description(&self) -> &'static str {
        "three welcome emails and two image jobs"
    }

    async fn run(&self, ctx: &SeedContext) -> Result<(), SeedError> {
        let progress = ctx.progress();
        progress.set_length(2);
        let emails = RECIPIENTS.iter().map(|to| EmailPayload {
            to: (*to).to_owned(),
            subject: "Welcome to Hopper!".to_owned(),
            body: "Thank you for joining us.".to_owned(),
        });
        ctx.hopper()
            .dispatch_many::<EmailJob>(emails, DispatchOptions::new())
            .await?;
        progress.inc(1);
        let images = ["resize", "compress"].map(|process_type| ImagePayload {
            image_url: "https://example.com/images/cat.png".to_owned(),
            user_id: 1,
            process_type: process_type.to_owned(),
        });
        ctx.hopper()
            .dispatch_many::<ImageProcessorJob>(images, DispatchOptions::new())
            .await?;
        progress.inc(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hopper::{JobFilter, JobState};

    use super::*;

    #[tokio::test]
    async fn dispatches_five_pending_jobs() {
        let hopper = hopper::Hopper::builder()
            .registry(crate::jobs::registry().unwrap())
            .connect("sqlite::memory:")
            .await
            .unwrap();
        ExampleJobsSeeder
            .run(&SeedContext::new(hopper.clone()))
            .await
            .unwrap();
        let jobs = hopper.jobs(&JobFilter::default()).await.unwrap().jobs;
        assert_eq!(jobs.len(), 5);
        assert!(jobs.iter().all(|job| job.state == JobState::Pending));
        assert_eq!(
            jobs.iter().filter(|j| j.job_type == "send_email").count(),
            3
        );
        assert_eq!(
            jobs.iter()
                .filter(|j| j.job_type == "process_image")
                .count(),
            2
        );
    }
}

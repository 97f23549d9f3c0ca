//! `process_image`: resizes or compresses a user's image.

use std::time::Duration;

use hopper::{Job, JobContext, JobError, JobResult};
use serde::{Deserialize, Serialize};

/// Processes one image. Retried up to 5 times, a minute apart; an unknown
/// process type or an image URL that is not http(s) fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImageProcessorJob;

/// What an [`ImageProcessorJob`] works on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePayload {
    /// Where the image is.
    pub image_url: String,
    /// Whose image it is.
    pub user_id: u64,
    /// What to do: `resize` or `compress`.
    pub process_type: String,
}

/// The size images are resized to fit, in pixels.
pub const RESIZE_BOX: (u32, u32) = (1024, 1024);
/// The quality images are compressed to, in percent.
pub const COMPRESS_QUALITY: u8 = 80;

impl Job for ImageProcessorJob {
    const TYPE: &'static str = "process_image";
    const MAX_ATTEMPTS: u32 = 5;
    type Payload = ImagePayload;

    async fn handle(&self, payload: ImagePayload, ctx: JobContext) -> JobResult {
        tracing::info!(
            job_id = ctx.id(),
            user_id = payload.user_id,
            image_url = %payload.image_url,
            process_type = %payload.process_type,
            "processing image"
        );
        let url = payload.image_url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(JobError::permanent(format!(
                "image_url must be an http(s) URL, got {url:?}"
            )));
        }
        match payload.process_type.as_str() {
            "resize" => resize_image(url, payload.user_id),
            "compress" => compress_image(url, payload.user_id),
            other => Err(JobError::permanent(format!(
                "unknown process type: {other} (expected resize or compress)"
            ))),
        }
    }

    fn retry_delay(&self, _attempt: u32) -> Duration {
        Duration::from_secs(60)
    }
}

/// Resizes the image to fit [`RESIZE_BOX`]. Stand-in: records the work.
fn resize_image(url: &str, user_id: u64) -> JobResult {
    let (width, height) = RESIZE_BOX;
    tracing::info!(user_id, image_url = url, width, height, "image resized");
    Ok(())
}

/// Compresses the image to [`COMPRESS_QUALITY`]. Stand-in: records the work.
fn compress_image(url: &str, user_id: u64) -> JobResult {
    tracing::info!(
        user_id,
        image_url = url,
        quality = COMPRESS_QUALITY,
        "image compressed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(process_type: &str) -> ImagePayload {
        ImagePayload {
            image_url: "https://example.com/cat.png".into(),
            user_id: 42,
            process_type: process_type.into(),
        }
    }

    #[tokio::test]
    async fn unknown_process_type_is_a_permanent_error() {
        let err = hopper::testing::perform(&ImageProcessorJob, payload("rotate"))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message().contains("unknown process type: rotate"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resize_and_compress_succeed() {
        for kind in ["resize", "compress"] {
            hopper::testing::perform(&ImageProcessorJob, payload(kind))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_url_that_is_not_http_is_a_permanent_error() {
        let mut payload = payload("resize");
        payload.image_url = "file:///etc/passwd".into();
        let err = hopper::testing::perform(&ImageProcessorJob, payload)
            .await
            .unwrap_err();
        assert!(err.is_permanent());
    }

    #[test]
    fn type_name_and_retry_policy() {
        assert_eq!(ImageProcessorJob::TYPE, "process_image");
        assert_eq!(ImageProcessorJob::MAX_ATTEMPTS, 5);
        assert_eq!(ImageProcessorJob.retry_delay(3), Duration::from_secs(60));
    }
}

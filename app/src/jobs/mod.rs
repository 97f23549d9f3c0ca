//! The application's background jobs, one file per job.
//!
//! To add a job by hand: create `src/jobs/<name>.rs` with a type that
//! implements [`hopper::Job`], then add one line to each of the three
//! blocks below, keeping every block sorted. The blocks are delimited by
//! `hopper:…:begin` / `hopper:…:end` comments so a generator can edit them.

// hopper:job-modules:begin
pub mod email_job;
pub mod image_processor_job;
// hopper:job-modules:end

// hopper:job-exports:begin
pub use email_job::EmailJob;
pub use image_processor_job::ImageProcessorJob;
// hopper:job-exports:end

use hopper::{Registry, RegistryError};

/// Registers every job of the application in `registry`.
///
/// Fails if two jobs share a type name.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    // hopper:job-registrations:begin
    registry.register(EmailJob)?;
    registry.register(ImageProcessorJob)?;
    // hopper:job-registrations:end
    Ok(())
}

/// A registry holding every job of the application.
///
/// ```
/// let registry = app::jobs::registry().unwrap();
/// assert!(registry.contains("send_email"));
/// assert!(registry.contains("process_image"));
/// ```
pub fn registry() -> Result<Registry, RegistryError> {
    let mut registry = Registry::new();
    register(&mut registry)?;
    Ok(registry)
}

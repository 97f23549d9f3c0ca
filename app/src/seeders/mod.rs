//! The application's seeders, run by `app console db:seed`.
//!
//! `app console make:seeder <Name>` adds one: it writes the file and adds a
//! line to each block below (delimited by `hopper:…:begin` / `hopper:…:end`
//! comments), keeping them sorted.

// hopper:seeder-modules:begin
pub mod example_jobs_seeder;
// hopper:seeder-modules:end

// hopper:seeder-exports:begin
pub use example_jobs_seeder::ExampleJobsSeeder;
// hopper:seeder-exports:end

use hopper_cli::seeder::Seeder;

/// Every seeder, in the order `db:seed` runs them.
///
/// ```
/// assert!(app::seeders::all().iter().any(|s| s.name() == "example_jobs"));
/// ```
pub fn all() -> Vec<Box<dyn Seeder>> {
    vec![
        // hopper:seeder-list:begin
        Box::new(ExampleJobsSeeder),
        // hopper:seeder-list:end
    ]
}

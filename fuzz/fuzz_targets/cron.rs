//! Cron expressions: any text either parses or is refused with an error;
//! a schedule's ticks from any instant are strictly later, in order, and
//! the latest tick at or before an instant is not after it. Nothing panics.
#![no_main]

use arbitrary::Arbitrary;
use chrono::DateTime;
use hopper::schedule::Schedule;
use hopper::{Job, JobContext, JobResult};
use libfuzzer_sys::fuzz_target;

struct Tick;
impl Job for Tick {
    const TYPE: &'static str = "tick";
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        Ok(())
    }
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    expression: &'a str,
    zone: u8,
    zone_name: &'a str,
    micros: i64,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(schedule) = Schedule::new::<Tick>("fuzz", input.expression, ()) else {
        return;
    };
    let _ = schedule.clone().time_zone(input.zone_name);
    let zone = ZONES[usize::from(input.zone) % ZONES.len()];
    let Ok(schedule) = schedule.time_zone(zone) else {
        panic!("known zone {zone} refused");
    };
    let Some(at) = DateTime::from_timestamp_micros(input.micros) else {
        return;
    };
    if let Some(next) = schedule.next_after(at) {
        assert!(next > at, "{:?}: {next} not after {at}", input.expression);
    }
    if let Some(latest) = schedule.latest_at_or_before(at) {
        assert!(latest <= at, "{:?}: {latest} after {at}", input.expression);
    }
    let ticks = schedule.upcoming(at, 3);
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "{:?}: {ticks:?}",
        input.expression
    );
    let _ = hopper::schedule::local_time(at, zone);
});

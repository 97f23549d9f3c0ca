//! Payload decoding and dynamic dispatch: any type name and any bytes as a
//! payload are either refused with an error or accepted as a job whose
//! stored payload decodes as its type. Nothing panics.
#![no_main]

use std::sync::OnceLock;

use hopper::{DispatchError, DispatchOptions, Hopper, Job, JobContext, JobResult};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

const LIMIT: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Mail {
    to: String,
    #[serde(default)]
    cc: Vec<String>,
    attempts: Option<u32>,
}

#[derive(Serialize, Deserialize)]
enum Order {
    Created { id: u64, total: f64 },
    Cancelled(String),
    Forgotten,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
enum Event {
    Signup { user: i64 },
    Batch { items: Vec<(u8, Option<char>)> },
}

struct MailJob;
impl Job for MailJob {
    const TYPE: &'static str = "mail";
    type Payload = Mail;
    async fn handle(&self, _: Mail, _: JobContext) -> JobResult {
        Ok(())
    }
}

struct OrderJob;
impl Job for OrderJob {
    const TYPE: &'static str = "order";
    type Payload = Order;
    async fn handle(&self, _: Order, _: JobContext) -> JobResult {
        Ok(())
    }
}

struct EventJob;
impl Job for EventJob {
    const TYPE: &'static str = "event";
    type Payload = Event;
    async fn handle(&self, _: Event, _: JobContext) -> JobResult {
        Ok(())
    }
}

struct UnitJob;
impl Job for UnitJob {
    const TYPE: &'static str = "unit";
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        Ok(())
    }
}

fn hopper() -> &'static Hopper {
    static HOPPER: OnceLock<Hopper> = OnceLock::new();
    HOPPER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let store = runtime
            .block_on(hopper::store::open("sqlite::memory:"))
            .expect("an in-memory store");
        Hopper::builder()
            .register(MailJob)
            .and_then(|b| b.register(OrderJob))
            .and_then(|b| b.register(EventJob))
            .and_then(|b| b.register(UnitJob))
            .expect("distinct job types")
            .max_payload_bytes(LIMIT)
            .build(store)
    })
}

const TYPES: [&str; 6] = ["mail", "order", "event", "unit", "ghost", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let hopper = hopper();
    // Half the inputs name a known type; the rest carry their own name up to a NUL.
    let (job_type, payload) = if selector & 1 == 0 {
        (TYPES[usize::from(selector >> 1) % TYPES.len()].to_owned(), rest)
    } else {
        let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[..split]).into_owned();
        (name, rest.get(split + 1..).unwrap_or_default())
    };

    // The worker's decoding: the registry checks stored text as its type.
    if let Ok(text) = std::str::from_utf8(payload) {
        let _ = hopper.registry().validate(&job_type, text);
    }

    // Dynamic dispatch: JSON in, a checked row out, or a clear refusal.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    match hopper.prepare_json(&job_type, &value, DispatchOptions::new()) {
        Ok(job) => {
            assert_eq!(job.job_type, job_type);
            assert!(job.payload.len() <= LIMIT, "over the limit yet accepted");
            assert!(
                hopper.registry().validate(&job_type, &job.payload).is_ok(),
                "accepted payload does not decode: {}",
                job.payload
            );
        }
        Err(DispatchError::TooLarge { size, limit, .. }) => assert!(size > limit),
        Err(error) => {
            let _ = error.to_string();
        }
    }
});

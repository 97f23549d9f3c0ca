//! Autoscaling: sizes each autoscaled queue's limit from its backlog, and
//! publishes every queue's concurrency for the dashboard.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Concurrency, Shared};
use crate::service::pause;
use crate::store::{ConcurrencyReport, StoreError, WorkerConcurrency};

/// What the autoscaler knows of one queue when it decides.
#[derive(Clone, Copy, Debug)]
struct Load {
    bounds: Concurrency,
    /// The current limit.
    limit: usize,
    /// Jobs running now.
    used: usize,
    /// Jobs running, claimed and waiting here, and due in the database.
    demand: usize,
}

/// Chooses every queue's limit. A queue grows at once to meet its demand
/// (within its bounds); it shrinks to its demand only once its demand has
/// stayed below its limit for `scale_down_after` on the clock (`needed_at`
/// holds, per queue, when it last needed its whole limit). Under `cap`, a
/// queue keeps the slots its running jobs hold (so the cap holds for running
/// jobs too), and the free slots go one at a time to the queue with the
/// fewest that wants more.
fn plan(
    loads: &[Load],
    needed_at: &mut [DateTime<Utc>],
    cap: Option<usize>,
    now: DateTime<Utc>,
    scale_down_after: Duration,
) -> Vec<usize> {
    let wishes: Vec<usize> = loads
        .iter()
        .zip(needed_at.iter_mut())
        .map(|(load, needed_at)| {
            let target = load.demand.clamp(load.bounds.min, load.bounds.max);
            if target >= load.limit {
                *needed_at = now;
                target
            } else if now >= crate::clock::add(*needed_at, scale_down_after) {
                target
            } else {
                load.limit
            }
        })
        .collect();
    let Some(cap) = cap else {
        return wishes;
    };
    let mut chosen: Vec<usize> = wishes
        .iter()
        .zip(loads)
        .map(|(wish, load)| (*wish).min(load.used).max(load.bounds.min))
        .collect();
    let mut left = cap.saturating_sub(chosen.iter().sum());
    while left > 0 {
        let neediest = chosen
            .iter()
            .zip(&wishes)
            .enumerate()
            .filter(|(_, (chosen, wish))| chosen < wish)
            .min_by_key(|(_, (chosen, _))| **chosen)
            .map(|(index, _)| index);
        let Some(index) = neediest else {
            break;
        };
        chosen[index] += 1;
        left -= 1;
    }
    chosen
}

/// Sizes autoscaled queues every scale interval, and publishes every
/// queue's concurrency for the dashboard when it changes and every third of
/// a lease, until the pool stops claiming.
pub(super) async fn scale(shared: Arc<Shared>) {
    let scalable = shared
        .slots
        .iter()
        .any(|slots| slots.bounds.min < slots.bounds.max);
    let mut needed_at = vec![shared.hopper.now(); shared.slots.len()];
    let mut published: Option<DateTime<Utc>> = None;
    loop {
        let now = shared.hopper.now();
        let mut changed = false;
        if scalable {
            match shared.hopper.store().queue_stats(now).await {
                Ok(stats) => {
                    let loads: Vec<Load> = shared
                        .slots
                        .iter()
                        .map(|slots| {
                            let due = stats
                                .iter()
                                .find(|s| s.queue == slots.queue && !s.paused)
                                .map_or(0, |s| usize::try_from(s.due).unwrap_or(usize::MAX));
                            let counts = slots.counts();
                            Load {
                                bounds: slots.bounds,
                                limit: counts.limit,
                                used: counts.used,
                                demand: counts
                                    .used
                                    .saturating_add(slots.buffered.load(Ordering::SeqCst))
                                    .saturating_add(due),
                            }
                        })
                        .collect();
                    let limits = plan(
                        &loads,
                        &mut needed_at,
                        shared.config.max_total,
                        now,
                        shared.config.scale_down_after,
                    );
                    for ((slots, load), limit) in shared.slots.iter().zip(&loads).zip(limits) {
                        if limit != load.limit {
                            tracing::info!(
                                queue = %slots.queue,
                                from = load.limit,
                                to = limit,
                                demand = load.demand,
                                "concurrency changed"
                            );
                            slots.set_limit(limit);
                            changed = true;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reading queue backlogs for autoscaling failed")
                }
            }
        }
        let refresh = crate::clock::sub(now, shared.config.lease / 3);
        if changed || published.is_none_or(|at| at <= refresh) {
            match publish(&shared, now).await {
                Ok(()) => {
                    published = Some(now);
                    changed = true;
                }
                Err(error) => tracing::warn!(%error, "publishing worker concurrency failed"),
            }
        }
        // Waiters on the pool's activity see new limits and published rows.
        if changed {
            shared.bump();
        }
        // A pool of fixed queues only has its rows to refresh.
        let next = if scalable {
            shared.config.scale_interval
        } else {
            shared.config.lease / 3
        };
        if !pause(&shared.stops.claiming, next).await {
            break;
        }
    }
}

/// Writes this pool's concurrency per queue, live for one lease.
async fn publish(shared: &Shared, now: DateTime<Utc>) -> Result<(), StoreError> {
    // The rows are the dashboard's view, live for one lease on this host's
    // clock; job leases are measured on the database's.
    let expires_at = crate::clock::add(now, shared.config.lease);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let rows: Vec<WorkerConcurrency> = shared
        .slots
        .iter()
        .map(|slots| {
            let counts = slots.counts();
            WorkerConcurrency {
                worker: shared.worker_id.clone(),
                queue: slots.queue.clone(),
                concurrency: count(counts.limit),
                min: count(slots.bounds.min),
                max: count(slots.bounds.max),
                running: count(slots.running.load(Ordering::SeqCst)),
                expires_at,
            }
        })
        .collect();
    shared
        .hopper
        .store()
        .publish_concurrency(ConcurrencyReport {
            worker: &shared.worker_id,
            rows: &rows,
            now,
        })
        .await
}

/// Removes this pool's concurrency rows at stop.
pub(super) async fn withdraw(shared: &Shared) {
    let now = shared.hopper.now();
    match shared
        .hopper
        .store()
        .publish_concurrency(ConcurrencyReport {
            worker: &shared.worker_id,
            rows: &[],
            now,
        })
        .await
    {
        Ok(()) => {}
        Err(error) => tracing::warn!(%error, "removing this pool's concurrency rows failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(min: usize, max: usize, limit: usize, demand: usize) -> Load {
        Load {
            bounds: Concurrency { min, max },
            limit,
            used: 0,
            demand,
        }
    }

    fn busy(mut load: Load, used: usize) -> Load {
        load.used = used;
        load
    }

    #[test]
    fn a_backlog_grows_a_queue_at_once_up_to_its_maximum() {
        let now = Utc::now();
        let mut needed = [now];
        let limits = plan(
            &[load(1, 8, 1, 5)],
            &mut needed,
            None,
            now,
            Duration::from_secs(30),
        );
        assert_eq!(limits, [5]);
        let limits = plan(
            &[load(1, 8, 5, 50)],
            &mut needed,
            None,
            now,
            Duration::from_secs(30),
        );
        assert_eq!(limits, [8]);
    }

    #[test]
    fn an_idle_queue_shrinks_only_after_the_cool_down_and_not_below_its_minimum() {
        let start = Utc::now();
        let mut needed = [start];
        let later = |secs| crate::clock::add(start, Duration::from_secs(secs));
        let cool = Duration::from_secs(30);
        assert_eq!(
            plan(&[load(2, 8, 8, 0)], &mut needed, None, later(29), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 0)], &mut needed, None, later(30), cool),
            [2]
        );
        // Demand at the limit again restarts the wait.
        let mut needed = [start];
        assert_eq!(
            plan(&[load(2, 8, 8, 8)], &mut needed, None, later(20), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 3)], &mut needed, None, later(40), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 3)], &mut needed, None, later(50), cool),
            [3]
        );
    }

    #[test]
    fn the_total_cap_shares_free_slots_out_in_turn_and_keeps_fixed_queues() {
        let now = Utc::now();
        let mut needed = [now; 3];
        let loads = [load(3, 3, 3, 0), load(1, 10, 1, 100), load(1, 10, 1, 100)];
        let limits = plan(&loads, &mut needed, Some(10), now, Duration::from_secs(30));
        assert_eq!(limits, [3, 4, 3]);
        assert!(limits.iter().sum::<usize>() <= 10);
    }

    #[test]
    fn under_the_cap_running_jobs_keep_their_slots_and_freed_ones_go_to_the_neediest() {
        let now = Utc::now();
        let mut needed = [now; 2];
        let cool = Duration::from_secs(30);
        let full = [busy(load(1, 4, 4, 10), 4), busy(load(1, 4, 1, 6), 1)];
        assert_eq!(plan(&full, &mut needed, Some(5), now, cool), [4, 1]);
        let one_done = [busy(load(1, 4, 4, 10), 3), busy(load(1, 4, 1, 6), 1)];
        assert_eq!(plan(&one_done, &mut needed, Some(5), now, cool), [3, 2]);
    }
}

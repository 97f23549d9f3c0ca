//! The storage contract: one behavioural suite, run against every database.
//!
//! Every case in `cases.rs` runs once per backend listed at the bottom, each
//! on a fresh database. Adding a database means adding one line there.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod backends;
mod batch_cases;
mod bulk_cases;
mod cases;
mod flow_cases;
mod flow_usage_cases;
mod group_commit_cases;
mod paging_cases;
mod pool_cases;
mod results_cases;
mod sequence_cases;
mod store_cases;
mod transaction_cases;
mod workflow_cases;

/// Declares, for one backend, a test per case.
macro_rules! contract {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = crate::backends::$backend().await;
                    crate::cases::$case(&db).await;
                }
            )*
        }
    };
}

/// Declares the whole contract for each backend named.
macro_rules! contract_for {
    ($($backend:ident),* $(,)?) => {
        $(contract!($backend:
            a_dispatched_job_is_processed_and_finished,
            dispatches_made_at_once_each_get_their_own_stored_job,
            a_shared_commit_that_fails_fails_every_caller_in_it_and_stores_none,
            a_failing_job_is_retried_after_its_delay_then_succeeds,
            a_job_that_uses_up_its_attempts_fails_with_every_error_kept,
            a_permanent_error_fails_the_job_after_one_attempt,
            a_panicking_job_fails_alone_and_the_workers_go_on,
            a_job_past_its_timeout_is_cancelled_and_counted_as_a_failed_attempt,
            a_delayed_job_does_not_run_before_its_time,
            higher_priority_jobs_run_first,
            named_queues_run_only_where_a_pool_works_them,
            a_graceful_stop_lets_a_running_job_finish,
            a_stop_past_its_deadline_hands_the_job_back_without_counting_the_attempt,
            an_unregistered_type_fails_only_its_own_job,
            a_stored_payload_that_no_longer_fits_fails_permanently,
            a_dynamic_dispatch_is_checked_against_the_payload_type,
            a_payload_over_the_size_limit_is_refused,
            bulk_dispatch_stores_every_job_in_order,
            a_handler_can_ask_for_its_own_retry_delay,
            pending_jobs_cancel_and_failed_jobs_retry,
            pruning_deletes_ended_jobs_by_age_and_state,
            an_outcome_from_a_rescued_claim_cannot_overwrite_the_new_owner,
            an_outcome_from_an_undone_claim_cannot_land_on_the_same_workers_next_claim,
            releasing_hands_back_only_the_claims_named,
            a_claim_whose_handler_never_started_gets_its_attempt_back,
            leases_are_measured_on_the_database_clock,
            a_rescued_job_on_its_last_attempt_fails,
            extending_leases_renews_only_the_claims_named_by_their_holder,
            the_next_due_time_is_the_earliest_pending_job_of_the_queue,
            handlers_reach_shared_state_and_missing_state_is_a_permanent_error,
            a_unique_key_stores_one_live_job,
            a_paused_queue_is_not_claimed_from_until_resumed,
            throughput_counts_finished_and_failed_jobs_per_minute,
            a_job_can_be_deleted_unless_it_is_running,
            one_holder_at_a_time_has_a_lease_until_it_expires_or_is_dropped,
            a_scaled_queue_grows_under_a_backlog_and_shrinks_once_idle_on_the_clock,
            autoscaled_queues_share_the_total_cap,
            a_claim_the_pool_never_received_expires_while_the_pool_is_busy,
            a_maintenance_leader_whose_clock_runs_ahead_rescues_no_live_job,
            a_run_whose_claim_was_lost_is_cancelled,
            a_panic_outside_the_handler_still_ends_the_run,
            hooks_fire_once_per_event_and_their_failures_change_no_outcome,
            an_alert_incident_opens_once_and_resolves_once,
            instances_checking_at_once_record_each_change_once,
            a_webhook_receives_one_firing_and_one_resolution_per_incident,
            failure_rate_and_oldest_pending_rules_read_the_database,
            a_schedule_tick_left_untaken_fires_until_a_later_tick_is_taken,
            only_the_monitor_holding_the_alerts_lease_checks,
            a_retry_while_another_live_job_holds_the_unique_key_is_refused_clearly,
            every_failed_job_of_a_type_is_retried_at_once_skipping_held_unique_keys,
            retrying_every_failed_job_works_through_batches,
            nul_characters_are_refused_in_names_and_kept_inside_payloads_and_errors,
            a_job_type_renamed_while_jobs_wait_fails_clearly_and_retries_once_back,
            a_stored_payload_that_is_not_json_fails_permanently,
            instances_migrating_the_same_database_at_once_all_succeed,
            a_job_dispatched_in_a_transaction_exists_once_it_commits_and_wakes_the_workers,
            a_snoozed_job_runs_again_later_without_using_an_attempt,
            a_running_job_cancelled_from_anywhere_ends_cancelled_and_its_pool_goes_on,
            a_running_job_cancelled_by_another_process_stops_at_once_where_the_database_notifies,
            a_cancelled_running_job_whose_worker_died_is_rescued_as_cancelled,
            a_running_job_cancelled_just_before_a_stop_ends_cancelled_not_pending,
            a_queue_limit_holds_across_pools_and_lifts,
            a_per_key_limit_holds_across_pools_and_a_full_key_blocks_no_other,
            a_fair_queue_serves_every_key_in_turn,
            a_rate_limit_holds_in_every_window,
            a_rate_limit_under_a_backlog_starts_its_rate_over_thirty_seconds,
            a_per_key_rate_limits_each_key_alone,
            a_keyed_job_retried_after_its_key_went_idle_still_runs,
            keys_that_differ_only_in_case_or_accents_are_partitions_of_their_own,
            a_keyed_claim_passes_keys_that_ran_dry_to_reach_a_due_job,
            a_server_store_halves_claims_ahead_only_from_queues_with_flow_settings,
            a_per_key_limit_takes_jobs_oldest_first_and_a_window_of_one_full_key_holds_no_other_back,
            a_flow_claim_passes_over_a_job_another_transaction_holds,
            idle_partition_keys_are_pruned_and_come_back_with_their_next_job,
            flow_settings_round_trip_and_nonsense_is_refused,
            bulk_dispatches_sharing_keys_in_opposite_orders_do_not_deadlock,
            flow_usage_counts_running_jobs_starts_and_jobs_a_queue_limit_holds_back,
            flow_usage_shows_the_busiest_keys_and_the_jobs_their_limits_hold_back,
            migrating_a_migrated_store_again_changes_nothing,
            inserting_no_jobs_stores_nothing,
            inserted_jobs_get_ids_in_order_and_a_live_unique_key_stands_for_its_job,
            a_jobs_trace_context_comes_back_with_its_claim,
            a_stored_job_reads_back_whole_and_a_missing_one_is_none,
            listing_filters_by_state_queue_type_and_id_newest_first,
            queue_stats_count_due_pending_jobs_and_show_paused_queues,
            a_paused_queue_gives_no_claims_while_other_queues_go_on,
            throughput_counts_jobs_ended_per_minute_since_a_time,
            outcomes_count_jobs_finished_and_failed_per_type_since_a_time,
            deleting_removes_a_job_unless_it_is_started,
            cancelling_ends_only_a_pending_job,
            retrying_puts_back_only_a_failed_or_cancelled_job,
            pruning_deletes_old_jobs_of_one_state_up_to_the_limit,
            pruning_alerts_deletes_old_resolved_incidents_up_to_the_limit,
            a_schedule_tick_is_taken_once_and_never_behind_a_later_one,
            schedule_states_show_each_schedules_latest_tick_and_its_job,
            a_schedules_runs_are_recorded_once_each_newest_first_and_pruned_with_their_jobs,
            publishing_concurrency_replaces_the_workers_own_rows_and_drops_expired_ones,
            job_counts_per_queue_and_state_leave_out_zero_counts,
            paging_through_250_jobs_by_100_lists_every_job_once_newest_first,
            paging_is_stable_while_jobs_are_dispatched_between_pages,
            filters_combine_with_the_cursor,
            a_page_size_out_of_range_is_refused,
            job_counts_per_type_and_state_match_the_dispatched_jobs,
            a_store_that_listens_hears_of_a_job_another_instance_inserts,
            a_store_that_tells_of_endings_names_every_job_a_large_batch_ended,
            an_output_is_stored_with_the_job_and_wait_for_returns_it_in_another_process,
            wait_for_times_out_clearly_and_tells_failed_cancelled_and_missing_jobs,
            an_output_over_the_size_limit_or_not_json_is_refused_to_the_handler,
            progress_is_recorded_live_throttled_and_kept_across_a_retry,
            a_rescued_runs_progress_and_output_do_not_land,
            a_batch_of_completions_stores_each_finished_jobs_own_output,
            a_batch_fires_success_and_complete_once_after_every_job_finished,
            a_job_failing_for_good_fires_failure_once_then_complete_but_never_success,
            an_open_batch_waits_for_its_seal_and_its_jobs_can_add_to_it,
            cancelling_deleting_and_retrying_a_batchs_jobs_move_its_counts,
            a_batchs_last_two_jobs_ending_at_once_in_two_processes_fire_each_callback_once,
            a_job_rescued_on_its_last_attempt_counts_as_failed_in_its_batch,
            completed_batches_are_pruned_and_open_or_running_ones_kept,
            bulk_actions_apply_to_every_job_a_filter_matches_and_skip_the_rest,
            a_workflow_runs_each_step_after_its_dependencies_and_fans_in_once,
            a_failed_step_cancels_its_dependents_and_an_any_outcome_step_still_runs,
            two_dependencies_ending_at_once_in_two_processes_release_their_dependent_once,
            a_wide_fan_out_is_released_in_bounded_steps_each_dependent_once,
            fan_outs_ending_in_one_step_are_each_released_whole_once,
            a_large_bulk_insert_keeps_every_job_whole_and_in_order,
            a_sequences_jobs_run_one_at_a_time_in_dispatch_order_and_keys_in_parallel,
            a_failed_job_holds_its_sequence_until_skipped_or_retried_unless_it_lets_it_go_on,
            two_processes_dispatching_into_one_sequence_at_once_form_one_line,
            deleting_a_pending_job_others_wait_on_ends_their_wait,
            a_sequence_that_cannot_be_kept_is_refused_and_stores_nothing,
            a_workflow_that_cannot_be_one_is_refused_and_stores_nothing,
        );)*
    };
}

contract_for!(sqlite);

#[cfg(feature = "postgres")]
contract_for!(postgres);
#[cfg(feature = "mysql")]
contract_for!(mysql);

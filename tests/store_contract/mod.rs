//! The `Store` contract: every operation of the trait, as cases any backend must pass. Each case is
//! `async fn(Arc<dyn Store>)` on a fresh, empty store, speaks only through the trait, and uses
//! explicit timestamps. [`contract!`] makes one `#[tokio::test]` per case in a module named after the
//! backend.

#![allow(dead_code)] // support helpers not every case uses

pub mod support;

pub mod act;
pub mod changes;
pub mod cluster;
pub mod email;
pub mod journal;
pub mod misc;
pub mod outbox;
pub mod people;
pub mod plugin_decisions;
pub mod plugin_kv;
pub mod stories;
pub mod views;

/// Keeps a backend's store alive for one test (a temporary directory, a scratch schema...), and
/// cleans it up when dropped.
pub struct Guard(Box<dyn std::any::Any>);

impl Guard {
    pub fn new(keep: impl std::any::Any) -> Guard {
        Guard(Box::new(keep))
    }
}

/// `contract!(backend, open())` runs every case on `backend`: `open()` is an async fn returning a
/// fresh `(Arc<dyn Store>, Guard)`, called once per case.
macro_rules! contract {
    ($backend:ident, $open:expr) => {
        contract!(@cases $backend, $open;
            stories::story,
            stories::hardening_story,
            journal::journal_appends_in_order,
            journal::apply_takes_effect_once,
            journal::alerts_resend_refire_ack_resolve,
            journal::one_batch_many_alerts_per_key,
            journal::ticket_numbers_follow_openings,
            journal::reopen_within_window_new_ticket_after,
            journal::lease_expiry,
            journal::sender_updates_change_severity_and_add_notes,
            act::act_ack_note_assign_resolve,
            act::act_refusals,
            act::get_ticket_by_id_and_number,
            views::timeline_visibility,
            views::search_words_and_prefixes,
            views::feed_replay,
            views::list_filters_and_paging,
            views::stats_count,
            outbox::outbox_plans_deliveries,
            outbox::outbox_sent_records_thread_root,
            outbox::outbox_send_records_not_searched,
            outbox::outbox_complete_many_in_order,
            outbox::outbox_failed_dead_retry,
            outbox::outbox_skipped,
            outbox::outbox_digest,
            outbox::business_hours_hold,
            email::email_scheduled_when_offline,
            email::email_not_scheduled_when_online,
            email::email_deferred_then_sent,
            email::email_batched,
            email::email_cancelled_failed_gave_up,
            people::presence_per_source,
            people::unsubscribes,
            people::silences_lifecycle,
            people::silences_full,
            people::silenced_firing,
            misc::dropped_alerts,
            misc::dropped_keeps_the_last_thousand,
            misc::plugin_failures,
            plugin_decisions::plugin_decisions_are_recorded_when_news,
            misc::dead_journal_delete_and_retry,
            misc::dead_journal_notice_not_renoticed,
            misc::purge_resolved_tickets,
            misc::session_generations,
            misc::email_replies,
            cluster::leases_one_holder_at_a_time,
            cluster::leases_race_has_one_winner,
            cluster::writes_under_a_lost_lease_are_refused,
            cluster::instances_heartbeat_and_are_forgotten,
            plugin_kv::plugin_kv_saves_expires_and_keeps_plugins_apart,
            plugin_kv::plugin_kv_a_keys_last_change_in_a_write_wins,
            changes::changes_are_stored_listed_and_paged,
            changes::changes_land_on_open_tickets_of_their_system,
            changes::tickets_opening_within_the_window_show_earlier_changes,
            changes::changes_are_purged_with_resolved_tickets,
        );
    };
    (@cases $backend:ident, $open:expr; $($module:ident :: $case:ident),+ $(,)?) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _guard) = $open.await;
                    $crate::store_contract::$module::$case(store).await;
                }
            )+
        }
    };
}

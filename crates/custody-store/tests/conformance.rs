//! The Store conformance suite: every contract clause of `custody_store::Store`, run
//! unchanged on SQLite and on a real PostgreSQL server (each test in its own database).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "conformance/access_log.rs"]
mod access_log;
#[path = "conformance/appends.rs"]
mod appends;
#[path = "conformance/blobs.rs"]
mod blobs;
mod common;
#[path = "conformance/cosignatures.rs"]
mod cosignatures;
#[path = "conformance/history/mod.rs"]
mod history;
#[path = "conformance/log_keys.rs"]
mod log_keys;
#[path = "conformance/search.rs"]
mod search;
#[path = "conformance/state.rs"]
mod state;
#[path = "conformance/storage.rs"]
mod storage;
#[path = "conformance/tampering.rs"]
mod tampering;

use common::{
    Backend, check_checkpoint_chain, event, json, log_key, log_key_from_seed, now, open_with,
    random_seed, raw_execute, recompute,
};
use custody_store::{Expect, SqlStore, StateWrite};

use access_log::*;
use appends::*;
use blobs::*;
use cosignatures::*;
use history::*;
use log_keys::*;
use search::*;
use state::*;
use storage::*;
use tampering::*;

/// Generates one `#[tokio::test]` per suite function per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

conformance!(
    a_new_log_has_a_signed_empty_checkpoint,
    appends_get_dense_indices_and_provable_inclusion,
    concurrent_appenders_form_one_linear_log_with_group_commit,
    two_writers_on_one_database_never_fork,
    state_changes_commit_with_their_events,
    a_failed_precondition_writes_nothing_and_spares_the_batch,
    idempotent_appends_replay_and_conflicts_are_refused,
    bad_requests_are_refused_and_change_nothing,
    reopening_continues_the_same_log,
    the_ledger_is_never_recreated_or_opened_with_another_key,
    the_schema_refuses_to_rewrite_history,
    tampering_is_found_by_open_and_check,
    faults_anywhere_leave_log_and_state_agreeing,
    a_read_only_store_refuses_appends,
    group_commit_respects_its_batch_bound,
    a_record_written_twice_in_a_batch_keeps_the_later_write,
    the_access_log_is_append_only_and_ordered,
    the_access_log_keeps_every_row_of_a_batch_of_any_size,
    the_access_log_keeps_each_principals_latest_use,
    a_null_write_removes_a_record_with_its_event,
    the_index_finds_every_entry_naming_its_terms,
    an_older_ledger_is_indexed_when_a_writer_opens_it,
    a_log_rolled_back_under_a_running_store_turns_it_read_only,
    a_checkpoint_file_that_cannot_be_written_is_said_and_catches_up,
    a_fork_under_running_stores_is_refused,
    a_head_moved_without_the_log_key_is_refused,
    a_head_size_moved_without_its_checkpoint_fails_the_check,
    a_log_rolled_back_while_stopped_is_refused_at_open,
    a_log_forked_while_stopped_is_refused_at_open,
    a_head_moved_back_over_its_rows_is_refused_and_put_back,
    the_checkpoint_file_is_a_lower_bound_and_recreated_when_missing,
    opening_beside_a_busy_writer_is_never_a_rollback,
    the_head_checkpoint_signature_is_checked_at_open,
    every_stored_checkpoint_signature_is_checked,
    every_connection_commits_durably,
    storage_faults_are_transient,
    cosignatures_are_kept_once_per_witness_and_never_rewritten,
    blobs_are_content_addressed_and_kept_once,
    bad_blobs_are_refused_and_change_nothing,
    blobs_are_write_once_and_damage_is_found,
    the_log_key_is_handed_over_with_both_signatures_and_followed_at_open,
    a_hand_over_not_naming_itself_is_refused_and_writes_nothing,
    the_index_only_finds_hand_overs_the_ledger_proves,
    a_hand_over_checkpoint_without_both_signatures_is_refused,
    a_writer_still_on_the_old_key_is_refused_as_retired,
);

async fn create(backend: Backend) -> (common::TestDb, SqlStore, [u8; 32]) {
    let db = backend.fresh().await;
    let seed = random_seed();
    let store = SqlStore::create(&db.location, log_key_from_seed(seed), now())
        .await
        .unwrap();
    (db, store, seed)
}

fn write(kind: &str, key: &str, value: serde_json::Value, expect: Expect) -> StateWrite {
    StateWrite {
        kind: kind.into(),
        key: key.into(),
        value: json(value),
        expect,
    }
}

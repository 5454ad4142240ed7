//! Global invariants of the coordinator, one per file, each checked after every step of random
//! operation sequences (`simulation.rs`) and citing the section of the semantics it enforces;
//! plus determinism: the same sequence gives the same effects, byte for byte.

#[path = "../support/mod.rs"]
mod support;

mod simulation;

use ferrata_core::{BranchId, BranchOutcome, CoordinatorConfig, Effect, Reply, TransactionId};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};
use proptest::prelude::*;
use simulation::*;
use support::*;

mod determinism;
mod ended_sessions_leave;
mod log_replays_to_state;
mod one_branch_at_a_time;
mod phase2_follows_status;
mod replies_once;
mod rows_have_one_owner;
mod timeouts_fire;

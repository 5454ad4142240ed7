//! `ferrata-core`: the sans-IO transaction coordinator. Commands go in (requests, phase-2
//! results, timer ticks), effects come out (records to persist, replies, branch requests).
//! No sockets, files, threads or clocks: time is an input.

pub mod model;

pub use model::{BranchSession, GlobalSession, Record, SessionTable, StoredTransaction};

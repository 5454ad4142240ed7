//! Shared pieces of the purchase demo's services: the HTTP bodies they exchange ([`api`]), the
//! process plumbing each binary repeats ([`service`]) and what the AT participants share
//! ([`at`]). See README.md for the walkthrough.

pub mod api;
pub mod at;
pub mod service;

pub use service::{ActionError, one_row};

//! Shared pieces of the purchase demo's four services: the HTTP bodies they exchange ([`api`])
//! and the process plumbing each binary repeats ([`service`]). See README.md for the walkthrough.

pub mod api;
pub mod service;

pub use service::{ActionError, one_row};

//! Tessera's integration tests: one binary, one harness ([`harness::TestApp`]).
//!
//! Every test talks to the real HTTP server on a random port, over a real SQLite file or a real
//! PostgreSQL schema; most run on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod git_http;
mod harness;

mod agents_command;
mod agents_v0;
mod agents_v1;
mod api_access;
mod api_audit;
mod api_auth;
mod api_integrations;
mod api_rate_limits;
mod api_service_accounts;
mod api_system;
mod cli;
mod queue;
mod store;

//! # booking
//!
//! A booking backend on PostgreSQL that makes double bookings impossible and
//! keeps every user's data private by construction. A tour:
//!
//! - [`config`]: the environment, checked at start.
//! - [`pg`]: the private PostgreSQL cluster used when no `DATABASE_URL` is set.
//! - `migrations/` (compiled in by [`db::migrate`]): the schema. The invariants
//!   live there: `EXCLUDE` constraints stop overlaps, RLS decides who sees what.
//! - [`db`]: one transaction per request, opened already scoped to the caller
//!   (role `authenticated` + JWT claims, set locally); one module per table.
//! - [`auth`]: JWT verification and minting; [`domain`]: types valid by
//!   construction (phone numbers, periods, opening hours).
//! - [`http`]: the REST API (problem+json errors, OpenAPI); [`startup`]: wiring.

pub mod calendar;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod identity;
pub mod pg;
pub mod simulate;
pub mod startup;
pub mod telemetry;
pub mod webhooks;

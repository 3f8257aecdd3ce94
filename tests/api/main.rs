//! The one integration-test binary: real PostgreSQL, real HTTP.

mod helpers;

mod auth_tokens;
mod bookings;
mod cluster;
mod idempotency;
mod migrations;
mod races;
mod rls;
mod signin;
mod simulate;

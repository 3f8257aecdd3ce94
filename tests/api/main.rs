//! The one integration-test binary: real PostgreSQL, real HTTP.

mod helpers;

mod attacks;
mod auth_tokens;
mod availability;
mod bookings;
mod cluster;
mod external;
mod faults;
mod flood;
mod idempotency;
mod migrations;
mod openapi;
mod ops;
mod parsers;
mod races;
mod resources;
mod rls;
mod signin;
mod simulate;
mod strict;
mod supabase;

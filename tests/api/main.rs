//! The one integration-test binary: real PostgreSQL, real HTTP.

mod helpers;

mod auth_tokens;
mod bookings;
mod races;
mod rls;

//! The one integration-test binary: real PostgreSQL, real HTTP.

mod helpers;

mod attacks;
mod auth_tokens;
mod availability;
mod bookings;
mod calendars;
mod capacity;
mod cluster;
mod docs_page;
mod dst;
mod external;
mod fast;
mod faults;
mod flood;
mod flows;
mod idempotency;
mod limits;
mod metrics;
mod migrations;
mod openapi;
mod parsers;
mod pooler;
mod races;
mod request_ids;
mod rls;
mod rules;
mod shutdown;
mod signin;
mod simulate;
mod staff;
mod strict;
mod supabase;
mod webhooks;

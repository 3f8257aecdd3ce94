//! The HTTP API: router, shared state, the OpenAPI document.

pub mod bookings;
pub mod calendars;
pub mod closures;
pub mod extract;
pub mod holds;
pub mod idempotency;
pub mod limits;
pub mod maintenance;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod page;
pub mod resources;
pub mod series;
pub mod signin;
pub mod signin_limit;
pub mod users;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::identity::jwt::Keys;

/// Request bodies over this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The server's clock. Tests shift it instead of sleeping.
#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
    /// Move the clock (tests): `now()` becomes `to` (and keeps ticking).
    pub fn set(&self, to: DateTime<Utc>) {
        self.offset_ms
            .store((to - Utc::now()).num_milliseconds(), Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<Keys>,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    /// Addresses over their `/v1/auth/*` limit, known to this instance.
    pub auth_blocks: signin_limit::AuthBlocks,
    /// Wakes this process's webhook worker after a change was committed.
    pub wake: crate::webhooks::Wake,
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}

pub fn router(state: AppState) -> Router {
    let limits = limits::Limits::new(state.clone());
    let keys = state.keys.clone();
    let api = Router::new()
        .route("/v1/bookings", post(bookings::create).get(bookings::list))
        .route(
            "/v1/bookings/{id}",
            get(bookings::get)
                .patch(bookings::reschedule)
                .delete(bookings::cancel),
        )
        .route("/v1/bookings/{id}/history", get(bookings::history))
        .route("/v1/bookings/{id}/approve", post(bookings::approve))
        .route("/v1/bookings/{id}/reject", post(bookings::reject))
        .route("/v1/holds", post(holds::create))
        .route("/v1/holds/{id}", get(holds::get).delete(holds::release))
        .route("/v1/holds/{id}/confirm", post(holds::confirm))
        .route("/v1/series", post(series::create))
        .route("/v1/series/{id}", get(series::get).delete(series::cancel))
        .route(
            "/v1/admin/resources/{id}/closures",
            post(closures::create).get(closures::list),
        )
        .route(
            "/v1/admin/resources/{id}/closures/{cid}",
            axum::routing::delete(closures::delete),
        )
        .route("/v1/admin/bookings", get(bookings::admin_list))
        .route("/v1/resources", get(resources::list))
        .route("/v1/resources/{id}", get(resources::get))
        .route(
            "/v1/resources/{id}/availability",
            get(resources::availability),
        )
        .route("/v1/admin/resources", post(resources::create))
        .route(
            "/v1/admin/resources/{id}",
            axum::routing::patch(resources::update),
        )
        .route(
            "/v1/admin/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/admin/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/admin/webhooks/{id}/rotate-secret",
            post(webhooks::rotate),
        )
        .route(
            "/v1/admin/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/v1/admin/webhooks/{id}/messages/{message_id}/resend",
            post(webhooks::resend),
        )
        .route(
            "/v1/me/calendar-feed",
            post(calendars::create_mine).delete(calendars::revoke_mine),
        )
        .route(
            "/v1/resources/{id}/calendar-feed",
            post(calendars::create_resource).delete(calendars::revoke_resource),
        )
        .route("/ical/{file}", get(calendars::feed))
        .route("/", get(page::index))
        .route("/app.js", get(page::app_js))
        .route("/app.css", get(page::app_css))
        .route("/v1/me", get(users::me).patch(users::update_me))
        .route(
            "/v1/admin/users",
            post(users::admin_create).get(users::admin_find),
        )
        .merge(signin::routes(state.clone()))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(ops::docs_routes())
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(not_found)
        .with_state(state);
    api.layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(limits, limits::admit))
        .layer(axum::middleware::from_fn_with_state(
            keys,
            middleware::authenticate,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(middleware::pipeline))
}

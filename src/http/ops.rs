//! Operations: health, readiness, metrics, the OpenAPI document and its docs.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

use super::AppState;
use crate::db::migrate::latest_version;
use crate::error::problem_response;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// 200 when the database answers and its schema is current, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    let check = async {
        let mut tx = st.db.begin_anon().await?;
        let v: i32 = sqlx::query_scalar("SELECT booking.schema_version()")
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok::<i32, sqlx::Error>(v)
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(v)) if v == latest_version() => axum::Json(Health {
            status: "ready".into(),
        })
        .into_response(),
        Ok(Ok(v)) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "database schema is at version {v}, this server needs {}",
                latest_version()
            ),
            None,
            Some(5),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer".into(),
                None,
                Some(1),
            )
        }
        Err(_) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is too slow to answer".into(),
            None,
            Some(1),
        ),
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let size = st.db.pool().size();
    let idle = st.db.pool().num_idle() as u32;
    metrics::gauge!("db_pool_connections").set(size as f64);
    metrics::gauge!("db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("db_pool_busy_connections").set(size.saturating_sub(idle) as f64);
    let body = st.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

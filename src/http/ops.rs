//! Operations: health, readiness, metrics and the interactive API docs. The
//! OpenAPI document itself is built in `openapi.rs`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::{Arc, OnceLock};
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
        drop(tx); // read-only: rolled back
        Ok::<i32, sqlx::Error>(v)
    };
    // the distributed form is recorded as version 100 on top of the rest
    let want = if st.db.distributed() == crate::config::Distributed::Citus {
        crate::db::migrate::CITUS.version
    } else {
        latest_version()
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(v)) if v == want => axum::Json(Health {
            status: "ready".into(),
        })
        .into_response(),
        Ok(Ok(v)) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("database schema is at version {v}, this server needs {want}"),
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

/// The interactive documentation (Swagger UI, served from the binary: no
/// internet needed). Its page loads `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Swagger UI (HTML); its assets are under /docs/", content_type = "text/html", body = String)))]
pub async fn docs() -> Response {
    docs_file("")
}

async fn docs_asset(axum::extract::Path(rest): axum::extract::Path<String>) -> Response {
    docs_file(&rest)
}

fn docs_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")))
        .clone()
}

/// One Swagger UI file. The index page gets `<base href="/docs/">` so that its
/// relative asset links work whether it was reached as `/docs` or `/docs/`.
fn docs_file(path: &str) -> Response {
    match utoipa_swagger_ui::serve(path, docs_config()) {
        Ok(Some(file)) => {
            let is_index = path.is_empty() || path == "/" || path == "index.html";
            let bytes = if is_index {
                String::from_utf8_lossy(&file.bytes)
                    .replacen("<head>", "<head>\n    <base href=\"/docs/\" />", 1)
                    .into_bytes()
            } else {
                file.bytes.into_owned()
            };
            (
                [
                    (header::CONTENT_TYPE, file.content_type),
                    (header::CACHE_CONTROL, "public, max-age=3600".to_string()),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => crate::error::ApiError::NotFound.into_response(),
        Err(e) => {
            crate::error::ApiError::Internal(anyhow::anyhow!("swagger ui: {e}")).into_response()
        }
    }
}

/// `/docs`, `/docs/` and `/docs/{file}`: all answered from the binary.
pub fn docs_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/docs", axum::routing::get(docs))
        .route("/docs/", axum::routing::get(docs))
        .route("/docs/{*rest}", axum::routing::get(docs_asset))
}

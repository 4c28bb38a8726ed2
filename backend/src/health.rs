//! `GET /api/health`: liveness for load balancers, scripts and tests.

use axum::Json;
use axum::Router;
use axum::routing::get;

use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<api::Health> {
    Json(api::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

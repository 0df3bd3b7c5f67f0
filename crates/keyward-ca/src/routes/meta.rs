//! Health, the OpenAPI document, the CA chain, the CA's support profile.

use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use keyward_ca_api::{CaChain, CaProfile, Health};

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(crate::openapi::document_for(|e| {
        e.sandbox.is_none_or(|mode| state.sandbox(mode))
    }))
}

pub async fn chain(State(state): State<AppState>) -> Json<CaChain> {
    let ca = state.ca();
    Json(CaChain {
        root_pem: ca.root_pem.clone(),
        issuing_pem: ca.issuing_pem.clone(),
        seal_maker_pem: ca.seal_maker_pem.clone(),
    })
}

/// Who the CA is and how its support is reached: the same for everyone.
pub async fn profile(State(state): State<AppState>) -> Json<CaProfile> {
    Json(state.profile().clone())
}

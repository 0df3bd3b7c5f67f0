//! Shared state and the router.

use crate::config::Clock;
use crate::crypto::Escrow;
use crate::db::Db;
use crate::error::CaError;
use crate::pki::CaMaterial;
use crate::routes;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use keyward_ca_api::ErrorCode;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest JSON body any endpoint takes.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    db: Db,
    ca: CaMaterial,
    escrow: Escrow,
    clock: Clock,
    admin_token: Zeroizing<String>,
    payment_key: Zeroizing<[u8; 32]>,
    data_dir: PathBuf,
}

impl AppState {
    pub fn new(
        db: Db,
        ca: CaMaterial,
        escrow: Escrow,
        clock: Clock,
        admin_token: Zeroizing<String>,
        payment_key: Zeroizing<[u8; 32]>,
        data_dir: PathBuf,
    ) -> Self {
        AppState(Arc::new(Inner {
            db,
            ca,
            escrow,
            clock,
            admin_token,
            payment_key,
            data_dir,
        }))
    }
    /// Where attachments and keys live.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.0.data_dir
    }
    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub fn ca(&self) -> &CaMaterial {
        &self.0.ca
    }
    pub fn escrow(&self) -> &Escrow {
        &self.0.escrow
    }
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }
    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.0.clock.unix()
    }
    pub fn admin_token(&self) -> &str {
        &self.0.admin_token
    }
    pub fn payment_key(&self) -> &[u8; 32] {
        &self.0.payment_key
    }
}

async fn not_found() -> impl IntoResponse {
    CaError::rejected(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> impl IntoResponse {
    CaError::rejected(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take this method",
    )
}

/// The service's router over a state.
pub fn router(state: AppState) -> Router {
    use routes::{
        activation, admin, attachments, meta, orders, payment, renewal, review, seal, unlock,
    };
    let upload_limit = DefaultBodyLimit::max(keyward_ca_api::ATTACHMENT_MAX_BYTES);
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/ca/chain", get(meta::chain))
        .route("/admin/v1/certify", post(admin::certify))
        .route("/admin/v1/keys", post(admin::register_key))
        .route("/admin/v1/sms", get(admin::sms_outbox))
        .route("/admin/v1/audit", get(admin::audit_log))
        .route("/v1/nonces", post(activation::nonce))
        .route("/v1/keys/{serial}", get(activation::key_status))
        .route(
            "/v1/keys/{serial}/certificates",
            get(activation::certificates),
        )
        .route("/v1/keys/{serial}/businesses", get(renewal::progress))
        .route(
            "/v1/keys/{serial}/activation/code",
            post(activation::send_code),
        )
        .route(
            "/v1/keys/{serial}/activation/redeem",
            post(activation::redeem),
        )
        .route(
            "/v1/keys/{serial}/activation/confirm",
            post(activation::confirm),
        )
        .route("/v1/keys/{serial}/renewals", post(renewal::apply))
        .route(
            "/v1/keys/{serial}/renewals/{id}/certificate",
            post(renewal::certificate),
        )
        .route(
            "/v1/keys/{serial}/renewals/{id}/installed",
            post(renewal::installed),
        )
        .route("/v1/businesses/{id}", get(renewal::business))
        .route("/v1/businesses/{id}/payment", post(payment::create))
        .route("/v1/payments/notify", post(payment::notify))
        .route("/sandbox/payments/{id}", get(payment::sandbox_page))
        .route(
            "/sandbox/payments/{id}/complete",
            post(payment::sandbox_complete),
        )
        .route("/v1/keys/{serial}/unlocks", post(unlock::apply))
        .route(
            "/v1/keys/{serial}/unlocks/{id}/code",
            post(unlock::send_code),
        )
        .route(
            "/v1/keys/{serial}/unlocks/{id}/authorisation",
            post(unlock::authorisation),
        )
        .route(
            "/v1/keys/{serial}/unlocks/{id}/confirm",
            post(unlock::confirm),
        )
        .route(
            "/v1/businesses/{id}/attachments",
            post(attachments::upload).layer(upload_limit),
        )
        .route("/v1/businesses/{id}/submit", post(attachments::submit))
        .route("/v1/businesses/{id}/form", get(attachments::form))
        .route("/admin/v1/reviews", get(review::queue))
        .route("/admin/v1/reviews/{id}/approve", post(review::approve))
        .route(
            "/admin/v1/reviews/{id}/reject",
            post(review::reject_business),
        )
        .route("/admin/v1/attachments/{sha256}", get(attachments::download))
        .route(
            "/v1/organisations/{uscc}/businesses",
            get(orders::organisation_progress),
        )
        .route("/v1/businesses", post(orders::create))
        .route("/v1/keys/{serial}/seals", post(orders::seal))
        .route("/v1/keys/{serial}/seal", get(seal::current))
        .route(
            "/v1/keys/{serial}/seals/{id}/installed",
            post(seal::installed),
        )
        .route("/v1/businesses/{id}/invoice", post(orders::invoice))
        .route("/admin/v1/businesses/{id}/complete", post(orders::complete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            CaError::rejected(ErrorCode::Internal, "internal error").into_response()
        }))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // Paths carry key serials and ids, never secrets; bodies are not logged.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use keyward_ca_api::endpoints::ENDPOINTS;
    use std::collections::BTreeSet;

    /// The other half of "the OpenAPI document is kept true": every route in the router
    /// (read from this file's source) is in the endpoint table, and the reverse.
    #[test]
    fn routes_and_endpoint_table_agree() {
        let source = include_str!("app.rs");
        let mut routed = BTreeSet::new();
        for chunk in source.split(".route(").skip(1) {
            let Some(chunk) = chunk.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, rest)) = chunk.split_once('"') else {
                continue;
            };
            let rest = rest.trim_start_matches(',').trim_start();
            let method = rest.split('(').next().unwrap_or("").to_ascii_uppercase();
            routed.insert((method, path.to_owned()));
        }
        // The test's own text mentions the pattern once; drop what is not a real route.
        routed.retain(|(m, _)| m == "GET" || m == "POST");
        let documented: BTreeSet<(String, String)> = ENDPOINTS
            .iter()
            .map(|e| (e.method.to_owned(), e.path.to_owned()))
            .collect();
        assert_eq!(routed, documented);
    }
}

//! Shared state and the router.

use crate::config::{Clock, RateLimit};
use crate::db::Db;
use crate::error::CaError;
use crate::escrow::Keyring;
use crate::pki::CaMaterial;
use crate::routes;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Request};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};
use keyward_ca_api::ErrorCode;
use keyward_ca_api::endpoints::{ENDPOINTS, Sandbox};
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest JSON body any endpoint takes.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// What a state is made of.
#[derive(Debug)]
pub struct StateParts {
    pub db: Db,
    /// What every answer waits for: its commits on disk.
    pub durability: crate::db::Durability,
    pub ca: CaMaterial,
    pub escrow: Arc<Keyring>,
    pub clock: Clock,
    /// The keys payment notifications are accepted under: the real provider's (if
    /// configured) and, in sandbox mode, the sandbox provider's.
    pub payment_keys: Vec<Zeroizing<[u8; 32]>>,
    /// The sandbox provider's own key, with `--sandbox-payments`.
    pub sandbox_payment_key: Option<Zeroizing<[u8; 32]>>,
    pub sandbox_sms: bool,
    pub rate_limit: RateLimit,
    pub address_caps: crate::limits::AddressCaps,
    /// Balancers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub data_dir: PathBuf,
    /// The CA's name and support contacts (`GET /v1/ca/profile`).
    pub profile: keyward_ca_api::CaProfile,
}

#[derive(Debug)]
struct Inner {
    parts: StateParts,
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        AppState(Arc::new(Inner { parts }))
    }
    /// The data directory (attachments stored there before they moved to the database).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.0.parts.data_dir
    }
    /// The CA's name and support contacts.
    pub fn profile(&self) -> &keyward_ca_api::CaProfile {
        &self.0.parts.profile
    }
    pub fn db(&self) -> &Db {
        &self.0.parts.db
    }
    /// The barrier an answer passes before it is sent.
    pub fn durability(&self) -> &crate::db::Durability {
        &self.0.parts.durability
    }
    pub fn ca(&self) -> &CaMaterial {
        &self.0.parts.ca
    }
    pub fn escrow(&self) -> &Keyring {
        &self.0.parts.escrow
    }
    /// The keyring, to share with the heartbeat.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.0.parts.escrow.clone()
    }
    pub fn clock(&self) -> &Clock {
        &self.0.parts.clock
    }
    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.0.parts.clock.unix()
    }
    /// Whether a notification body carries a valid tag of one of the accepted providers.
    pub fn payment_signature_valid(&self, body: &[u8], tag: &str) -> bool {
        self.0
            .parts
            .payment_keys
            .iter()
            .any(|k| crate::crypto::hmac_verify(&k[..], body, tag))
    }
    /// The sandbox provider's key (sandbox mode only).
    pub fn sandbox_payment_key(&self) -> Option<&[u8; 32]> {
        self.0.parts.sandbox_payment_key.as_deref()
    }
    /// The daily caps per client address.
    pub fn address_caps(&self) -> &crate::limits::AddressCaps {
        &self.0.parts.address_caps
    }
    /// Whether a sandbox mode is on.
    pub fn sandbox(&self, mode: Sandbox) -> bool {
        match mode {
            Sandbox::Payments => self.0.parts.sandbox_payment_key.is_some(),
            Sandbox::Sms => self.0.parts.sandbox_sms,
        }
    }
}

/// Holds each answer until what its request committed is on disk ([`crate::db::Durability`]).
/// The public reads (GET) write nothing, so they pass at once; a public POST (a nonce)
/// writes and waits like the rest. A flush that fails answers `internal`: the client must
/// not be told of a change the disk may not keep.
async fn durable_answer(
    axum::extract::State(state): axum::extract::State<AppState>,
    matched: Option<axum::extract::MatchedPath>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let public_read = req.method() == Method::GET
        && matched.is_some_and(|m| {
            keyward_ca_api::endpoints::Endpoint::find("GET", m.as_str())
                .is_some_and(|e| e.access == keyward_ca_api::endpoints::Access::Public)
        });
    let response = next.run(req).await;
    if public_read {
        return response;
    }
    match state.durability().barrier().await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, "the answer's commits could not be made durable");
            CaError::rejected(ErrorCode::Internal, "internal error").into_response()
        }
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

type Handler = MethodRouter<AppState>;

fn route(method: Method, h: impl FnOnce(MethodFilter) -> Handler) -> Handler {
    // Every method in the table is GET or POST; anything else cannot be routed.
    let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::TRACE);
    h(filter)
}

/// Every route the service has, as (method, path, handler). The router is built from this
/// list alone, and [`ENDPOINTS`] must name exactly these routes (checked by a test), so a
/// handler cannot be routed without the rule the table gives it.
pub fn routes() -> Vec<(Method, &'static str, Handler)> {
    use routes::{
        activation, admin, attachments, forms, meta, orders, payment, renewal, review, seal, unlock,
    };
    let get = Method::GET;
    let post = Method::POST;
    macro_rules! r {
        ($m:expr, $p:literal, $h:expr) => {
            ($m.clone(), $p, route($m.clone(), |f| on(f, $h)))
        };
    }
    vec![
        r!(get, "/healthz", meta::healthz),
        r!(get, "/openapi.json", meta::openapi),
        r!(get, "/v1/ca/chain", meta::chain),
        r!(get, "/v1/ca/profile", meta::profile),
        r!(post, "/v1/nonces", activation::nonce),
        r!(get, "/v1/keys/{serial}/standing", activation::standing),
        r!(get, "/v1/keys/{serial}", activation::key_status),
        r!(get, "/v1/keys/{serial}/businesses", renewal::progress),
        r!(
            get,
            "/v1/keys/{serial}/certificates",
            activation::certificates
        ),
        r!(
            post,
            "/v1/keys/{serial}/activation/code",
            activation::send_code
        ),
        r!(
            post,
            "/v1/keys/{serial}/activation/redeem",
            activation::redeem
        ),
        r!(
            post,
            "/v1/keys/{serial}/activation/confirm",
            activation::confirm
        ),
        r!(post, "/v1/keys/{serial}/renewals", renewal::apply),
        r!(
            post,
            "/v1/keys/{serial}/renewals/{id}/certificate",
            renewal::certificate
        ),
        r!(
            post,
            "/v1/keys/{serial}/renewals/{id}/installed",
            renewal::installed
        ),
        r!(post, "/v1/keys/{serial}/changes", orders::change),
        r!(post, "/v1/keys/{serial}/seals", orders::seal),
        r!(get, "/v1/keys/{serial}/seal", seal::current),
        r!(
            post,
            "/v1/keys/{serial}/seals/{id}/installed",
            seal::installed
        ),
        r!(post, "/v1/keys/{serial}/unlocks", unlock::apply),
        r!(
            post,
            "/v1/keys/{serial}/unlocks/{id}/code",
            unlock::send_code
        ),
        r!(
            post,
            "/v1/keys/{serial}/unlocks/{id}/authorisation",
            unlock::authorisation
        ),
        r!(
            post,
            "/v1/keys/{serial}/unlocks/{id}/confirm",
            unlock::confirm
        ),
        r!(post, "/v1/businesses", orders::create),
        r!(get, "/v1/businesses/{id}", renewal::business),
        r!(post, "/v1/businesses/{id}/payment", payment::create),
        (
            post.clone(),
            "/v1/businesses/{id}/attachments",
            route(post.clone(), |f| on(f, attachments::upload))
                .layer(DefaultBodyLimit::max(keyward_ca_api::ATTACHMENT_MAX_BYTES)),
        ),
        r!(post, "/v1/businesses/{id}/submit", attachments::submit),
        r!(get, "/v1/businesses/{id}/form", attachments::form),
        r!(get, "/v1/forms/seal", forms::seal),
        r!(post, "/v1/businesses/{id}/invoice", orders::invoice),
        r!(post, "/v1/businesses/{id}/refund", orders::refund),
        r!(post, "/v1/businesses/{id}/secret", orders::new_secret),
        r!(post, "/v1/payments/notify", payment::notify),
        r!(get, "/sandbox/payments/{id}", payment::sandbox_page),
        r!(
            post,
            "/sandbox/payments/{id}/complete",
            payment::sandbox_complete
        ),
        r!(post, "/admin/v1/certify", admin::certify),
        r!(post, "/admin/v1/keys", admin::register_key),
        r!(get, "/admin/v1/sms", admin::sms_outbox),
        r!(get, "/admin/v1/audit", admin::audit_log),
        r!(get, "/admin/v1/reviews", review::queue),
        r!(post, "/admin/v1/reviews/{id}/approve", review::approve),
        r!(
            post,
            "/admin/v1/reviews/{id}/reject",
            review::reject_business
        ),
        r!(get, "/admin/v1/attachments/{sha256}", attachments::download),
        r!(
            get,
            "/admin/v1/organisations/{uscc}/businesses",
            orders::organisation_progress
        ),
        r!(post, "/admin/v1/businesses/{id}/complete", orders::complete),
    ]
}

/// Whether a route exists in this instance: sandbox routes only in their sandbox mode.
fn routed(state: &AppState, method: &Method, path: &str) -> bool {
    match ENDPOINTS
        .iter()
        .find(|e| e.method == method.as_str() && e.path == path)
    {
        Some(e) => e.sandbox.is_none_or(|mode| state.sandbox(mode)),
        // Not in the table: routed, so the access check refuses it loudly.
        None => true,
    }
}

/// The service's router over a state.
pub fn router(state: AppState) -> Result<Router, CaError> {
    let mut app = Router::new();
    for (method, path, handler) in routes() {
        if routed(&state, &method, path) {
            app = app.route(path, handler);
        }
    }
    let (per_address, overall) = crate::limits::rate_layers(state.0.parts.rate_limit)?;
    Ok(app
        // Runs after routing, before every handler: the route's rule from the table.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::enforce,
        ))
        // Outside it: what the request committed is on disk before its answer leaves.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            durable_answer,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            CaError::rejected(ErrorCode::Internal, "internal error").into_response()
        }))
        .layer(overall)
        .layer(per_address)
        // Before the rate limits: who the client is, behind a trusted balancer too.
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(state.0.parts.trusted_proxies.clone()),
            crate::limits::client_address,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // Paths carry key serials and ids, never secrets; bodies and headers are
                // not logged.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state))
}

#[cfg(test)]
mod tests {
    use keyward_ca_api::endpoints::ENDPOINTS;
    use std::collections::BTreeSet;

    /// The other half of "the OpenAPI document is kept true": every route the router is
    /// built from is in the endpoint table with its rule, and the reverse, whatever its
    /// method.
    #[test]
    fn routes_and_endpoint_table_agree() {
        let routed: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(m, p, _)| (m.as_str().to_owned(), p.to_owned()))
            .collect();
        let documented: BTreeSet<(String, String)> = ENDPOINTS
            .iter()
            .map(|e| (e.method.to_owned(), e.path.to_owned()))
            .collect();
        assert_eq!(routed, documented);
        assert_eq!(routed.len(), super::routes().len(), "a route listed twice");
    }
}

//! Nonces, key status and activation: redeem the SMS code for the transport PIN, then prove
//! possession of the key by a signature, which records the activation time.

use crate::app::AppState;
use crate::error::{CaResult, reject};
use crate::http;
use crate::routes::admin::{ACTIVATION, activation_sms_text, validate_key_serial};
use crate::store;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use keyward_ca_api::{
    BusinessKind, BusinessState, CodeSent, ErrorCode, KeyState, KeyStatus, NonceGrant,
    NonceRequest, RedeemCodeRequest, Secret, TransportPinRelease,
};

/// `POST /v1/nonces`
pub async fn nonce(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<NonceGrant>> {
    let body = http::body(body)?;
    let req: NonceRequest = http::json(&headers, &body)?;
    validate_key_serial(&req.key_serial)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    store::load_key(&mut tx, &req.key_serial).await?;
    let (nonce, expires) = store::new_nonce(&mut tx, &req.key_serial, now).await?;
    tx.commit().await?;
    Ok(Json(NonceGrant {
        nonce,
        expires_at: crate::db::instant(expires)?,
    }))
}

/// `GET /v1/keys/{serial}`
pub async fn key_status(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
) -> CaResult<Json<KeyStatus>> {
    let serial = http::path(serial)?;
    let mut conn = state.db().acquire().await?;
    Ok(Json(store::key_status(&mut conn, &serial).await?))
}

/// `POST /v1/keys/{serial}/activation/code`: a new activation code (cool-down, daily cap).
pub async fn send_code(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
) -> CaResult<Json<CodeSent>> {
    let serial = http::path(serial)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = store::load_key(&mut tx, &serial).await?;
    if key.state != KeyState::AwaitingActivation {
        return reject(ErrorCode::WrongState, "this key is already activated");
    }
    let phone = store::handler_phone(&mut tx, &key.handler_id).await?;
    let org = sqlx::query("SELECT name FROM organisations WHERE uscc = $1")
        .bind(&key.uscc)
        .fetch_one(&mut *tx)
        .await?;
    let org = crate::db::text(&org, "name")?;
    let sent = store::send_code(
        &mut tx,
        &serial,
        ACTIVATION,
        &phone,
        activation_sms_text(&org),
        now,
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "client",
        "activation_code_sent",
        Some(&serial),
        None,
        "",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(sent))
}

/// `POST /v1/keys/{serial}/activation/redeem`: the transport PIN for the right code.
pub async fn redeem(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<TransportPinRelease>> {
    let serial = http::path(serial)?;
    let body = http::body(body)?;
    let req: RedeemCodeRequest = http::json(&headers, &body)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = store::load_key(&mut tx, &serial).await?;
    let sealed = match (key.state, key.transport_pin_enc) {
        (KeyState::AwaitingActivation, Some(sealed)) => sealed,
        _ => return reject(ErrorCode::WrongState, "this key is already activated"),
    };
    if let Err(code) =
        store::redeem_code(&mut tx, &serial, ACTIVATION, req.code.expose(), now).await?
    {
        store::audit(
            &mut tx,
            now,
            "client",
            "activation_code_refused",
            Some(&serial),
            None,
            code.as_str(),
        )
        .await?;
        tx.commit().await?;
        return reject(
            code,
            match code {
                ErrorCode::CodeInvalid => "wrong activation code",
                ErrorCode::CodeAttemptsExhausted => "too many wrong codes; ask for a new one",
                _ => "the activation code has expired; ask for a new one",
            },
        );
    }
    let pin = state
        .escrow()
        .open(&format!("transport_pin:{serial}"), &sealed)?;
    store::audit(
        &mut tx,
        now,
        "client",
        "transport_pin_released",
        Some(&serial),
        None,
        "",
    )
    .await?;
    tx.commit().await?;
    tracing::info!(key_serial = %serial, "released transport PIN");
    Ok(Json(TransportPinRelease {
        transport_pin: Secret::new(pin.as_str()),
    }))
}

/// `POST /v1/keys/{serial}/activation/confirm`: signed by the key; records activation.
pub async fn confirm(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<KeyStatus>> {
    let serial = http::path(serial)?;
    let body = http::body(body)?;
    let (key, _cert) =
        http::authenticate_current(&state, &serial, &method, &uri, &headers, &body).await?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    if key.state == KeyState::Active {
        // Already recorded (a retried confirmation): answer the same.
        let status = store::key_status(&mut tx, &serial).await?;
        return Ok(Json(status));
    }
    if !store::code_was_redeemed(&mut tx, &serial, ACTIVATION).await? {
        return reject(ErrorCode::WrongState, "redeem the activation code first");
    }
    let done = sqlx::query(
        "UPDATE keys SET state = 'active', activated_at = $1, transport_pin_enc = NULL, updated_at = $1 WHERE key_serial = $2 AND state = 'awaiting_activation'",
    )
    .bind(now)
    .bind(&serial)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return reject(ErrorCode::WrongState, "this key is not awaiting activation");
    }
    let issue =
        sqlx::query("SELECT id FROM businesses WHERE key_serial = $1 AND kind = $2 AND state = $3")
            .bind(&serial)
            .bind(BusinessKind::Issue.as_str())
            .bind(BusinessState::AwaitingActivation.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(row) = issue {
        let id = crate::db::text(&row, "id")?;
        store::transition(
            &mut tx,
            &id,
            BusinessState::AwaitingActivation,
            BusinessState::Completed,
            now,
            "证书已激活",
        )
        .await?;
    }
    store::audit(
        &mut tx,
        now,
        "key",
        "key_activated",
        Some(&serial),
        None,
        "possession proven",
    )
    .await?;
    let status = store::key_status(&mut tx, &serial).await?;
    tx.commit().await?;
    tracing::info!(key_serial = %serial, "key activated");
    Ok(Json(status))
}

/// `GET /v1/keys/{serial}/certificates`
pub async fn certificates(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
) -> CaResult<Json<keyward_ca_api::CertificateHistory>> {
    let serial = http::path(serial)?;
    let mut conn = state.db().acquire().await?;
    store::load_key(&mut conn, &serial).await?;
    let rows = sqlx::query("SELECT cert_serial, role, at FROM key_certificates WHERE key_serial = $1 ORDER BY at, cert_serial")
        .bind(&serial)
        .fetch_all(&mut *conn)
        .await?;
    let mut certificates = Vec::with_capacity(rows.len());
    for row in &rows {
        let role = crate::db::text(row, "role")?;
        let cert = store::load_cert(&mut conn, &crate::db::text(row, "cert_serial")?).await?;
        certificates.push(keyward_ca_api::KeyCertificate {
            role: keyward_ca_api::CertificateRole::parse(&role).ok_or_else(|| {
                crate::error::CaError::Corrupt(format!("certificate role {role}"))
            })?,
            certificate: cert.info,
            since: crate::db::instant(crate::db::int(row, "at")?)?,
        });
    }
    Ok(Json(keyward_ca_api::CertificateHistory { certificates }))
}

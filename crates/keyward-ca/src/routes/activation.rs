//! Nonces, key status and activation: redeem the SMS code for the transport PIN, then prove
//! possession of the key by a signature, which records the activation time.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaResult, reject};
use crate::http;
use crate::limits::ClientAddr;
use crate::routes::admin::{ACTIVATION, activation_sms_text, validate_key_serial};
use crate::store;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json, body::Bytes};
use keyward_ca_api::{
    BusinessKind, BusinessState, CodeSent, ErrorCode, KeyStanding, KeyState, KeyStatus, NonceGrant,
    NonceRequest, RedeemCodeRequest, Secret, TransportPinRelease, WaitingInstall,
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
    let mut conn = state.db().acquire().await?;
    let mut unit = crate::db::Unit::begin(&mut conn).await?;
    // Granted for any well-formed serial, known or not: only a signature by the key itself
    // makes use of it, and the answer says nothing about whether the key exists.
    let (nonce, expires) = store::new_nonce(&mut unit, &req.key_serial, now).await?;
    unit.commit().await?;
    Ok(Json(NonceGrant {
        nonce,
        expires_at: crate::db::instant(expires)?,
    }))
}

/// `GET /v1/keys/{serial}/standing`: the one public read. An unknown serial reads as a key
/// with nothing waiting, so the answer tells nobody which serials the CA has.
pub async fn standing(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
) -> CaResult<Json<KeyStanding>> {
    let serial = http::path(serial)?;
    let mut conn = state.db().acquire().await?;
    let key = match store::load_key(&mut conn, &serial).await {
        Ok(k) => k,
        Err(e) if e.code() == ErrorCode::KeyNotFound => {
            return Ok(Json(KeyStanding {
                awaiting_activation: false,
                waiting: Vec::new(),
            }));
        }
        Err(e) => return Err(e),
    };
    let rows = sqlx::query(
        "SELECT kind, state FROM businesses WHERE key_serial = $1 AND state IN ($2, $3)",
    )
    .bind(&serial)
    .bind(BusinessState::Paid.as_str())
    .bind(BusinessState::CertificateIssued.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut waiting = Vec::new();
    for row in &rows {
        let kind = BusinessKind::parse(&crate::db::text(row, "kind")?);
        let state = BusinessState::parse(&crate::db::text(row, "state")?);
        let w = match (kind, state) {
            (Some(BusinessKind::Renewal), Some(_)) => WaitingInstall::Certificate,
            (Some(BusinessKind::Seal), Some(BusinessState::CertificateIssued)) => {
                WaitingInstall::Seal
            }
            _ => continue,
        };
        if !waiting.contains(&w) {
            waiting.push(w);
        }
    }
    waiting.sort_by_key(|w| w.as_str());
    Ok(Json(KeyStanding {
        awaiting_activation: key.state == KeyState::AwaitingActivation,
        waiting,
    }))
}

/// `GET /v1/keys/{serial}`, signed by the key.
pub async fn key_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<KeyStatus>> {
    let (key, _) = caller.key()?;
    let mut conn = state.db().acquire().await?;
    Ok(Json(store::key_status(&mut conn, &key.key_serial).await?))
}

fn not_awaiting() -> crate::error::CaError {
    // The same words for an unknown key and an activated one.
    crate::error::CaError::rejected(ErrorCode::WrongState, "this key does not await activation")
}

/// `POST /v1/keys/{serial}/activation/code`: a new activation code for the handler of
/// record, with the ticket that redeems it (cool-down, caps per key and per address).
pub async fn send_code(
    State(state): State<AppState>,
    addr: ClientAddr,
    serial: Result<Path<String>, PathRejection>,
) -> CaResult<Json<CodeSent>> {
    let serial = http::path(serial)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = match store::load_key(&mut tx, &serial).await {
        Ok(k) if k.state == KeyState::AwaitingActivation => k,
        Ok(_) => return Err(not_awaiting()),
        Err(e) if e.code() == ErrorCode::KeyNotFound => return Err(not_awaiting()),
        Err(e) => return Err(e),
    };
    let phone = store::handler_phone(&mut tx, &key.handler_id).await?;
    let org = store::organisation_name(&mut tx, &key.uscc).await?;
    let sent = store::send_code(
        &mut tx,
        &store::CodeRequest {
            key_serial: &serial,
            purpose: ACTIVATION,
            phone: &phone,
            business_id: None,
            address: Some(&addr),
            caps: state.address_caps(),
        },
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
        &addr.text(),
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
    let Some(ticket) = req.ticket.as_ref() else {
        return reject(
            ErrorCode::InvalidRequest,
            "give the ticket the code was sent with; ask for a code first",
        );
    };
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = match store::load_key(&mut tx, &serial).await {
        Ok(k) => k,
        Err(e) if e.code() == ErrorCode::KeyNotFound => return Err(not_awaiting()),
        Err(e) => return Err(e),
    };
    let sealed = match (key.state, key.transport_pin_enc) {
        (KeyState::AwaitingActivation, Some(sealed)) => sealed,
        _ => return Err(not_awaiting()),
    };
    if let Err(code) = store::redeem_code(
        &mut tx,
        &serial,
        ACTIVATION,
        store::CodeBinding::Ticket(ticket.expose()),
        req.code.expose(),
        now,
    )
    .await?
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
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<KeyStatus>> {
    let (key, _) = caller.key()?;
    let serial = key.key_serial.clone();
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

/// `GET /v1/keys/{serial}/certificates`, signed by the key.
pub async fn certificates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<keyward_ca_api::CertificateHistory>> {
    let serial = caller.key()?.0.key_serial.clone();
    let mut conn = state.db().acquire().await?;
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

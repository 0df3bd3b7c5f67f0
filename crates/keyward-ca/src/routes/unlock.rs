//! Unlock (忘记密码): the requester's identity → automatic approval when they are the
//! handler of the key's latest business, otherwise attachments and a reviewer → SMS code →
//! the SO PIN and a fresh SO PIN (escrowed before release) → the client confirms the
//! rotation with a signature under the new user PIN.
//!
//! Invariant: escrow always holds an SO PIN that opens the key. The old one stays current
//! until the confirmation; the pending one is generated once and reused by every retry, so
//! a client that rotated and then crashed finds the PIN it rotated to.

use crate::app::AppState;
use crate::error::{CaResult, reject};
use crate::http;
use crate::routes::admin::validate_handler;
use crate::store;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use keyward_ca_api::{
    Business, BusinessKind, BusinessState, CodeSent, ErrorCode, KeyState, RedeemCodeRequest,
    Secret, UnlockApplication, UnlockAuthorisation,
};
use sqlx::AnyConnection;

/// Purpose of unlock codes.
pub const UNLOCK: &str = "unlock";

fn unlock_text(code: &str) -> String {
    format!(
        "【Keyward】您正在办理证书解锁（忘记密码），验证码 {code}，10分钟内有效，请勿告知他人。"
    )
}

/// Sends the unlock code to the business's requester.
pub async fn send_unlock_code(
    conn: &mut AnyConnection,
    key_serial: &str,
    handler_id: &str,
    now: i64,
) -> CaResult<CodeSent> {
    let phone = store::handler_phone(&mut *conn, handler_id).await?;
    store::send_code(conn, key_serial, UNLOCK, &phone, unlock_text, now).await
}

/// `POST /v1/keys/{serial}/unlocks`
pub async fn apply(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    let serial = http::path(serial)?;
    let body = http::body(body)?;
    let req: UnlockApplication = http::json(&headers, &body)?;
    validate_handler(&req.requester)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = store::load_key(&mut tx, &serial).await?;
    if key.state != KeyState::Active {
        return reject(
            ErrorCode::KeyNotActivated,
            "a key not yet activated is activated, not unlocked",
        );
    }
    let open = sqlx::query("SELECT id FROM businesses WHERE key_serial = $1 AND kind = $2 AND state NOT IN ($3, $4, $5)")
        .bind(&serial)
        .bind(BusinessKind::Unlock.as_str())
        .bind(BusinessState::Completed.as_str())
        .bind(BusinessState::Rejected.as_str())
        .bind(BusinessState::Cancelled.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = open {
        return reject(
            ErrorCode::WrongState,
            format!(
                "unlock {} is already under way",
                crate::db::text(&row, "id")?
            ),
        );
    }
    // The handler of the key's most recent business.
    let latest = sqlx::query("SELECT handler_id FROM businesses WHERE key_serial = $1 AND handler_id IS NOT NULL ORDER BY id DESC")
        .bind(&serial)
        .fetch_optional(&mut *tx)
        .await?;
    let latest_handler = match latest {
        Some(row) => crate::db::opt_text(&row, "handler_id")?,
        None => None,
    };
    let mut matched = None;
    if let Some(hid) = latest_handler {
        let h = store::load_handler(&mut tx, &hid).await?;
        if h == req.requester {
            matched = Some(hid);
        }
    }
    let (handler_id, auto) = match matched {
        Some(hid) => (hid, true),
        None => (
            store::insert_handler(&mut tx, &key.uscc, &req.requester, now).await?,
            false,
        ),
    };
    let (first, note) = if auto {
        (
            BusinessState::Approved,
            "申请人为最近一次业务的经办人，自动审核通过",
        )
    } else {
        (
            BusinessState::AwaitingDocuments,
            "申请人不是最近一次业务的经办人，请上传材料等待审核",
        )
    };
    let id = store::create_business(
        &mut tx,
        BusinessKind::Unlock,
        first,
        Some(&serial),
        &key.uscc,
        Some(&handler_id),
        0,
        &serde_json::json!({}),
        now,
        note,
    )
    .await?;
    if auto {
        send_unlock_code(&mut tx, &serial, &handler_id, now).await?;
        store::audit(
            &mut tx,
            now,
            "system",
            "unlock_auto_approved",
            Some(&serial),
            Some(&id),
            "requester is the latest handler",
        )
        .await?;
    } else {
        store::audit(
            &mut tx,
            now,
            "client",
            "unlock_needs_review",
            Some(&serial),
            Some(&id),
            "requester differs from the latest handler",
        )
        .await?;
    }
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// `POST /v1/keys/{serial}/unlocks/{id}/code`
pub async fn send_code(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> CaResult<Json<CodeSent>> {
    let (serial, id) = http::path(ids)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::business_of_key(&mut tx, &serial, &id, BusinessKind::Unlock).await?;
    if !matches!(
        b.business.state,
        BusinessState::Approved | BusinessState::Authorised
    ) {
        return reject(ErrorCode::WrongState, "this unlock is not approved");
    }
    let handler = b.handler_id.clone().unwrap_or_default();
    let sent = send_unlock_code(&mut tx, &serial, &handler, now).await?;
    store::audit(
        &mut tx,
        now,
        "client",
        "unlock_code_sent",
        Some(&serial),
        Some(&id),
        "",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(sent))
}

/// `POST /v1/keys/{serial}/unlocks/{id}/authorisation`
pub async fn authorisation(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<UnlockAuthorisation>> {
    let (serial, id) = http::path(ids)?;
    let body = http::body(body)?;
    let req: RedeemCodeRequest = http::json(&headers, &body)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::business_of_key(&mut tx, &serial, &id, BusinessKind::Unlock).await?;
    if !matches!(
        b.business.state,
        BusinessState::Approved | BusinessState::Authorised
    ) {
        return reject(ErrorCode::WrongState, "this unlock is not approved");
    }
    if let Err(code) = store::redeem_code(&mut tx, &serial, UNLOCK, req.code.expose(), now).await? {
        store::audit(
            &mut tx,
            now,
            "client",
            "unlock_code_refused",
            Some(&serial),
            Some(&id),
            code.as_str(),
        )
        .await?;
        tx.commit().await?;
        return reject(
            code,
            "the unlock code is wrong, expired or used up; ask for a new one",
        );
    }
    let context = format!("so_pin:{serial}");
    let row = sqlx::query("SELECT so_pin_enc, pending_so_pin_enc FROM keys WHERE key_serial = $1")
        .bind(&serial)
        .fetch_one(&mut *tx)
        .await?;
    let current = state
        .escrow()
        .open(&context, &crate::db::text(&row, "so_pin_enc")?)?;
    let pending = match crate::db::opt_text(&row, "pending_so_pin_enc")? {
        Some(sealed) => state.escrow().open(&context, &sealed)?,
        None => {
            let fresh = zeroize::Zeroizing::new(crate::crypto::random_hex(8)?);
            let sealed = state.escrow().seal(&context, &fresh)?;
            sqlx::query(
                "UPDATE keys SET pending_so_pin_enc = $1, updated_at = $2 WHERE key_serial = $3",
            )
            .bind(&sealed)
            .bind(now)
            .bind(&serial)
            .execute(&mut *tx)
            .await?;
            fresh
        }
    };
    if b.business.state == BusinessState::Approved {
        store::transition(
            &mut tx,
            &id,
            BusinessState::Approved,
            BusinessState::Authorised,
            now,
            "解锁授权已下发",
        )
        .await?;
    }
    store::audit(
        &mut tx,
        now,
        "client",
        "unlock_authorisation_released",
        Some(&serial),
        Some(&id),
        "SO PIN and fresh SO PIN released",
    )
    .await?;
    tx.commit().await?;
    tracing::info!(key_serial = %serial, business = %id, "released unlock authorisation");
    Ok(Json(UnlockAuthorisation {
        business_id: id,
        so_pin: Secret::new(current.as_str()),
        new_so_pin: Secret::new(pending.as_str()),
    }))
}

/// `POST /v1/keys/{serial}/unlocks/{id}/confirm`: signed by the key (user logged in with
/// the new PIN): the fresh SO PIN becomes the escrowed one.
pub async fn confirm(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    let (serial, id) = http::path(ids)?;
    let body = http::body(body)?;
    let (b, cert) = {
        let mut conn = state.db().acquire().await?;
        let key = store::load_key(&mut conn, &serial).await?;
        let b = store::business_of_key(&mut conn, &serial, &id, BusinessKind::Unlock).await?;
        (b, store::load_cert(&mut conn, &key.current_cert).await?)
    };
    http::verify_key_signature(
        &state,
        &serial,
        method.as_str(),
        uri.path(),
        &headers,
        &body,
        std::slice::from_ref(&cert.parsed.key),
    )
    .await?;
    match b.business.state {
        BusinessState::Completed => return Ok(Json(b.business)),
        BusinessState::Authorised => {}
        _ => {
            return reject(
                ErrorCode::WrongState,
                "no unlock authorisation was released for this business",
            );
        }
    }
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let done = sqlx::query(
        "UPDATE keys SET so_pin_enc = pending_so_pin_enc, pending_so_pin_enc = NULL, updated_at = $1 WHERE key_serial = $2 AND pending_so_pin_enc IS NOT NULL",
    )
    .bind(now)
    .bind(&serial)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return reject(
            ErrorCode::WrongState,
            "no SO PIN rotation is pending for this key",
        );
    }
    store::transition(
        &mut tx,
        &id,
        BusinessState::Authorised,
        BusinessState::Completed,
        now,
        "解锁完成，SO PIN 已轮换",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "unlock_completed",
        Some(&serial),
        Some(&id),
        "SO PIN rotation confirmed",
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

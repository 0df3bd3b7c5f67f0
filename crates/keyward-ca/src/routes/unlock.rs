//! Unlock (忘记密码): the requester's identity → automatic approval when they are the
//! key's handler of record, otherwise attachments and a reviewer → SMS code → the SO PIN
//! and a fresh SO PIN (escrowed before release) → the client confirms the rotation with a
//! signature under the new user PIN.
//!
//! The key is locked, so it cannot sign: an unlock is reached with the secret its
//! application returned, and its code is bound to it. The handler of record is the CA's
//! word (set by the issuing station, changed only by a business a reviewer approved); the
//! requester's say-so never makes anyone the handler. An application by the handler of
//! record cancels any other open unlock of the key and tells that requester, so nobody can
//! hold a key's unlock against its handler; anyone else waits until the open one ends.
//!
//! Invariant: escrow always holds an SO PIN that opens the key. The old one stays current
//! until the confirmation; the pending one is generated once and reused by every retry, so
//! a client that rotated and then crashed finds the PIN it rotated to.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::limits::ClientAddr;
use crate::routes::admin::validate_handler;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::ids::{mask_mobile, mask_name};
use keyward_ca_api::{
    Business, BusinessKind, BusinessState, CodeSent, CreatedBusiness, ErrorCode, KeyState,
    OpenBusinessNotice, RedeemCodeRequest, Secret, UnlockApplication, UnlockAuthorisation,
};
use sqlx::AnyConnection;

/// Purpose of unlock codes.
pub const UNLOCK: &str = "unlock";

fn unlock_text(code: &str, reference: &str) -> String {
    format!(
        "【Keyward】您正在办理证书解锁（忘记密码），验证码 {code}（编号 {reference}），10分钟内有效，请勿告知他人。"
    )
}

/// Sends the unlock code of business `business_id` to its requester, bound to it.
pub async fn send_unlock_code(
    conn: &mut AnyConnection,
    state: &AppState,
    key_serial: &str,
    business_id: &str,
    handler_id: &str,
    address: Option<&ClientAddr>,
    now: i64,
) -> CaResult<CodeSent> {
    let phone = store::handler_phone(&mut *conn, handler_id).await?;
    store::send_code(
        conn,
        &store::CodeRequest {
            key_serial,
            purpose: UNLOCK,
            phone: &phone,
            business_id: Some(business_id),
            address,
            caps: state.address_caps(),
        },
        unlock_text,
        now,
    )
    .await
}

fn not_unlockable() -> CaError {
    // The same answer for an unknown serial and a key that was never activated.
    CaError::rejected(
        ErrorCode::KeyNotActivated,
        "this key cannot be unlocked: it is not an activated key of this CA (a key not yet activated is activated, not unlocked)",
    )
}

/// `POST /v1/keys/{serial}/unlocks`
pub async fn apply(
    State(state): State<AppState>,
    addr: ClientAddr,
    serial: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
    let serial = http::path(serial)?;
    let body = http::body(body)?;
    let req: UnlockApplication = http::json(&headers, &body)?;
    validate_handler(&req.requester)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let key = match store::load_key(&mut tx, &serial).await {
        Ok(k) if k.state == KeyState::Active => k,
        Ok(_) => return Err(not_unlockable()),
        Err(e) if e.code() == ErrorCode::KeyNotFound => return Err(not_unlockable()),
        Err(e) => return Err(e),
    };
    crate::limits::spend(
        &mut tx,
        &addr,
        "unlock_applied",
        Some(&serial),
        crate::limits::UNLOCKS_PER_KEY_DAILY,
        now,
    )
    .await?;
    let of_record = store::load_handler(&mut tx, &key.handler_id).await?;
    let by_handler_of_record = of_record == req.requester;
    let open = sqlx::query("SELECT id, handler_id, created_at FROM businesses WHERE key_serial = $1 AND kind = $2 AND state NOT IN ($3, $4, $5)")
        .bind(&serial)
        .bind(BusinessKind::Unlock.as_str())
        .bind(BusinessState::Completed.as_str())
        .bind(BusinessState::Rejected.as_str())
        .bind(BusinessState::Cancelled.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = open {
        let open_id = crate::db::text(&row, "id")?;
        let open_handler = crate::db::opt_text(&row, "handler_id")?.unwrap_or_default();
        let requester = store::load_handler(&mut tx, &open_handler).await?;
        if !by_handler_of_record {
            // Another unlock is under way: this one waits until it ends.
            return Err(CaError::UnderWay(OpenBusinessNotice {
                kind: BusinessKind::Unlock,
                requester_masked: mask_name(&requester.name),
                phone_masked: mask_mobile(&requester.phone),
                opened_at: crate::db::instant(crate::db::int(&row, "created_at")?)?,
            }));
        }
        // The handler of record takes precedence: the open unlock ends (their own, left on
        // another computer, or someone else's, who is told).
        store::force_state(
            &mut tx,
            &open_id,
            BusinessState::Cancelled,
            now,
            "证书经办人本人已重新申请解锁，本申请取消",
        )
        .await?;
        if requester != of_record {
            store::send_sms(
                &mut tx,
                &requester.phone,
                Some(&serial),
                "unlock_cancelled",
                "【Keyward】您提交的证书解锁申请已取消：证书经办人本人已申请解锁。如有疑问，请联系 CA 客服。",
                now,
            )
            .await?;
        }
        store::audit(
            &mut tx,
            now,
            "system",
            "unlock_cancelled",
            Some(&serial),
            Some(&open_id),
            "superseded by the handler of record's unlock",
        )
        .await?;
    }
    let (handler_id, first, note) = if by_handler_of_record {
        (
            key.handler_id.clone(),
            BusinessState::Approved,
            "申请人为证书经办人，自动审核通过",
        )
    } else {
        (
            store::insert_handler(&mut tx, &key.uscc, &req.requester, now).await?,
            BusinessState::AwaitingDocuments,
            "申请人不是证书经办人，请上传材料等待审核",
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
    if by_handler_of_record {
        send_unlock_code(&mut tx, &state, &serial, &id, &handler_id, None, now).await?;
        store::audit(
            &mut tx,
            now,
            "system",
            "unlock_auto_approved",
            Some(&serial),
            Some(&id),
            "requester is the handler of record",
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
            "requester is not the handler of record",
        )
        .await?;
    }
    let created = store::created(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/keys/{serial}/unlocks/{id}/code`, with the unlock's secret.
pub async fn send_code(
    State(state): State<AppState>,
    addr: ClientAddr,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<CodeSent>> {
    let b = caller.business()?;
    let (serial, id) = (
        b.business.key_serial.clone().unwrap_or_default(),
        b.business.id.clone(),
    );
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if !matches!(
        b.business.state,
        BusinessState::Approved | BusinessState::Authorised
    ) {
        return reject(ErrorCode::WrongState, "this unlock is not approved");
    }
    let handler = b.handler_id.clone().unwrap_or_default();
    let sent = send_unlock_code(&mut tx, &state, &serial, &id, &handler, Some(&addr), now).await?;
    store::audit(
        &mut tx,
        now,
        "business_secret",
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
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<UnlockAuthorisation>> {
    let known = caller.business()?;
    let (serial, id) = (
        known.business.key_serial.clone().unwrap_or_default(),
        known.business.id.clone(),
    );
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
    if let Err(code) = store::redeem_code(
        &mut tx,
        &serial,
        UNLOCK,
        store::CodeBinding::Business(&id),
        req.code.expose(),
        now,
    )
    .await?
    {
        store::audit(
            &mut tx,
            now,
            "business_secret",
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
            let sealed = state.escrow().seal(&mut tx, &context, &fresh).await?;
            // Only if no retry on another instance escrowed one first: the pending SO PIN
            // is made once, and every answer names that one.
            let done = sqlx::query(
                "UPDATE keys SET pending_so_pin_enc = $1, updated_at = $2 WHERE key_serial = $3 AND pending_so_pin_enc IS NULL",
            )
            .bind(&sealed)
            .bind(now)
            .bind(&serial)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                fresh
            } else {
                let row = sqlx::query("SELECT pending_so_pin_enc FROM keys WHERE key_serial = $1")
                    .bind(&serial)
                    .fetch_one(&mut *tx)
                    .await?;
                let sealed = crate::db::opt_text(&row, "pending_so_pin_enc")?.ok_or_else(|| {
                    CaError::rejected(
                        ErrorCode::WrongState,
                        "the unlock changed meanwhile; ask again",
                    )
                })?;
                state.escrow().open(&context, &sealed)?
            }
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
        "business_secret",
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
    Extension(caller): Extension<Caller>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> CaResult<Json<Business>> {
    let (_, id) = http::path(ids)?;
    let (key, _) = caller.key()?;
    let serial = key.key_serial.clone();
    let b = {
        let mut conn = state.db().acquire().await?;
        store::business_of_key(&mut conn, &serial, &id, BusinessKind::Unlock).await?
    };
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
        "解锁完成",
    )
    .await?;
    // A requester a reviewer approved is the handler of record from now on.
    if let Some(requester) = &b.handler_id
        && *requester != key.handler_id
    {
        store::set_handler_of_record(&mut tx, &serial, requester, now).await?;
        store::audit(
            &mut tx,
            now,
            "system",
            "handler_of_record_changed",
            Some(&serial),
            Some(&id),
            "the reviewed unlock's requester",
        )
        .await?;
    }
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

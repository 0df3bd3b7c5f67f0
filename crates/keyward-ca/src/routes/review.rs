//! The reviewer's queue and decisions. Every decision is recorded in `reviews` and in the
//! audit log, in the transaction that makes it.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::CaResult;
use crate::error::reject;
use crate::http;
use crate::routes::unlock::send_unlock_code;
use crate::staff::StaffAccount;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::{
    Business, BusinessKind, BusinessState, ErrorCode, ReviewDecision, ReviewItem, ReviewQueue,
};
use sqlx::AnyConnection;

/// `GET /admin/v1/reviews`
pub async fn queue(State(state): State<AppState>) -> CaResult<Json<ReviewQueue>> {
    let mut conn = state.db().acquire().await?;
    let rows = sqlx::query("SELECT id FROM businesses WHERE state = $1 ORDER BY id")
        .bind(BusinessState::UnderReview.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = crate::db::text(row, "id")?;
        let b = store::load_business(&mut conn, &id).await?;
        let requester = match &b.handler_id {
            Some(h) => Some(store::load_handler(&mut conn, h).await?),
            // A business of an organisation not yet registered carries its handler.
            None => serde_json::from_value(b.details["handler"].clone()).ok(),
        };
        let attachments = store::attachments_of(&mut conn, &id).await?;
        items.push(ReviewItem {
            business: b.business,
            requester,
            attachments,
        });
    }
    Ok(Json(ReviewQueue { items }))
}

async fn record(
    conn: &mut AnyConnection,
    business: &Business,
    decision: &str,
    d: &ReviewDecision,
    reviewer: &StaffAccount,
    now: i64,
) -> CaResult<()> {
    sqlx::query("INSERT INTO reviews (id, business_id, reviewer, decision, note, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(crate::db::new_id("rv")?)
        .bind(&business.id)
        .bind(&reviewer.name)
        .bind(decision)
        .bind(&d.note)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    store::audit(
        conn,
        now,
        &reviewer.actor(),
        &format!("review_{decision}"),
        business.key_serial.as_deref(),
        Some(&business.id),
        &d.note,
    )
    .await
}

async fn decide(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> CaResult<Json<Business>> {
    let reviewer = caller.staff()?.clone();
    let id = http::path(id)?;
    let body = http::body(body)?;
    let d: ReviewDecision = http::json(&headers, &body)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    match b.business.state {
        BusinessState::UnderReview => {}
        BusinessState::Approved
        | BusinessState::Rejected
        | BusinessState::Authorised
        | BusinessState::Completed => {
            return reject(
                ErrorCode::AlreadyDecided,
                "this business has already been decided",
            );
        }
        _ => return reject(ErrorCode::WrongState, "this business is not under review"),
    }
    if approve {
        store::transition(
            &mut tx,
            &id,
            BusinessState::UnderReview,
            BusinessState::Approved,
            now,
            &decision_note("审核通过", &d.note),
        )
        .await?;
        record(&mut tx, &b.business, "approved", &d, &reviewer, now).await?;
        if b.business.kind == BusinessKind::Unlock
            && let (Some(key), Some(handler)) = (&b.business.key_serial, &b.handler_id)
        {
            send_unlock_code(&mut tx, &state, key, &b.business.id, handler, None, now).await?;
        }
        if b.business.kind == BusinessKind::Seal {
            crate::routes::seal::make_seal(&mut tx, &state, &b, now).await?;
        }
        if b.business.kind == BusinessKind::Refund {
            crate::routes::orders::carry_out_refund(&mut tx, &b, now).await?;
        }
    } else {
        store::transition(
            &mut tx,
            &id,
            BusinessState::UnderReview,
            BusinessState::Rejected,
            now,
            &decision_note("审核未通过", &d.note),
        )
        .await?;
        record(&mut tx, &b.business, "rejected", &d, &reviewer, now).await?;
        // The requester of an unlock waits for an SMS either way: a rejection is told too.
        if b.business.kind == BusinessKind::Unlock
            && let Some(handler) = &b.handler_id
        {
            let requester = store::load_handler(&mut tx, handler).await?;
            store::send_sms(
                &mut tx,
                &requester.phone,
                b.business.key_serial.as_deref(),
                "unlock_rejected",
                &format!(
                    "【Keyward】您提交的证书解锁申请未通过审核：{}。可在 Keyward 中按意见重新申请，如有疑问请联系 CA 客服。",
                    d.note
                ),
                now,
            )
            .await?;
        }
    }
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// `POST /admin/v1/reviews/{id}/approve`
pub async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    decide(state, caller, headers, id, body, true).await
}

/// `POST /admin/v1/reviews/{id}/reject`
pub async fn reject_business(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    decide(state, caller, headers, id, body, false).await
}

/// The timeline's note for a decision: "审核通过：<the reviewer's note>", or the decision
/// alone when the reviewer wrote none (never a colon with nothing after it).
fn decision_note(decision: &str, note: &str) -> String {
    match note.trim() {
        "" => decision.to_owned(),
        n => format!("{decision}：{n}"),
    }
}

#[cfg(test)]
mod decision_tests {
    use super::decision_note;

    #[test]
    fn a_decision_without_a_note_has_no_empty_colon() {
        assert_eq!(decision_note("审核通过", ""), "审核通过");
        assert_eq!(decision_note("审核通过", "  "), "审核通过");
        assert_eq!(
            decision_note("审核未通过", "印模不清晰"),
            "审核未通过：印模不清晰"
        );
    }
}

//! Payment: a payment request per business (by whoever may act on it), the provider's
//! signed, idempotent notification, and — only with `--sandbox-payments` — the sandbox
//! provider's payer, which notifies under the sandbox provider's own key.

use crate::app::AppState;
use crate::auth::Caller;
use crate::crypto;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::{
    BusinessKind, BusinessState, ErrorCode, PaymentNotification, PaymentRequest, PaymentStatus,
    SandboxOutcome,
};
use sqlx::AnyConnection;

async fn load_payment(conn: &mut AnyConnection, id: &str) -> CaResult<PaymentRequest> {
    let row = sqlx::query("SELECT * FROM payments WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| CaError::rejected(ErrorCode::PaymentNotFound, format!("no payment {id}")))?;
    payment_from_row(&row)
}

fn payment_from_row(row: &sqlx::any::AnyRow) -> CaResult<PaymentRequest> {
    let status = crate::db::text(row, "status")?;
    let id = crate::db::text(row, "id")?;
    Ok(PaymentRequest {
        pay_url: pay_url(&id),
        payment_id: id,
        business_id: crate::db::text(row, "business_id")?,
        amount_fen: crate::db::int(row, "amount_fen")?,
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| CaError::Corrupt(format!("payment status {status}")))?,
    })
}

fn pay_url(payment_id: &str) -> String {
    format!("/sandbox/payments/{payment_id}")
}

/// `POST /v1/businesses/{id}/payment`: returns the pending payment, or opens a new one.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<PaymentRequest>> {
    let id = caller.business()?.business.id.clone();
    let now = state.now();
    let mut conn = state.db().acquire().await?;
    if crate::db::is_postgres(&conn)
        && let Some(p) = create_in_one_statement(&mut conn, &id, &caller.actor(), now).await?
    {
        return Ok(Json(p));
    }
    // SQLite; or on PostgreSQL a business not awaiting payment, refused as below.
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if b.business.state != BusinessState::AwaitingPayment {
        return reject(
            ErrorCode::WrongState,
            "this business is not awaiting payment",
        );
    }
    let pending =
        sqlx::query("SELECT * FROM payments WHERE business_id = $1 AND status = 'pending'")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
    let p = match pending {
        Some(row) => payment_from_row(&row)?,
        None => {
            let pid = crate::db::new_id("pay")?;
            sqlx::query("INSERT INTO payments (id, business_id, amount_fen, status, created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $4)")
                .bind(&pid)
                .bind(&id)
                .bind(b.business.fee_fen)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => CaError::rejected(
                        ErrorCode::WrongState,
                        "a payment for this business was just opened; ask again",
                    ),
                    _ => CaError::from(e),
                })?;
            store::audit(
                &mut tx,
                now,
                &caller.actor(),
                "payment_requested",
                b.business.key_serial.as_deref(),
                Some(&id),
                &pid,
            )
            .await?;
            PaymentRequest {
                pay_url: pay_url(&pid),
                payment_id: pid,
                business_id: id.clone(),
                amount_fen: b.business.fee_fen,
                status: PaymentStatus::Pending,
            }
        }
    };
    tx.commit().await?;
    Ok(Json(p))
}

/// [`create`] on PostgreSQL, for a business awaiting payment: its pending payment, or a new
/// one with its audit line, in one statement. `None` (nothing written) when the business is
/// not awaiting payment. Two requests racing to open one meet at the index of pending
/// payments, as in the transaction.
async fn create_in_one_statement(
    conn: &mut AnyConnection,
    id: &str,
    actor: &str,
    now: i64,
) -> CaResult<Option<PaymentRequest>> {
    let pid = crate::db::new_id("pay")?;
    let row = sqlx::query(
        "WITH b AS (SELECT id, fee_fen, key_serial FROM businesses WHERE id = $1 AND state = $2), \
         p AS (SELECT id, business_id, amount_fen, status FROM payments WHERE business_id = $1 AND status = 'pending' AND EXISTS (SELECT 1 FROM b)), \
         i AS (INSERT INTO payments (id, business_id, amount_fen, status, created_at, updated_at) \
           SELECT $3, id, fee_fen, 'pending', $4, $4 FROM b WHERE NOT EXISTS (SELECT 1 FROM p) \
           RETURNING id, business_id, amount_fen, status), \
         a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) \
           SELECT $5, $4, $6, 'payment_requested', b.key_serial, b.id, i.id FROM b, i) \
         SELECT * FROM p UNION ALL SELECT * FROM i",
    )
    .bind(id)
    .bind(BusinessState::AwaitingPayment.as_str())
    .bind(&pid)
    .bind(now)
    .bind(crate::db::new_id("au")?)
    .bind(actor)
    .fetch_optional(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => CaError::rejected(
            ErrorCode::WrongState,
            "a payment for this business was just opened; ask again",
        ),
        _ => CaError::from(e),
    })?;
    row.as_ref().map(payment_from_row).transpose()
}

/// Applies a verified notification. Idempotent: a repeat changes nothing; `paid` is final.
/// `known` is the payment as the caller just read it, if it did.
async fn apply_notification(
    state: &AppState,
    n: &PaymentNotification,
    known: Option<PaymentRequest>,
) -> CaResult<PaymentRequest> {
    let now = state.now();
    let mut conn = state.db().acquire().await?;
    if crate::db::is_postgres(&conn) {
        let p = match known {
            Some(p) => p,
            None => load_payment(&mut conn, &n.payment_id).await?,
        };
        check_notification(n, &p)?;
        if p.status != PaymentStatus::Pending || n.status == PaymentStatus::Pending {
            return Ok(p);
        }
        if notification_in_one_statement(&mut conn, &p, n.status, now).await? {
            return Ok(PaymentRequest {
                status: n.status,
                ..p
            });
        }
        // Nothing written: the payment or its business moved on meanwhile. The transaction
        // below answers as it always has (a repeat, or a refusal).
    }
    notification_in_transaction(state, &mut conn, n, now).await
}

fn check_notification(n: &PaymentNotification, p: &PaymentRequest) -> CaResult<()> {
    if n.amount_fen != p.amount_fen || n.business_id != p.business_id {
        return reject(
            ErrorCode::InvalidRequest,
            "the notified amount or order differs from the payment's",
        );
    }
    Ok(())
}

async fn notification_in_transaction(
    state: &AppState,
    conn: &mut AnyConnection,
    n: &PaymentNotification,
    now: i64,
) -> CaResult<PaymentRequest> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let p = load_payment(&mut tx, &n.payment_id).await?;
    check_notification(n, &p)?;
    if p.status != PaymentStatus::Pending || n.status == PaymentStatus::Pending {
        return Ok(p);
    }
    let done = sqlx::query(
        "UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(n.status.as_str())
    .bind(now)
    .bind(&p.payment_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        // The same notification, delivered to another instance too, got there first: it
        // counts once, and this delivery is answered like any repeat.
        drop(tx);
        let mut conn = state.db().acquire().await?;
        return load_payment(&mut conn, &n.payment_id).await;
    }
    let b = store::load_business(&mut tx, &p.business_id).await?;
    let key = b.business.key_serial.as_deref();
    if n.status == PaymentStatus::Paid {
        store::transition(
            &mut tx,
            &p.business_id,
            BusinessState::AwaitingPayment,
            BusinessState::Paid,
            now,
            "已支付",
        )
        .await?;
        if b.business.kind != BusinessKind::Renewal {
            // Paperwork businesses go on to their documents once paid.
            store::transition(
                &mut tx,
                &p.business_id,
                BusinessState::Paid,
                BusinessState::AwaitingDocuments,
                now,
                "请上传申请材料",
            )
            .await?;
        }
        store::audit(
            &mut tx,
            now,
            "payment_provider",
            "payment_paid",
            key,
            Some(&p.business_id),
            &p.payment_id,
        )
        .await?;
    } else {
        store::audit(
            &mut tx,
            now,
            "payment_provider",
            "payment_failed",
            key,
            Some(&p.business_id),
            &p.payment_id,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(PaymentRequest {
        status: n.status,
        ..p
    })
}

/// The changes of [`apply_notification`] on PostgreSQL, in one statement: the payment
/// leaves `pending`; paid, the business moves on from awaiting payment (a renewal to
/// `paid`, anything else on to its documents) with its events; and the audit line. A paid
/// notification changes the payment only while its business is awaiting payment, that
/// business locked until the statement ends, so the business's change cannot fail once the
/// payment's is made. `false` when nothing was written (the payment no longer pending, or a
/// paid one whose business no longer awaits payment).
async fn notification_in_one_statement(
    conn: &mut AnyConnection,
    p: &PaymentRequest,
    status: PaymentStatus,
    now: i64,
) -> CaResult<bool> {
    let row = sqlx::query(
        "WITH l AS (SELECT id FROM businesses WHERE id = $11 AND state = $7 FOR UPDATE), \
         p AS (UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending' \
           AND ($1 <> $5 OR EXISTS (SELECT 1 FROM l)) RETURNING business_id), \
         b AS (UPDATE businesses SET state = CASE WHEN kind = $4 THEN $5 ELSE $6 END, updated_at = $2 \
           WHERE id IN (SELECT business_id FROM p) AND state = $7 AND $1 = $5 RETURNING id, kind), \
         e AS (INSERT INTO business_events (id, business_id, at, state, note) \
           SELECT $8, id, $2, $5, '已支付' FROM b \
           UNION ALL SELECT $9, id, $2, $6, '请上传申请材料' FROM b WHERE kind <> $4), \
         a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) \
           SELECT $10, $2, 'payment_provider', CASE WHEN $1 = $5 THEN 'payment_paid' ELSE 'payment_failed' END, x.key_serial, x.id, $3 \
           FROM businesses x WHERE x.id IN (SELECT business_id FROM p)) \
         SELECT (SELECT COUNT(*) FROM p) AS payments, (SELECT COUNT(*) FROM b) AS businesses",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(&p.payment_id)
    .bind(BusinessKind::Renewal.as_str())
    .bind(BusinessState::Paid.as_str())
    .bind(BusinessState::AwaitingDocuments.as_str())
    .bind(BusinessState::AwaitingPayment.as_str())
    .bind(crate::db::new_id("ev")?)
    .bind(crate::db::new_id("ev")?)
    .bind(crate::db::new_id("au")?)
    .bind(&p.business_id)
    .fetch_one(conn)
    .await?;
    let payments = crate::db::int(&row, "payments")?;
    if status == PaymentStatus::Paid && payments == 1 && crate::db::int(&row, "businesses")? != 1 {
        // The business was locked awaiting payment: this cannot be, and is said loudly.
        return Err(CaError::Corrupt(format!(
            "payment {} applied without its business {}",
            p.payment_id, p.business_id
        )));
    }
    Ok(payments == 1)
}

/// `POST /v1/payments/notify`: the provider's callback, HMAC-SHA256 over the body (checked
/// before this handler runs).
pub async fn notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<PaymentRequest>> {
    let body = http::body(body)?;
    let n: PaymentNotification = http::json(&headers, &body)?;
    Ok(Json(apply_notification(&state, &n, None).await?))
}

/// `POST /sandbox/payments/{id}/complete`: the sandbox payer pays (or fails); the sandbox
/// provider then notifies the service as a provider would, signed with its own key, and the
/// notification is checked like any other.
pub async fn sandbox_complete(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<PaymentRequest>> {
    let id = http::path(id)?;
    let body = http::body(body)?;
    let req: SandboxOutcome = http::json(&headers, &body)?;
    if req.outcome == PaymentStatus::Pending {
        return reject(ErrorCode::InvalidRequest, "the outcome is paid or failed");
    }
    let p = {
        let mut conn = state.db().acquire().await?;
        load_payment(&mut conn, &id).await?
    };
    let n = PaymentNotification {
        payment_id: p.payment_id.clone(),
        business_id: p.business_id.clone(),
        status: req.outcome,
        amount_fen: p.amount_fen,
    };
    let bytes = serde_json::to_vec(&n).map_err(|_| CaError::Crypto("notification encoding"))?;
    let Some(key) = state.sandbox_payment_key() else {
        return reject(ErrorCode::NotFound, "no such endpoint");
    };
    // What the sandbox provider sends to /v1/payments/notify; verified the same way.
    let tag = crypto::hmac_hex(key, &bytes);
    tracing::info!(payment_id = %n.payment_id, outcome = n.status.as_str(), "sandbox payer acted");
    if !state.payment_signature_valid(&bytes, &tag) {
        return reject(
            ErrorCode::PaymentSignatureInvalid,
            "sandbox notification did not verify",
        );
    }
    Ok(Json(apply_notification(&state, &n, Some(p)).await?))
}

/// `GET /sandbox/payments/{id}`: the sandbox provider's payment page, where the operator
/// (or the demo) presses "pay" or "fail". Plain HTML, no scripts from elsewhere.
pub async fn sandbox_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> CaResult<axum::response::Html<String>> {
    let id = http::path(id)?;
    let p = {
        let mut conn = state.db().acquire().await?;
        load_payment(&mut conn, &id).await?
    };
    let yuan = format!("{}.{:02}", p.amount_fen / 100, p.amount_fen % 100);
    let status = p.status.as_str();
    // Ids are generated by the service (letters and hex digits), so they need no escaping.
    Ok(axum::response::Html(format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Keyward 沙箱支付</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>沙箱支付 Sandbox payment</h1>
<p>订单 Payment <code>{pid}</code>，业务 Business <code>{bid}</code></p>
<p style="font-size:1.5em">¥ {yuan}</p>
<p>状态 Status: <strong id="status">{status}</strong></p>
<button onclick="act('paid')">支付成功 Pay</button>
<button onclick="act('failed')">支付失败 Fail</button>
<script>
async function act(outcome) {{
  const r = await fetch('/sandbox/payments/{pid}/complete', {{
    method: 'POST', headers: {{'content-type': 'application/json'}},
    body: JSON.stringify({{outcome}})
  }});
  const v = await r.json();
  document.getElementById('status').textContent = v.status || v.code;
}}
</script>
</body></html>"#,
        pid = p.payment_id,
        bid = p.business_id,
    )))
}

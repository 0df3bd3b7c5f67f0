//! The other businesses as orders with forms, review, fees and state: new application, add
//! a certificate, change, re-issue, refund (`POST /v1/businesses`), the electronic seal
//! (`POST /v1/keys/{serial}/seals`), invoices, organisation progress, and the station's
//! completion of an accepted business.
//!
//! Paperwork businesses: fee due → `awaiting_payment` → paid → `awaiting_documents`; free
//! ones start at `awaiting_documents`; then attachments → `under_review` → reviewer →
//! `approved` (accepted, 受理) → the station completes them.

use crate::app::AppState;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::routes::admin::{
    check_years, validate_handler, validate_key_serial, validate_organisation,
};
use crate::store;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use keyward_ca_api::{
    Business, BusinessForm, BusinessKind, BusinessList, BusinessState, ErrorCode, Handler, Invoice,
    InvoiceDetails, InvoiceStatus, KeyState, REFUND_WINDOW_DAYS, REISSUE_FEE_FEN,
    RENEWAL_FEE_PER_YEAR_FEN, ReviewDecision, SealApplication,
};
use serde_json::json;
use sqlx::AnyConnection;

fn check_invoice(inv: &InvoiceDetails) -> CaResult<()> {
    if inv.title.trim().is_empty() || inv.tax_id.trim().is_empty() || !inv.email.contains('@') {
        return reject(
            ErrorCode::InvalidRequest,
            "invoice title, tax id and an e-mail address are required",
        );
    }
    Ok(())
}

async fn organisation_exists(conn: &mut AnyConnection, uscc: &str) -> CaResult<()> {
    store::organisation_name(conn, uscc).await.map(|_| ())
}

/// Whether a business may still be refunded because the CA has not accepted it yet.
fn not_yet_accepted(b: &Business) -> bool {
    match b.kind {
        BusinessKind::Renewal => matches!(
            b.state,
            BusinessState::AwaitingPayment | BusinessState::Paid
        ),
        BusinessKind::Refund | BusinessKind::Issue | BusinessKind::Unlock => false,
        _ => matches!(
            b.state,
            BusinessState::Submitted
                | BusinessState::AwaitingPayment
                | BusinessState::AwaitingDocuments
                | BusinessState::UnderReview
        ),
    }
}

/// Checks the refund rules for `target`; `Ok` when it may be refunded now.
async fn check_refundable(conn: &mut AnyConnection, target: &Business, now: i64) -> CaResult<()> {
    if target.kind == BusinessKind::Issue {
        let serial = target.key_serial.clone().unwrap_or_default();
        let key = store::load_key(&mut *conn, &serial).await?;
        if key.state == KeyState::Active {
            return reject(
                ErrorCode::RefundNotAllowed,
                "an activated key is never refunded",
            );
        }
        if now > key.delivered_at + REFUND_WINDOW_DAYS * 86_400 {
            return reject(
                ErrorCode::RefundNotAllowed,
                "the key was delivered more than 14 days ago and cannot be refunded",
            );
        }
        return Ok(());
    }
    if !not_yet_accepted(target) {
        return reject(
            ErrorCode::RefundNotAllowed,
            "only business the CA has not yet accepted can be refunded",
        );
    }
    Ok(())
}

/// `POST /v1/businesses`
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    let body = http::body(body)?;
    let form: BusinessForm = http::json(&headers, &body)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let (kind, uscc, key_serial, handler, fee, details, note): (
        BusinessKind,
        String,
        Option<String>,
        Handler,
        i64,
        serde_json::Value,
        &str,
    ) = match form {
        BusinessForm::NewApplication(f) => {
            validate_organisation(&f.organisation)?;
            validate_handler(&f.handler)?;
            let years = check_years(f.years)?;
            check_invoice(&f.invoice)?;
            crate::routes::admin::upsert_organisation(&mut tx, &f.organisation, now).await?;
            (
                BusinessKind::NewApplication,
                f.organisation.uscc.clone(),
                None,
                f.handler,
                years * RENEWAL_FEE_PER_YEAR_FEN,
                json!({"years": years, "invoice": f.invoice}),
                "新申请已提交，等待支付",
            )
        }
        BusinessForm::AddCertificate(f) => {
            validate_handler(&f.handler)?;
            let years = check_years(f.years)?;
            check_invoice(&f.invoice)?;
            organisation_exists(&mut tx, &f.uscc).await?;
            (
                BusinessKind::AddCertificate,
                f.uscc,
                None,
                f.handler,
                years * RENEWAL_FEE_PER_YEAR_FEN,
                json!({"years": years, "invoice": f.invoice}),
                "增加证书申请已提交，等待支付",
            )
        }
        BusinessForm::Change(f) => {
            validate_key_serial(&f.key_serial)?;
            validate_handler(&f.handler)?;
            let name = f
                .new_name
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let address = f
                .new_legal_address
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            if name.is_none() && address.is_none() {
                return reject(
                    ErrorCode::InvalidRequest,
                    "a change needs a new name or a new legal address",
                );
            }
            let key = store::load_key(&mut tx, &f.key_serial).await?;
            (
                BusinessKind::Change,
                key.uscc,
                Some(f.key_serial),
                f.handler,
                0,
                json!({"new_name": name, "new_legal_address": address}),
                "变更申请已提交，请上传材料",
            )
        }
        BusinessForm::Reissue(f) => {
            validate_key_serial(&f.key_serial)?;
            validate_handler(&f.handler)?;
            check_invoice(&f.invoice)?;
            let key = store::load_key(&mut tx, &f.key_serial).await?;
            let cert = store::load_cert(&mut tx, &key.current_cert).await?;
            if cert.info.not_after.unix_timestamp() <= now {
                return reject(
                    ErrorCode::CertificateExpired,
                    "the certificate has expired; apply for a new certificate",
                );
            }
            (
                BusinessKind::Reissue,
                key.uscc,
                Some(f.key_serial),
                f.handler,
                REISSUE_FEE_FEN,
                json!({"reason": f.reason.as_str(), "invoice": f.invoice}),
                "补办申请已提交，等待支付",
            )
        }
        BusinessForm::Refund(f) => {
            validate_handler(&f.handler)?;
            if f.reason.trim().is_empty() {
                return reject(ErrorCode::InvalidRequest, "say why the refund is asked for");
            }
            let target = store::load_business(&mut tx, &f.business_id).await?;
            check_refundable(&mut tx, &target.business, now).await?;
            let open = sqlx::query("SELECT id FROM businesses WHERE kind = $1 AND state NOT IN ($2, $3, $4) AND details LIKE $5")
                .bind(BusinessKind::Refund.as_str())
                .bind(BusinessState::Completed.as_str())
                .bind(BusinessState::Rejected.as_str())
                .bind(BusinessState::Cancelled.as_str())
                .bind(format!("%\"{}\"%", f.business_id))
                .fetch_optional(&mut *tx)
                .await?;
            if open.is_some() {
                return reject(
                    ErrorCode::WrongState,
                    "a refund of this business is already under way",
                );
            }
            (
                BusinessKind::Refund,
                target.business.uscc.clone(),
                target.business.key_serial.clone(),
                f.handler,
                0,
                json!({"business_id": f.business_id, "reason": f.reason}),
                "退款申请已提交，请上传加盖公章的退款申请表",
            )
        }
    };
    let handler_id = store::insert_handler(&mut tx, &uscc, &handler, now).await?;
    let first = if fee > 0 {
        BusinessState::AwaitingPayment
    } else {
        BusinessState::AwaitingDocuments
    };
    let id = store::create_business(
        &mut tx,
        kind,
        first,
        key_serial.as_deref(),
        &uscc,
        Some(&handler_id),
        fee,
        &details,
        now,
        note,
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "client",
        &format!("{}_ordered", kind.as_str()),
        key_serial.as_deref(),
        Some(&id),
        "",
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// Called when a reviewer approves a refund: cancels the refunded business and marks its
/// payments refunded, in the approval's transaction.
pub async fn carry_out_refund(
    conn: &mut AnyConnection,
    refund: &store::BusinessRow,
    now: i64,
) -> CaResult<()> {
    let target_id = refund.details["business_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let target = store::load_business(&mut *conn, &target_id).await?;
    check_refundable(&mut *conn, &target.business, now).await?;
    store::force_state(
        &mut *conn,
        &target_id,
        BusinessState::Cancelled,
        now,
        "已退款，业务取消",
    )
    .await?;
    sqlx::query("UPDATE payments SET status = 'refunded', updated_at = $1 WHERE business_id = $2 AND status = 'paid'")
        .bind(now)
        .bind(&target_id)
        .execute(&mut *conn)
        .await?;
    store::transition(
        conn,
        &refund.business.id,
        BusinessState::Approved,
        BusinessState::Completed,
        now,
        "退款已办理",
    )
    .await
}

/// `POST /v1/keys/{serial}/seals`, signed by the key.
pub async fn seal(
    State(state): State<AppState>,
    serial: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    let serial = http::path(serial)?;
    let body = http::body(body)?;
    let req: SealApplication = http::json(&headers, &body)?;
    let name = req.seal_name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return reject(
            ErrorCode::InvalidRequest,
            "the seal name is 1 to 60 characters",
        );
    }
    let (key, cert) =
        http::authenticate_current(&state, &serial, &method, &uri, &headers, &body).await?;
    if key.state != KeyState::Active {
        return reject(ErrorCode::KeyNotActivated, "activate the key first");
    }
    let now = state.now();
    if cert.info.not_after.unix_timestamp() <= now {
        return reject(
            ErrorCode::CertificateExpired,
            "the certificate has expired; apply for a new certificate",
        );
    }
    let mut tx = state.db().begin().await?;
    let org = store::organisation_name(&mut tx, &key.uscc).await?;
    if !name.contains(org.as_str()) {
        return reject(
            ErrorCode::NameChangeNotSeal,
            format!(
                "the seal must bear the registered name {org}; a company-name change goes through the change business"
            ),
        );
    }
    let rows = sqlx::query("SELECT state FROM businesses WHERE key_serial = $1 AND kind = $2")
        .bind(&serial)
        .bind(BusinessKind::Seal.as_str())
        .fetch_all(&mut *tx)
        .await?;
    let mut has_seal = false;
    for row in &rows {
        match BusinessState::parse(&crate::db::text(row, "state")?) {
            Some(BusinessState::Completed) => has_seal = true,
            Some(BusinessState::Rejected | BusinessState::Cancelled) => {}
            _ => {
                return reject(
                    ErrorCode::WrongState,
                    "a seal business for this key is already under way",
                );
            }
        }
    }
    if req.change && !has_seal {
        return reject(
            ErrorCode::WrongState,
            "this key has no seal yet; apply for one",
        );
    }
    if !req.change && has_seal {
        return reject(
            ErrorCode::WrongState,
            "a certificate holds exactly one seal; apply for a change",
        );
    }
    let details =
        json!({"seal_name": name, "seal_kind": req.seal_kind.as_str(), "change": req.change});
    let id = store::create_business(
        &mut tx,
        BusinessKind::Seal,
        BusinessState::AwaitingDocuments,
        Some(&serial),
        &key.uscc,
        Some(&key.handler_id),
        0,
        &details,
        now,
        "印章申请已提交，请下载印章申请表，盖章后上传扫描件",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "seal_ordered",
        Some(&serial),
        Some(&id),
        name,
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// `POST /v1/businesses/{id}/invoice`
pub async fn invoice(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Invoice>> {
    let id = http::path(id)?;
    let body = http::body(body)?;
    let details: InvoiceDetails = http::json(&headers, &body)?;
    check_invoice(&details)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if b.business.fee_fen <= 0 {
        return reject(
            ErrorCode::InvalidRequest,
            "this business was free; there is nothing to invoice",
        );
    }
    if b.business.state != BusinessState::Completed {
        return reject(
            ErrorCode::WrongState,
            "the invoice follows the end of the business",
        );
    }
    let existing = sqlx::query("SELECT * FROM invoices WHERE business_id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
    let row = match existing {
        Some(row) => row,
        None => {
            sqlx::query("INSERT INTO invoices (business_id, amount_fen, title, tax_id, email, status, requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&id)
                .bind(b.business.fee_fen)
                .bind(&details.title)
                .bind(&details.tax_id)
                .bind(&details.email)
                .bind(InvoiceStatus::Requested.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            store::audit(
                &mut tx,
                now,
                "client",
                "invoice_requested",
                b.business.key_serial.as_deref(),
                Some(&id),
                "",
            )
            .await?;
            sqlx::query("SELECT * FROM invoices WHERE business_id = $1")
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    let status = crate::db::text(&row, "status")?;
    Ok(Json(Invoice {
        business_id: id,
        amount_fen: crate::db::int(&row, "amount_fen")?,
        details: InvoiceDetails {
            title: crate::db::text(&row, "title")?,
            tax_id: crate::db::text(&row, "tax_id")?,
            email: crate::db::text(&row, "email")?,
        },
        status: InvoiceStatus::parse(&status)
            .ok_or_else(|| CaError::Corrupt(format!("invoice status {status}")))?,
        requested_at: crate::db::instant(crate::db::int(&row, "requested_at")?)?,
    }))
}

/// `POST /admin/v1/businesses/{id}/complete`
pub async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    http::require_admin(&state, &headers)?;
    let id = http::path(id)?;
    let body = http::body(body)?;
    let d: ReviewDecision = http::json(&headers, &body)?;
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if matches!(
        b.business.kind,
        BusinessKind::Issue | BusinessKind::Renewal | BusinessKind::Unlock | BusinessKind::Refund
    ) {
        return reject(
            ErrorCode::WrongState,
            "this kind of business completes through its own steps",
        );
    }
    if b.business.state != BusinessState::Approved {
        return reject(
            ErrorCode::WrongState,
            "only an accepted (approved) business can be completed",
        );
    }
    if b.business.kind == BusinessKind::Change {
        if let Some(name) = b.details["new_name"].as_str() {
            sqlx::query("UPDATE organisations SET name = $1, updated_at = $2 WHERE uscc = $3")
                .bind(name)
                .bind(now)
                .bind(&b.business.uscc)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(address) = b.details["new_legal_address"].as_str() {
            sqlx::query(
                "UPDATE organisations SET legal_address = $1, updated_at = $2 WHERE uscc = $3",
            )
            .bind(address)
            .bind(now)
            .bind(&b.business.uscc)
            .execute(&mut *tx)
            .await?;
        }
    }
    store::transition(
        &mut tx,
        &id,
        BusinessState::Approved,
        BusinessState::Completed,
        now,
        &format!("办理完成：{}", d.note),
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        &format!("station:{}", d.reviewer),
        &format!("{}_completed", b.business.kind.as_str()),
        b.business.key_serial.as_deref(),
        Some(&id),
        &d.note,
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// `GET /v1/organisations/{uscc}/businesses`
pub async fn organisation_progress(
    State(state): State<AppState>,
    uscc: Result<Path<String>, PathRejection>,
) -> CaResult<Json<BusinessList>> {
    let uscc = http::path(uscc)?;
    let mut conn = state.db().acquire().await?;
    organisation_exists(&mut conn, &uscc).await?;
    let businesses = store::businesses_of_organisation(&mut conn, &uscc).await?;
    Ok(Json(BusinessList { businesses }))
}

//! The other businesses as orders with forms, review, fees and state: new application, add
//! a certificate and re-issue (`POST /v1/businesses`, for businesses whose key cannot sign),
//! change (`POST /v1/keys/{serial}/changes`, signed by the key), refund
//! (`POST /v1/businesses/{id}/refund`), the electronic seal (`POST /v1/keys/{serial}/seals`),
//! invoices, organisation progress for staff, and the station's completion of an accepted
//! business.
//!
//! Paperwork businesses: fee due → `awaiting_payment` → paid → `awaiting_documents`; free
//! ones start at `awaiting_documents`; then attachments → `under_review` → reviewer →
//! `approved` (accepted, 受理) → the station completes them. What a business proposes (a new
//! organisation, a new name or address, a new handler) is kept in the business and applied
//! only then.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::limits::ClientAddr;
use crate::routes::admin::{
    check_years, validate_handler, validate_key_serial, validate_organisation,
};
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::{
    Business, BusinessForm, BusinessKind, BusinessList, BusinessState, ChangeForm, CreatedBusiness,
    ErrorCode, Handler, Invoice, InvoiceDetails, InvoiceStatus, KeyState, Organisation,
    REFUND_WINDOW_DAYS, REISSUE_FEE_FEN, RENEWAL_FEE_PER_YEAR_FEN, RefundForm, ReviewDecision,
    SealApplication,
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

/// The handler a business names, recorded under its organisation when the CA knows it
/// (otherwise the business's details carry it until the station completes it).
async fn record_handler(
    conn: &mut AnyConnection,
    uscc: &str,
    handler: &Handler,
    now: i64,
) -> CaResult<Option<String>> {
    match store::organisation_name(&mut *conn, uscc).await {
        Ok(_) => Ok(Some(store::insert_handler(conn, uscc, handler, now).await?)),
        Err(e) if e.code() == ErrorCode::OrganisationNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_reissuable() -> CaError {
    // The same answer for an unknown key and one whose certificate has expired.
    CaError::rejected(
        ErrorCode::WrongState,
        "this key cannot be re-issued online; apply for a new certificate",
    )
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

/// `POST /v1/businesses`: a business whose key cannot sign. Anyone may order one; it
/// changes nothing until a reviewer approves it, and its secret is the only way back to it.
pub async fn create(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
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
            // The organisation as proposed: registered only when the station completes the
            // approved business, never by the order itself.
            (
                BusinessKind::NewApplication,
                f.organisation.uscc.clone(),
                None,
                f.handler.clone(),
                years * RENEWAL_FEE_PER_YEAR_FEN,
                json!({"years": years, "invoice": f.invoice, "organisation": f.organisation, "handler": f.handler}),
                "新申请已提交，等待支付",
            )
        }
        BusinessForm::AddCertificate(f) => {
            validate_handler(&f.handler)?;
            keyward_ca_api::ids::validate_uscc(&f.uscc)
                .map_err(|e| CaError::rejected(ErrorCode::InvalidUscc, e.to_string()))?;
            let years = check_years(f.years)?;
            check_invoice(&f.invoice)?;
            (
                BusinessKind::AddCertificate,
                f.uscc,
                None,
                f.handler.clone(),
                years * RENEWAL_FEE_PER_YEAR_FEN,
                json!({"years": years, "invoice": f.invoice, "handler": f.handler}),
                "增加证书申请已提交，等待支付",
            )
        }
        BusinessForm::Reissue(f) => {
            validate_key_serial(&f.key_serial)?;
            validate_handler(&f.handler)?;
            check_invoice(&f.invoice)?;
            let key = match store::load_key(&mut tx, &f.key_serial).await {
                Ok(k) => k,
                Err(e) if e.code() == ErrorCode::KeyNotFound => return Err(not_reissuable()),
                Err(e) => return Err(e),
            };
            let cert = store::load_cert(&mut tx, &key.current_cert).await?;
            if cert.info.not_after.unix_timestamp() <= now {
                return Err(not_reissuable());
            }
            (
                BusinessKind::Reissue,
                key.uscc,
                Some(f.key_serial),
                f.handler.clone(),
                REISSUE_FEE_FEN,
                json!({"reason": f.reason.as_str(), "invoice": f.invoice, "handler": f.handler}),
                "补办申请已提交，等待支付",
            )
        }
    };
    crate::limits::spend(
        &mut tx,
        &addr,
        "business_ordered",
        None,
        state.address_caps().public_businesses,
        now,
    )
    .await?;
    crate::limits::check_open_businesses(&mut tx, &uscc).await?;
    let handler_id = record_handler(&mut tx, &uscc, &handler, now).await?;
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
        handler_id.as_deref(),
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
        &addr.text(),
    )
    .await?;
    let created = store::created(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/keys/{serial}/changes`, signed by the key: a new name or legal address, and
/// the handler who asks. Applied when a reviewer approves and the station completes it.
pub async fn change(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
    let (key, _) = caller.key()?;
    let body = http::body(body)?;
    let f: ChangeForm = http::json(&headers, &body)?;
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
    for (field, value, max) in [("name", name, 100), ("legal address", address, 200)] {
        if let Some(v) = value
            && (v.chars().count() > max || v.chars().any(char::is_control))
        {
            return reject(
                ErrorCode::InvalidParty,
                format!("the new {field} must be 1 to {max} printable characters"),
            );
        }
    }
    let now = state.now();
    let mut tx = state.db().begin().await?;
    crate::limits::check_open_businesses(&mut tx, &key.uscc).await?;
    let handler_id = store::insert_handler(&mut tx, &key.uscc, &f.handler, now).await?;
    let id = store::create_business(
        &mut tx,
        BusinessKind::Change,
        BusinessState::AwaitingDocuments,
        Some(&key.key_serial),
        &key.uscc,
        Some(&handler_id),
        0,
        &json!({"new_name": name, "new_legal_address": address}),
        now,
        "变更申请已提交，请上传材料",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "change_ordered",
        Some(&key.key_serial),
        Some(&id),
        "",
    )
    .await?;
    let created = store::created(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/businesses/{id}/refund`, by whoever may act on business `id`.
pub async fn refund(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
    let target = caller.business()?.clone();
    let body = http::body(body)?;
    let f: RefundForm = http::json(&headers, &body)?;
    validate_handler(&f.handler)?;
    if f.reason.trim().is_empty() || f.reason.chars().count() > 500 {
        return reject(
            ErrorCode::InvalidRequest,
            "say why the refund is asked for (at most 500 characters)",
        );
    }
    let now = state.now();
    let mut tx = state.db().begin().await?;
    check_refundable(&mut tx, &target.business, now).await?;
    let open = sqlx::query("SELECT id FROM businesses WHERE kind = $1 AND state NOT IN ($2, $3, $4) AND details LIKE $5")
        .bind(BusinessKind::Refund.as_str())
        .bind(BusinessState::Completed.as_str())
        .bind(BusinessState::Rejected.as_str())
        .bind(BusinessState::Cancelled.as_str())
        .bind(format!("%\"{}\"%", target.business.id))
        .fetch_optional(&mut *tx)
        .await?;
    if open.is_some() {
        return reject(
            ErrorCode::WrongState,
            "a refund of this business is already under way",
        );
    }
    let uscc = target.business.uscc.clone();
    crate::limits::check_open_businesses(&mut tx, &uscc).await?;
    let handler_id = record_handler(&mut tx, &uscc, &f.handler, now).await?;
    let id = store::create_business(
        &mut tx,
        BusinessKind::Refund,
        BusinessState::AwaitingDocuments,
        target.business.key_serial.as_deref(),
        &uscc,
        handler_id.as_deref(),
        0,
        &json!({"business_id": target.business.id, "reason": f.reason, "handler": f.handler}),
        now,
        "退款申请已提交，请上传加盖公章的退款申请表",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        &caller.actor(),
        "refund_ordered",
        target.business.key_serial.as_deref(),
        Some(&id),
        &target.business.id,
    )
    .await?;
    let created = store::created(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/businesses/{id}/secret`, signed by the business's key: a fresh secret, for a
/// client that lost the answer which carried the first one. The old one stops working.
pub async fn new_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<CreatedBusiness>> {
    let id = caller.business()?.business.id.clone();
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let created = store::created(&mut tx, &id).await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "business_secret_renewed",
        created.business.key_serial.as_deref(),
        Some(&id),
        "",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(created))
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
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
    let (key, cert) = caller.key()?;
    let serial = key.key_serial.clone();
    let body = http::body(body)?;
    let req: SealApplication = http::json(&headers, &body)?;
    let name = req.seal_name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return reject(
            ErrorCode::InvalidRequest,
            "the seal name is 1 to 60 characters",
        );
    }
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
    let created = store::created(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/businesses/{id}/invoice`, by whoever may act on the business.
pub async fn invoice(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Invoice>> {
    let id = caller.business()?.business.id.clone();
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
                &caller.actor(),
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
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Business>> {
    let station = caller.staff()?.clone();
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
    apply_approved(&mut tx, &b, now).await?;
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
        &station.actor(),
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

/// What an approved business proposed becomes the registry's word as the station completes
/// it: a new application's organisation; a change's name and address; and for a change or
/// re-issue of a key, its handler becomes the key's handler of record.
async fn apply_approved(
    conn: &mut AnyConnection,
    b: &store::BusinessRow,
    now: i64,
) -> CaResult<()> {
    let uscc = &b.business.uscc;
    match b.business.kind {
        BusinessKind::NewApplication => {
            let org: Organisation = serde_json::from_value(b.details["organisation"].clone())
                .map_err(|_| CaError::Corrupt("new application without its organisation".into()))?;
            crate::routes::admin::apply_organisation(&mut *conn, &org, now).await?;
        }
        BusinessKind::Change => {
            if let Some(name) = b.details["new_name"].as_str() {
                sqlx::query("UPDATE organisations SET name = $1, updated_at = $2 WHERE uscc = $3")
                    .bind(name)
                    .bind(now)
                    .bind(uscc)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(address) = b.details["new_legal_address"].as_str() {
                sqlx::query(
                    "UPDATE organisations SET legal_address = $1, updated_at = $2 WHERE uscc = $3",
                )
                .bind(address)
                .bind(now)
                .bind(uscc)
                .execute(&mut *conn)
                .await?;
            }
        }
        _ => {}
    }
    if matches!(
        b.business.kind,
        BusinessKind::Change | BusinessKind::Reissue
    ) && let (Some(key), Some(handler)) = (&b.business.key_serial, &b.handler_id)
    {
        store::set_handler_of_record(&mut *conn, key, handler, now).await?;
    }
    Ok(())
}

/// `GET /admin/v1/organisations/{uscc}/businesses`, for reviewers and auditors.
pub async fn organisation_progress(
    State(state): State<AppState>,
    uscc: Result<Path<String>, PathRejection>,
) -> CaResult<Json<BusinessList>> {
    let uscc = http::path(uscc)?;
    let mut conn = state.db().acquire().await?;
    store::organisation_name(&mut conn, &uscc).await?;
    let businesses = store::businesses_of_organisation(&mut conn, &uscc).await?;
    Ok(Json(BusinessList { businesses }))
}

//! The issuing station's endpoints: certify a CSR, register an issued key, read the SMS
//! outbox (sandbox) and the audit log. Each needs a staff account with its role.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::pki::check_csr;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::ids::{validate_id_number, validate_mobile, validate_uscc};
use keyward_ca_api::{
    AuditLog, AuditRecord, BusinessKind, BusinessState, CertifyRequest, ErrorCode, Handler,
    IssuedCertificate, Organisation, RegisterKeyRequest, RegisteredKey, SmsMessage, SmsOutbox,
};
use sqlx::AnyConnection;
use std::collections::HashMap;
use time::Duration;

/// Purpose of activation codes.
pub const ACTIVATION: &str = "activation";

fn check_text(field: &str, value: &str, max: usize) -> CaResult<()> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max || value.chars().any(char::is_control) {
        return reject(
            ErrorCode::InvalidParty,
            format!("{field} must be 1 to {max} printable characters"),
        );
    }
    Ok(())
}

pub fn validate_organisation(org: &Organisation) -> CaResult<()> {
    check_text("organisation name", &org.name, 100)?;
    check_text("legal address", &org.legal_address, 200)?;
    validate_uscc(&org.uscc).map_err(|e| CaError::rejected(ErrorCode::InvalidUscc, e.to_string()))
}

pub fn validate_handler(h: &Handler) -> CaResult<()> {
    check_text("handler name", &h.name, 50)?;
    if !validate_id_number(&h.id_number) {
        return reject(
            ErrorCode::InvalidParty,
            "the handler's ID number is not a valid 18-character number",
        );
    }
    if !validate_mobile(&h.phone) {
        return reject(
            ErrorCode::InvalidParty,
            "the handler's phone must be an 11-digit mainland mobile number",
        );
    }
    Ok(())
}

pub fn validate_key_serial(serial: &str) -> CaResult<()> {
    let ok = (1..=32).contains(&serial.len())
        && serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return reject(
            ErrorCode::InvalidRequest,
            "a key serial is 1 to 32 letters, digits, '-', '_' or '.'",
        );
    }
    Ok(())
}

pub fn check_years(years: u8) -> CaResult<i64> {
    if !(1..=5).contains(&years) {
        return reject(ErrorCode::InvalidYears, "validity is 1 to 5 years");
    }
    Ok(i64::from(years))
}

/// Records a new organisation, or checks that a registered one is named as the request
/// names it. The registry's name and address change only through an approved business
/// ([`apply_organisation`]), never because a request says otherwise.
pub async fn ensure_organisation(
    conn: &mut AnyConnection,
    org: &Organisation,
    now: i64,
) -> CaResult<()> {
    let exists = sqlx::query("SELECT name, legal_address FROM organisations WHERE uscc = $1")
        .bind(&org.uscc)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = exists {
        let name = crate::db::text(&row, "name")?;
        let address = crate::db::text(&row, "legal_address")?;
        if name != org.name || address != org.legal_address {
            return reject(
                ErrorCode::CertificateMismatch,
                format!(
                    "organisation {} is registered as {name}; a change of name or address goes through an approved change business",
                    org.uscc
                ),
            );
        }
        return Ok(());
    }
    apply_organisation(conn, org, now).await
}

/// Writes an organisation's registered data: for a new one, or for what an approved
/// business (new application, change) proposed, when the station completes it.
pub async fn apply_organisation(
    conn: &mut AnyConnection,
    org: &Organisation,
    now: i64,
) -> CaResult<()> {
    let exists = sqlx::query("SELECT uscc FROM organisations WHERE uscc = $1")
        .bind(&org.uscc)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        sqlx::query("UPDATE organisations SET name = $1, kind = $2, legal_address = $3, updated_at = $4 WHERE uscc = $5")
            .bind(&org.name)
            .bind(org.kind.as_str())
            .bind(&org.legal_address)
            .bind(now)
            .bind(&org.uscc)
            .execute(conn)
            .await?;
    } else {
        sqlx::query("INSERT INTO organisations (uscc, name, kind, legal_address, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(&org.uscc)
            .bind(&org.name)
            .bind(org.kind.as_str())
            .bind(&org.legal_address)
            .bind(now)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// `POST /admin/v1/certify`
pub async fn certify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<IssuedCertificate>> {
    let actor = caller.staff()?.actor();
    let body = http::body(body)?;
    let req: CertifyRequest = http::json(&headers, &body)?;
    validate_organisation(&req.organisation)?;
    let years = check_years(req.years)?;
    let csr = check_csr(&req.csr_pem)?;
    let now = state.clock().now();
    let unix = now.unix_timestamp();
    let mut tx = state.db().begin().await?;
    let not_after = match &req.keep_validity_of {
        None => now + Duration::days(365 * years),
        Some(serial) => {
            let key = store::load_key(&mut tx, serial).await?;
            if key.uscc != req.organisation.uscc {
                return reject(
                    ErrorCode::CertificateMismatch,
                    "that key belongs to another organisation",
                );
            }
            let approved = sqlx::query("SELECT id FROM businesses WHERE key_serial = $1 AND kind IN ($2, $3) AND state = $4")
                .bind(serial)
                .bind(BusinessKind::Change.as_str())
                .bind(BusinessKind::Reissue.as_str())
                .bind(BusinessState::Approved.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if approved.is_none() {
                return reject(
                    ErrorCode::WrongState,
                    "validity is kept only for an approved change or re-issue of that key",
                );
            }
            let old = store::load_cert(&mut tx, &key.current_cert).await?;
            if old.info.not_after <= now {
                return reject(
                    ErrorCode::CertificateExpired,
                    "that key's certificate has expired; apply for a new certificate",
                );
            }
            old.info.not_after
        }
    };
    let cert = state.ca().issue_organisation_certificate(
        &req.organisation.name,
        &req.organisation.uscc,
        &csr.spki_der,
        now - Duration::minutes(5),
        not_after,
    )?;
    ensure_organisation(&mut tx, &req.organisation, unix).await?;
    store::insert_cert(&mut tx, &cert, &req.organisation.uscc, None, unix).await?;
    store::audit(
        &mut tx,
        unix,
        &actor,
        "certificate_issued",
        None,
        None,
        &format!("serial {} for {}", cert.serial, req.organisation.uscc),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(serial = %cert.serial, uscc = %req.organisation.uscc, "issued organisation certificate");
    Ok(Json(IssuedCertificate {
        certificate_pem: cert.pem,
        chain_pem: state.ca().chain(),
        serial: cert.serial,
        not_before: cert.not_before,
        not_after: cert.not_after,
    }))
}

pub fn activation_sms_text(org: &str) -> impl Fn(&str, &str) -> String + '_ {
    move |code: &str, reference: &str| {
        format!(
            "【Keyward】{org}的数字证书激活验证码 {code}（编号 {reference}），10分钟内有效，请勿告知他人。"
        )
    }
}

fn issued_sms_text(org: &str) -> String {
    format!(
        "【Keyward】{org}的数字证书已签发。收到 USB Key 后，请插入电脑，在 Keyward 中点击“激活证书”并获取验证码。"
    )
}

/// `POST /admin/v1/keys`
pub async fn register_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<RegisteredKey>> {
    let actor = caller.staff()?.actor();
    let body = http::body(body)?;
    let req: RegisterKeyRequest = http::json(&headers, &body)?;
    validate_key_serial(&req.key_serial)?;
    validate_organisation(&req.organisation)?;
    validate_handler(&req.handler)?;
    for (name, pin) in [
        ("SO PIN", &req.so_pin),
        ("transport PIN", &req.transport_pin),
    ] {
        let len = pin.expose().len();
        if !(4..=64).contains(&len) || !pin.expose().is_ascii() {
            return reject(
                ErrorCode::InvalidRequest,
                format!("the {name} must be 4 to 64 ASCII characters"),
            );
        }
    }
    let parsed = state.ca().check_issued_by_us(&req.certificate_pem)?;
    if parsed.organization_identifier.as_deref()
        != Some(format!("NTRCN-{}", req.organisation.uscc).as_str())
    {
        return reject(
            ErrorCode::CertificateMismatch,
            "the certificate names another organisation",
        );
    }
    let now = state.now();
    let mut tx = state.db().begin().await?;
    // Sealed in the transaction that stores them, under the key the database names current
    // at that moment (an escrow rotation may be switching it).
    let so_enc = state
        .escrow()
        .seal(
            &mut tx,
            &format!("so_pin:{}", req.key_serial),
            req.so_pin.expose(),
        )
        .await?;
    let tp_enc = state
        .escrow()
        .seal(
            &mut tx,
            &format!("transport_pin:{}", req.key_serial),
            req.transport_pin.expose(),
        )
        .await?;
    if sqlx::query("SELECT key_serial FROM keys WHERE key_serial = $1")
        .bind(&req.key_serial)
        .fetch_optional(&mut *tx)
        .await?
        .is_some()
    {
        return reject(
            ErrorCode::KeyAlreadyRegistered,
            format!("key {} is already registered", req.key_serial),
        );
    }
    let cert = sqlx::query("SELECT key_serial, uscc FROM certificates WHERE serial = $1")
        .bind(&parsed.serial)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            CaError::rejected(
                ErrorCode::InvalidCertificate,
                "this CA has no record of the certificate",
            )
        })?;
    if crate::db::opt_text(&cert, "key_serial")?.is_some()
        || crate::db::text(&cert, "uscc")? != req.organisation.uscc
    {
        return reject(
            ErrorCode::CertificateMismatch,
            "the certificate is bound to another key or organisation",
        );
    }
    ensure_organisation(&mut tx, &req.organisation, now).await?;
    // The handler of record: set here, by the station, and changed afterwards only by a
    // business a reviewer approved.
    let handler_id = crate::db::new_id("hd")?;
    sqlx::query("INSERT INTO handlers (id, uscc, name, id_number, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&handler_id)
        .bind(&req.organisation.uscc)
        .bind(&req.handler.name)
        .bind(&req.handler.id_number)
        .bind(&req.handler.phone)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO keys (key_serial, uscc, handler_id, state, current_cert, so_pin_enc, transport_pin_enc, delivered_at, activated_at, created_at, updated_at) VALUES ($1, $2, $3, 'awaiting_activation', $4, $5, $6, $7, NULL, $7, $7)",
    )
    .bind(&req.key_serial)
    .bind(&req.organisation.uscc)
    .bind(&handler_id)
    .bind(&parsed.serial)
    .bind(&so_enc)
    .bind(&tp_enc)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE certificates SET key_serial = $1 WHERE serial = $2")
        .bind(&req.key_serial)
        .bind(&parsed.serial)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO key_certificates (key_serial, cert_serial, role, at) VALUES ($1, $2, 'current', $3)")
        .bind(&req.key_serial)
        .bind(&parsed.serial)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let business = store::create_business(
        &mut tx,
        BusinessKind::Issue,
        BusinessState::AwaitingActivation,
        Some(&req.key_serial),
        &req.organisation.uscc,
        Some(&handler_id),
        0,
        &serde_json::json!({ "certificate": parsed.serial }),
        now,
        "证书已签发，等待激活",
    )
    .await?;
    // The handler is told the key is on its way; the activation code is asked for from
    // the client once the key has arrived (a code lives ten minutes).
    store::send_sms(
        &mut tx,
        &req.handler.phone,
        Some(&req.key_serial),
        "issued",
        &issued_sms_text(&req.organisation.name),
        now,
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        &actor,
        "key_registered",
        Some(&req.key_serial),
        Some(&business),
        &format!("certificate {}", parsed.serial),
    )
    .await?;
    let status = store::key_status(&mut tx, &req.key_serial).await?;
    let issue = store::created(&mut tx, &business).await?;
    tx.commit().await?;
    tracing::info!(key_serial = %req.key_serial, "registered issued key");
    Ok(Json(RegisteredKey { status, issue }))
}

/// `GET /admin/v1/sms?phone=&key_serial=`
pub async fn sms_outbox(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> CaResult<Json<SmsOutbox>> {
    let q = http::query(q)?;
    let rows = sqlx::query(
        "SELECT * FROM sms_outbox WHERE ($1 = '' OR phone = $1) AND ($2 = '' OR key_serial = $2) ORDER BY id",
    )
    .bind(q.get("phone").cloned().unwrap_or_default())
    .bind(q.get("key_serial").cloned().unwrap_or_default())
    .fetch_all(state.db())
    .await?;
    let messages = rows
        .iter()
        .map(|r| {
            Ok(SmsMessage {
                id: crate::db::text(r, "id")?,
                phone: crate::db::text(r, "phone")?,
                key_serial: crate::db::opt_text(r, "key_serial")?,
                purpose: crate::db::text(r, "purpose")?,
                text: crate::db::text(r, "text")?,
                created_at: crate::db::instant(crate::db::int(r, "created_at")?)?,
            })
        })
        .collect::<CaResult<Vec<_>>>()?;
    Ok(Json(SmsOutbox { messages }))
}

/// `GET /admin/v1/audit?key_serial=`
pub async fn audit_log(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> CaResult<Json<AuditLog>> {
    let q = http::query(q)?;
    let rows =
        sqlx::query("SELECT * FROM audit_log WHERE ($1 = '' OR key_serial = $1) ORDER BY id")
            .bind(q.get("key_serial").cloned().unwrap_or_default())
            .fetch_all(state.db())
            .await?;
    let records = rows
        .iter()
        .map(|r| {
            Ok(AuditRecord {
                id: crate::db::text(r, "id")?,
                at: crate::db::instant(crate::db::int(r, "at")?)?,
                actor: crate::db::text(r, "actor")?,
                action: crate::db::text(r, "action")?,
                key_serial: crate::db::opt_text(r, "key_serial")?,
                business_id: crate::db::opt_text(r, "business_id")?,
                detail: crate::db::text(r, "detail")?,
            })
        })
        .collect::<CaResult<Vec<_>>>()?;
    Ok(Json(AuditLog { records }))
}

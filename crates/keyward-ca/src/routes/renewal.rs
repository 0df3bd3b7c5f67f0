//! Renewal (续期): apply inside the 90 days before expiry, pay, post the new key's CSR
//! authorised by the old key, confirm installation with the new key. Also progress queries.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::pki::check_csr;
use crate::routes::admin::check_years;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use keyward_ca_api::{
    Business, BusinessKind, BusinessList, BusinessState, CreatedBusiness, CsrSubmission, ErrorCode,
    IssuedCertificate, KeyState, RENEWAL_FEE_PER_YEAR_FEN, RENEWAL_WINDOW_DAYS, RenewalApplication,
    RenewalInstalled,
};
use time::{Duration, OffsetDateTime};

/// The expiry of a renewed certificate: the old expiry plus `years` calendar years.
pub fn extend_by_years(old: OffsetDateTime, years: i64) -> OffsetDateTime {
    let target = old.year() + years as i32;
    old.replace_year(target)
        // 29 February into a common year: the day before 1 March.
        .or_else(|_| old.replace_day(28).and_then(|d| d.replace_year(target)))
        .unwrap_or(old + Duration::days(365 * years))
}

/// `POST /v1/keys/{serial}/renewals`
pub async fn apply(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<CreatedBusiness>> {
    let (key, cert) = caller.key()?;
    let serial = key.key_serial.clone();
    let body = http::body(body)?;
    let req: RenewalApplication = http::json(&headers, &body)?;
    let years = check_years(req.years)?;
    let inv = &req.invoice;
    if inv.title.trim().is_empty() || inv.tax_id.trim().is_empty() || !inv.email.contains('@') {
        return reject(
            ErrorCode::InvalidRequest,
            "invoice title, tax id and an e-mail address are required",
        );
    }
    if key.state != KeyState::Active {
        return reject(
            ErrorCode::KeyNotActivated,
            "activate the key before renewing it",
        );
    }
    let now_dt = state.clock().now();
    let not_after = cert.info.not_after;
    if now_dt >= not_after {
        return reject(
            ErrorCode::CertificateExpired,
            "the certificate has expired and can no longer be renewed; apply for a new certificate",
        );
    }
    let opens = not_after - Duration::days(RENEWAL_WINDOW_DAYS);
    if now_dt < opens {
        return reject(
            ErrorCode::RenewalWindowNotOpen,
            format!("renewal opens 90 days before expiry, on {}", opens.date()),
        );
    }
    let now = now_dt.unix_timestamp();
    let mut conn = state.db().acquire().await?;
    let mut unit = crate::db::Unit::begin(&mut conn).await?;
    let details = serde_json::json!({
        "years": years,
        "invoice": { "title": inv.title, "tax_id": inv.tax_id, "email": inv.email },
        "old_certificate": cert.info.serial,
    });
    let created = store::open_business(
        &mut unit,
        &store::NewBusiness {
            kind: BusinessKind::Renewal,
            state: BusinessState::AwaitingPayment,
            key_serial: Some(&serial),
            uscc: &key.uscc,
            handler_id: Some(&key.handler_id),
            fee_fen: years * RENEWAL_FEE_PER_YEAR_FEN,
            details: &details,
            note: "续期申请已提交，等待支付",
            unless_open: true,
        },
        &store::Audit {
            actor: "key",
            action: "renewal_applied",
            key_serial: Some(&serial),
            detail: &format!("{years} year(s)"),
        },
        now,
    )
    .await?;
    let created = match created {
        Ok(created) => created,
        Err(open) => {
            return reject(
                ErrorCode::WrongState,
                format!("renewal {open} is already under way"),
            );
        }
    };
    unit.commit().await?;
    Ok(Json(created))
}

/// `POST /v1/keys/{serial}/renewals/{id}/certificate`: signed by the current key.
pub async fn certificate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ids: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<IssuedCertificate>> {
    let (_, id) = http::path(ids)?;
    let (key, cert) = caller.key()?;
    let serial = key.key_serial.clone();
    let body = http::body(body)?;
    let req: CsrSubmission = http::json(&headers, &body)?;
    let csr = check_csr(&req.csr_pem)?;
    let now_dt = state.clock().now();
    let now = now_dt.unix_timestamp();
    let mut conn = state.db().acquire().await?;
    // The business as read here; the one statement that writes (PostgreSQL), or the
    // transaction (SQLite), moves it on only from `paid`.
    let mut tx = crate::db::Unit::begin(&mut conn).await?;
    let b = store::business_of_key(&mut tx, &serial, &id, BusinessKind::Renewal).await?;
    match b.business.state {
        BusinessState::Paid => {}
        BusinessState::CertificateIssued => {
            // A retry after a lost answer: the same key gets the same certificate back.
            let issued = b.details["new_certificate"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let new = store::load_cert(&mut tx, &issued).await?;
            if new.parsed.spki_sha256 != csr.spki_sha256 {
                return reject(
                    ErrorCode::WrongState,
                    "a certificate was already issued for another key",
                );
            }
            return Ok(Json(IssuedCertificate {
                certificate_pem: new.info.pem,
                chain_pem: state.ca().chain(),
                serial: new.info.serial,
                not_before: new.info.not_before,
                not_after: new.info.not_after,
            }));
        }
        BusinessState::AwaitingPayment => {
            return reject(ErrorCode::WrongState, "pay for the renewal first");
        }
        _ => return reject(ErrorCode::WrongState, "this renewal is finished"),
    }
    if csr.spki_sha256 == cert.parsed.spki_sha256 {
        return reject(
            ErrorCode::CsrKeyReused,
            "renewal needs a new key pair; the CSR carries the old key",
        );
    }
    let years = b.details["years"].as_i64().unwrap_or(1);
    // The renewed certificate names what the current one names: a renewal never changes
    // the organisation (that is the change business, applied on approval).
    let org_name = cert.parsed.organization.clone().ok_or_else(|| {
        CaError::Corrupt(format!(
            "certificate {} names no organisation",
            cert.info.serial
        ))
    })?;
    if cert.parsed.organization_identifier.as_deref()
        != Some(format!("NTRCN-{}", key.uscc).as_str())
    {
        return Err(CaError::Corrupt(format!(
            "certificate {} names another organisation than its key",
            cert.info.serial
        )));
    }
    let not_after = extend_by_years(cert.info.not_after, years);
    let issued = state.ca().issue_organisation_certificate(
        &org_name,
        &key.uscc,
        &csr.spki_der,
        now_dt - Duration::minutes(5),
        not_after,
    )?;
    let mut details = b.details.clone();
    details["new_certificate"] = serde_json::Value::String(issued.serial.clone());
    let note = "新证书已签发，等待安装";
    let audit = store::Audit {
        actor: "key",
        action: "renewal_certificate_issued",
        key_serial: Some(&serial),
        detail: &format!("serial {}", issued.serial),
    };
    if crate::db::is_postgres(&tx) {
        // The certificate, its link to the key, the business's change, its event and its
        // audit line: all written, or (the business no longer `paid`) none.
        let done = sqlx::query(
            "WITH b AS (UPDATE businesses SET state = $1, updated_at = $2, details = $3 WHERE id = $4 AND state = $5 RETURNING id), \
             c AS (INSERT INTO certificates (serial, uscc, key_serial, pem, spki_sha256, not_before, not_after, issued_at) SELECT $6, $7, $8, $9, $10, $11, $12, $2 FROM b), \
             k AS (INSERT INTO key_certificates (key_serial, cert_serial, role, at) SELECT $8, $6, 'pending', $2 FROM b), \
             e AS (INSERT INTO business_events (id, business_id, at, state, note) SELECT $13, id, $2, $1, $14 FROM b), \
             a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) SELECT $15, $2, $16, $17, $8, id, $18 FROM b) \
             SELECT id FROM b",
        )
        .bind(BusinessState::CertificateIssued.as_str())
        .bind(now)
        .bind(details.to_string())
        .bind(&id)
        .bind(BusinessState::Paid.as_str())
        .bind(&issued.serial)
        .bind(&key.uscc)
        .bind(&serial)
        .bind(&issued.pem)
        .bind(&issued.spki_sha256)
        .bind(issued.not_before.unix_timestamp())
        .bind(issued.not_after.unix_timestamp())
        .bind(crate::db::new_id("ev")?)
        .bind(note)
        .bind(crate::db::new_id("au")?)
        .bind(audit.actor)
        .bind(audit.action)
        .bind(audit.detail)
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            return reject(
                ErrorCode::WrongState,
                format!("business {id} is not {}", BusinessState::Paid.as_str()),
            );
        }
    } else {
        store::insert_cert(&mut tx, &issued, &key.uscc, Some(&serial), now).await?;
        sqlx::query("INSERT INTO key_certificates (key_serial, cert_serial, role, at) VALUES ($1, $2, 'pending', $3)")
            .bind(&serial)
            .bind(&issued.serial)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        store::transition_audited(
            &mut tx,
            &id,
            BusinessState::Paid,
            BusinessState::CertificateIssued,
            now,
            note,
            Some(&details),
            &audit,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(IssuedCertificate {
        certificate_pem: issued.pem,
        chain_pem: state.ca().chain(),
        serial: issued.serial,
        not_before: issued.not_before,
        not_after: issued.not_after,
    }))
}

/// `POST /v1/keys/{serial}/renewals/{id}/installed`: signed by the NEW key.
pub async fn installed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> CaResult<Json<RenewalInstalled>> {
    let (_, id) = http::path(ids)?;
    // The new key signed, against the certificate this renewal issued for it.
    let (key, new) = caller.key()?;
    let serial = key.key_serial.clone();
    let new = new.clone();
    // The renewal as the signature check read it (the business of this key named in the
    // path); the transition below is what decides, in the transaction.
    let b = caller.renewal()?;
    if b.business.state == BusinessState::Completed {
        // A repeated confirmation: the seal business a first one opened has its secret
        // with that first answer (or a fresh one for the key that asks).
        return Ok(Json(RenewalInstalled {
            business: b.business.clone(),
            seal: None,
        }));
    }
    let now = state.now();
    let mut conn = state.db().acquire().await?;
    if crate::db::is_postgres(&conn)
        && let Some(business) =
            installed_in_one_statement(&mut conn, &serial, &id, &new, now).await?
    {
        return Ok(Json(RenewalInstalled {
            business,
            seal: None,
        }));
    }
    // SQLite; or on PostgreSQL a renewal that remakes the key's seal, or one no longer
    // awaiting installation (which the transition refuses).
    installed_in_transaction(&mut conn, &state, &serial, &id, &new, now).await
}

/// The confirmation on PostgreSQL when it remakes no seal, in one statement: the business
/// moves to `completed` only from `certificate_issued` and only if the key has no seal to
/// remake, and the certificates, the key, the event and the audit line change with it or
/// not at all. Returns the business as it is after, or `None` when nothing changed.
async fn installed_in_one_statement(
    conn: &mut sqlx::AnyConnection,
    serial: &str,
    id: &str,
    new: &store::CertRow,
    now: i64,
) -> CaResult<Option<Business>> {
    let note = "新证书已安装，续期完成";
    // A seal is remade (see `seal::remake_after_renewal`) when the key has no seal business
    // open and its latest seal was installed.
    let rows = sqlx::query(
        "WITH b AS (UPDATE businesses SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4 \
           AND NOT (NOT EXISTS (SELECT 1 FROM businesses s WHERE s.key_serial = $5 AND s.kind = $6 AND s.state NOT IN ($1, $7, $8)) \
             AND COALESCE((SELECT installed_at IS NOT NULL FROM seals WHERE key_serial = $5 ORDER BY made_at DESC, business_id DESC LIMIT 1), FALSE)) \
           RETURNING *), \
         o AS (UPDATE key_certificates SET role = 'superseded' WHERE key_serial = $5 AND cert_serial = (SELECT current_cert FROM keys WHERE key_serial = $5) AND EXISTS (SELECT 1 FROM b)), \
         n AS (UPDATE key_certificates SET role = 'current' WHERE key_serial = $5 AND cert_serial = $9 AND EXISTS (SELECT 1 FROM b)), \
         k AS (UPDATE keys SET current_cert = $9, updated_at = $2 WHERE key_serial = $5 AND EXISTS (SELECT 1 FROM b)), \
         e AS (INSERT INTO business_events (id, business_id, at, state, note) SELECT $10, id, $2, $1, $11 FROM b), \
         a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) SELECT $12, $2, 'key', 'renewal_installed', $5, id, $13 FROM b) \
         SELECT b.*, v.id AS event_id, v.at AS event_at, v.state AS event_state, v.note AS event_note \
         FROM b LEFT JOIN business_events v ON v.business_id = b.id ORDER BY v.id",
    )
    .bind(BusinessState::Completed.as_str())
    .bind(now)
    .bind(id)
    .bind(BusinessState::CertificateIssued.as_str())
    .bind(serial)
    .bind(BusinessKind::Seal.as_str())
    .bind(BusinessState::Rejected.as_str())
    .bind(BusinessState::Cancelled.as_str())
    .bind(&new.info.serial)
    .bind(crate::db::new_id("ev")?)
    .bind(note)
    .bind(crate::db::new_id("au")?)
    .bind(format!("current certificate {}", new.info.serial))
    .fetch_all(conn)
    .await?;
    // The statement reads the timeline as it was before it: the event it wrote comes last.
    let Some(mut b) = store::group_with_events(&rows)?.pop() else {
        return Ok(None);
    };
    b.business.timeline.push(keyward_ca_api::BusinessEvent {
        at: crate::db::instant(now)?,
        state: BusinessState::Completed,
        note: note.to_owned(),
    });
    Ok(Some(b.business))
}

/// The confirmation in one transaction, remaking the key's seal if it had one installed.
async fn installed_in_transaction(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    serial: &str,
    id: &str,
    new: &store::CertRow,
    now: i64,
) -> CaResult<Json<RenewalInstalled>> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    // The certificate current in the transaction, whichever it is by now.
    sqlx::query("UPDATE key_certificates SET role = 'superseded' WHERE key_serial = $1 AND cert_serial = (SELECT current_cert FROM keys WHERE key_serial = $1)")
        .bind(serial)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE key_certificates SET role = 'current' WHERE key_serial = $1 AND cert_serial = $2",
    )
    .bind(serial)
    .bind(&new.info.serial)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE keys SET current_cert = $1, updated_at = $2 WHERE key_serial = $3")
        .bind(&new.info.serial)
        .bind(now)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
    store::transition(
        &mut tx,
        id,
        BusinessState::CertificateIssued,
        BusinessState::Completed,
        now,
        "新证书已安装，续期完成",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "renewal_installed",
        Some(serial),
        Some(id),
        &format!("current certificate {}", new.info.serial),
    )
    .await?;
    let seal = match crate::routes::seal::remake_after_renewal(&mut tx, state, serial, now).await? {
        Some(seal_id) => Some(store::created(&mut tx, &seal_id).await?),
        None => None,
    };
    let b = store::load_business(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(RenewalInstalled {
        business: b.business,
        seal,
    }))
}

/// `GET /v1/businesses/{id}`, by whoever may act on it.
pub async fn business(Extension(caller): Extension<Caller>) -> CaResult<Json<Business>> {
    Ok(Json(caller.business()?.business.clone()))
}

/// `GET /v1/keys/{serial}/businesses`, signed by the key: progress (办理进度查询).
pub async fn progress(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<BusinessList>> {
    let serial = caller.key()?.0.key_serial.clone();
    let mut conn = state.db().acquire().await?;
    let businesses = store::businesses_of_key(&mut conn, &serial).await?;
    Ok(Json(BusinessList { businesses }))
}

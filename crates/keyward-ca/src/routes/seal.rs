//! The electronic seal after review: the CA makes the GM/T 0031 `SES_Seal` when a reviewer
//! approves a seal business (`approved` → `certificate_issued`, "seal ready to install"), the
//! client fetches it (`GET /v1/keys/{serial}/seal`), writes it to the key and confirms
//! (`POST /v1/keys/{serial}/seals/{id}/installed`, signed by the key) → `completed`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::store::{self, BusinessRow};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use keyward_ca_api::{
    AttachmentKind, Business, BusinessKind, BusinessState, ErrorCode, SealDocument, SealKind,
};
use keyward_pki::seal::{
    CertList, Picture, SEAL_TYPE_CONTRACT, SEAL_TYPE_OFFICIAL, SEAL_VERSION, SealInfo,
};
use sqlx::AnyConnection;

/// Display size of the seal image, millimetres (a 40 mm round stamp).
const SEAL_SIZE_MM: i64 = 40;

/// Makes and stores the seal of an approved seal business, and moves it to
/// `certificate_issued`. Called inside the reviewer's transaction.
pub async fn make_seal(
    conn: &mut AnyConnection,
    state: &AppState,
    b: &BusinessRow,
    now: i64,
) -> CaResult<()> {
    let serial = b
        .business
        .key_serial
        .as_deref()
        .ok_or_else(|| CaError::Corrupt("seal business without a key".into()))?;
    let name = b.details["seal_name"]
        .as_str()
        .ok_or_else(|| CaError::Corrupt("seal business without a name".into()))?
        .to_owned();
    let kind = b.details["seal_kind"]
        .as_str()
        .and_then(SealKind::parse)
        .ok_or_else(|| CaError::Corrupt("seal business without a kind".into()))?;
    // The picture: the latest stamped scan that is an image.
    let scan = store::attachments_of(&mut *conn, &b.business.id)
        .await?
        .into_iter()
        .rev()
        .find(|a| {
            a.kind == AttachmentKind::SealScan
                && matches!(a.content_type.as_str(), "image/png" | "image/jpeg")
        });
    let Some(scan) = scan else {
        return reject(
            ErrorCode::WrongState,
            "the seal is made from the stamped scan: upload it as a PNG or JPEG seal_scan",
        );
    };
    let image = crate::routes::attachments::content(&mut *conn, state, &scan.sha256).await?;
    let picture = Picture {
        kind: if scan.content_type == "image/png" {
            "PNG"
        } else {
            "JPG"
        }
        .into(),
        data: image,
        width: SEAL_SIZE_MM,
        height: SEAL_SIZE_MM,
    };
    let cert_serial = build_and_store(
        conn,
        state,
        &b.business.id,
        serial,
        &name,
        kind,
        picture,
        now,
    )
    .await?;
    store::transition(
        conn,
        &b.business.id,
        BusinessState::Approved,
        BusinessState::CertificateIssued,
        now,
        "电子印章已制作，请在客户端点击“安装印章”",
    )
    .await?;
    store::audit(
        conn,
        now,
        "ca",
        "seal_made",
        Some(serial),
        Some(&b.business.id),
        &format!("bound to certificate {cert_serial}"),
    )
    .await
}

/// Makes the seal of business `business_id` for the key's current certificate and stores
/// it; returns the certificate's serial.
#[allow(clippy::too_many_arguments)]
async fn build_and_store(
    conn: &mut AnyConnection,
    state: &AppState,
    business_id: &str,
    serial: &str,
    name: &str,
    kind: SealKind,
    picture: Picture,
    now: i64,
) -> CaResult<String> {
    let key = store::load_key(&mut *conn, serial).await?;
    let cert = store::load_cert(&mut *conn, &key.current_cert).await?;
    let cert_der = crate::pki::pem_to_der(&cert.info.pem, "CERTIFICATE")
        .ok_or_else(|| CaError::Corrupt("stored certificate is not PEM".into()))?;
    let made = time::OffsetDateTime::from_unix_timestamp(now)
        .map_err(|_| CaError::Corrupt("clock".into()))?;
    let info = SealInfo {
        version: SEAL_VERSION,
        vid: "keyward".into(),
        es_id: format!("KW-{business_id}"),
        seal_type: match kind {
            SealKind::Official => SEAL_TYPE_OFFICIAL,
            SealKind::Contract => SEAL_TYPE_CONTRACT,
        },
        name: name.to_owned(),
        cert_list: CertList::Certs(vec![cert_der]),
        created: made,
        valid_start: made,
        valid_end: cert.info.not_after,
        picture,
        ext_datas: None,
    };
    let der = state.ca().make_seal(&info)?;
    sqlx::query("INSERT INTO seals (business_id, key_serial, cert_serial, seal_name, seal_kind, der_base64, made_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(business_id)
        .bind(serial)
        .bind(&cert.info.serial)
        .bind(name)
        .bind(kind.as_str())
        .bind(keyward_pki::pem::base64(&der))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(cert.info.serial)
}

/// After a renewal made a new certificate current: one certificate holds exactly one seal,
/// so a key whose seal was installed gets the same seal (name, kind, picture) made anew for
/// the new certificate, as a seal business ready to install. Nothing happens when the key
/// has no installed seal, or a seal business is still open (its approval makes the seal for
/// the current certificate anyway).
pub async fn remake_after_renewal(
    conn: &mut AnyConnection,
    state: &AppState,
    serial: &str,
    now: i64,
) -> CaResult<Option<String>> {
    let open = sqlx::query("SELECT state FROM businesses WHERE key_serial = $1 AND kind = $2")
        .bind(serial)
        .bind(BusinessKind::Seal.as_str())
        .fetch_all(&mut *conn)
        .await?;
    for row in &open {
        let st = crate::db::text(row, "state")?;
        if !matches!(
            BusinessState::parse(&st),
            Some(BusinessState::Completed | BusinessState::Rejected | BusinessState::Cancelled)
        ) {
            return Ok(None);
        }
    }
    let Some(doc) = latest_seal(&mut *conn, serial).await? else {
        return Ok(None);
    };
    if doc.installed_at.is_none() {
        return Ok(None);
    }
    let der = keyward_pki::pem::from_base64(&doc.seal_der_base64)
        .map_err(|_| CaError::Corrupt("stored seal".into()))?;
    let old = keyward_pki::seal::Seal::from_der(&der)
        .map_err(|_| CaError::Corrupt("stored seal".into()))?;
    let key = store::load_key(&mut *conn, serial).await?;
    let details = serde_json::json!({
        "seal_name": doc.seal_name,
        "seal_kind": doc.seal_kind.as_str(),
        "change": true,
        "after_renewal": true,
    });
    let id = store::create_business(
        conn,
        BusinessKind::Seal,
        BusinessState::CertificateIssued,
        Some(serial),
        &key.uscc,
        Some(&key.handler_id),
        0,
        &details,
        now,
        "证书已续期，电子印章已为新证书重新制作，请在客户端点击“安装印章”",
    )
    .await?;
    let cert_serial = build_and_store(
        conn,
        state,
        &id,
        serial,
        &doc.seal_name,
        doc.seal_kind,
        old.info.picture,
        now,
    )
    .await?;
    store::audit(
        conn,
        now,
        "ca",
        "seal_made",
        Some(serial),
        Some(&id),
        &format!("after renewal, bound to certificate {cert_serial}"),
    )
    .await?;
    Ok(Some(id))
}

async fn latest_seal(conn: &mut AnyConnection, serial: &str) -> CaResult<Option<SealDocument>> {
    let row = sqlx::query(
        "SELECT * FROM seals WHERE key_serial = $1 ORDER BY made_at DESC, business_id DESC LIMIT 1",
    )
    .bind(serial)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let instant = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| CaError::Corrupt("time".into()))
    };
    let kind = crate::db::text(&row, "seal_kind")?;
    Ok(Some(SealDocument {
        business_id: crate::db::text(&row, "business_id")?,
        cert_serial: crate::db::text(&row, "cert_serial")?,
        seal_name: crate::db::text(&row, "seal_name")?,
        seal_kind: SealKind::parse(&kind)
            .ok_or_else(|| CaError::Corrupt(format!("seal kind {kind}")))?,
        seal_der_base64: crate::db::text(&row, "der_base64")?,
        made_at: instant(crate::db::int(&row, "made_at")?)?,
        installed_at: crate::db::opt_int(&row, "installed_at")?
            .map(instant)
            .transpose()?,
    }))
}

/// `GET /v1/keys/{serial}/seal`, signed by the key: the key's latest seal.
pub async fn current(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<SealDocument>> {
    let serial = caller.key()?.0.key_serial.clone();
    let mut conn = state.db().acquire().await?;
    match latest_seal(&mut conn, &serial).await? {
        Some(doc) => Ok(Json(doc)),
        None => reject(
            ErrorCode::WrongState,
            "this key has no electronic seal yet; apply for one",
        ),
    }
}

/// `POST /v1/keys/{serial}/seals/{id}/installed`, signed by the key: the seal is on the key.
pub async fn installed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> CaResult<Json<Business>> {
    let (_, id) = http::path(path)?;
    let serial = caller.key()?.0.key_serial.clone();
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if b.business.kind != BusinessKind::Seal || b.business.key_serial.as_deref() != Some(&serial) {
        return reject(
            ErrorCode::BusinessNotFound,
            format!("no seal business {id} for key {serial}"),
        );
    }
    match b.business.state {
        BusinessState::Completed => return Ok(Json(b.business)),
        BusinessState::CertificateIssued => {}
        _ => {
            return reject(
                ErrorCode::WrongState,
                "the seal of this business is not ready to install",
            );
        }
    }
    sqlx::query("UPDATE seals SET installed_at = $1 WHERE business_id = $2")
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    store::transition(
        &mut tx,
        &id,
        BusinessState::CertificateIssued,
        BusinessState::Completed,
        now,
        "电子印章已安装",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        "key",
        "seal_installed",
        Some(&serial),
        Some(&id),
        "",
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

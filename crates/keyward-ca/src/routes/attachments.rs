//! Attachments of a business (identity documents, stamped forms, seal scans): uploaded as
//! the raw body, checked against their declared type, stored by content hash in the
//! database, so every instance serves and reviews what any instance took in.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{CaError, CaResult, reject};
use crate::http;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keyward_ca_api::{Attachment, AttachmentKind, Business, BusinessState, ErrorCode};
use std::collections::HashMap;

/// Accepted types and the bytes their files start with.
const TYPES: &[(&str, &[u8])] = &[
    ("image/jpeg", &[0xFF, 0xD8, 0xFF]),
    (
        "image/png",
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
    ),
    ("application/pdf", b"%PDF-"),
];

/// An attachment's bytes, from the database (every instance reads the same), or from the
/// data directory for one uploaded before attachments moved to the database.
pub async fn content(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    sha: &str,
) -> CaResult<Vec<u8>> {
    let row = sqlx::query("SELECT content_base64 FROM attachment_contents WHERE sha256 = $1")
        .bind(sha)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => keyward_pki::pem::from_base64(&crate::db::text(&row, "content_base64")?)
            .map_err(|_| CaError::Corrupt(format!("attachment {sha}"))),
        None => {
            let path = state.data_dir().join("attachments").join(sha);
            std::fs::read(&path).map_err(|e| CaError::io(&path, e))
        }
    }
}

/// `POST /v1/businesses/{id}/attachments?kind=…`
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> CaResult<Json<Attachment>> {
    let id = caller.business()?.business.id.clone();
    let q = http::query(q)?;
    let body = http::body(body).map_err(|e| match e.code() {
        ErrorCode::BodyTooLarge => {
            CaError::rejected(ErrorCode::BodyTooLarge, "attachments are at most 5 MiB")
        }
        _ => e,
    })?;
    let kind = q
        .get("kind")
        .and_then(|k| AttachmentKind::parse(k))
        .ok_or_else(|| CaError::rejected(ErrorCode::InvalidRequest, "give ?kind= (id_card, authorisation_letter, business_licence, seal_form, seal_scan, other)"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let Some((ct, magic)) = TYPES.iter().find(|(t, _)| *t == content_type) else {
        return reject(
            ErrorCode::InvalidAttachment,
            "attachments are JPEG, PNG or PDF",
        );
    };
    if body.is_empty() || !body.starts_with(magic) {
        return reject(
            ErrorCode::InvalidAttachment,
            format!("the file is not {ct}"),
        );
    }
    let sha = crate::crypto::sha256_hex(&body);
    let now = state.now();
    let mut tx = state.db().begin().await?;
    // Uploads to one business racing on several instances are counted one at a time.
    crate::db::lock(&mut tx, &format!("attachments:{id}")).await?;
    let b = store::load_business(&mut tx, &id).await?;
    if !matches!(
        b.business.state,
        BusinessState::AwaitingDocuments | BusinessState::Submitted
    ) {
        return reject(
            ErrorCode::WrongState,
            "this business takes no more attachments",
        );
    }
    if i64::try_from(store::attachments_of(&mut tx, &id).await?.len()).unwrap_or(i64::MAX)
        >= crate::limits::ATTACHMENTS_PER_BUSINESS
    {
        return reject(
            ErrorCode::RateLimited,
            "this business holds as many attachments as it can",
        );
    }
    {
        // Stored once per content; the same file uploaded again (or by a request racing on
        // another instance) is already there.
        sqlx::query("INSERT INTO attachment_contents (sha256, content_base64, created_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
            .bind(&sha)
            .bind(keyward_pki::pem::base64(&body))
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    let att_id = crate::db::new_id("at")?;
    let size = i64::try_from(body.len()).unwrap_or(i64::MAX);
    sqlx::query("INSERT INTO attachments (id, business_id, kind, content_type, sha256, size, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&att_id)
        .bind(&id)
        .bind(kind.as_str())
        .bind(*ct)
        .bind(&sha)
        .bind(size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    store::audit(
        &mut tx,
        now,
        &caller.actor(),
        "attachment_uploaded",
        b.business.key_serial.as_deref(),
        Some(&id),
        &format!("{} {sha}", kind.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Attachment {
        id: att_id,
        business_id: id,
        kind,
        content_type: (*ct).to_owned(),
        sha256: sha,
        size,
    }))
}

/// `POST /v1/businesses/{id}/submit`: awaiting documents → under review.
pub async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<Json<Business>> {
    let id = caller.business()?.business.id.clone();
    let now = state.now();
    let mut tx = state.db().begin().await?;
    let b = store::load_business(&mut tx, &id).await?;
    if b.business.state != BusinessState::AwaitingDocuments {
        return reject(
            ErrorCode::WrongState,
            "this business is not waiting for documents",
        );
    }
    if store::attachments_of(&mut tx, &id).await?.is_empty() {
        return reject(
            ErrorCode::AttachmentRequired,
            "upload the attachments first",
        );
    }
    store::transition(
        &mut tx,
        &id,
        BusinessState::AwaitingDocuments,
        BusinessState::UnderReview,
        now,
        "材料已提交，等待审核",
    )
    .await?;
    store::audit(
        &mut tx,
        now,
        &caller.actor(),
        "submitted_for_review",
        b.business.key_serial.as_deref(),
        Some(&id),
        "",
    )
    .await?;
    let b = store::load_business(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(b.business))
}

/// `GET /admin/v1/attachments/{sha256}`
pub async fn download(
    State(state): State<AppState>,
    sha: Result<Path<String>, PathRejection>,
) -> CaResult<Response> {
    let sha = http::path(sha)?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return reject(
            ErrorCode::InvalidRequest,
            "an attachment is named by its SHA-256 in hex",
        );
    }
    let row = sqlx::query("SELECT content_type FROM attachments WHERE sha256 = $1")
        .bind(&sha)
        .fetch_optional(state.db())
        .await?
        .ok_or_else(|| CaError::rejected(ErrorCode::NotFound, "no such attachment"))?;
    let ct = crate::db::text(&row, "content_type")?;
    let bytes = {
        let mut conn = state.db().acquire().await?;
        content(&mut conn, &state, &sha).await?
    };
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ct).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    Ok(resp)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn kind_title(kind: keyward_ca_api::BusinessKind) -> &'static str {
    use keyward_ca_api::BusinessKind as K;
    match kind {
        K::Issue => "数字证书签发",
        K::Renewal => "数字证书续期",
        K::Unlock => "数字证书解锁申请表",
        K::Seal => "电子印章申请表",
        K::NewApplication => "数字证书新申请表",
        K::AddCertificate => "增加数字证书申请表",
        K::Change => "数字证书变更申请表",
        K::Reissue => "数字证书补办申请表",
        K::Refund => "退款申请表",
    }
}

/// `GET /v1/businesses/{id}/form`: the printable application form of a business (the seal
/// form, the refund form, ...), to be stamped with the physical seal, scanned and uploaded.
pub async fn form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> CaResult<axum::response::Html<String>> {
    let id = caller.business()?.business.id.clone();
    let mut conn = state.db().acquire().await?;
    let b = store::load_business(&mut conn, &id).await?;
    let org = store::organisation_name(&mut conn, &b.business.uscc).await?;
    let handler = match &b.handler_id {
        Some(h) => Some(store::load_handler(&mut conn, h).await?),
        None => None,
    };
    let mut rows = vec![
        ("业务编号 Business", b.business.id.clone()),
        ("单位名称 Organisation", org),
        ("统一社会信用代码 USCC", b.business.uscc.clone()),
        (
            "证书介质序列号 Key",
            b.business.key_serial.clone().unwrap_or_else(|| "—".into()),
        ),
        (
            "费用 Fee",
            format!(
                "¥ {}.{:02}",
                b.business.fee_fen / 100,
                b.business.fee_fen % 100
            ),
        ),
    ];
    if let Some(h) = handler {
        rows.push(("经办人 Handler", h.name));
        rows.push(("联系电话 Phone", keyward_ca_api::ids::mask_mobile(&h.phone)));
    }
    for (key, label) in [
        ("seal_name", "印章名称 Seal name"),
        ("seal_kind", "印章类型 Seal kind"),
        ("new_name", "新单位名称 New name"),
        ("new_legal_address", "新住所 New address"),
        ("reason", "原因 Reason"),
        ("years", "年限 Years"),
    ] {
        match &b.details[key] {
            serde_json::Value::String(s) => rows.push((label, s.clone())),
            serde_json::Value::Number(n) => rows.push((label, n.to_string())),
            _ => {}
        }
    }
    let table: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v)))
        .collect();
    Ok(axum::response::Html(format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:serif;max-width:40em;margin:2em auto}}th{{text-align:left;padding-right:2em}}
.stamp{{border:1px dashed #999;height:12em;margin-top:2em;padding:1em}}</style></head>
<body>
<h1>{title}</h1>
<table>
{table}</table>
<p>本单位确认以上信息真实有效，申请办理上述业务。</p>
<div class="stamp">单位盖章处（公章或合同专用章） / Stamp here<br><br>日期 Date：</div>
</body></html>"#,
        title = escape(kind_title(b.business.kind)),
    )))
}

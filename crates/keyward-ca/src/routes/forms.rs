//! Blank application forms the CA hands out before any business exists. The seal form is
//! printed, filled in, stamped with the physical seal and scanned: that scan is what
//! 申请印章 uploads. A CA puts its own form in `<data-dir>/forms/` (`seal.pdf`, or
//! `seal.html`); without one the service serves the blank form built into it.

use crate::app::AppState;
use crate::error::{CaError, CaResult};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The name the seal form is saved under, without its extension.
pub const SEAL_FORM_NAME: &str = "电子印章申请表";

/// The built-in blank seal form (HTML, printable on one A4 page).
const BUILT_IN_SEAL_FORM: &str = include_str!("forms/seal.html");

/// `GET /v1/forms/seal`: the blank electronic seal application form.
pub async fn seal(State(state): State<AppState>) -> CaResult<Response> {
    let dir = state.data_dir().join("forms");
    for (ext, content_type) in [
        ("pdf", "application/pdf"),
        ("html", "text/html; charset=utf-8"),
    ] {
        let path = dir.join(format!("seal.{ext}"));
        match tokio::fs::read(&path).await {
            Ok(bytes) => return Ok(file(bytes, content_type, ext)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CaError::io(&path, e)),
        }
    }
    Ok(file(
        BUILT_IN_SEAL_FORM.as_bytes().to_vec(),
        "text/html; charset=utf-8",
        "html",
    ))
}

/// The form's bytes as a download named `电子印章申请表.<ext>` (RFC 6266 / RFC 8187).
fn file(bytes: Vec<u8>, content_type: &'static str, ext: &str) -> Response {
    let encoded: String = format!("{SEAL_FORM_NAME}.{ext}")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition =
        format!("attachment; filename=\"seal-form.{ext}\"; filename*=UTF-8''{encoded}");
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

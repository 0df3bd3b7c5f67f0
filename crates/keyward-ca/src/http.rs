//! Request plumbing shared by the handlers: typed errors for every extractor, JSON parsing,
//! the admin credential and key-signature authentication.

use crate::app::AppState;
use crate::crypto::VerifyKey;
use crate::error::{CaError, CaResult, reject};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use keyward_ca_api::auth::{NONCE_HEADER, SIGNATURE_HEADER};
use keyward_ca_api::{ErrorCode, body_sha256, request_purpose, signing_input};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The raw body, or a typed error (`body_too_large`, `invalid_request`).
pub fn body(result: Result<Bytes, BytesRejection>) -> CaResult<Bytes> {
    result.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            CaError::rejected(ErrorCode::BodyTooLarge, "the request body is too large")
        } else {
            CaError::rejected(ErrorCode::InvalidRequest, format!("unreadable body: {e}"))
        }
    })
}

/// Path parameters, or `invalid_request`.
pub fn path<T>(result: Result<Path<T>, PathRejection>) -> CaResult<T> {
    result
        .map(|Path(t)| t)
        .map_err(|e| CaError::rejected(ErrorCode::InvalidRequest, format!("bad path: {e}")))
}

/// Query parameters, or `invalid_request`.
pub fn query(
    result: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> CaResult<HashMap<String, String>> {
    result
        .map(|Query(q)| q)
        .map_err(|e| CaError::rejected(ErrorCode::InvalidRequest, format!("bad query: {e}")))
}

/// Parses a JSON body: `unsupported_media_type` unless `Content-Type: application/json`,
/// `invalid_json` for a syntax error, `invalid_request` for a wrong shape.
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> CaResult<T> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return reject(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        );
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                CaError::rejected(ErrorCode::InvalidJson, format!("the body is not JSON: {e}"))
            }
            Category::Data => CaError::rejected(ErrorCode::InvalidRequest, e.to_string()),
        }
    })
}

/// Checks `Authorization: Bearer <admin token>`.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> CaResult<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests so the comparison time says nothing about the token.
    if body_sha256(given.as_bytes()) != body_sha256(state.admin_token().as_bytes())
        || given.is_empty()
    {
        return reject(
            ErrorCode::Unauthorized,
            "this endpoint needs the admin credential",
        );
    }
    Ok(())
}

/// Authenticates a request about `key_serial`: the nonce must be one issued for this key,
/// unexpired and unused, and the signature over [`signing_input`] must verify with one of
/// `keys`. The nonce is spent (committed) before the handler does anything else.
pub async fn verify_key_signature(
    state: &AppState,
    key_serial: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    keys: &[VerifyKey],
) -> CaResult<()> {
    let nonce = headers
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            CaError::rejected(ErrorCode::SignatureMissing, "the nonce header is missing")
        })?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| hex::decode(v).ok())
        .ok_or_else(|| {
            CaError::rejected(
                ErrorCode::SignatureMissing,
                "the signature header is missing or not hex",
            )
        })?;
    let input = signing_input(&request_purpose(method, path), nonce, &body_sha256(body));
    if !keys.iter().any(|k| k.verify(&input, &signature)) {
        return reject(
            ErrorCode::SignatureInvalid,
            "the key signature does not verify",
        );
    }
    crate::store::spend_nonce(state, key_serial, nonce).await
}

/// Authenticates a request about a key by the key's current certificate: loads the key and
/// that certificate, and checks the request's signature over a fresh nonce with its key.
pub async fn authenticate_current(
    state: &AppState,
    serial: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> CaResult<(crate::store::KeyRow, crate::store::CertRow)> {
    let (key, cert) = {
        let mut conn = state.db().acquire().await?;
        let key = crate::store::load_key(&mut conn, serial).await?;
        let cert = crate::store::load_cert(&mut conn, &key.current_cert).await?;
        (key, cert)
    };
    verify_key_signature(
        state,
        serial,
        method.as_str(),
        uri.path(),
        headers,
        body,
        std::slice::from_ref(&cert.parsed.key),
    )
    .await?;
    Ok((key, cert))
}

//! Request plumbing shared by the handlers: typed errors for every extractor and JSON
//! parsing. Who may call what is [`crate::auth`].

use crate::error::{CaError, CaResult, reject};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use keyward_ca_api::ErrorCode;
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

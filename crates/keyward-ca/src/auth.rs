//! Who may call what. Every route's rule is the [`Access`] the endpoint table gives it;
//! [`enforce`] runs before every handler, finds the rule of the route the request matched,
//! checks it, and hands the handler what it established as a [`Caller`]. A route with no
//! entry in the table is refused here, so no route can be reached without a rule.
//!
//! A refusal never tells an unknown key or business from one the caller may not touch.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_ca_api::auth::{
    BUSINESS_SECRET_HEADER, NEXT_NONCE_HEADER, NONCE_HEADER, PAYMENT_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
};
use keyward_ca_api::endpoints::{Access, Endpoint};
use keyward_ca_api::{BusinessKind, ErrorCode, body_sha256, request_purpose, signing_input};
use sqlx::AnyConnection;

use crate::app::{AppState, JSON_BODY_LIMIT};
use crate::crypto::VerifyKey;
use crate::error::{CaError, CaResult, reject};
use crate::staff::StaffAccount;
use crate::store::{self, BusinessRow, CertRow, KeyCertificate, KeyRow};

/// How the caller of a business route proved their right to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The business's own secret.
    Secret,
    /// A fresh signature by the business's key.
    KeySignature,
}

/// What [`enforce`] established about the caller, for the handler.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A public route: nobody in particular.
    Anyone,
    /// The key in the path signed the request; its row and the certificate that verified.
    Key {
        key: Box<KeyRow>,
        cert: Box<CertRow>,
        /// On a renewal's route for the new key: that renewal, as read to find the
        /// certificate the signature was checked against.
        renewal: Option<Box<BusinessRow>>,
    },
    /// The caller may act on the business in the path.
    Business {
        business: Box<BusinessRow>,
        proof: Proof,
    },
    /// A staff account with a role the route allows.
    Staff(StaffAccount),
    /// The payment provider signed the body.
    PaymentProvider,
}

impl Caller {
    /// The signing key, on a key route.
    pub fn key(&self) -> CaResult<(&KeyRow, &CertRow)> {
        match self {
            Caller::Key { key, cert, .. } => Ok((key, cert)),
            _ => Err(CaError::Config("a key route without a key caller".into())),
        }
    }

    /// The renewal, on a renewal's route signed by the new key.
    pub fn renewal(&self) -> CaResult<&BusinessRow> {
        match self {
            Caller::Key {
                renewal: Some(b), ..
            } => Ok(b),
            _ => Err(CaError::Config(
                "a renewal route without its renewal".into(),
            )),
        }
    }

    /// The business, on a business route.
    pub fn business(&self) -> CaResult<&BusinessRow> {
        match self {
            Caller::Business { business, .. } => Ok(business),
            _ => Err(CaError::Config(
                "a business route without a business caller".into(),
            )),
        }
    }

    /// The staff account, on a staff route.
    pub fn staff(&self) -> CaResult<&StaffAccount> {
        match self {
            Caller::Staff(s) => Ok(s),
            _ => Err(CaError::Config(
                "a staff route without a staff caller".into(),
            )),
        }
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Anyone => "client".into(),
            Caller::Key { .. } => "key".into(),
            Caller::Business {
                proof: Proof::KeySignature,
                ..
            } => "key".into(),
            Caller::Business {
                proof: Proof::Secret,
                ..
            } => "business_secret".into(),
            Caller::Staff(s) => s.actor(),
            Caller::PaymentProvider => "payment_provider".into(),
        }
    }
}

/// The middleware: checks the matched route's rule, then runs the handler with a
/// [`Caller`] in the request's extensions.
pub async fn enforce(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, matched, req).await {
        Ok((req, next_for_key)) => {
            let mut response = next.run(req).await;
            if let Some(nonce) = next_for_key {
                next_nonce(&nonce, &mut response);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Puts the next nonce for the key whose signature was just accepted in the answer
/// ([`NEXT_NONCE_HEADER`]), saving the client a `POST /v1/nonces` before its next signed
/// request. Only the key's signature earned it: an answer to anyone else carries none.
fn next_nonce(nonce: &str, response: &mut Response) {
    match axum::http::HeaderValue::from_str(nonce) {
        Ok(v) => {
            response.headers_mut().insert(NEXT_NONCE_HEADER, v);
        }
        Err(_) => tracing::error!("a nonce that is not a header value"),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request to hand on, and the next nonce for the key whose signature it carried, if
/// it carried one.
async fn check(
    state: &AppState,
    matched: Option<MatchedPath>,
    req: Request,
) -> CaResult<(Request, Option<String>)> {
    let Some(route) = matched else {
        return Err(CaError::Config("a request reached no route".into()));
    };
    let Some(endpoint) = Endpoint::find(req.method().as_str(), route.as_str()) else {
        // Deny by default: a route the table does not know has no rule.
        tracing::error!(route = route.as_str(), method = %req.method(), "route without an access rule");
        return Err(CaError::Config("route without an access rule".into()));
    };
    let (mut parts, body) = req.into_parts();
    let params: HashMap<String, String> =
        match Path::<HashMap<String, String>>::from_request_parts(&mut parts, state).await {
            Ok(Path(p)) => p,
            Err(e) => return reject(ErrorCode::InvalidRequest, format!("bad path: {e}")),
        };
    let limit = if route.as_str().ends_with("/attachments") {
        keyward_ca_api::ATTACHMENT_MAX_BYTES
    } else {
        JSON_BODY_LIMIT
    };
    let needs_body = matches!(
        endpoint.access,
        Access::Key
            | Access::RenewedKey
            | Access::PaymentProvider
            | Access::BusinessOwner
            | Access::BusinessKey
    );
    let (body, bytes) = if needs_body {
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            CaError::rejected(ErrorCode::BodyTooLarge, "the request body is too large")
        })?;
        (Body::from(bytes.clone()), bytes)
    } else {
        (body, Bytes::new())
    };
    let param = |name: &str| {
        params
            .get(name)
            .cloned()
            .ok_or_else(|| CaError::Config(format!("route {} has no {{{name}}}", endpoint.path)))
    };
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(parts.uri.path()),
        headers: &parts.headers,
        body: &bytes,
    };
    let mut next = None;
    let caller = match endpoint.access {
        Access::Public | Access::Handler => Caller::Anyone,
        Access::PaymentProvider => {
            let tag = header(&parts.headers, PAYMENT_SIGNATURE_HEADER).unwrap_or("");
            if !state.payment_signature_valid(&bytes, tag) {
                return reject(
                    ErrorCode::PaymentSignatureInvalid,
                    "the notification's signature does not verify",
                );
            }
            Caller::PaymentProvider
        }
        Access::Staff(roles) => {
            let token = header(&parts.headers, header::AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let account = {
                let mut conn = state.db().acquire().await?;
                crate::staff::authenticate(&mut conn, token.trim(), state.now()).await?
            };
            if !account.may(roles) {
                return reject(
                    ErrorCode::Forbidden,
                    format!("the {} role may not do this", account.role.as_str()),
                );
            }
            Caller::Staff(account)
        }
        Access::Key => {
            let serial = param("serial")?;
            // One connection for the key and its nonce, given back before the handler runs.
            let mut conn = state.db().acquire().await?;
            let found = store::load_key_and_current(&mut conn, &serial).await?;
            next = Some(
                signed
                    .verify(
                        state,
                        &mut conn,
                        &serial,
                        found.as_ref().map(|(_, c)| &c.parsed.key),
                    )
                    .await?,
            );
            match found {
                Some((key, cert)) => Caller::Key {
                    key: Box::new(key),
                    cert: Box::new(cert),
                    renewal: None,
                },
                None => return Err(bad_signature()),
            }
        }
        Access::RenewedKey => {
            let serial = param("serial")?;
            let id = param("id")?;
            let mut conn = state.db().acquire().await?;
            let new = renewed_certificate(&mut conn, &serial, &id).await?;
            next = Some(
                signed
                    .verify(
                        state,
                        &mut conn,
                        &serial,
                        new.as_ref().map(|(_, c, _)| &c.parsed.key),
                    )
                    .await?,
            );
            match new {
                Some((key, cert, renewal)) => Caller::Key {
                    key: Box::new(key),
                    cert: Box::new(cert),
                    renewal: Some(Box::new(renewal)),
                },
                None => return Err(bad_signature()),
            }
        }
        Access::BusinessOwner | Access::BusinessSecret | Access::BusinessKey => {
            let id = param("id")?;
            let secret = header(&parts.headers, BUSINESS_SECRET_HEADER)
                .filter(|_| endpoint.access != Access::BusinessKey);
            // Signed by the business's key: the key is read with the business.
            let signed_by_key = secret.is_none()
                && matches!(endpoint.access, Access::BusinessOwner | Access::BusinessKey)
                && parts.headers.contains_key(SIGNATURE_HEADER);
            let mut conn = state.db().acquire().await?;
            let (business, found) = if signed_by_key {
                match store::load_business_and_key(&mut conn, &id, KeyCertificate::Current).await? {
                    None => (None, None),
                    Some((b, None)) => (Some(b), None),
                    Some((b, Some((key, Some(cert))))) => (Some(b), Some((key, cert))),
                    Some((_, Some((key, None)))) => return Err(missing(&key.current_cert)),
                }
            } else {
                (store::load_business(&mut conn, &id).await.ok(), None)
            };
            // On a route under a key, the business must be that key's.
            let (business, found) = match (params.get("serial"), business) {
                (Some(serial), Some(b)) if b.business.key_serial.as_ref() != Some(serial) => {
                    (None, None)
                }
                (_, b) => (b, found),
            };
            let proof = match (secret, endpoint.access) {
                (Some(secret), _) => {
                    match &business {
                        Some(b) if b.secret_matches(secret) => {}
                        _ => return Err(no_such_business()),
                    }
                    Proof::Secret
                }
                (None, Access::BusinessOwner | Access::BusinessKey) if signed_by_key => {
                    // The business's key signs; a business with no key has nobody to sign.
                    let serial = business
                        .as_ref()
                        .and_then(|b| b.business.key_serial.clone())
                        .unwrap_or_default();
                    let spent = signed
                        .verify(
                            state,
                            &mut conn,
                            &serial,
                            found.as_ref().map(|(_, c)| &c.parsed.key),
                        )
                        .await?;
                    if business.is_none() || found.is_none() {
                        return Err(no_such_business());
                    }
                    next = Some(spent);
                    Proof::KeySignature
                }
                (None, Access::BusinessOwner) => {
                    return reject(
                        ErrorCode::Unauthorized,
                        "this business is reached with its secret or its key's signature",
                    );
                }
                (None, Access::BusinessKey) => {
                    return reject(
                        ErrorCode::SignatureMissing,
                        "this needs a signature by the business's key",
                    );
                }
                (None, _) => {
                    return reject(
                        ErrorCode::Unauthorized,
                        "this business is reached with its secret",
                    );
                }
            };
            match business {
                Some(business) => Caller::Business {
                    business: Box::new(business),
                    proof,
                },
                None => return Err(no_such_business()),
            }
        }
    };
    parts.extensions.insert(caller);
    Ok((Request::from_parts(parts, body), next))
}

use axum::extract::FromRequestParts;

fn bad_signature() -> CaError {
    CaError::rejected(
        ErrorCode::SignatureInvalid,
        "the key signature does not verify",
    )
}

fn no_such_business() -> CaError {
    CaError::rejected(
        ErrorCode::Unauthorized,
        "no business answers to this credential",
    )
}

/// The certificate renewal `id` of key `serial` issued for the new pair, with the key and
/// the renewal, read in one statement. Nothing for a business that is not this key's
/// renewal, or a renewal with no new certificate yet; an unknown key has no renewal.
async fn renewed_certificate(
    conn: &mut AnyConnection,
    serial: &str,
    id: &str,
) -> CaResult<Option<(KeyRow, CertRow, BusinessRow)>> {
    let Some((b, found)) =
        store::load_business_and_key(conn, id, KeyCertificate::RenewalsNew).await?
    else {
        return Ok(None);
    };
    if b.business.kind != BusinessKind::Renewal || b.business.key_serial.as_deref() != Some(serial)
    {
        return Ok(None);
    }
    let Some(new_serial) = b.details["new_certificate"].as_str() else {
        return Ok(None);
    };
    match found {
        Some((key, Some(cert))) => Ok(Some((key, cert, b))),
        Some((_, None)) => Err(missing(new_serial)),
        None => Ok(None),
    }
}

/// A certificate a row names that is not stored.
fn missing(serial: &str) -> CaError {
    CaError::Corrupt(format!("certificate {serial} missing"))
}

/// The parts of a request a key signature covers.
struct SignedRequest<'a> {
    method: &'a str,
    path_and_query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl SignedRequest<'_> {
    /// Checks the signature over [`signing_input`] with `key` (none: an unknown key, which
    /// fails the same way), then spends the nonce, committed before any handler runs, and
    /// returns the key's next nonce.
    async fn verify(
        &self,
        state: &AppState,
        conn: &mut AnyConnection,
        serial: &str,
        key: Option<&VerifyKey>,
    ) -> CaResult<String> {
        let nonce = header(self.headers, NONCE_HEADER).ok_or_else(|| {
            CaError::rejected(ErrorCode::SignatureMissing, "the nonce header is missing")
        })?;
        let signature = header(self.headers, SIGNATURE_HEADER)
            .and_then(|v| hex::decode(v).ok())
            .ok_or_else(|| {
                CaError::rejected(
                    ErrorCode::SignatureMissing,
                    "the signature header is missing or not hex",
                )
            })?;
        let input = signing_input(
            &request_purpose(self.method, self.path_and_query),
            nonce,
            &body_sha256(self.body),
        );
        if !key.is_some_and(|k| k.verify(&input, &signature)) {
            return Err(bad_signature());
        }
        store::spend_nonce(conn, state.now(), serial, nonce).await
    }
}

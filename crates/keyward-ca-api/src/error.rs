//! The error model every endpoint answers with: `{ "code": "...", "message": "..." }`.
//!
//! Codes are stable identifiers the client maps to what the operator sees; messages are
//! English hints for logs and support staff and may change.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes of the CA online service.
///
/// A client that meets a code it does not know reads it as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON at all (syntax error or truncated).
    InvalidJson,
    /// The JSON is well formed but has the wrong shape: missing or unknown fields, wrong types.
    InvalidRequest,
    /// The request declared a content type the endpoint does not take.
    UnsupportedMediaType,
    /// The body is larger than the endpoint accepts.
    BodyTooLarge,
    /// No such endpoint.
    NotFound,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The request lacks the credential its endpoint needs (staff token, business secret,
    /// key signature), or it does not open what the request names. An unknown business and
    /// one the caller may not see answer alike.
    Unauthorized,
    /// The staff account is valid but its role may not do this.
    Forbidden,
    /// Too many requests from this address, or for this key, in a short time.
    RateLimited,
    /// The unified social credit code is malformed or its check character is wrong.
    InvalidUscc,
    /// The organisation's or handler's details fail validation (empty name, bad phone, ...).
    InvalidParty,
    /// No organisation with this unified social credit code is registered.
    OrganisationNotFound,
    /// No key with this serial is registered.
    KeyNotFound,
    /// A key with this serial is already registered.
    KeyAlreadyRegistered,
    /// No business with this id (for this key).
    BusinessNotFound,
    /// The CSR cannot be parsed, or asks for an unsupported key type.
    InvalidCsr,
    /// The CSR's self-signature does not verify.
    CsrSignatureInvalid,
    /// The CSR carries the same public key as the certificate it is meant to replace.
    CsrKeyReused,
    /// A certificate in the request cannot be parsed or was not issued by this CA.
    InvalidCertificate,
    /// The certificate does not belong to this organisation or key.
    CertificateMismatch,
    /// The nonce is unknown, belongs to another key, or has expired.
    NonceInvalid,
    /// The nonce was already used.
    NonceReplayed,
    /// The request needs a key signature and carries none (or a malformed one).
    SignatureMissing,
    /// The key signature does not verify against the key's certificate.
    SignatureInvalid,
    /// The key's certificate uses a key type the service cannot verify.
    UnsupportedKeyAlgorithm,
    /// The verification code is wrong.
    CodeInvalid,
    /// The verification code has expired, or none was sent.
    CodeExpired,
    /// Too many wrong attempts: the code is void; ask for a new one.
    CodeAttemptsExhausted,
    /// A code was sent moments ago; wait before asking again.
    CodeCooldown,
    /// The daily number of codes for this key is used up.
    CodeDailyLimit,
    /// The business or key is not in a state that allows this step.
    WrongState,
    /// The key has not been activated yet.
    KeyNotActivated,
    /// Renewal is open only inside the 90 days before expiry.
    RenewalWindowNotOpen,
    /// The certificate has expired: renewal is closed; apply for a new certificate.
    CertificateExpired,
    /// Validity must be 1 to 5 years.
    InvalidYears,
    /// No payment with this id.
    PaymentNotFound,
    /// A payment notification's signature does not verify.
    PaymentSignatureInvalid,
    /// An attachment is of a type the endpoint does not take, too large, or not what its content type says.
    InvalidAttachment,
    /// The business needs its attachments before it can be submitted.
    AttachmentRequired,
    /// Refunds are only for business not yet accepted, or a key not activated within 14 days of delivery.
    RefundNotAllowed,
    /// A company-name change must go through the change business, not the seal business.
    NameChangeNotSeal,
    /// A reviewer has already decided this business.
    AlreadyDecided,
    /// Another requester's unlock of this key is open; the refusal names it (masked).
    UnlockUnderWay,
    /// Something failed inside the service; nothing the client sent was wrong.
    Internal,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidUscc => "invalid_uscc",
            ErrorCode::InvalidParty => "invalid_party",
            ErrorCode::OrganisationNotFound => "organisation_not_found",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::KeyAlreadyRegistered => "key_already_registered",
            ErrorCode::BusinessNotFound => "business_not_found",
            ErrorCode::InvalidCsr => "invalid_csr",
            ErrorCode::CsrSignatureInvalid => "csr_signature_invalid",
            ErrorCode::CsrKeyReused => "csr_key_reused",
            ErrorCode::InvalidCertificate => "invalid_certificate",
            ErrorCode::CertificateMismatch => "certificate_mismatch",
            ErrorCode::NonceInvalid => "nonce_invalid",
            ErrorCode::NonceReplayed => "nonce_replayed",
            ErrorCode::SignatureMissing => "signature_missing",
            ErrorCode::SignatureInvalid => "signature_invalid",
            ErrorCode::UnsupportedKeyAlgorithm => "unsupported_key_algorithm",
            ErrorCode::CodeInvalid => "code_invalid",
            ErrorCode::CodeExpired => "code_expired",
            ErrorCode::CodeAttemptsExhausted => "code_attempts_exhausted",
            ErrorCode::CodeCooldown => "code_cooldown",
            ErrorCode::CodeDailyLimit => "code_daily_limit",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::KeyNotActivated => "key_not_activated",
            ErrorCode::RenewalWindowNotOpen => "renewal_window_not_open",
            ErrorCode::CertificateExpired => "certificate_expired",
            ErrorCode::InvalidYears => "invalid_years",
            ErrorCode::PaymentNotFound => "payment_not_found",
            ErrorCode::PaymentSignatureInvalid => "payment_signature_invalid",
            ErrorCode::InvalidAttachment => "invalid_attachment",
            ErrorCode::AttachmentRequired => "attachment_required",
            ErrorCode::RefundNotAllowed => "refund_not_allowed",
            ErrorCode::NameChangeNotSeal => "name_change_not_seal",
            ErrorCode::AlreadyDecided => "already_decided",
            ErrorCode::UnlockUnderWay => "unlock_under_way",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::BodyTooLarge,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::InvalidUscc,
        ErrorCode::InvalidParty,
        ErrorCode::OrganisationNotFound,
        ErrorCode::KeyNotFound,
        ErrorCode::KeyAlreadyRegistered,
        ErrorCode::BusinessNotFound,
        ErrorCode::InvalidCsr,
        ErrorCode::CsrSignatureInvalid,
        ErrorCode::CsrKeyReused,
        ErrorCode::InvalidCertificate,
        ErrorCode::CertificateMismatch,
        ErrorCode::NonceInvalid,
        ErrorCode::NonceReplayed,
        ErrorCode::SignatureMissing,
        ErrorCode::SignatureInvalid,
        ErrorCode::UnsupportedKeyAlgorithm,
        ErrorCode::CodeInvalid,
        ErrorCode::CodeExpired,
        ErrorCode::CodeAttemptsExhausted,
        ErrorCode::CodeCooldown,
        ErrorCode::CodeDailyLimit,
        ErrorCode::WrongState,
        ErrorCode::KeyNotActivated,
        ErrorCode::RenewalWindowNotOpen,
        ErrorCode::CertificateExpired,
        ErrorCode::InvalidYears,
        ErrorCode::PaymentNotFound,
        ErrorCode::PaymentSignatureInvalid,
        ErrorCode::InvalidAttachment,
        ErrorCode::AttachmentRequired,
        ErrorCode::RefundNotAllowed,
        ErrorCode::NameChangeNotSeal,
        ErrorCode::AlreadyDecided,
        ErrorCode::UnlockUnderWay,
        ErrorCode::Internal,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// With `unlock_under_way`: the open business in the way, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_business: Option<crate::types::OpenBusinessNotice>,
}

impl ApiError {
    /// An error answer with no notice.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            open_business: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn unknown_codes_are_read_as_unknown() {
        let e: ApiError =
            serde_json::from_str(r#"{"code":"from_the_future","message":"x"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }
}

//! The one error enum of the service, mapped once into `{code, message}` answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_ca_api::{ApiError, ErrorCode};

/// Everything that can go wrong in the CA service.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The request was refused for a reason the client can act on.
    #[error("{code}: {message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    #[error("configuration: {0}")]
    Config(String),
    /// Another requester's business of the same kind is open (`unlock_under_way`).
    #[error("another unlock of this key is under way")]
    UnderWay(keyward_ca_api::OpenBusinessNotice),
}

impl CaError {
    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> Self {
        CaError::Rejected {
            code,
            message: message.into(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        CaError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The stable code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CaError::Rejected { code, .. } => *code,
            CaError::UnderWay(_) => ErrorCode::UnlockUnderWay,
            CaError::Database(_)
            | CaError::Certificate(_)
            | CaError::Io { .. }
            | CaError::Corrupt(_)
            | CaError::Crypto(_)
            | CaError::Config(_) => ErrorCode::Internal,
        }
    }
}

/// HTTP status for each code; exhaustive so a new code cannot be forgotten.
pub fn status_for(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidJson
        | C::InvalidRequest
        | C::InvalidUscc
        | C::InvalidParty
        | C::InvalidCsr
        | C::CsrSignatureInvalid
        | C::CsrKeyReused
        | C::InvalidCertificate
        | C::CertificateMismatch
        | C::InvalidYears
        | C::CodeInvalid
        | C::CodeExpired
        | C::UnsupportedKeyAlgorithm
        | C::InvalidAttachment
        | C::NameChangeNotSeal => StatusCode::BAD_REQUEST,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::NotFound
        | C::OrganisationNotFound
        | C::KeyNotFound
        | C::BusinessNotFound
        | C::PaymentNotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::Forbidden => StatusCode::FORBIDDEN,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::Unauthorized
        | C::NonceInvalid
        | C::NonceReplayed
        | C::SignatureMissing
        | C::SignatureInvalid
        | C::PaymentSignatureInvalid => StatusCode::UNAUTHORIZED,
        C::KeyAlreadyRegistered
        | C::WrongState
        | C::KeyNotActivated
        | C::RenewalWindowNotOpen
        | C::CertificateExpired
        | C::AttachmentRequired
        | C::RefundNotAllowed
        | C::AlreadyDecided
        | C::UnlockUnderWay => StatusCode::CONFLICT,
        C::CodeAttemptsExhausted | C::CodeCooldown | C::CodeDailyLimit => {
            StatusCode::TOO_MANY_REQUESTS
        }
        C::Internal | C::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for CaError {
    fn into_response(self) -> Response {
        let code = self.code();
        let mut notice = None;
        let message = match &self {
            CaError::Rejected { message, .. } => {
                tracing::info!(code = %code, %message, "request refused");
                message.clone()
            }
            CaError::UnderWay(n) => {
                tracing::info!(code = %code, "request refused: another business under way");
                notice = Some(n.clone());
                format!(
                    "an unlock by {} ({}) is under way since {}",
                    n.requester_masked, n.phone_masked, n.opened_at
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                "internal error; the request may be retried".to_owned()
            }
        };
        let mut body = ApiError::new(code, message);
        body.open_business = notice;
        (status_for(code), axum::Json(body)).into_response()
    }
}

pub type CaResult<T> = Result<T, CaError>;

/// Shorthand for a refusal.
pub fn reject<T>(code: ErrorCode, message: impl Into<String>) -> CaResult<T> {
    Err(CaError::rejected(code, message))
}

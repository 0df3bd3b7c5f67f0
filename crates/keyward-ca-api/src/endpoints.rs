//! The list of endpoints, from which the OpenAPI document is built; the server's tests
//! check that each one is routed.

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A fresh signature by the key named in the path (see [`crate::auth`]).
    KeySignature,
    /// The admin bearer token of the issuing station / reviewers.
    Admin,
    /// The payment provider's HMAC.
    PaymentProvider,
}

/// One endpoint of the service.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// OpenAPI path template, parameters in braces.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Name of the request body type in [`crate::types`], if any.
    pub request: Option<&'static str>,
    /// Name of the success answer type in [`crate::types`].
    pub response: &'static str,
}

const fn ep(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    request: Option<&'static str>,
    response: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        access,
        request,
        response,
    }
}

/// Every endpoint the service routes.
pub const ENDPOINTS: &[Endpoint] = &[
    ep(
        "GET",
        "/healthz",
        "Liveness and version",
        Access::Public,
        None,
        "Health",
    ),
    ep(
        "GET",
        "/openapi.json",
        "This document",
        Access::Public,
        None,
        "OpenApi",
    ),
    ep(
        "GET",
        "/v1/ca/chain",
        "The CA's root, issuing and seal-making certificates",
        Access::Public,
        None,
        "CaChain",
    ),
    ep(
        "POST",
        "/admin/v1/certify",
        "Issue an organisation certificate over a CSR",
        Access::Admin,
        Some("CertifyRequest"),
        "IssuedCertificate",
    ),
    ep(
        "POST",
        "/admin/v1/keys",
        "Register an issued key; queues the activation SMS",
        Access::Admin,
        Some("RegisterKeyRequest"),
        "KeyStatus",
    ),
    ep(
        "GET",
        "/admin/v1/sms",
        "The SMS outbox",
        Access::Admin,
        None,
        "SmsOutbox",
    ),
    ep(
        "GET",
        "/admin/v1/audit",
        "The audit log",
        Access::Admin,
        None,
        "AuditLog",
    ),
    ep(
        "POST",
        "/v1/nonces",
        "A single-use nonce for a signed request about a key",
        Access::Public,
        Some("NonceRequest"),
        "NonceGrant",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}",
        "A key's state and current certificate",
        Access::Public,
        None,
        "KeyStatus",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}/businesses",
        "Progress of every business of a key",
        Access::Public,
        None,
        "BusinessList",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/code",
        "Send a new activation code to the handler",
        Access::Public,
        None,
        "CodeSent",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/redeem",
        "Redeem the activation code for the transport PIN",
        Access::Public,
        Some("RedeemCodeRequest"),
        "TransportPinRelease",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/confirm",
        "Prove possession; records the activation time",
        Access::KeySignature,
        None,
        "KeyStatus",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals",
        "Apply for renewal",
        Access::KeySignature,
        Some("RenewalApplication"),
        "Business",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals/{id}/certificate",
        "Post the new key's CSR after payment",
        Access::KeySignature,
        Some("CsrSubmission"),
        "IssuedCertificate",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals/{id}/installed",
        "Confirm the renewed certificate is installed (signed by the new key)",
        Access::KeySignature,
        None,
        "Business",
    ),
    ep(
        "GET",
        "/v1/businesses/{id}",
        "One business with its timeline",
        Access::Public,
        None,
        "Business",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/payment",
        "Create (or return) the payment request of a business",
        Access::Public,
        None,
        "PaymentRequest",
    ),
    ep(
        "POST",
        "/v1/payments/notify",
        "Payment provider callback (idempotent)",
        Access::PaymentProvider,
        Some("PaymentNotification"),
        "PaymentRequest",
    ),
    ep(
        "POST",
        "/sandbox/payments/{id}/complete",
        "Sandbox provider: the payer pays or fails",
        Access::Public,
        Some("SandboxOutcome"),
        "PaymentRequest",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks",
        "Ask to unlock a key (forgot PIN); auto-approved for the latest business's handler",
        Access::Public,
        Some("UnlockApplication"),
        "Business",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/code",
        "Send a new unlock code to the approved requester",
        Access::Public,
        None,
        "CodeSent",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/authorisation",
        "Redeem the unlock code for the SO PIN and the fresh SO PIN",
        Access::Public,
        Some("RedeemCodeRequest"),
        "UnlockAuthorisation",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/confirm",
        "Confirm the SO PIN rotation (signed by the key under its new PIN)",
        Access::KeySignature,
        None,
        "Business",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/attachments",
        "Upload an attachment (raw body; ?kind=; JPEG, PNG or PDF up to 5 MiB)",
        Access::Public,
        None,
        "Attachment",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/submit",
        "Submit a business with its attachments for review",
        Access::Public,
        None,
        "Business",
    ),
    ep(
        "GET",
        "/admin/v1/reviews",
        "Businesses waiting for a reviewer",
        Access::Admin,
        None,
        "ReviewQueue",
    ),
    ep(
        "POST",
        "/admin/v1/reviews/{id}/approve",
        "Approve a business under review",
        Access::Admin,
        Some("ReviewDecision"),
        "Business",
    ),
    ep(
        "POST",
        "/admin/v1/reviews/{id}/reject",
        "Reject a business under review",
        Access::Admin,
        Some("ReviewDecision"),
        "Business",
    ),
    ep(
        "GET",
        "/admin/v1/attachments/{sha256}",
        "Download an attachment by content hash",
        Access::Admin,
        None,
        "bytes",
    ),
];

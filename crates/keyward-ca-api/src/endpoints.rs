//! The list of endpoints, each with the one rule that says who may call it. The OpenAPI
//! document is built from it, and the service enforces the rule of the route a request
//! matched from this same table before any handler runs: a route missing here cannot be
//! reached.

use crate::types::StaffRole;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (rate-limited). Says nothing about a key beyond the one public read.
    Public,
    /// A fresh signature over a single-use nonce by the key named in the path, checked
    /// against that key's current certificate ([`crate::auth`]).
    Key,
    /// A fresh signature by the key named in the path, checked against the certificate the
    /// renewal named in the path issued for the key's new pair.
    RenewedKey,
    /// The handler of record: an SMS code sent to the phone the CA has on record, with the
    /// ticket the code was sent under.
    Handler,
    /// Whoever may act on the business named in the path: its key's signature, or the
    /// business's own secret ([`crate::auth::BUSINESS_SECRET_HEADER`]).
    BusinessOwner,
    /// Only the business's own secret: the business of a key that cannot sign (the unlock of
    /// a locked key); its steps may add an SMS code to the secret.
    BusinessSecret,
    /// Only a fresh signature by the business's key.
    BusinessKey,
    /// A named staff account, with one of these roles (or `admin`).
    Staff(&'static [StaffRole]),
    /// The payment provider's HMAC over the body.
    PaymentProvider,
}

impl Access {
    /// The rule's name, as the OpenAPI document gives it (`x-keyward-access`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Key => "key",
            Access::RenewedKey => "renewed_key",
            Access::Handler => "handler",
            Access::BusinessOwner => "business_owner",
            Access::BusinessSecret => "business_secret",
            Access::BusinessKey => "business_key",
            Access::Staff(_) => "staff",
            Access::PaymentProvider => "payment_provider",
        }
    }
}

/// Endpoints that exist only when the service runs in a sandbox mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// `serve --sandbox-payments`: the sandbox payment provider's payer.
    Payments,
    /// `serve --sandbox-sms`: the SMS outbox, standing in for the handlers' phones.
    Sms,
}

/// One endpoint of the service.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// OpenAPI path template, parameters in braces.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Routed only in this sandbox mode.
    pub sandbox: Option<Sandbox>,
    /// Name of the request body type in [`crate::types`], if any.
    pub request: Option<&'static str>,
    /// Name of the success answer type in [`crate::types`].
    pub response: &'static str,
}

impl Endpoint {
    /// The endpoint a request matched, by method and route template.
    pub fn find(method: &str, path: &str) -> Option<&'static Endpoint> {
        ENDPOINTS
            .iter()
            .find(|e| e.method.eq_ignore_ascii_case(method) && e.path == path)
    }
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
        sandbox: None,
        request,
        response,
    }
}

const fn sandbox(mode: Sandbox, e: Endpoint) -> Endpoint {
    Endpoint {
        sandbox: Some(mode),
        ..e
    }
}

use Access::*;
use StaffRole::{Auditor, Reviewer, Station};

/// Every endpoint the service routes.
pub const ENDPOINTS: &[Endpoint] = &[
    ep(
        "GET",
        "/healthz",
        "Liveness and version",
        Public,
        None,
        "Health",
    ),
    ep(
        "GET",
        "/openapi.json",
        "This document",
        Public,
        None,
        "OpenApi",
    ),
    ep(
        "GET",
        "/v1/ca/chain",
        "The CA's root, issuing and seal-making certificates",
        Public,
        None,
        "CaChain",
    ),
    ep(
        "GET",
        "/v1/ca/profile",
        "The CA's name and support contacts (hotline, online channel, hours, web address, how to apply anew or replace a key)",
        Public,
        None,
        "CaProfile",
    ),
    ep(
        "POST",
        "/v1/nonces",
        "A single-use nonce for a signed request about a key",
        Public,
        Some("NonceRequest"),
        "NonceGrant",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}/standing",
        "Whether a key awaits activation and what waits to be installed; the one public read about a key",
        Public,
        None,
        "KeyStanding",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}",
        "A key's state and current certificate",
        Key,
        None,
        "KeyStatus",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}/businesses",
        "Progress of every business of a key",
        Key,
        None,
        "BusinessList",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}/certificates",
        "A key's certificates: current, pending and past",
        Key,
        None,
        "CertificateHistory",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/code",
        "Send an activation code to the handler of record; the answer's ticket redeems it",
        Public,
        None,
        "CodeSent",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/redeem",
        "Redeem the activation code (with its ticket) for the transport PIN",
        Handler,
        Some("RedeemCodeRequest"),
        "TransportPinRelease",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/activation/confirm",
        "Prove possession; records the activation time",
        Key,
        None,
        "KeyStatus",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals",
        "Apply for renewal",
        Key,
        Some("RenewalApplication"),
        "CreatedBusiness",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals/{id}/certificate",
        "Post the new key's CSR after payment",
        Key,
        Some("CsrSubmission"),
        "IssuedCertificate",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/renewals/{id}/installed",
        "Confirm the renewed certificate is installed (signed by the new key)",
        RenewedKey,
        None,
        "RenewalInstalled",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/changes",
        "Apply to change the organisation's name or legal address (applied only on approval)",
        Key,
        Some("ChangeForm"),
        "CreatedBusiness",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/seals",
        "Apply for or change the key's electronic seal",
        Key,
        Some("SealApplication"),
        "CreatedBusiness",
    ),
    ep(
        "GET",
        "/v1/keys/{serial}/seal",
        "The key's current electronic seal (GM/T 0031 SES_Seal, DER in base64)",
        Key,
        None,
        "SealDocument",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/seals/{id}/installed",
        "Confirm the seal is installed on the key; completes the seal business",
        Key,
        None,
        "Business",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks",
        "Ask to unlock a key (forgot PIN); approved at once for the handler of record",
        Public,
        Some("UnlockApplication"),
        "CreatedBusiness",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/code",
        "Send a new unlock code once the unlock is approved",
        BusinessSecret,
        None,
        "CodeSent",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/authorisation",
        "Redeem the unlock code for the SO PIN and the fresh SO PIN",
        BusinessSecret,
        Some("RedeemCodeRequest"),
        "UnlockAuthorisation",
    ),
    ep(
        "POST",
        "/v1/keys/{serial}/unlocks/{id}/confirm",
        "Confirm the SO PIN rotation (signed by the key under its new PIN)",
        Key,
        None,
        "Business",
    ),
    ep(
        "POST",
        "/v1/businesses",
        "Order a business whose key cannot sign: new application, add a certificate, re-issue",
        Public,
        Some("BusinessForm"),
        "CreatedBusiness",
    ),
    ep(
        "GET",
        "/v1/businesses/{id}",
        "One business with its timeline",
        BusinessOwner,
        None,
        "Business",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/payment",
        "Create (or return) the payment request of a business",
        BusinessOwner,
        None,
        "PaymentRequest",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/attachments",
        "Upload an attachment (raw body; ?kind=; JPEG, PNG or PDF up to 5 MiB)",
        BusinessOwner,
        None,
        "Attachment",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/submit",
        "Submit a business with its attachments for review",
        BusinessOwner,
        None,
        "Business",
    ),
    ep(
        "GET",
        "/v1/businesses/{id}/form",
        "The printable application form of a business, to stamp, scan and upload",
        BusinessOwner,
        None,
        "html",
    ),
    ep(
        "GET",
        "/v1/forms/seal",
        "The blank electronic seal application form (HTML or PDF, as a download), to fill in, stamp and scan before applying",
        Public,
        None,
        "bytes",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/invoice",
        "Ask for the electronic invoice of a finished, paid business",
        BusinessOwner,
        Some("InvoiceDetails"),
        "Invoice",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/refund",
        "Ask for the refund of a business not yet accepted, or of a key never activated",
        BusinessOwner,
        Some("RefundForm"),
        "CreatedBusiness",
    ),
    ep(
        "POST",
        "/v1/businesses/{id}/secret",
        "A fresh secret for a business of this key (the old one stops working)",
        BusinessKey,
        None,
        "CreatedBusiness",
    ),
    ep(
        "POST",
        "/v1/payments/notify",
        "Payment provider callback (idempotent)",
        PaymentProvider,
        Some("PaymentNotification"),
        "PaymentRequest",
    ),
    sandbox(
        Sandbox::Payments,
        ep(
            "GET",
            "/sandbox/payments/{id}",
            "Sandbox provider: the payment page (HTML) the pay_url points at",
            Public,
            None,
            "html",
        ),
    ),
    sandbox(
        Sandbox::Payments,
        ep(
            "POST",
            "/sandbox/payments/{id}/complete",
            "Sandbox provider: the payer pays or fails; the provider notifies under its own key",
            Public,
            Some("SandboxOutcome"),
            "PaymentRequest",
        ),
    ),
    ep(
        "POST",
        "/admin/v1/certify",
        "Issue an organisation certificate over a CSR",
        Staff(&[Station]),
        Some("CertifyRequest"),
        "IssuedCertificate",
    ),
    ep(
        "POST",
        "/admin/v1/keys",
        "Register an issued key; tells its handler by SMS",
        Staff(&[Station]),
        Some("RegisterKeyRequest"),
        "RegisteredKey",
    ),
    sandbox(
        Sandbox::Sms,
        ep(
            "GET",
            "/admin/v1/sms",
            "The SMS outbox (sandbox: the handlers' phones)",
            Staff(&[Station]),
            None,
            "SmsOutbox",
        ),
    ),
    ep(
        "GET",
        "/admin/v1/audit",
        "The audit log",
        Staff(&[Auditor]),
        None,
        "AuditLog",
    ),
    ep(
        "GET",
        "/admin/v1/reviews",
        "Businesses waiting for a reviewer",
        Staff(&[Reviewer]),
        None,
        "ReviewQueue",
    ),
    ep(
        "POST",
        "/admin/v1/reviews/{id}/approve",
        "Approve a business under review",
        Staff(&[Reviewer]),
        Some("ReviewDecision"),
        "Business",
    ),
    ep(
        "POST",
        "/admin/v1/reviews/{id}/reject",
        "Reject a business under review",
        Staff(&[Reviewer]),
        Some("ReviewDecision"),
        "Business",
    ),
    ep(
        "GET",
        "/admin/v1/attachments/{sha256}",
        "Download an attachment by content hash",
        Staff(&[Reviewer]),
        None,
        "bytes",
    ),
    ep(
        "GET",
        "/admin/v1/organisations/{uscc}/businesses",
        "Every business of an organisation",
        Staff(&[Reviewer, Auditor]),
        None,
        "BusinessList",
    ),
    ep(
        "POST",
        "/admin/v1/businesses/{id}/complete",
        "Mark an accepted business done (key issued, change applied, ...)",
        Staff(&[Station]),
        Some("ReviewDecision"),
        "Business",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_listed_once() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in &ENDPOINTS[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
        assert!(Endpoint::find("post", "/v1/nonces").is_some());
        assert!(Endpoint::find("PUT", "/v1/nonces").is_none());
    }

    #[test]
    fn staff_routes_name_their_roles_and_only_admin_routes_are_staff() {
        for e in ENDPOINTS {
            match e.access {
                Access::Staff(roles) => {
                    assert!(!roles.is_empty(), "{} names no role", e.path);
                    assert!(e.path.starts_with("/admin/"), "{}", e.path);
                }
                _ => assert!(!e.path.starts_with("/admin/"), "{}", e.path),
            }
        }
    }

    #[test]
    fn routes_about_a_key_or_business_are_not_public_except_the_deliberate_ones() {
        // What anyone may call with a serial or a business id in the path: the standing
        // read, asking for an activation code, applying to unlock, and the sandbox payer.
        let public_by_id: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|e| e.access == Access::Public && e.path.contains('{'))
            .map(|e| e.path)
            .collect();
        assert_eq!(
            public_by_id,
            [
                "/v1/keys/{serial}/standing",
                "/v1/keys/{serial}/activation/code",
                "/v1/keys/{serial}/unlocks",
                "/sandbox/payments/{id}",
                "/sandbox/payments/{id}/complete",
            ]
        );
        for e in ENDPOINTS.iter().filter(|e| e.path.starts_with("/sandbox/")) {
            assert_eq!(e.sandbox, Some(Sandbox::Payments), "{}", e.path);
        }
    }
}

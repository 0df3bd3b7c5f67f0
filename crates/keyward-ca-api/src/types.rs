//! Request and answer bodies. Every request body refuses unknown fields, so a typo in a
//! client is an `invalid_request`, never silently ignored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret on the wire (SO PIN, transport PIN, verification code). It never prints: its
/// `Debug` shows `Secret(***)`, and its memory is wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret's text. Call sites are the places a secret is used; keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `GET /v1/ca/chain`: the CA's certificates, for the client to pin the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaChain {
    pub root_pem: String,
    pub issuing_pem: String,
    pub seal_maker_pem: String,
}

/// The legal form of an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    /// 企业
    Enterprise,
    /// 事业单位
    PublicInstitution,
    /// 机关
    GovernmentAgency,
    /// 社会团体
    SocialOrganisation,
    /// 个体工商户
    IndividualBusiness,
}

impl OrganisationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationKind::Enterprise => "enterprise",
            OrganisationKind::PublicInstitution => "public_institution",
            OrganisationKind::GovernmentAgency => "government_agency",
            OrganisationKind::SocialOrganisation => "social_organisation",
            OrganisationKind::IndividualBusiness => "individual_business",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            OrganisationKind::Enterprise,
            OrganisationKind::PublicInstitution,
            OrganisationKind::GovernmentAgency,
            OrganisationKind::SocialOrganisation,
            OrganisationKind::IndividualBusiness,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An organisation (单位) as registered with the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub name: String,
    /// 统一社会信用代码, GB 32100-2015, upper case.
    pub uscc: String,
    pub kind: OrganisationKind,
    pub legal_address: String,
}

/// The handler (经办人) who applies for the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    pub name: String,
    /// 18-character resident identity card number.
    pub id_number: String,
    /// Mainland mobile number; verification codes go here.
    pub phone: String,
}

/// `POST /admin/v1/certify`: the issuing station asks for an organisation certificate over
/// a CSR made on the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifyRequest {
    pub organisation: Organisation,
    /// PKCS#10, PEM.
    pub csr_pem: String,
    /// Validity in years, 1 to 5.
    pub years: u8,
}

/// An issued certificate with the chain above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    /// Issuing CA first, then the root.
    pub chain_pem: Vec<String>,
    /// Certificate serial number, lower-case hex.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// `POST /admin/v1/keys`: the issuing station registers a key it has initialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterKeyRequest {
    /// The token's serial number (CK_TOKEN_INFO.serialNumber, trimmed).
    pub key_serial: String,
    pub organisation: Organisation,
    pub handler: Handler,
    /// The certificate written on the token (issued by `certify`).
    pub certificate_pem: String,
    /// The random SO PIN the station set; escrowed encrypted.
    pub so_pin: Secret,
    /// The random one-time user PIN the station set; released at activation.
    pub transport_pin: Secret,
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Issued, awaiting activation by the handler.
    AwaitingActivation,
    /// Activated: the handler set their own PIN and proved possession.
    Active,
}

/// A certificate as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    pub serial: String,
    pub pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// `GET /v1/keys/{serial}` and the admin registration answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub key_serial: String,
    pub state: KeyState,
    pub organisation_name: String,
    pub uscc: String,
    pub certificate: CertificateInfo,
    #[serde(with = "time::serde::rfc3339")]
    pub delivered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub activated_at: Option<OffsetDateTime>,
}

/// One message in the SMS outbox (`GET /admin/v1/sms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub id: String,
    pub phone: String,
    pub key_serial: Option<String>,
    pub purpose: String,
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /admin/v1/sms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsOutbox {
    pub messages: Vec<SmsMessage>,
}

/// Answer when a verification code was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSent {
    /// The handler's phone, masked: `138****8000`.
    pub phone_masked: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// No new code can be asked for before this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub resend_after: OffsetDateTime,
}

/// `POST /v1/keys/{serial}/activation/redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemCodeRequest {
    pub code: Secret,
}

/// The transport PIN, released for the right code and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportPinRelease {
    pub transport_pin: Secret,
}

/// `POST /v1/nonces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceRequest {
    pub key_serial: String,
}

/// A single-use, short-lived nonce for one signed request about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceGrant {
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Invoice details (发票信息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceDetails {
    /// 发票抬头: usually the organisation's name.
    pub title: String,
    /// 纳税人识别号: for organisations, the unified social credit code.
    pub tax_id: String,
    /// Where the electronic invoice is sent.
    pub email: String,
}

/// `POST /v1/keys/{serial}/renewals`, signed by the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalApplication {
    /// 1 to 5 years, 200 yuan a year.
    pub years: u8,
    pub invoice: InvoiceDetails,
}

/// The kinds of business a key or organisation can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessKind {
    /// Issue and activation of a new key.
    Issue,
    Renewal,
}

impl BusinessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessKind::Issue => "issue",
            BusinessKind::Renewal => "renewal",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [BusinessKind::Issue, BusinessKind::Renewal]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The state of one business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessState {
    /// Issue: key delivered, not activated yet.
    AwaitingActivation,
    /// Renewal: applied, waiting for payment.
    AwaitingPayment,
    /// Renewal: paid; the client may post its CSR.
    Paid,
    /// Renewal: certificate issued; the client installs it and confirms.
    CertificateIssued,
    /// Finished.
    Completed,
}

impl BusinessState {
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessState::AwaitingActivation => "awaiting_activation",
            BusinessState::AwaitingPayment => "awaiting_payment",
            BusinessState::Paid => "paid",
            BusinessState::CertificateIssued => "certificate_issued",
            BusinessState::Completed => "completed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            BusinessState::AwaitingActivation,
            BusinessState::AwaitingPayment,
            BusinessState::Paid,
            BusinessState::CertificateIssued,
            BusinessState::Completed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One step in a business's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub state: BusinessState,
    pub note: String,
}

/// A business (业务) with its status, fee and timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Business {
    pub id: String,
    pub kind: BusinessKind,
    pub state: BusinessState,
    pub key_serial: Option<String>,
    pub uscc: String,
    /// Fee in fen (分); 0 for free business.
    pub fee_fen: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub timeline: Vec<BusinessEvent>,
}

/// `GET /v1/keys/{serial}/businesses`: progress (办理进度).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessList {
    pub businesses: Vec<Business>,
}

/// Status of a payment at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Paid,
            PaymentStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// `POST /v1/businesses/{id}/payment`: a payment request at the (sandbox) provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub payment_id: String,
    pub business_id: String,
    pub amount_fen: i64,
    pub status: PaymentStatus,
    /// Where the operator pays; for the sandbox, a page path on this service.
    pub pay_url: String,
}

/// `POST /sandbox/payments/{id}/complete`: what the sandbox payer chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxOutcome {
    /// `paid` or `failed`.
    pub outcome: PaymentStatus,
}

/// `POST /v1/payments/notify`: the provider's callback, signed with HMAC-SHA256 in
/// [`crate::auth::PAYMENT_SIGNATURE_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentNotification {
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount_fen: i64,
}

/// `POST /v1/keys/{serial}/renewals/{id}/certificate`, signed by the current key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrSubmission {
    /// PKCS#10 made on the token over a new key pair, PEM.
    pub csr_pem: String,
}

/// Audit record of one decision or state change (`GET /admin/v1/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub key_serial: Option<String>,
    pub business_id: Option<String>,
    pub detail: String,
}

/// `GET /admin/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLog {
    pub records: Vec<AuditRecord>,
}

/// Renewal fee per year, in fen: 200 yuan.
pub const RENEWAL_FEE_PER_YEAR_FEN: i64 = 20_000;
/// Renewal opens this many days before expiry.
pub const RENEWAL_WINDOW_DAYS: i64 = 90;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("12345678");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let r = RedeemCodeRequest {
            code: Secret::new("654321"),
        };
        assert!(!format!("{r:?}").contains("654321"));
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_str::<NonceRequest>(r#"{"key_serial":"a","x":1}"#);
        assert!(e.is_err());
    }
}

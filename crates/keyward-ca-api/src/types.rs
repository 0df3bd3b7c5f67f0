//! Request and answer bodies. Every request body refuses unknown fields, so a typo in a
//! client is an `invalid_request`, never silently ignored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Declares a wire enum with `as_str`, `parse` and `ALL`, its names in snake_case.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// From the wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

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

/// `GET /v1/ca/profile`: who the CA is and how its support is reached, for the client to
/// show wherever the operator cannot go on alone (an expired certificate, a key not
/// detected, the CA unreachable). Every field is text in the CA's own words, shown as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaProfile {
    /// The CA's name as operators know it.
    pub display_name: String,
    /// The support hotline.
    pub hotline: String,
    /// An online channel (a QQ group, a web chat, …), as the CA words it.
    pub online: String,
    /// When support answers.
    pub office_hours: String,
    /// The CA's web address.
    pub website: String,
    /// How to apply for a new certificate (新申请): where and with what.
    pub new_application: String,
    /// How to replace a lost or broken key (补办): where and with what.
    pub replacement: String,
}

wire_enum! {
    /// The legal form of an organisation.
    OrganisationKind {
        /// 企业
        Enterprise = "enterprise",
        /// 事业单位
        PublicInstitution = "public_institution",
        /// 机关
        GovernmentAgency = "government_agency",
        /// 社会团体
        SocialOrganisation = "social_organisation",
        /// 个体工商户
        IndividualBusiness = "individual_business",
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
    /// For a change or re-issue (validity kept): the key whose current certificate's expiry
    /// the new certificate keeps. That key needs an approved change or re-issue business;
    /// `years` is then only checked for range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_validity_of: Option<String>,
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

wire_enum! {
    /// A certificate's place in a key's history.
    CertificateRole {
        /// The certificate the key uses now.
        Current = "current",
        /// Issued by a renewal, not yet confirmed installed.
        Pending = "pending",
        /// Replaced by a later certificate.
        Superseded = "superseded",
    }
}

/// One certificate in a key's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCertificate {
    pub role: CertificateRole,
    pub certificate: CertificateInfo,
    /// When it was bound to the key (registration, or issue by a renewal).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// `GET /v1/keys/{serial}/certificates`: current, pending and past certificates, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateHistory {
    pub certificates: Vec<KeyCertificate>,
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
    /// Printed in the SMS beside the code (`编号 38`), so the operator types the code of
    /// this request and not of another one.
    pub reference: String,
    /// Presented with the code when it is redeemed. Only the caller that asked for the code
    /// holds it, so nobody else can guess against (and void) this code. `None` for a code
    /// bound to a business, whose secret plays that part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Secret>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// No new code can be asked for before this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub resend_after: OffsetDateTime,
}

/// `POST /v1/keys/{serial}/activation/redeem` and the unlock authorisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemCodeRequest {
    pub code: Secret,
    /// The ticket [`CodeSent`] returned with the activation code (activation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Secret>,
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

wire_enum! {
    /// The kinds of business (业务) a key or organisation can have.
    BusinessKind {
        /// Issue and activation of a new key.
        Issue = "issue",
        /// 续期
        Renewal = "renewal",
        /// 解锁 (忘记密码)
        Unlock = "unlock",
        /// 电子印章申请 / 变更
        Seal = "seal",
        /// 新申请
        NewApplication = "new_application",
        /// 增加证书
        AddCertificate = "add_certificate",
        /// 变更 (name or legal address; validity kept)
        Change = "change",
        /// 补办 (lost or broken key; validity kept)
        Reissue = "reissue",
        /// 退款
        Refund = "refund",
    }
}

wire_enum! {
    /// The state of one business.
    BusinessState {
        /// Submitted, not yet accepted by the CA (refundable).
        Submitted = "submitted",
        /// Waiting for the applicant's attachments.
        AwaitingDocuments = "awaiting_documents",
        /// A reviewer is looking at it.
        UnderReview = "under_review",
        /// Approved (automatically or by a reviewer).
        Approved = "approved",
        /// Refused by a reviewer; final.
        Rejected = "rejected",
        /// Waiting for payment.
        AwaitingPayment = "awaiting_payment",
        /// Paid; the next step is the client's.
        Paid = "paid",
        /// Issue: key delivered, not activated yet.
        AwaitingActivation = "awaiting_activation",
        /// A certificate was issued (or, for a seal business, the seal was made); the client
        /// installs it and confirms.
        CertificateIssued = "certificate_issued",
        /// Unlock: the authorisation was released; the client confirms the SO PIN rotation.
        Authorised = "authorised",
        /// Withdrawn by the applicant or refunded; final.
        Cancelled = "cancelled",
        /// Finished.
        Completed = "completed",
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
    /// The order (business) the payment is for; must match the payment's.
    pub business_id: String,
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

/// `POST /v1/keys/{serial}/unlocks`: who asks to unlock a key (忘记密码).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockApplication {
    pub requester: Handler,
}

wire_enum! {
    /// What an uploaded attachment is.
    AttachmentKind {
        /// The requester's identity card.
        IdCard = "id_card",
        /// A letter of authorisation stamped by the organisation.
        AuthorisationLetter = "authorisation_letter",
        /// The business licence.
        BusinessLicence = "business_licence",
        /// The seal application form, stamped with the physical seal.
        SealForm = "seal_form",
        /// A scan of the physical seal's impression.
        SealScan = "seal_scan",
        /// Anything else a reviewer asked for.
        Other = "other",
    }
}

/// An uploaded attachment, stored by the SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    pub business_id: String,
    pub kind: AttachmentKind,
    /// `image/jpeg`, `image/png` or `application/pdf`.
    pub content_type: String,
    pub sha256: String,
    pub size: i64,
}

/// Largest attachment accepted, in bytes.
pub const ATTACHMENT_MAX_BYTES: usize = 5 * 1024 * 1024;

/// What the unlock authorisation releases: the key's current SO PIN and the fresh SO PIN
/// to rotate to. The fresh one is escrowed before it is released; the current one stays
/// valid in escrow until the client confirms the rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockAuthorisation {
    pub business_id: String,
    pub so_pin: Secret,
    pub new_so_pin: Secret,
}

/// `POST /admin/v1/reviews/{id}/approve|reject` and the station's completion. Who decided
/// is the staff account that made the request, never a name in the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// Why; shown to the applicant when rejecting.
    pub note: String,
}

/// One business waiting for a reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub business: Business,
    pub requester: Option<Handler>,
    pub attachments: Vec<Attachment>,
}

/// `GET /admin/v1/reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewQueue {
    pub items: Vec<ReviewItem>,
}

wire_enum! {
    /// Which physical seal an electronic seal reproduces (only these two are offered).
    SealKind {
        /// 公章
        Official = "official",
        /// 合同专用章
        Contract = "contract",
    }
}

/// `POST /v1/keys/{serial}/seals`, signed by the key: apply for the key's electronic seal
/// (none taken at first) or change it (it no longer matches the physical stamp). Free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealApplication {
    /// The text of the seal, e.g. `广州示例科技有限公司` or `广州示例科技有限公司合同专用章`.
    pub seal_name: String,
    pub seal_kind: SealKind,
    /// `false`: first seal for this key; `true`: replace the existing one.
    pub change: bool,
}

/// `GET /v1/keys/{serial}/seal`: the key's current electronic seal, made by the CA for the
/// key's current certificate (GM/T 0031 `SES_Seal`, DER, base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealDocument {
    /// The seal business that made it; the client confirms installation against it.
    pub business_id: String,
    /// The certificate the seal is bound to.
    pub cert_serial: String,
    pub seal_name: String,
    pub seal_kind: SealKind,
    /// The `SES_Seal`, DER, standard base64.
    pub seal_der_base64: String,
    #[serde(with = "time::serde::rfc3339")]
    pub made_at: OffsetDateTime,
    /// When the key confirmed installing it; `None` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub installed_at: Option<OffsetDateTime>,
}

wire_enum! {
    /// Why a key is re-issued.
    ReissueReason {
        Lost = "lost",
        Broken = "broken",
    }
}

/// 新申请: a first certificate for an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplicationForm {
    pub organisation: Organisation,
    pub handler: Handler,
    pub years: u8,
    pub invoice: InvoiceDetails,
}

/// 增加证书: one more certificate for a registered organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCertificateForm {
    pub uscc: String,
    pub handler: Handler,
    pub years: u8,
    pub invoice: InvoiceDetails,
}

/// 变更 (`POST /v1/keys/{serial}/changes`, signed by the key): new name or legal address
/// of the same legal entity, and the handler who applies. Free; validity kept. Nothing of
/// it applies until a reviewer approves and the station completes the business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeForm {
    pub handler: Handler,
    pub new_name: Option<String>,
    pub new_legal_address: Option<String>,
}

/// 补办: a lost or broken key. 200 yuan; validity kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReissueForm {
    pub key_serial: String,
    pub handler: Handler,
    pub reason: ReissueReason,
    pub invoice: InvoiceDetails,
}

/// 退款 (`POST /v1/businesses/{id}/refund`, by whoever may act on that business): for a
/// business not yet accepted, or a key not activated within 14 days of delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundForm {
    pub handler: Handler,
    pub reason: String,
}

/// `POST /v1/businesses`: an order for a business whose key cannot sign (no key yet, or a
/// lost or broken one), by its `kind`. The answer carries the business's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusinessForm {
    NewApplication(NewApplicationForm),
    AddCertificate(AddCertificateForm),
    Reissue(ReissueForm),
}

/// A business just created, with its secret. The secret is shown this once (the CA keeps
/// only its hash); with it, or with the key's signature, the business can be read and acted
/// on: [`crate::auth::BUSINESS_SECRET_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedBusiness {
    pub business: Business,
    pub secret: Secret,
}

/// `POST /v1/keys/{serial}/renewals/{id}/installed`: the finished renewal, and when the key
/// held a seal, the seal business the CA opened to remake it for the new certificate (one
/// certificate, one seal), with its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalInstalled {
    pub business: Business,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<CreatedBusiness>,
}

/// `POST /admin/v1/keys`: the registered key and its issue business, whose secret the
/// station hands to the organisation with the key (a refund of a key never activated needs
/// it: such a key cannot sign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredKey {
    pub status: KeyStatus,
    pub issue: CreatedBusiness,
}

wire_enum! {
    /// What the CA holds for a key until the operator installs it in the client.
    WaitingInstall {
        /// A renewal is paid or its certificate issued: 安装证书.
        Certificate = "certificate",
        /// The CA made the electronic seal: 安装印章.
        Seal = "seal",
    }
}

/// `GET /v1/keys/{serial}/standing`: the one public read about a key, what a client shows
/// before any PIN is typed. The same shape for every serial; an unknown serial reads as a
/// key with nothing waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStanding {
    /// Issued and not yet activated (激活证书 next).
    pub awaiting_activation: bool,
    /// What waits to be installed, each kind once.
    pub waiting: Vec<WaitingInstall>,
}

/// An open business that keeps a new one of its kind from starting, as a refusal names it:
/// who asked (masked) and when, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenBusinessNotice {
    pub kind: BusinessKind,
    /// The requester's name, masked: `张*`.
    pub requester_masked: String,
    /// The requester's phone, masked: `138****8000`.
    pub phone_masked: String,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
}

wire_enum! {
    /// What a staff account may do. `admin` may do everything and manages accounts.
    StaffRole {
        /// Decides businesses under review; reads their attachments.
        Reviewer = "reviewer",
        /// The issuing station: certifies, registers keys, completes accepted businesses.
        Station = "station",
        /// Reads the audit log and organisations' businesses.
        Auditor = "auditor",
        /// Everything.
        Admin = "admin",
    }
}

wire_enum! {
    /// Where an invoice stands.
    InvoiceStatus {
        /// Requested; the electronic invoice follows in one to two working days.
        Requested = "requested",
        Issued = "issued",
    }
}

/// `POST /v1/businesses/{id}/invoice`: an electronic invoice for a finished, paid business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub business_id: String,
    pub amount_fen: i64,
    pub details: InvoiceDetails,
    pub status: InvoiceStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

/// Fee of a re-issue (补办), in fen.
pub const REISSUE_FEE_FEN: i64 = 20_000;
/// A delivered key not activated within this many days may be refunded.
pub const REFUND_WINDOW_DAYS: i64 = 14;

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
            ticket: Some(Secret::new("t1c2e3")),
        };
        assert!(!format!("{r:?}").contains("t1c2e3"));
        assert!(!format!("{r:?}").contains("654321"));
    }

    #[test]
    fn wire_enums_round_trip() {
        for k in BusinessKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(BusinessKind::parse(k.as_str()), Some(*k));
        }
        for k in BusinessState::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(BusinessState::parse(k.as_str()), Some(*k));
        }
    }

    #[test]
    fn business_forms_are_tagged_and_strict() {
        let form: BusinessForm = serde_json::from_str(
            r#"{"kind":"reissue","key_serial":"K1","handler":{"name":"a","id_number":"b","phone":"c"},"reason":"lost","invoice":{"title":"t","tax_id":"x","email":"a@b"}}"#,
        )
        .unwrap();
        assert!(matches!(form, BusinessForm::Reissue(_)));
        assert!(
            serde_json::from_str::<BusinessForm>(
                r#"{"kind":"reissue","key_serial":"K1","handler":{"name":"a","id_number":"b","phone":"c"},"reason":"lost","invoice":{"title":"t","tax_id":"x","email":"a@b"},"x":1}"#
            )
            .is_err()
        );
        // A change is signed by its key and a refund names its business in the path: neither
        // is an order anyone can place here.
        for kind in ["change", "refund"] {
            assert!(
                serde_json::from_str::<BusinessForm>(&format!(r#"{{"kind":"{kind}"}}"#)).is_err()
            );
        }
        assert!(serde_json::from_str::<BusinessForm>(r#"{"kind":"bribe"}"#).is_err());
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_str::<NonceRequest>(r#"{"key_serial":"a","x":1}"#);
        assert!(e.is_err());
    }
}

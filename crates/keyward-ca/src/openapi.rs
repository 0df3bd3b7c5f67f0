//! The OpenAPI 3.1 document, built from the endpoint table of `keyward-ca-api` and from
//! example values of the wire types themselves, so field names and JSON types cannot drift
//! from the Rust definitions. Tests check every endpoint is routed and every example
//! deserialises into its type.

use keyward_ca_api::endpoints::{Access, ENDPOINTS, Endpoint};
use keyward_ca_api::*;
use serde_json::{Map, Value, json};
use time::macros::datetime;

fn v<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// One example value per wire type named in the endpoint table (and `ApiError`).
pub fn examples() -> Vec<(&'static str, Value)> {
    let at = datetime!(2026-11-21 08:00 UTC);
    let org = Organisation {
        name: "广州示例科技有限公司".into(),
        uscc: "91350100M000100Y43".into(),
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路1号".into(),
    };
    let handler = Handler {
        name: "张三".into(),
        id_number: "11010519491231002X".into(),
        phone: "13800138000".into(),
    };
    let cert = CertificateInfo {
        serial: "3a1f…".into(),
        pem: "-----BEGIN CERTIFICATE-----\n…".into(),
        not_before: at,
        not_after: at,
    };
    let issued = IssuedCertificate {
        certificate_pem: cert.pem.clone(),
        chain_pem: vec!["issuing".into(), "root".into()],
        serial: cert.serial.clone(),
        not_before: at,
        not_after: at,
    };
    let business = Business {
        id: "bz…".into(),
        kind: BusinessKind::Renewal,
        state: BusinessState::AwaitingPayment,
        key_serial: Some("NETCA0001".into()),
        uscc: org.uscc.clone(),
        fee_fen: 40000,
        created_at: at,
        updated_at: at,
        timeline: vec![BusinessEvent {
            at,
            state: BusinessState::AwaitingPayment,
            note: "续期申请已提交，等待支付".into(),
        }],
    };
    let payment = PaymentRequest {
        payment_id: "pay…".into(),
        business_id: "bz…".into(),
        amount_fen: 40000,
        status: PaymentStatus::Pending,
        pay_url: "/sandbox/payments/pay…".into(),
    };
    vec![
        (
            "ApiError",
            v(&ApiError::new(
                ErrorCode::CodeInvalid,
                "wrong activation code",
            )),
        ),
        (
            "Health",
            v(&Health {
                status: "ok".into(),
                version: "0.1.0".into(),
            }),
        ),
        ("OpenApi", json!({"openapi": "3.1.0"})),
        (
            "CaChain",
            v(&CaChain {
                root_pem: "…".into(),
                issuing_pem: "…".into(),
                seal_maker_pem: "…".into(),
            }),
        ),
        ("CaProfile", v(&crate::config::placeholder_profile())),
        (
            "CertifyRequest",
            v(&CertifyRequest {
                organisation: org.clone(),
                csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n…".into(),
                years: 1,
                keep_validity_of: None,
            }),
        ),
        ("IssuedCertificate", v(&issued)),
        (
            "CertificateHistory",
            v(&CertificateHistory {
                certificates: vec![KeyCertificate {
                    role: CertificateRole::Current,
                    certificate: cert.clone(),
                    since: at,
                }],
            }),
        ),
        (
            "RegisterKeyRequest",
            v(&RegisterKeyRequest {
                key_serial: "NETCA0001".into(),
                organisation: org.clone(),
                handler,
                certificate_pem: cert.pem.clone(),
                so_pin: Secret::new("SO-PIN"),
                transport_pin: Secret::new("TRANSPORT-PIN"),
            }),
        ),
        (
            "KeyStatus",
            v(&KeyStatus {
                key_serial: "NETCA0001".into(),
                state: KeyState::AwaitingActivation,
                organisation_name: org.name.clone(),
                uscc: org.uscc.clone(),
                certificate: cert,
                delivered_at: at,
                activated_at: Some(at),
            }),
        ),
        (
            "SmsOutbox",
            v(&SmsOutbox {
                messages: vec![SmsMessage {
                    id: "sm…".into(),
                    phone: "13800138000".into(),
                    key_serial: Some("NETCA0001".into()),
                    purpose: "activation".into(),
                    text: "【Keyward】…".into(),
                    created_at: at,
                }],
            }),
        ),
        (
            "AuditLog",
            v(&AuditLog {
                records: vec![AuditRecord {
                    id: "au…".into(),
                    at,
                    actor: "admin".into(),
                    action: "key_registered".into(),
                    key_serial: Some("NETCA0001".into()),
                    business_id: Some("bz…".into()),
                    detail: "".into(),
                }],
            }),
        ),
        (
            "NonceRequest",
            v(&NonceRequest {
                key_serial: "NETCA0001".into(),
            }),
        ),
        (
            "NonceGrant",
            v(&NonceGrant {
                nonce: "9f…".into(),
                expires_at: at,
            }),
        ),
        (
            "CodeSent",
            v(&CodeSent {
                phone_masked: "138****8000".into(),
                reference: "38".into(),
                ticket: Some(Secret::new("5d1c…")),
                expires_at: at,
                resend_after: at,
            }),
        ),
        (
            "RedeemCodeRequest",
            v(&RedeemCodeRequest {
                code: Secret::new("123456"),
                ticket: Some(Secret::new("5d1c…")),
            }),
        ),
        (
            "TransportPinRelease",
            v(&TransportPinRelease {
                transport_pin: Secret::new("…"),
            }),
        ),
        (
            "RenewalApplication",
            v(&RenewalApplication {
                years: 2,
                invoice: InvoiceDetails {
                    title: org.name.clone(),
                    tax_id: org.uscc.clone(),
                    email: "finance@example.com".into(),
                },
            }),
        ),
        ("Business", v(&business)),
        (
            "BusinessList",
            v(&BusinessList {
                businesses: vec![business.clone()],
            }),
        ),
        ("PaymentRequest", v(&payment)),
        (
            "SandboxOutcome",
            v(&SandboxOutcome {
                outcome: PaymentStatus::Paid,
            }),
        ),
        (
            "PaymentNotification",
            v(&PaymentNotification {
                payment_id: "pay…".into(),
                business_id: "bz…".into(),
                status: PaymentStatus::Paid,
                amount_fen: 40000,
            }),
        ),
        (
            "UnlockApplication",
            v(&UnlockApplication {
                requester: Handler {
                    name: "李四".into(),
                    id_number: "11010519491231002X".into(),
                    phone: "13900139000".into(),
                },
            }),
        ),
        (
            "UnlockAuthorisation",
            v(&UnlockAuthorisation {
                business_id: "bz…".into(),
                so_pin: Secret::new("…"),
                new_so_pin: Secret::new("…"),
            }),
        ),
        (
            "Attachment",
            v(&Attachment {
                id: "at…".into(),
                business_id: "bz…".into(),
                kind: AttachmentKind::IdCard,
                content_type: "image/jpeg".into(),
                sha256: "e3b0…".into(),
                size: 123_456,
            }),
        ),
        (
            "ReviewDecision",
            v(&ReviewDecision {
                note: "材料齐全".into(),
            }),
        ),
        (
            "ReviewQueue",
            v(&ReviewQueue {
                items: vec![ReviewItem {
                    business: business.clone(),
                    requester: Some(Handler {
                        name: "李四".into(),
                        id_number: "11010519491231002X".into(),
                        phone: "13900139000".into(),
                    }),
                    attachments: vec![],
                }],
            }),
        ),
        (
            "SealApplication",
            v(&SealApplication {
                seal_name: org.name.clone(),
                seal_kind: SealKind::Official,
                change: false,
            }),
        ),
        (
            "SealDocument",
            v(&SealDocument {
                business_id: "bz0001".into(),
                cert_serial: "0a1b2c".into(),
                seal_name: org.name.clone(),
                seal_kind: SealKind::Official,
                seal_der_base64: "MIIB…".into(),
                made_at: at,
                installed_at: None,
            }),
        ),
        (
            "BusinessForm",
            v(&BusinessForm::Reissue(ReissueForm {
                key_serial: "NETCA0001".into(),
                handler: Handler {
                    name: "张三".into(),
                    id_number: "11010519491231002X".into(),
                    phone: "13800138000".into(),
                },
                reason: ReissueReason::Lost,
                invoice: InvoiceDetails {
                    title: org.name.clone(),
                    tax_id: org.uscc.clone(),
                    email: "finance@example.com".into(),
                },
            })),
        ),
        (
            "InvoiceDetails",
            v(&InvoiceDetails {
                title: org.name.clone(),
                tax_id: org.uscc.clone(),
                email: "finance@example.com".into(),
            }),
        ),
        (
            "Invoice",
            v(&Invoice {
                business_id: "bz…".into(),
                amount_fen: 40000,
                details: InvoiceDetails {
                    title: org.name.clone(),
                    tax_id: org.uscc.clone(),
                    email: "finance@example.com".into(),
                },
                status: InvoiceStatus::Requested,
                requested_at: at,
            }),
        ),
        (
            "CsrSubmission",
            v(&CsrSubmission {
                csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n…".into(),
            }),
        ),
        (
            "KeyStanding",
            v(&KeyStanding {
                awaiting_activation: false,
                waiting: vec![WaitingInstall::Certificate],
            }),
        ),
        (
            "CreatedBusiness",
            v(&CreatedBusiness {
                business: business.clone(),
                secret: Secret::new("a3f0…"),
            }),
        ),
        (
            "RegisteredKey",
            v(&RegisteredKey {
                status: KeyStatus {
                    key_serial: "NETCA0001".into(),
                    state: KeyState::AwaitingActivation,
                    organisation_name: org.name.clone(),
                    uscc: org.uscc.clone(),
                    certificate: CertificateInfo {
                        serial: "3a1f…".into(),
                        pem: "-----BEGIN CERTIFICATE-----\n…".into(),
                        not_before: at,
                        not_after: at,
                    },
                    delivered_at: at,
                    activated_at: None,
                },
                issue: CreatedBusiness {
                    business: business.clone(),
                    secret: Secret::new("a3f0…"),
                },
            }),
        ),
        (
            "RenewalInstalled",
            v(&RenewalInstalled {
                business: business.clone(),
                seal: Some(CreatedBusiness {
                    business: business.clone(),
                    secret: Secret::new("a3f0…"),
                }),
            }),
        ),
        (
            "ChangeForm",
            v(&ChangeForm {
                handler: Handler {
                    name: "张三".into(),
                    id_number: "11010519491231002X".into(),
                    phone: "13800138000".into(),
                },
                new_name: Some("广州示例新科技有限公司".into()),
                new_legal_address: None,
            }),
        ),
        (
            "RefundForm",
            v(&RefundForm {
                handler: Handler {
                    name: "张三".into(),
                    id_number: "11010519491231002X".into(),
                    phone: "13800138000".into(),
                },
                reason: "未使用，申请退款".into(),
            }),
        ),
    ]
}

/// A JSON Schema inferred from an example value.
fn schema_of(value: &Value) -> Value {
    match value {
        Value::Null => json!({"type": "null"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => {
            json!({"type": "array", "items": items.first().map(schema_of).unwrap_or(json!({}))})
        }
        Value::Object(map) => {
            let props: Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect();
            json!({"type": "object", "properties": props})
        }
    }
}

/// The security requirement an access rule stands for (alternatives are separate entries).
fn security(access: Access) -> Value {
    let key = json!({"keyNonce": [], "keySignature": []});
    match access {
        // Anyone; a handler's SMS code travels in the body, not as a credential.
        Access::Public | Access::Handler => json!([]),
        Access::Key | Access::RenewedKey | Access::BusinessKey => json!([key]),
        Access::BusinessOwner => json!([{"businessSecret": []}, key]),
        Access::BusinessSecret => json!([{"businessSecret": []}]),
        Access::Staff(_) => json!([{"staffToken": []}]),
        Access::PaymentProvider => json!([{"paymentSignature": []}]),
    }
}

/// The document served at `/openapi.json`, for every endpoint.
pub fn document() -> Value {
    document_for(|_| true)
}

/// The document of the endpoints `routed` says this instance serves.
pub fn document_for(routed: impl Fn(&Endpoint) -> bool) -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS.iter().filter(|e| routed(e)) {
        let success = if ep.response == "html" {
            json!({"description": "a page", "content": {"text/html": {"schema": {"type": "string"}}}})
        } else if ep.response == "bytes" {
            json!({"description": "the stored file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
        } else {
            json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", ep.response)}}}})
        };
        let mut op = json!({
            "summary": ep.summary,
            "responses": {
                "200": success,
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}},
            },
        });
        if ep.response == "Attachment" {
            let binary = json!({"schema": {"type": "string", "format": "binary"}});
            op["requestBody"] = json!({"required": true, "content": {"image/jpeg": binary, "image/png": binary, "application/pdf": binary}});
            op["parameters"] = json!([{"name": "kind", "in": "query", "required": true, "schema": {"type": "string", "enum": AttachmentKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()}}]);
        }
        if let Some(req) = ep.request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{req}")}}}});
        }
        // Who may call it: the rule's name, the roles for staff, and the scheme(s).
        op["x-keyward-access"] = json!(ep.access.name());
        if let Access::Staff(roles) = ep.access {
            op["x-keyward-roles"] = json!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>());
        }
        if let Some(mode) = ep.sandbox {
            op["x-keyward-sandbox"] = json!(match mode {
                keyward_ca_api::endpoints::Sandbox::Payments => "payments",
                keyward_ca_api::endpoints::Sandbox::Sms => "sms",
            });
        }
        op["security"] = security(ep.access);
        let params: Vec<Value> = ep
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            let mut all = params;
            if let Some(Value::Array(existing)) = op.get("parameters").cloned() {
                all.extend(existing);
            }
            op["parameters"] = Value::Array(all);
        }
        let entry = paths.entry(ep.path.to_owned()).or_insert_with(|| json!({}));
        entry[ep.method.to_ascii_lowercase()] = op;
    }
    let mut schemas = Map::new();
    for (name, example) in examples() {
        let mut s = schema_of(&example);
        s["example"] = example;
        schemas.insert(name.to_owned(), s);
    }
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    schemas["ApiError"]["properties"]["code"]["enum"] = json!(codes);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keyward CA online service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Registry, activation, key-signature authentication, renewal and payment for organisation certificates on USB keys. Every operation names who may call it (x-keyward-access: public, key, renewed_key, handler, business_owner, business_secret, business_key, staff with x-keyward-roles, payment_provider). Every error answers {code, message}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "staffToken": {"type": "http", "scheme": "bearer", "description": "a named staff account's token (keyward-ca staff add NAME --role ROLE)"},
                "keyNonce": {"type": "apiKey", "in": "header", "name": keyward_ca_api::auth::NONCE_HEADER, "description": "a single-use nonce for the key: from POST /v1/nonces, or the x-keyward-next-nonce header of the CA's last answer to a request the key signed"},
                "keySignature": {"type": "apiKey", "in": "header", "name": keyward_ca_api::auth::SIGNATURE_HEADER, "description": "hex signature by the key over keyward_ca_api::signing_input"},
                "businessSecret": {"type": "apiKey", "in": "header", "name": keyward_ca_api::auth::BUSINESS_SECRET_HEADER, "description": "the secret the business was created with"},
                "paymentSignature": {"type": "apiKey", "in": "header", "name": keyward_ca_api::auth::PAYMENT_SIGNATURE_HEADER, "description": "the payment provider's HMAC-SHA256 over the body"},
            },
        },
    })
}

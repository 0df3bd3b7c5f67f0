//! The protocol: JSON-RPC 2.0 over one WebSocket, text frames, one request a frame.
//!
//! Every request is read into a [`Call`] and each argument checked here, before anyone is
//! asked anything. Fields a method does not know are ignored — in particular any origin or
//! URL a page puts into a message: who is calling comes from the handshake alone.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_flows::HashAlg;
use serde::Deserialize;
use serde_json::{Value, json};

/// The largest frame and message accepted, in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The shortest and longest nonce of `keyward.authenticate`, in base64 characters (the
/// shortest is 32 bytes, 256 bits, encoded).
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 44..=128;

/// The longest key serial accepted.
pub const MAX_SERIAL_LEN: usize = 64;

/// The stable error codes a page receives in `error.data.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The message is not JSON-RPC 2.0, or not JSON at all.
    InvalidRequest,
    /// No such method.
    MethodNotFound,
    /// An argument is missing, of the wrong type, or out of its bounds.
    InvalidArgument,
    /// This origin has not been granted access (or was refused by the operator).
    OriginNotAllowed,
    /// The operator cancelled.
    UserCancelled,
    /// The operator did not answer in time.
    UserTimeout,
    /// No key with that serial holding an organisation certificate is plugged in.
    KeyNotFound,
    /// Several keys are plugged in and the call did not name one.
    KeyAmbiguous,
    /// The key was pulled out during the operation.
    KeyRemoved,
    /// The PIN is locked; the operator must unlock it in Keyward (忘记密码).
    PinLocked,
    /// The PIN was wrong; `tries_left` says how many tries remain, when the key says.
    PinIncorrect,
    /// One try is left and the operator did not confirm spending it.
    FinalTryUnconfirmed,
    /// Another operation of this origin is waiting for the operator.
    ActionPending,
    /// This host cannot do that (a headless bridge has no window to open).
    NotSupported,
    /// The key failed in another way.
    TokenError,
    /// Something inside Keyward failed.
    InternalError,
}

impl ErrorCode {
    /// The JSON-RPC error code it travels under.
    pub fn rpc_code(self) -> i64 {
        match self {
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidArgument => -32602,
            ErrorCode::InternalError => -32603,
            _ => -32000,
        }
    }

    /// Its name as sent.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// An error answer: a code, a sentence for a developer, and details (`tries_left`).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, in English, for the portal's developer.
    pub message: String,
    /// More, merged into `error.data`.
    pub data: serde_json::Map<String, Value>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: serde_json::Map::new(),
        }
    }

    /// The same, with `key` set to `value` in `error.data`.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.data.insert(key.to_owned(), value);
        self
    }

    fn invalid(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::InvalidArgument, message)
    }
}

/// The screens `keyward.open` may bring forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Screen {
    /// 证书续期.
    Renew,
    /// 电子印章.
    Seal,
    /// 忘记密码.
    Unlock,
    /// 激活证书.
    Activate,
    /// The key's home card.
    Home,
    /// 修改密码: the key's PIN change.
    Pin,
}

/// Why a page asks for an authentication token; only what the operator is shown differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// 登录: logging in.
    #[default]
    Login,
    /// 绑定: binding the key to an account.
    Bind,
}

/// A request, its arguments checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `keyward.version`.
    Version,
    /// `keyward.certificates`.
    Certificates,
    /// `keyward.authenticate`.
    Authenticate {
        /// The portal's challenge, base64, as sent.
        nonce: String,
        /// Which key, when several are plugged in.
        key_serial: Option<String>,
        /// 登录 or 绑定, for the confirmation.
        purpose: Purpose,
    },
    /// `keyward.sign`.
    Sign {
        /// Which key.
        key_serial: String,
        /// The digest.
        hash: Vec<u8>,
        /// What made it.
        hash_function: HashAlg,
    },
    /// `keyward.signData`: a signature over data the operator is shown, as `keyward.sign`
    /// answers it.
    SignData {
        /// Which key.
        key_serial: String,
        /// What is signed.
        data: Vec<u8>,
        /// What hashes it.
        hash_function: HashAlg,
    },
    /// `keyward.signMessage`.
    SignMessage {
        /// Which key.
        key_serial: String,
        /// What is signed.
        data: Vec<u8>,
        /// Whether the CMS leaves the content out.
        detached: bool,
    },
    /// `keyward.open`.
    Open {
        /// Which screen.
        screen: Screen,
        /// For which key.
        key_serial: Option<String>,
    },
}

impl Call {
    /// The method's name, as in the request.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Version => "keyward.version",
            Call::Certificates => "keyward.certificates",
            Call::Authenticate { .. } => "keyward.authenticate",
            Call::Sign { .. } => "keyward.sign",
            Call::SignData { .. } => "keyward.signData",
            Call::SignMessage { .. } => "keyward.signMessage",
            Call::Open { .. } => "keyward.open",
        }
    }

    /// The key it names, if any.
    pub fn key_serial(&self) -> Option<&str> {
        match self {
            Call::Authenticate { key_serial, .. } | Call::Open { key_serial, .. } => {
                key_serial.as_deref()
            }
            Call::Sign { key_serial, .. }
            | Call::SignData { key_serial, .. }
            | Call::SignMessage { key_serial, .. } => Some(key_serial),
            Call::Version | Call::Certificates => None,
        }
    }
}

/// A request read off the wire: its id (to answer under) and the call, or the error to
/// answer with.
#[derive(Debug)]
pub struct Request {
    /// The request's id (`null` when it had none that could be read).
    pub id: Value,
    /// The call, or why it cannot be made.
    pub call: Result<Call, RpcError>,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
}

/// Reads one request from the text of a frame.
pub fn parse(text: &str) -> Request {
    let Ok(env) = serde_json::from_str::<Envelope>(text) else {
        return Request {
            id: Value::Null,
            call: Err(RpcError::new(
                ErrorCode::InvalidRequest,
                "not a JSON-RPC 2.0 request object",
            )),
        };
    };
    let id = match env.id {
        Some(v @ (Value::String(_) | Value::Number(_))) => v,
        _ => {
            return Request {
                id: Value::Null,
                call: Err(RpcError::new(
                    ErrorCode::InvalidRequest,
                    "a request needs an id, a string or a number",
                )),
            };
        }
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Request {
            id,
            call: Err(RpcError::new(
                ErrorCode::InvalidRequest,
                "jsonrpc must be \"2.0\"",
            )),
        };
    }
    let Some(method) = env.method else {
        return Request {
            id,
            call: Err(RpcError::new(ErrorCode::InvalidRequest, "no method")),
        };
    };
    let params = env.params.unwrap_or(Value::Object(Default::default()));
    Request {
        id,
        call: call(&method, params),
    }
}

fn call(method: &str, params: Value) -> Result<Call, RpcError> {
    if !params.is_object() {
        return Err(RpcError::invalid("params must be an object"));
    }
    match method {
        "keyward.version" => Ok(Call::Version),
        "keyward.certificates" => Ok(Call::Certificates),
        "keyward.authenticate" => {
            #[derive(Deserialize)]
            struct P {
                nonce: String,
                key_serial: Option<String>,
                #[serde(default)]
                purpose: Purpose,
            }
            let p: P = params_of(params)?;
            check_nonce(&p.nonce)?;
            Ok(Call::Authenticate {
                nonce: p.nonce,
                key_serial: p.key_serial.map(serial).transpose()?,
                purpose: p.purpose,
            })
        }
        "keyward.sign" => {
            #[derive(Deserialize)]
            struct P {
                key_serial: String,
                hash: String,
                hash_function: String,
            }
            let p: P = params_of(params)?;
            let hash_function = HashAlg::parse(&p.hash_function).ok_or_else(|| {
                RpcError::invalid("hash_function must be SHA-256, SHA-384 or SHA-512")
            })?;
            let hash = base64_field("hash", &p.hash)?;
            if hash.len() != hash_function.digest_len() {
                return Err(RpcError::invalid(format!(
                    "a {} hash has {} bytes; this one has {}",
                    hash_function.name(),
                    hash_function.digest_len(),
                    hash.len()
                )));
            }
            Ok(Call::Sign {
                key_serial: serial(p.key_serial)?,
                hash,
                hash_function,
            })
        }
        "keyward.signData" => {
            #[derive(Deserialize)]
            struct P {
                key_serial: String,
                data: String,
                hash_function: Option<String>,
            }
            let p: P = params_of(params)?;
            let hash_function = match p.hash_function.as_deref() {
                None => HashAlg::Sha256,
                Some(name) => HashAlg::parse(name).ok_or_else(|| {
                    RpcError::invalid("hash_function must be SHA-256, SHA-384 or SHA-512")
                })?,
            };
            let data = base64_field("data", &p.data)?;
            if data.is_empty() {
                return Err(RpcError::invalid("data is empty"));
            }
            Ok(Call::SignData {
                key_serial: serial(p.key_serial)?,
                data,
                hash_function,
            })
        }
        "keyward.signMessage" => {
            #[derive(Deserialize)]
            struct P {
                key_serial: String,
                data: String,
                #[serde(default)]
                detached: bool,
            }
            let p: P = params_of(params)?;
            let data = base64_field("data", &p.data)?;
            if data.is_empty() {
                return Err(RpcError::invalid("data is empty"));
            }
            Ok(Call::SignMessage {
                key_serial: serial(p.key_serial)?,
                data,
                detached: p.detached,
            })
        }
        "keyward.open" => {
            #[derive(Deserialize)]
            struct P {
                screen: Screen,
                key_serial: Option<String>,
            }
            let p: P = params_of(params)?;
            Ok(Call::Open {
                screen: p.screen,
                key_serial: p.key_serial.map(serial).transpose()?,
            })
        }
        other => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("no method {}", other.chars().take(64).collect::<String>()),
        )),
    }
}

fn params_of<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| RpcError::invalid(format!("params: {e}")))
}

fn base64_field(name: &str, text: &str) -> Result<Vec<u8>, RpcError> {
    STANDARD
        .decode(text)
        .map_err(|_| RpcError::invalid(format!("{name} must be base64 (RFC 4648 §4, padded)")))
}

/// The nonce: 44 to 128 characters of base64 (standard or URL-safe alphabet, `=` only as
/// padding at the end).
fn check_nonce(nonce: &str) -> Result<(), RpcError> {
    if !NONCE_LEN.contains(&nonce.len()) {
        return Err(RpcError::invalid(format!(
            "the nonce must be {} to {} base64 characters; it has {}",
            NONCE_LEN.start(),
            NONCE_LEN.end(),
            nonce.chars().count()
        )));
    }
    let body = nonce.trim_end_matches('=');
    let padding = nonce.len() - body.len();
    let alphabet = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if !alphabet || padding > 2 {
        return Err(RpcError::invalid("the nonce must be base64"));
    }
    Ok(())
}

/// Whether `s` can be a key serial: 1 to [`MAX_SERIAL_LEN`] ASCII letters, digits, `-`,
/// `_`, `.` or `:`. The one rule for a serial a page (or a `keyward://` link) names.
pub fn is_key_serial(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERIAL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn serial(s: String) -> Result<String, RpcError> {
    if is_key_serial(&s) {
        Ok(s)
    } else {
        Err(RpcError::invalid(format!(
            "key_serial must be 1 to {MAX_SERIAL_LEN} letters, digits, '-', '_', '.' or ':'"
        )))
    }
}

/// The answer to request `id`: its result.
pub fn result(id: &Value, result: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()
}

/// The answer to request `id`: an error.
pub fn error(id: &Value, e: &RpcError) -> String {
    let mut data = e.data.clone();
    data.insert("code".into(), Value::String(e.code.as_str()));
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": e.code.rpc_code(), "message": e.message, "data": data },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, params: Value) -> Result<Call, RpcError> {
        parse(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
            .call
    }

    const NONCE: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

    #[test]
    fn envelopes_that_are_not_json_rpc_are_refused() {
        for text in [
            "",
            "[]",
            "{}",
            r#"{"jsonrpc":"2.0","method":"keyward.version"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"keyward.version"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"keyward.version"}"#,
            "not json",
        ] {
            let r = parse(text);
            assert_eq!(
                r.call.unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{text}"
            );
            assert_eq!(r.id, Value::Null);
        }
        let r = parse(r#"{"jsonrpc":"1.0","id":7,"method":"keyward.version"}"#);
        assert_eq!(r.id, json!(7));
        assert_eq!(r.call.unwrap_err().code, ErrorCode::InvalidRequest);
        let r = parse(r#"{"jsonrpc":"2.0","id":"a","method":"keyward.nope"}"#);
        assert_eq!(r.call.unwrap_err().code, ErrorCode::MethodNotFound);
    }

    #[test]
    fn nonces_are_checked_by_length_and_alphabet() {
        assert!(req("keyward.authenticate", json!({ "nonce": NONCE })).is_ok());
        let url_safe = "-_".repeat(22);
        assert!(req("keyward.authenticate", json!({ "nonce": url_safe })).is_ok());
        for bad in [
            "A".repeat(43),
            "A".repeat(129),
            format!("{}!", "A".repeat(43)),
            format!("{}===", "A".repeat(41)),
            format!("{}=AA", "A".repeat(42)),
            "é".repeat(30),
        ] {
            let e = req("keyward.authenticate", json!({ "nonce": bad })).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
        }
        assert_eq!(
            req("keyward.authenticate", json!({})).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn a_url_in_a_message_is_ignored_not_believed() {
        let c = req(
            "keyward.authenticate",
            json!({ "nonce": NONCE, "origin": "https://bank.test", "url": "https://bank.test/x" }),
        )
        .unwrap();
        assert_eq!(
            c,
            Call::Authenticate {
                nonce: NONCE.into(),
                key_serial: None,
                purpose: Purpose::Login
            }
        );
    }

    #[test]
    fn digests_must_have_their_function_s_length() {
        let h32 = STANDARD.encode([1u8; 32]);
        let ok = req(
            "keyward.sign",
            json!({"key_serial": "K1", "hash": h32, "hash_function": "SHA-256"}),
        )
        .unwrap();
        assert!(matches!(
            ok,
            Call::Sign {
                hash_function: HashAlg::Sha256,
                ..
            }
        ));
        for (hash, f) in [
            (h32.clone(), "SHA-384"),
            (h32.clone(), "sha256"),
            (h32.clone(), "MD5"),
            ("not base64!".to_owned(), "SHA-256"),
        ] {
            let e = req(
                "keyward.sign",
                json!({"key_serial": "K1", "hash": hash, "hash_function": f}),
            )
            .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{f}");
        }
        for serial in ["", "K 1", "../K1", &"K".repeat(65)] {
            let e = req(
                "keyward.sign",
                json!({"key_serial": serial, "hash": h32, "hash_function": "SHA-256"}),
            )
            .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{serial}");
        }
    }

    #[test]
    fn sign_data_takes_data_and_an_optional_hash_function() {
        let data = STANDARD.encode("投标报价 1,000 元");
        let c = req(
            "keyward.signData",
            json!({"key_serial": "K1", "data": data}),
        )
        .unwrap();
        assert_eq!(
            c,
            Call::SignData {
                key_serial: "K1".into(),
                data: "投标报价 1,000 元".as_bytes().to_vec(),
                hash_function: HashAlg::Sha256,
            }
        );
        assert_eq!(c.method(), "keyward.signData");
        assert_eq!(c.key_serial(), Some("K1"));
        let c = req(
            "keyward.signData",
            json!({"key_serial": "K1", "data": data, "hash_function": "SHA-512"}),
        )
        .unwrap();
        assert!(matches!(
            c,
            Call::SignData {
                hash_function: HashAlg::Sha512,
                ..
            }
        ));
        for params in [
            json!({"key_serial": "K1", "data": ""}),
            json!({"key_serial": "K1", "data": "not base64!"}),
            json!({"key_serial": "K1", "data": data, "hash_function": "MD5"}),
            json!({"key_serial": "K 1", "data": data}),
            json!({"data": data}),
        ] {
            let e = req("keyward.signData", params.clone()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{params}");
        }
    }

    #[test]
    fn the_pin_screen_is_one_keyward_open_may_bring_forward() {
        let c = req("keyward.open", json!({"screen": "pin", "key_serial": "K1"})).unwrap();
        assert_eq!(
            c,
            Call::Open {
                screen: Screen::Pin,
                key_serial: Some("K1".into())
            }
        );
        let e = req("keyward.open", json!({"screen": "settings"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn errors_carry_their_stable_code() {
        let e = RpcError::new(ErrorCode::PinIncorrect, "wrong PIN").with("tries_left", json!(7));
        let v: Value = serde_json::from_str(&error(&json!(3), &e)).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["error"]["data"]["code"], "PIN_INCORRECT");
        assert_eq!(v["error"]["data"]["tries_left"], 7);
        assert_eq!(
            ErrorCode::FinalTryUnconfirmed.as_str(),
            "FINAL_TRY_UNCONFIRMED"
        );
        assert_eq!(ErrorCode::MethodNotFound.rpc_code(), -32601);
    }
}

//! PKCS#11 URIs (RFC 7512): the names Keyward gives keys and objects on the command line,
//! in logs and in JSON.
//!
//! Keyward reads the path attributes that name a token or an object, plus `module-path` and
//! `module-name` from the query. It refuses `pin-value` and `pin-source`: a PIN never travels
//! inside a name.

use std::fmt::{self, Write as _};

use crate::error::{Result, TokenError};

/// The object classes a URI's `type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `type=cert`.
    Cert,
    /// `type=data`.
    Data,
    /// `type=private`.
    Private,
    /// `type=public`.
    Public,
    /// `type=secret-key`.
    SecretKey,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            ObjectType::Cert => "cert",
            ObjectType::Data => "data",
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::SecretKey => "secret-key",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "cert" => ObjectType::Cert,
            "data" => ObjectType::Data,
            "private" => ObjectType::Private,
            "public" => ObjectType::Public,
            "secret-key" => ObjectType::SecretKey,
            other => return Err(TokenError::Uri(format!("unknown object type {other:?}"))),
        })
    }
}

/// A parsed PKCS#11 URI. Every field is optional; an absent one matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token manufacturer.
    pub manufacturer: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `model`: the token model.
    pub model: Option<String>,
    /// `slot-id`.
    pub slot_id: Option<u64>,
    /// `library-manufacturer`.
    pub library_manufacturer: Option<String>,
    /// `library-description`.
    pub library_description: Option<String>,
    /// `object`: the object label.
    pub object: Option<String>,
    /// `type`.
    pub object_type: Option<ObjectType>,
    /// `id`: the object's CKA_ID bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path` (query).
    pub module_path: Option<String>,
    /// `module-name` (query).
    pub module_name: Option<String>,
}

fn decode(raw: &str) -> Result<Vec<u8>> {
    decode_in(raw, false)
}

/// Percent-decodes a value; a query value may also hold `/`, `?` and `|` as they are.
fn decode_in(raw: &str, query: bool) -> Result<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| TokenError::Uri(format!("bad percent escape in {raw:?}")))?;
                out.push(hex);
                i += 3;
            }
            c if c.is_ascii_graphic()
                && !matches!(c, b'#' | b';' | b'&')
                && (query || !matches!(c, b'/' | b'?' | b'|')) =>
            {
                out.push(c);
                i += 1;
            }
            c => {
                return Err(TokenError::Uri(format!(
                    "character {:?} must be percent-encoded",
                    c as char
                )));
            }
        }
    }
    Ok(out)
}

fn decode_text(raw: &str) -> Result<String> {
    text(decode(raw)?, raw)
}

fn decode_query_text(raw: &str) -> Result<String> {
    text(decode_in(raw, true)?, raw)
}

fn text(bytes: Vec<u8>, raw: &str) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| TokenError::Uri(format!("{raw:?} is not UTF-8 once decoded")))
}

fn encode(bytes: &[u8], all: bool, out: &mut String) {
    for &b in bytes {
        if !all && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<()> {
    if slot.is_some() {
        return Err(TokenError::Uri(format!("{name} given twice")));
    }
    *slot = Some(v);
    Ok(())
}

impl Pkcs11Uri {
    /// Parses `pkcs11:…`.
    pub fn parse(s: &str) -> Result<Self> {
        let rest = s
            .strip_prefix("pkcs11:")
            .ok_or_else(|| TokenError::Uri("a PKCS#11 URI starts with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| TokenError::Uri(format!("{part:?} has no \"=\"")))?;
            match name {
                "token" => set(&mut u.token, name, decode_text(value)?)?,
                "manufacturer" => set(&mut u.manufacturer, name, decode_text(value)?)?,
                "serial" => set(&mut u.serial, name, decode_text(value)?)?,
                "model" => set(&mut u.model, name, decode_text(value)?)?,
                "library-manufacturer" => {
                    set(&mut u.library_manufacturer, name, decode_text(value)?)?
                }
                "library-description" => {
                    set(&mut u.library_description, name, decode_text(value)?)?
                }
                "object" => set(&mut u.object, name, decode_text(value)?)?,
                "type" => set(&mut u.object_type, name, ObjectType::parse(value)?)?,
                "id" => set(&mut u.id, name, decode(value)?)?,
                "slot-id" => {
                    let id = decode_text(value)?.parse::<u64>().map_err(|_| {
                        TokenError::Uri(format!("slot-id {value:?} is not a number"))
                    })?;
                    set(&mut u.slot_id, name, id)?
                }
                "library-version" | "slot-description" | "slot-manufacturer" => {}
                n if n.starts_with("x-") => {}
                other => {
                    return Err(TokenError::Uri(format!("unknown attribute {other:?}")));
                }
            }
        }
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            match name {
                "pin-value" | "pin-source" => {
                    return Err(TokenError::Uri(
                        "a PIN is never given in a URI; Keyward asks for it".into(),
                    ));
                }
                "module-path" => set(&mut u.module_path, name, decode_query_text(value)?)?,
                "module-name" => set(&mut u.module_name, name, decode_query_text(value)?)?,
                n if n.starts_with("x-") => {}
                other => return Err(TokenError::Uri(format!("unknown query {other:?}"))),
            }
        }
        Ok(u)
    }

    /// The URI naming a token.
    pub fn for_token(label: &str, manufacturer: &str, model: &str, serial: &str) -> Self {
        Pkcs11Uri {
            token: Some(label.to_owned()),
            manufacturer: Some(manufacturer.to_owned()),
            model: Some(model.to_owned()),
            serial: Some(serial.to_owned()),
            ..Default::default()
        }
    }

    /// Does a token with these attributes match the token part of this URI?
    pub fn matches_token(
        &self,
        label: &str,
        manufacturer: &str,
        model: &str,
        serial: &str,
    ) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.token, label)
            && eq(&self.manufacturer, manufacturer)
            && eq(&self.model, model)
            && eq(&self.serial, serial)
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut text = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                let mut s = format!("{name}=");
                encode(v.as_bytes(), false, &mut s);
                parts.push(s);
            }
        };
        text("library-manufacturer", &self.library_manufacturer);
        text("library-description", &self.library_description);
        text("manufacturer", &self.manufacturer);
        text("model", &self.model);
        text("serial", &self.serial);
        text("token", &self.token);
        text("object", &self.object);
        if let Some(slot) = self.slot_id {
            parts.push(format!("slot-id={slot}"));
        }
        if let Some(t) = self.object_type {
            parts.push(format!("type={}", t.as_str()));
        }
        if let Some(id) = &self.id {
            let mut s = String::from("id=");
            encode(id, true, &mut s);
            parts.push(s);
        }
        write!(f, "pkcs11:{}", parts.join(";"))?;
        let mut query = Vec::new();
        for (name, v) in [
            ("module-name", &self.module_name),
            ("module-path", &self.module_path),
        ] {
            if let Some(v) = v {
                let mut s = format!("{name}=");
                encode(v.as_bytes(), false, &mut s);
                query.push(s);
            }
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_parse() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91",
        )
        .expect("parse");
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.object_type, Some(ObjectType::Cert));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        let u = Pkcs11Uri::parse("pkcs11:").expect("empty path");
        assert_eq!(u, Pkcs11Uri::default());
        let u = Pkcs11Uri::parse("pkcs11:slot-id=7?module-path=/usr/lib/p11.so").expect("query");
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/p11.so"));
    }

    #[test]
    fn printing_and_parsing_round_trip_with_chinese_labels() {
        let mut u = Pkcs11Uri::for_token("广州示例 UKey", "NETCA", "NetcaKey;v2", "0123ABCD");
        u.object = Some("签名证书".into());
        u.object_type = Some(ObjectType::Cert);
        u.id = Some(vec![0, 1, 0xff]);
        let s = u.to_string();
        assert!(
            s.starts_with("pkcs11:manufacturer=NETCA;model=NetcaKey%3Bv2;serial=0123ABCD;token="),
            "{s}"
        );
        assert!(s.ends_with(";type=cert;id=%00%01%FF"), "{s}");
        assert_eq!(Pkcs11Uri::parse(&s).expect("reparse"), u);
    }

    #[test]
    fn bad_uris_are_refused_with_a_reason() {
        for bad in [
            "pkcs12:token=x",
            "pkcs11:token=a;token=b",
            "pkcs11:token=%zz",
            "pkcs11:token",
            "pkcs11:colour=red",
            "pkcs11:type=key",
            "pkcs11:slot-id=abc",
            "pkcs11:token=a b",
        ] {
            assert!(
                matches!(Pkcs11Uri::parse(bad), Err(TokenError::Uri(_))),
                "{bad}"
            );
        }
        let e = Pkcs11Uri::parse("pkcs11:token=x?pin-value=1234").expect_err("pin refused");
        assert!(e.to_string().contains("never"), "{e}");
    }

    #[test]
    fn token_matching() {
        let u = Pkcs11Uri::parse("pkcs11:serial=42").expect("parse");
        assert!(u.matches_token("any", "any", "any", "42"));
        assert!(!u.matches_token("any", "any", "any", "43"));
    }
}

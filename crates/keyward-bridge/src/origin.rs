//! Who is calling: the web origin, from the browser's handshake alone, and the `Host` the
//! browser connected to.
//!
//! A page cannot choose the `Origin` header its browser sends with a WebSocket handshake, so
//! it is the one thing the bridge believes about the caller. It must be an `https` origin in
//! its serialised form (scheme, host, optional port; no path, no user, no trailing slash), at
//! most 255 characters. `http://localhost` and `http://127.0.0.1` are accepted only when a
//! developer switch says so.
//!
//! `Host` must be a literal loopback address with the bridge's port, or `localhost` with it:
//! a page on `evil.test` that rebinds its own name to 127.0.0.1 (DNS rebinding) would send
//! `Host: evil.test:PORT`, and is refused before the upgrade.

use std::fmt;

/// The longest origin accepted.
pub const MAX_ORIGIN_LEN: usize = 255;

/// A web origin as the browser sent it: `https://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Origin(String);

impl Origin {
    /// The origin as text, exactly as it goes into an authentication token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its host (a name, or an IP address as written).
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        match rest.rfind(':') {
            Some(i) if !rest.ends_with(']') => &rest[..i],
            _ => rest,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an origin or host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefused {
    /// No `Origin` header (not a browser, or a browser that hides it).
    #[error("no Origin header")]
    Missing,
    /// Longer than [`MAX_ORIGIN_LEN`].
    #[error("the origin is longer than {MAX_ORIGIN_LEN} characters")]
    TooLong,
    /// Not `https` (nor allowed `http://localhost` in development).
    #[error("the origin is not https")]
    NotHttps,
    /// Not an origin in its serialised form: a path, a user, a query, `null`, odd case.
    #[error("not a serialised origin: {0}")]
    Malformed(String),
    /// The `Host` header is not this bridge on loopback.
    #[error("the Host header is not this bridge on loopback")]
    Host,
}

/// Reads the `Origin` header of a handshake. `allow_http_localhost` lets
/// `http://localhost[:port]` and `http://127.0.0.1[:port]` through, for portal developers.
pub fn parse_origin(
    header: Option<&str>,
    allow_http_localhost: bool,
) -> Result<Origin, OriginRefused> {
    let text = header.ok_or(OriginRefused::Missing)?;
    if text.len() > MAX_ORIGIN_LEN {
        return Err(OriginRefused::TooLong);
    }
    let malformed = || OriginRefused::Malformed(text.chars().take(80).collect());
    if !text.is_ascii() || text.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(malformed());
    }
    let url = url::Url::parse(text).map_err(|_| malformed())?;
    let loopback_http = url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
        && allow_http_localhost;
    if url.scheme() != "https" && !loopback_http {
        return Err(OriginRefused::NotHttps);
    }
    // The serialised origin must be exactly what was sent: this refuses a path (even "/"),
    // a user or password, a query, a fragment, a default port written out, upper case.
    let serialised = url.origin().ascii_serialization();
    if serialised != text || url.host_str().is_none_or(str::is_empty) {
        return Err(malformed());
    }
    Ok(Origin(serialised))
}

/// Checks the `Host` header against the bridge's own port: `127.0.0.1:PORT`, `[::1]:PORT` or
/// `localhost:PORT`, nothing else.
pub fn check_host(header: Option<&str>, port: u16) -> Result<(), OriginRefused> {
    let host = header.ok_or(OriginRefused::Host)?;
    let ok = [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
    ]
    .iter()
    .any(|h| h == host);
    if ok { Ok(()) } else { Err(OriginRefused::Host) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_origins_in_serialised_form_pass() {
        for o in [
            "https://portal.test",
            "https://portal.test:8443",
            "https://xn--fiqs8s.xn--fiqs8s",
            "https://192.0.2.1",
            "https://[2001:db8::1]:444",
        ] {
            assert_eq!(parse_origin(Some(o), false).unwrap().as_str(), o);
        }
        assert_eq!(
            parse_origin(Some("https://portal.test:8443"), false)
                .unwrap()
                .host(),
            "portal.test"
        );
        assert_eq!(
            parse_origin(Some("https://[2001:db8::1]"), false)
                .unwrap()
                .host(),
            "[2001:db8::1]"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        use OriginRefused::*;
        let long = format!("https://{}.test", "a".repeat(250));
        let cases: &[(Option<&str>, OriginRefused)] = &[
            (None, Missing),
            (Some(&long), TooLong),
            (Some("http://portal.test"), NotHttps),
            (Some("http://localhost:8080"), NotHttps),
            (Some("ws://portal.test"), NotHttps),
            (Some("file://"), NotHttps),
            (Some("null"), Malformed("null".into())),
        ];
        for (o, want) in cases {
            assert_eq!(parse_origin(*o, false).unwrap_err(), *want, "{o:?}");
        }
        for o in [
            "https://portal.test/",
            "https://portal.test/login",
            "https://portal.test?x=1",
            "https://portal.test#x",
            "https://user@portal.test",
            "https://PORTAL.test",
            "https://portal.test:443",
            "https://portal.test ",
            "https://门户.test",
            "https://",
            "",
        ] {
            assert!(
                matches!(parse_origin(Some(o), false), Err(Malformed(_) | NotHttps)),
                "{o}"
            );
        }
    }

    #[test]
    fn http_localhost_only_behind_the_developer_switch() {
        for o in [
            "http://localhost:8080",
            "http://127.0.0.1:3000",
            "http://localhost",
        ] {
            assert!(parse_origin(Some(o), false).is_err());
            assert_eq!(parse_origin(Some(o), true).unwrap().as_str(), o);
        }
        assert!(parse_origin(Some("http://portal.test"), true).is_err());
        assert!(parse_origin(Some("http://localhost.evil.test"), true).is_err());
    }

    #[test]
    fn the_host_must_be_this_bridge_on_loopback() {
        for h in ["127.0.0.1:28231", "[::1]:28231", "localhost:28231"] {
            assert!(check_host(Some(h), 28231).is_ok(), "{h}");
        }
        for h in [
            "evil.test:28231",
            "127.0.0.1",
            "127.0.0.1:28232",
            "127.0.0.2:28231",
            "localhost",
            "LOCALHOST:28231",
            "0.0.0.0:28231",
            "2130706433:28231",
            "",
        ] {
            assert!(check_host(Some(h), 28231).is_err(), "{h}");
        }
        assert!(check_host(None, 28231).is_err());
    }
}

//! The `keyward://` link: `keyward://open?screen=renew&key=SERIAL` starts Keyward (or brings
//! the running copy forward, which a second launch hands the link to) on one of its screens
//! for one key. That is all a link can do: it carries a screen and a serial, nothing else,
//! and everything a page then wants goes over the bridge, where the operator is asked.
//!
//! Parsed strictly: the scheme, the one path `open`, the parameters `screen` (required) and
//! `key` (optional), each at most once, with values checked against their closed sets. A
//! link with anything else — another scheme, a path, a fragment, a user or port, a parameter
//! more, an escaped character, an over-long serial — is refused whole and logged; the app
//! then only comes forward.

use keyward_bridge::protocol::{MAX_SERIAL_LEN, Screen, is_key_serial};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The scheme Keyward handles.
pub const SCHEME: &str = "keyward";

/// The longest link looked at: the longest valid one is well below.
pub const MAX_LINK_LEN: usize = 160;

/// Where a link (or a page's `keyward.open`) asks the window to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Navigate {
    /// The screen.
    pub screen: Screen,
    /// The key it is for, by serial.
    pub key: Option<String>,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    /// Longer than [`MAX_LINK_LEN`].
    #[error("longer than {MAX_LINK_LEN} characters")]
    TooLong,
    /// Not printable ASCII (spaces, controls, other scripts), or escaped (`%`, `+`).
    #[error("characters a link of Keyward never has")]
    Characters,
    /// Another scheme, or none.
    #[error("not a keyward:// link")]
    Scheme,
    /// Not the one path `open`, or with a user, port or fragment.
    #[error("not keyward://open")]
    Path,
    /// No `screen`.
    #[error("no screen named")]
    NoScreen,
    /// A parameter other than `screen` and `key`.
    #[error("a parameter Keyward does not know: {0}")]
    Unknown(String),
    /// A parameter given twice, or without a value.
    #[error("parameter {0} given twice or empty")]
    Repeated(&'static str),
    /// A screen Keyward does not have.
    #[error("no such screen")]
    Screen,
    /// Not a key serial (1 to 64 letters, digits, `-`, `_`, `.`, `:`).
    #[error("not a key serial (1 to {MAX_SERIAL_LEN} letters, digits, '-', '_', '.' or ':')")]
    Key,
}

fn screen(name: &str) -> Result<Screen, LinkRefused> {
    Ok(match name {
        "renew" => Screen::Renew,
        "seal" => Screen::Seal,
        "unlock" => Screen::Unlock,
        "activate" => Screen::Activate,
        "home" => Screen::Home,
        "pin" => Screen::Pin,
        _ => return Err(LinkRefused::Screen),
    })
}

/// Parses a `keyward://open?…` link.
pub fn parse(link: &str) -> Result<Navigate, LinkRefused> {
    if link.len() > MAX_LINK_LEN {
        return Err(LinkRefused::TooLong);
    }
    if !link.bytes().all(|b| b.is_ascii_graphic()) || link.contains(['%', '+']) {
        return Err(LinkRefused::Characters);
    }
    let (scheme, rest) = link.split_once(':').ok_or(LinkRefused::Scheme)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(LinkRefused::Scheme);
    }
    // The one form: //open, an optional slash, then the query. No user, port, other path
    // or fragment.
    let rest = rest.strip_prefix("//open").ok_or(LinkRefused::Path)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let query = match rest.strip_prefix('?') {
        Some(q) => q,
        None if rest.is_empty() => return Err(LinkRefused::NoScreen),
        None => return Err(LinkRefused::Path),
    };
    if query.contains(['#', '?', '/', '@']) {
        return Err(LinkRefused::Path);
    }
    let (mut found_screen, mut found_key) = (None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "screen" => {
                if found_screen.is_some() || value.is_empty() {
                    return Err(LinkRefused::Repeated("screen"));
                }
                found_screen = Some(screen(value)?);
            }
            "key" => {
                if found_key.is_some() || value.is_empty() {
                    return Err(LinkRefused::Repeated("key"));
                }
                if !is_key_serial(value) {
                    return Err(LinkRefused::Key);
                }
                found_key = Some(value.to_owned());
            }
            other => return Err(LinkRefused::Unknown(shorten(other))),
        }
    }
    Ok(Navigate {
        screen: found_screen.ok_or(LinkRefused::NoScreen)?,
        key: found_key,
    })
}

/// At most 32 characters of something a link carried, for the log.
fn shorten(s: &str) -> String {
    s.chars().take(32).collect()
}

/// What a launch's arguments ask (the program's name left out): the link, when exactly
/// one argument other than `-` options is given and it is a valid link. Such an argument
/// that is not a valid link is refused and logged, and so are several (then none is
/// followed): the app takes no other arguments.
pub fn from_args<I, S>(args: I) -> Option<Navigate>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<S> = args
        .into_iter()
        .filter(|a| !a.as_ref().starts_with('-'))
        .collect();
    match args.as_slice() {
        [] => None,
        [arg] => match parse(arg.as_ref()) {
            Ok(to) => {
                tracing::info!(screen = ?to.screen, "keyward:// link followed");
                Some(to)
            }
            Err(why) => {
                tracing::warn!(
                    reason = %why,
                    argument = ?shorten(arg.as_ref()),
                    "keyward:// link refused"
                );
                None
            }
        },
        more => {
            tracing::warn!(
                arguments = more.len(),
                "keyward:// link refused: several arguments, and Keyward takes one link"
            );
            None
        }
    }
}

/// The packaged app's own executable and desktop entry: the entry declares the scheme, and
/// the package's triggers bring the desktop's database up to date when it is installed.
const PACKAGED: (&str, &str) = (
    "/usr/bin/keyward-desktop",
    "/usr/share/applications/keyward-desktop.desktop",
);

/// Whether the `keyward://` scheme still has to be registered with this desktop at run time
/// (Linux: a desktop entry of the user's and `xdg-mime default`). Not for the packaged app,
/// whose desktop entry declares the scheme, and not when the user's `mimeapps.list` already
/// names a handler for it, Keyward's from an earlier start or one the operator chose, which
/// is kept. So the desktop's tools run once, not at every start.
pub fn scheme_needs_registering(exe: &Path, config_home: &Path) -> bool {
    if exe == Path::new(PACKAGED.0) && Path::new(PACKAGED.1).exists() {
        return false;
    }
    let list = std::fs::read_to_string(config_home.join("mimeapps.list")).unwrap_or_default();
    default_handler(&list, &format!("x-scheme-handler/{SCHEME}")).is_none()
}

/// The desktop entry a `mimeapps.list` makes the default for `mime`, if any (its
/// `[Default Applications]` group; the first of a `;`-separated list).
fn default_handler<'a>(list: &'a str, mime: &str) -> Option<&'a str> {
    let mut in_defaults = false;
    for line in list.lines().map(str::trim) {
        if line.starts_with('[') {
            in_defaults = line == "[Default Applications]";
        } else if in_defaults
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == mime
        {
            return value.split(';').map(str::trim).find(|v| !v.is_empty());
        }
    }
    None
}

/// The user's configuration folder, where `mimeapps.list` is (`$XDG_CONFIG_HOME`, else
/// `~/.config`).
pub fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nav(screen: Screen, key: Option<&str>) -> Navigate {
        Navigate {
            screen,
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn the_documented_link_and_its_few_forms() {
        assert_eq!(
            parse("keyward://open?screen=renew&key=8f2c01").unwrap(),
            nav(Screen::Renew, Some("8f2c01"))
        );
        assert_eq!(
            parse("keyward://open/?key=K-1&screen=seal").unwrap(),
            nav(Screen::Seal, Some("K-1"))
        );
        assert_eq!(
            parse("KEYWARD://open?screen=unlock").unwrap(),
            nav(Screen::Unlock, None)
        );
        for (name, s) in [
            ("activate", Screen::Activate),
            ("home", Screen::Home),
            ("renew", Screen::Renew),
        ] {
            assert_eq!(
                parse(&format!("keyward://open?screen={name}"))
                    .unwrap()
                    .screen,
                s
            );
        }
    }

    #[test]
    fn a_link_carrying_anything_else_is_refused_whole() {
        let serial = "A".repeat(MAX_SERIAL_LEN);
        assert!(parse(&format!("keyward://open?screen=renew&key={serial}")).is_ok());
        let over_long = format!("keyward://open?screen=renew&key={serial}A");
        let cases: &[(&str, LinkRefused)] = &[
            (
                "keyward://open?screen=renew&key=K1&pin=123456",
                LinkRefused::Unknown("pin".into()),
            ),
            (
                "keyward://open?screen=renew&key=K1&data=AAAA",
                LinkRefused::Unknown("data".into()),
            ),
            (
                "keyward://open?screen=renew&callback=https://evil.example",
                LinkRefused::Path,
            ),
            (
                "keyward://open?screen=renew&screen=seal",
                LinkRefused::Repeated("screen"),
            ),
            (
                "keyward://open?screen=renew&key=K1&key=K2",
                LinkRefused::Repeated("key"),
            ),
            (
                "keyward://open?screen=renew&key=",
                LinkRefused::Repeated("key"),
            ),
            (
                "keyward://open?screen=renew&",
                LinkRefused::Unknown(String::new()),
            ),
            ("keyward://open?screen=settings", LinkRefused::Screen),
            ("keyward://open?screen=Renew", LinkRefused::Screen),
            ("keyward://open?key=K1", LinkRefused::NoScreen),
            ("keyward://open", LinkRefused::NoScreen),
            ("keyward://open?screen=renew&key=../K1", LinkRefused::Path),
            ("keyward://open?screen=renew&key=K;1", LinkRefused::Key),
            (over_long.as_str(), LinkRefused::Key),
            (
                "keyward://open?screen=renew&key=K%31",
                LinkRefused::Characters,
            ),
            (
                "keyward://open?screen=renew&key=K+1",
                LinkRefused::Characters,
            ),
            (
                "keyward://open?screen=renew&key=K 1",
                LinkRefused::Characters,
            ),
            (
                "keyward://open?screen=renew&key=钥匙",
                LinkRefused::Characters,
            ),
            ("keyward://open?screen=renew#frag", LinkRefused::Path),
            ("keyward://open/renew?screen=renew", LinkRefused::Path),
            ("keyward://openx?screen=renew", LinkRefused::Path),
            ("keyward://user@open?screen=renew", LinkRefused::Path),
            ("keyward://open:80?screen=renew", LinkRefused::Path),
            ("keyward:open?screen=renew", LinkRefused::Path),
            ("https://open?screen=renew", LinkRefused::Scheme),
            ("keyward2://open?screen=renew", LinkRefused::Scheme),
            ("javascript:alert(1)", LinkRefused::Scheme),
            ("--screen=renew", LinkRefused::Scheme),
            ("", LinkRefused::Scheme),
        ];
        for (link, why) in cases {
            assert_eq!(parse(link).as_ref(), Err(why), "{link}");
        }
        let long = format!("keyward://open?screen=renew&key=K1{}", "&".repeat(200));
        assert_eq!(parse(&long), Err(LinkRefused::TooLong));
    }

    #[test]
    fn a_launch_follows_one_valid_link_and_nothing_else() {
        let none: [&str; 0] = [];
        assert_eq!(from_args(none), None);
        assert_eq!(
            from_args(["keyward://open?screen=renew&key=K1"]),
            Some(nav(Screen::Renew, Some("K1")))
        );
        // Options are not links (a driver's, a desktop's); a second argument or link is.
        assert_eq!(
            from_args(["--automation", "keyward://open?screen=renew&key=K1"]),
            Some(nav(Screen::Renew, Some("K1")))
        );
        assert_eq!(
            from_args(["keyward://open?screen=renew&key=K1", "extra"]),
            None
        );
        assert_eq!(
            from_args([
                "keyward://open?screen=renew&key=K1",
                "keyward://open?screen=seal&key=K1"
            ]),
            None
        );
        assert_eq!(from_args(["https://portal.example/renew"]), None);
    }

    #[test]
    fn the_scheme_is_registered_once_and_an_operators_choice_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("keyward-desktop");
        // Nothing registered yet: no list, or a list without the scheme.
        assert!(scheme_needs_registering(&exe, dir.path()));
        let list = dir.path().join("mimeapps.list");
        std::fs::write(
            &list,
            "[Added Associations]\nx-scheme-handler/keyward=other.desktop;\n\n\
             [Default Applications]\ntext/html=firefox.desktop\n",
        )
        .unwrap();
        assert!(scheme_needs_registering(&exe, dir.path()));
        // Registered by an earlier start, or another handler the operator chose.
        for handler in ["keyward-desktop-handler.desktop", "their-own.desktop;"] {
            std::fs::write(
                &list,
                format!("[Default Applications]\nx-scheme-handler/keyward = {handler}\n"),
            )
            .unwrap();
            assert!(!scheme_needs_registering(&exe, dir.path()), "{handler}");
        }
        // An empty value names nothing.
        std::fs::write(&list, "[Default Applications]\nx-scheme-handler/keyward=\n").unwrap();
        assert!(scheme_needs_registering(&exe, dir.path()));
        assert_eq!(
            default_handler(
                "[Default Applications]\nx-scheme-handler/keywardx=a.desktop",
                "x-scheme-handler/keyward"
            ),
            None
        );
    }
}

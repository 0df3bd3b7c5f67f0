//! The PIN secret and the PIN policy.
//!
//! A [`Pin`] is zeroised when dropped and has no `Clone`, `Display` or `Serialize`: it can be
//! handed to a token, never printed, stored or sent. Its `Debug` shows nothing of it.
//!
//! The [`PinPolicy`] is checked before a PIN reaches a token, so a PIN the policy rejects never
//! spends one of the key's ten tries. Its default follows the CA guides' advice: eight or more
//! characters with upper case, lower case, a digit and a special character; the token's own
//! minimum and maximum length narrow it further.

use std::fmt;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::lang::Lang;

/// A PIN (user, SO or transport). Zeroised on drop; never logged, serialised or cached.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN. The `String` is moved in, so no copy outlives this value.
    pub fn new(pin: String) -> Self {
        Pin(Zeroizing::new(pin))
    }

    /// Reads a PIN from bytes as typed at a prompt or read from a descriptor: one trailing
    /// line ending is removed. Bytes that are not UTF-8 are refused.
    pub fn from_line(bytes: Vec<u8>) -> Option<Self> {
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes).ok()?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        Some(Pin::new(text.to_owned()))
    }

    /// The PIN's characters, for the one call that hands it to a token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, which is what PKCS#11 length limits count.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Is the PIN empty?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time-ish equality, for "type it twice" checks.
    pub fn matches(&self, other: &Pin) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// One rule a PIN breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum PinRule {
    /// Shorter than the minimum.
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// Longer than the maximum.
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// No upper-case letter.
    NoUpper,
    /// No lower-case letter.
    NoLower,
    /// No digit.
    NoDigit,
    /// No special character.
    NoSpecial,
    /// A character that is not printable ASCII (a space, a full-width or Chinese character,
    /// a control character): keys and their drivers differ in what they accept, so Keyward
    /// accepts none of these.
    BadCharacter,
    /// The new PIN is the old one.
    SameAsOld,
}

impl PinRule {
    /// The rule as the user reads it.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            PinRule::TooShort { min } => match lang {
                Lang::ZhCn => format!("至少 {min} 位"),
                Lang::ZhTw => format!("至少 {min} 位"),
                Lang::En => format!("at least {min} characters"),
            },
            PinRule::TooLong { max } => match lang {
                Lang::ZhCn => format!("最多 {max} 位"),
                Lang::ZhTw => format!("最多 {max} 位"),
                Lang::En => format!("at most {max} characters"),
            },
            PinRule::NoUpper => lang
                .pick("包含大写字母", "包含大寫字母", "an upper-case letter")
                .into(),
            PinRule::NoLower => lang
                .pick("包含小写字母", "包含小寫字母", "a lower-case letter")
                .into(),
            PinRule::NoDigit => lang.pick("包含数字", "包含數字", "a digit").into(),
            PinRule::NoSpecial => lang
                .pick(
                    "包含特殊字符（如 !@#$%）",
                    "包含特殊字元（如 !@#$%）",
                    "a special character (such as !@#$%)",
                )
                .into(),
            PinRule::BadCharacter => lang
                .pick(
                    "只能使用英文字母、数字和英文符号，不能有空格或中文",
                    "只能使用英文字母、數字和英文符號，不能有空格或中文",
                    "only English letters, digits and symbols; no spaces or Chinese characters",
                )
                .into(),
            PinRule::SameAsOld => lang
                .pick(
                    "新密码不能与原密码相同",
                    "新密碼不能與原密碼相同",
                    "the new PIN must differ from the old one",
                )
                .into(),
        }
    }
}

impl fmt::Display for PinRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(Lang::En))
    }
}

/// What a new PIN must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinPolicy {
    /// Minimum length in bytes.
    pub min_len: usize,
    /// Maximum length in bytes; `None` when neither the policy nor the token sets one.
    pub max_len: Option<usize>,
    /// At least one of A–Z.
    pub require_upper: bool,
    /// At least one of a–z.
    pub require_lower: bool,
    /// At least one of 0–9.
    pub require_digit: bool,
    /// At least one printable ASCII symbol.
    pub require_special: bool,
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy::recommended()
    }
}

impl PinPolicy {
    /// The CA guides' advice: 8+ characters, upper, lower, digit and special.
    pub fn recommended() -> Self {
        PinPolicy {
            min_len: 8,
            max_len: None,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            require_special: true,
        }
    }

    /// Narrows the policy by a token's `ulMinPinLen`/`ulMaxPinLen` (a zero or absurd maximum,
    /// as some modules report, means "no limit").
    pub fn with_token_limits(mut self, token_min: usize, token_max: usize) -> Self {
        self.min_len = self.min_len.max(token_min);
        if token_max > 0 && token_max < usize::from(u16::MAX) {
            self.max_len = Some(self.max_len.map_or(token_max, |m| m.min(token_max)));
        }
        self
    }

    /// Every rule the PIN breaks, in a stable order; empty when it is acceptable.
    pub fn violations(&self, pin: &Pin) -> Vec<PinRule> {
        let s = pin.expose();
        let mut out = Vec::new();
        if s.len() < self.min_len {
            out.push(PinRule::TooShort { min: self.min_len });
        }
        if let Some(max) = self.max_len
            && s.len() > max
        {
            out.push(PinRule::TooLong { max });
        }
        if s.chars().any(|c| !c.is_ascii_graphic()) {
            out.push(PinRule::BadCharacter);
        }
        if self.require_upper && !s.chars().any(|c| c.is_ascii_uppercase()) {
            out.push(PinRule::NoUpper);
        }
        if self.require_lower && !s.chars().any(|c| c.is_ascii_lowercase()) {
            out.push(PinRule::NoLower);
        }
        if self.require_digit && !s.chars().any(|c| c.is_ascii_digit()) {
            out.push(PinRule::NoDigit);
        }
        if self.require_special && !s.chars().any(|c| c.is_ascii_punctuation()) {
            out.push(PinRule::NoSpecial);
        }
        out
    }

    /// Checks a PIN; `Err` lists every rule it breaks.
    pub fn check(&self, pin: &Pin) -> Result<(), Vec<PinRule>> {
        let v = self.violations(pin);
        if v.is_empty() { Ok(()) } else { Err(v) }
    }

    /// Checks a new PIN that replaces `old`: the policy, and that it is not the old one.
    pub fn check_change(&self, old: &Pin, new: &Pin) -> Result<(), Vec<PinRule>> {
        let mut v = self.violations(new);
        if old.matches(new) {
            v.push(PinRule::SameAsOld);
        }
        if v.is_empty() { Ok(()) } else { Err(v) }
    }

    /// The policy as a checklist the user reads before typing.
    pub fn describe(&self, lang: Lang) -> Vec<String> {
        let mut rules = vec![PinRule::TooShort { min: self.min_len }];
        if let Some(max) = self.max_len {
            rules.push(PinRule::TooLong { max });
        }
        for (on, r) in [
            (self.require_upper, PinRule::NoUpper),
            (self.require_lower, PinRule::NoLower),
            (self.require_digit, PinRule::NoDigit),
            (self.require_special, PinRule::NoSpecial),
        ] {
            if on {
                rules.push(r);
            }
        }
        rules.iter().map(|r| r.message(lang)).collect()
    }
}

/// Joins rule messages into one sentence for a terminal or a dialog.
pub fn explain(rules: &[PinRule], lang: Lang) -> String {
    let parts: Vec<String> = rules.iter().map(|r| r.message(lang)).collect();
    match lang {
        Lang::ZhCn => format!("新密码不符合要求：{}", parts.join("；")),
        Lang::ZhTw => format!("新密碼不符合要求：{}", parts.join("；")),
        Lang::En => format!("the new PIN does not meet the policy: {}", parts.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(s: &str) -> Pin {
        Pin::new(s.to_string())
    }

    #[test]
    fn recommended_policy_accepts_a_strong_pin() {
        assert_eq!(PinPolicy::recommended().check(&pin("Keyward#2026")), Ok(()));
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let p = PinPolicy::recommended();
        assert_eq!(
            p.check(&pin("abc")),
            Err(vec![
                PinRule::TooShort { min: 8 },
                PinRule::NoUpper,
                PinRule::NoDigit,
                PinRule::NoSpecial
            ])
        );
        assert_eq!(p.check(&pin("ABCDEFGH1!")), Err(vec![PinRule::NoLower]));
        assert_eq!(p.check(&pin("Abcdef 1!")), Err(vec![PinRule::BadCharacter]));
        assert_eq!(
            p.check(&pin("Abcdef1!密码")),
            Err(vec![PinRule::BadCharacter])
        );
    }

    #[test]
    fn token_limits_narrow_the_policy() {
        let p = PinPolicy::recommended().with_token_limits(4, 10);
        assert_eq!(
            p.min_len, 8,
            "the policy minimum is stricter than the token's"
        );
        assert_eq!(p.max_len, Some(10));
        assert_eq!(
            p.check(&pin("Abcdefgh12345!")),
            Err(vec![PinRule::TooLong { max: 10 }])
        );
        let p = PinPolicy::recommended().with_token_limits(12, 0);
        assert_eq!(p.min_len, 12);
        assert_eq!(p.max_len, None, "a zero maximum means no limit");
        let p = PinPolicy::recommended().with_token_limits(4, usize::MAX);
        assert_eq!(p.max_len, None, "an absurd maximum means no limit");
    }

    #[test]
    fn change_refuses_the_old_pin() {
        let p = PinPolicy::recommended();
        assert_eq!(
            p.check_change(&pin("Keyward#2026"), &pin("Keyward#2026")),
            Err(vec![PinRule::SameAsOld])
        );
        assert_eq!(
            p.check_change(&pin("Keyward#2026"), &pin("Keyward#2027")),
            Ok(())
        );
    }

    #[test]
    fn messages_exist_in_every_language() {
        let rules = [
            PinRule::TooShort { min: 8 },
            PinRule::TooLong { max: 16 },
            PinRule::NoUpper,
            PinRule::NoLower,
            PinRule::NoDigit,
            PinRule::NoSpecial,
            PinRule::BadCharacter,
            PinRule::SameAsOld,
        ];
        for lang in Lang::ALL {
            for r in &rules {
                assert!(!r.message(lang).is_empty());
            }
        }
        assert_eq!(PinRule::NoDigit.message(Lang::ZhCn), "包含数字");
        assert!(explain(&rules[..1], Lang::ZhCn).contains("至少 8 位"));
        assert_eq!(PinPolicy::recommended().describe(Lang::En).len(), 5);
    }

    #[test]
    fn pin_never_shows_itself() {
        let p = pin("Secret#123");
        assert_eq!(format!("{p:?}"), "Pin(<redacted>)");
        assert!(p.matches(&pin("Secret#123")));
        assert!(!p.matches(&pin("Secret#124")));
    }

    #[test]
    fn pin_from_line_strips_one_line_ending() {
        assert_eq!(
            Pin::from_line(b"Abc#1234\n".to_vec()).map(|p| p.len()),
            Some(8)
        );
        assert_eq!(
            Pin::from_line(b"Abc#1234\r\n".to_vec()).map(|p| p.len()),
            Some(8)
        );
        assert!(Pin::from_line(vec![0xff, 0xfe]).is_none());
    }
}

//! The unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters from a
//! 31-character alphabet, the last one a check character over the first seventeen.

/// The code's alphabet, in value order (no I, O, S, V, Z).
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Position weights of the first seventeen characters.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Why a string is not a unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsccError {
    /// Not 18 characters long.
    Length(usize),
    /// A character outside the code's alphabet, at this 1-based position.
    Character(usize),
    /// Characters 3 to 8 (the administrative division) are not all digits.
    Division,
    /// The last character does not match the check computed over the others.
    Check,
}

impl std::fmt::Display for UsccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsccError::Length(n) => {
                write!(f, "a unified social credit code has 18 characters, not {n}")
            }
            UsccError::Character(i) => write!(
                f,
                "character {i} of the unified social credit code is not allowed"
            ),
            UsccError::Division => {
                f.write_str("characters 3 to 8 of a unified social credit code are digits")
            }
            UsccError::Check => {
                f.write_str("the check character of the unified social credit code is wrong")
            }
        }
    }
}

impl std::error::Error for UsccError {}

/// Checks a unified social credit code, upper-casing it first. Returns the normalised code.
pub fn validate(code: &str) -> Result<String, UsccError> {
    validate_exact(&code.trim().to_ascii_uppercase())
}

/// Checks a code exactly as given (upper case, as printed on the business licence).
pub fn validate_exact(code: &str) -> Result<String, UsccError> {
    let code = code.to_owned();
    let bytes = code.as_bytes();
    if bytes.len() != 18 || code.chars().count() != 18 {
        return Err(UsccError::Length(code.chars().count()));
    }
    let mut sum = 0u32;
    for (i, &c) in bytes[..17].iter().enumerate() {
        sum += value(c).ok_or(UsccError::Character(i + 1))? * WEIGHTS[i];
    }
    let last = value(bytes[17]).ok_or(UsccError::Character(18))?;
    if !bytes[2..8].iter().all(u8::is_ascii_digit) {
        return Err(UsccError::Division);
    }
    if check_value(sum) != last {
        return Err(UsccError::Check);
    }
    Ok(code)
}

fn check_value(weighted_sum: u32) -> u32 {
    (31 - weighted_sum % 31) % 31
}

/// Completes seventeen characters with their check character (used to make test data).
pub fn with_check_character(first17: &str) -> Option<String> {
    let up = first17.to_ascii_uppercase();
    if up.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (i, c) in up.bytes().enumerate() {
        sum += value(c)? * WEIGHTS[i];
    }
    let check = ALPHABET[check_value(sum) as usize] as char;
    Some(format!("{up}{check}"))
}

/// Is this a valid code?
pub fn is_valid(code: &str) -> bool {
    validate(code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_codes_validate() {
        // Codes printed on public business licences.
        for code in [
            "91350100M000100Y43",
            "91440300708461136T",
            "91110000100017643K",
        ] {
            assert_eq!(validate(code), Ok(code.to_string()), "{code}");
        }
        assert!(is_valid("91440300708461136t"), "lower case is normalised");
    }

    #[test]
    fn broken_codes_say_why() {
        assert_eq!(validate("9135010"), Err(UsccError::Length(7)));
        assert_eq!(validate("91350100M000100Y44"), Err(UsccError::Check));
        assert_eq!(validate("9135010OM000100Y43"), Err(UsccError::Character(8)));
        assert_eq!(
            validate("91350100M000100YI3"),
            Err(UsccError::Character(17))
        );
    }

    #[test]
    fn check_character_completion_matches_validation() {
        let code = with_check_character("91440101MA5CXXXX0").expect("17 valid characters");
        assert!(is_valid(&code));
        assert_eq!(with_check_character("short"), None);
    }
}

//! Validation of the identifiers a registration carries: the unified social credit code
//! (统一社会信用代码, GB 32100-2015), the resident identity card number (GB 11643-1999) and
//! mainland mobile numbers.

/// The 31 characters a unified social credit code may use (no I, O, S, V, Z).
const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of the first 17 characters: 3^i mod 31.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a unified social credit code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsccError {
    /// Not exactly 18 characters.
    Length,
    /// A character outside the code's alphabet.
    Character,
    /// Characters 3 to 8 (administrative division) must be digits.
    Division,
    /// The 18th character does not match the check computed over the first 17.
    CheckCharacter,
}

impl std::fmt::Display for UsccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UsccError::Length => "a unified social credit code has 18 characters",
            UsccError::Character => {
                "the unified social credit code contains a character it may not use"
            }
            UsccError::Division => "characters 3 to 8 of a unified social credit code are digits",
            UsccError::CheckCharacter => {
                "the check character of the unified social credit code is wrong"
            }
        })
    }
}

impl std::error::Error for UsccError {}

/// Computes the GB 32100-2015 check character for the first 17 characters.
pub fn uscc_check_character(first17: &[u8]) -> Result<char, UsccError> {
    if first17.len() != 17 {
        return Err(UsccError::Length);
    }
    let mut sum = 0u32;
    for (c, w) in first17.iter().zip(USCC_WEIGHTS) {
        let v = USCC_ALPHABET
            .iter()
            .position(|a| a == c)
            .ok_or(UsccError::Character)?;
        sum += v as u32 * w;
    }
    let check = (31 - sum % 31) % 31;
    Ok(char::from(USCC_ALPHABET[check as usize]))
}

/// Validates a unified social credit code (upper case, as printed on the business licence).
pub fn validate_uscc(code: &str) -> Result<(), UsccError> {
    let bytes = code.as_bytes();
    if bytes.len() != 18 || code.chars().count() != 18 {
        return Err(UsccError::Length);
    }
    if !bytes.iter().all(|c| USCC_ALPHABET.contains(c)) {
        return Err(UsccError::Character);
    }
    if !bytes[2..8].iter().all(u8::is_ascii_digit) {
        return Err(UsccError::Division);
    }
    let expected = uscc_check_character(&bytes[..17])?;
    if char::from(bytes[17]) != expected {
        return Err(UsccError::CheckCharacter);
    }
    Ok(())
}

/// Validates an 18-digit resident identity card number, including its check character.
pub fn validate_id_number(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    bytes[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// Validates a mainland mobile number: 11 digits starting with 1 and a second digit 3–9.
pub fn validate_mobile(phone: &str) -> bool {
    let b = phone.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// Masks a mobile number for display: `138****5678`.
pub fn mask_mobile(phone: &str) -> String {
    if phone.len() == 11 && phone.is_ascii() {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "****".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_validate() {
        // Test codes built with the check character computed independently of this module.
        assert_eq!(validate_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(validate_uscc("91440101MA59ABCD1D"), Ok(()));
        assert_eq!(uscc_check_character(b"91110000100000000"), Ok('R'));
    }

    #[test]
    fn refuses_bad_codes() {
        assert_eq!(validate_uscc("91350100M000100Y4"), Err(UsccError::Length));
        assert_eq!(
            validate_uscc("91350100M000100Y44"),
            Err(UsccError::CheckCharacter)
        );
        assert_eq!(
            validate_uscc("91350100I000100Y43"),
            Err(UsccError::Character)
        );
        assert_eq!(
            validate_uscc("913A0100M000100Y43"),
            Err(UsccError::Division)
        );
        assert_eq!(
            validate_uscc("91350100m000100Y43"),
            Err(UsccError::Character)
        );
    }

    #[test]
    fn id_numbers_and_phones() {
        assert!(validate_id_number("11010519491231002X"));
        assert!(!validate_id_number("110105194912310021"));
        assert!(validate_mobile("13800138000"));
        assert!(!validate_mobile("12800138000"));
        assert_eq!(mask_mobile("13800138000"), "138****8000");
    }
}

//! Validation of the identifiers a registration carries: the unified social credit code
//! (统一社会信用代码, GB 32100-2015), the resident identity card number (GB 11643-1999) and
//! mainland mobile numbers.

pub use keyward_pki::uscc::UsccError;

/// Validates a unified social credit code exactly as printed (upper case), check character
/// included (GB 32100-2015). One implementation serves client and service: `keyward_pki::uscc`.
pub fn validate_uscc(code: &str) -> Result<(), UsccError> {
    keyward_pki::uscc::validate_exact(code).map(|_| ())
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

/// A person's name with all but its first character masked: `张三` → `张*`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        Some(first) => std::iter::once(first)
            .chain(chars.map(|_| '*'))
            .collect::<String>()
            .chars()
            .take(8)
            .collect(),
        None => "*".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_but_their_first_character() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name(""), "*");
    }

    #[test]
    fn known_codes_validate_and_bad_ones_say_why() {
        assert_eq!(validate_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(validate_uscc("91440101MA59ABCD1D"), Ok(()));
        assert_eq!(
            validate_uscc("91350100M000100Y4"),
            Err(UsccError::Length(17))
        );
        assert_eq!(validate_uscc("91350100M000100Y44"), Err(UsccError::Check));
        assert_eq!(
            validate_uscc("91350100I000100Y43"),
            Err(UsccError::Character(9))
        );
        assert_eq!(
            validate_uscc("913A0100M000100Y43"),
            Err(UsccError::Division)
        );
        assert_eq!(
            validate_uscc("91350100m000100Y43"),
            Err(UsccError::Character(9)),
            "lower case is not as printed"
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

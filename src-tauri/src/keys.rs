//! What the window adds to the keys: the keys themselves, as every front end shows them,
//! come from [`keyward_flows::keys`]; here only the check the window makes before a new PIN
//! goes anywhere.

use keyward_pki::Pin;

use crate::error::{CommandError, codes};

/// The new PIN typed twice must match before anything else is looked at.
pub fn check_typed_twice(
    new: &Pin,
    again: &Pin,
    lang: keyward_pki::Lang,
) -> Result<(), CommandError> {
    if new.matches(again) {
        Ok(())
    } else {
        Err(CommandError::new(
            codes::PIN_MISMATCH,
            lang.pick(
                "两次输入的新密码不一致，请重新输入。",
                "兩次輸入的新密碼不一致，請重新輸入。",
                "The two new PINs differ; type them again.",
            ),
        ))
    }
}

//! What the command line says to a person, in the user's language, and the exit codes.

use keyward_pki::{Lang, RenewalStatus};
use keyward_token::{PinRole, PinState, PinStatus, TokenError};

/// Exit codes, documented in `keyward --help` and the README.
pub mod exit {
    /// Done.
    pub const OK: i32 = 0;
    /// Anything not listed below.
    pub const FAILURE: i32 = 1;
    /// Bad command-line usage.
    pub const USAGE: i32 = 2;
    /// No key, or several keys where one was needed.
    pub const NO_KEY: i32 = 3;
    /// Wrong PIN.
    pub const PIN_INCORRECT: i32 = 4;
    /// PIN locked: use the unlock wizard (忘记密码).
    pub const PIN_LOCKED: i32 = 5;
    /// One try left and not confirmed.
    pub const PIN_FINAL_TRY: i32 = 6;
    /// The new PIN breaks the policy; nothing was sent to the key.
    pub const PIN_POLICY: i32 = 7;
    /// The key was removed.
    pub const KEY_REMOVED: i32 = 8;
    /// The PKCS#11 module could not be found or loaded.
    pub const MODULE: i32 = 9;
}

/// The exit code for a token error.
pub fn exit_code(e: &TokenError) -> i32 {
    match e {
        TokenError::NoSuchToken(_) | TokenError::AmbiguousToken(_) => exit::NO_KEY,
        TokenError::PinIncorrect { .. } => exit::PIN_INCORRECT,
        TokenError::PinLocked { .. } => exit::PIN_LOCKED,
        TokenError::FinalTryUnconfirmed { .. } => exit::PIN_FINAL_TRY,
        TokenError::PinPolicy(_) | TokenError::PinLenRange | TokenError::PinInvalid => {
            exit::PIN_POLICY
        }
        TokenError::KeyRemoved { .. } => exit::KEY_REMOVED,
        TokenError::ModuleLoad { .. }
        | TokenError::NoModule { .. }
        | TokenError::Profile { .. } => exit::MODULE,
        TokenError::PinExpired
        | TokenError::NotLoggedIn
        | TokenError::ObjectNotFound(_)
        | TokenError::Unsupported(_)
        | TokenError::Uri(_)
        | TokenError::Pkcs11 { .. }
        | TokenError::Pki(_) => exit::FAILURE,
    }
}

fn tries(status: &PinStatus, lang: Lang) -> String {
    match (status.user, status.user_tries_left) {
        (_, Some(n)) => match lang {
            Lang::ZhCn => format!("还可以再试 {n} 次"),
            Lang::ZhTw => format!("還可以再試 {n} 次"),
            Lang::En => format!("{n} tries left"),
        },
        (PinState::FinalTry, None) => lang
            .pick("仅剩最后一次机会", "僅剩最後一次機會", "one try left")
            .into(),
        _ => lang
            .pick(
                "剩余次数由设备决定",
                "剩餘次數由設備決定",
                "the key does not say how many tries are left",
            )
            .into(),
    }
}

/// A token error as a sentence that says what happened and what to do next.
pub fn describe(e: &TokenError, lang: Lang) -> String {
    let role = |r: &PinRole| match r {
        PinRole::User => lang.pick("密码", "密碼", "PIN"),
        PinRole::So => lang.pick("管理员密码", "管理員密碼", "SO PIN"),
    };
    match e {
        TokenError::PinIncorrect { role: r, status } => match lang {
            Lang::ZhCn => format!("{}错误，{}。连续输错 10 次将锁定证书。", role(r), tries(status, lang)),
            Lang::ZhTw => format!("{}錯誤，{}。連續輸錯 10 次將鎖定憑證。", role(r), tries(status, lang)),
            Lang::En => format!("wrong {}; {}. Ten wrong PINs in a row lock the certificate.", role(r), tries(status, lang)),
        },
        TokenError::PinLocked { role: r } => match lang {
            Lang::ZhCn => format!("{}已锁定。请使用“忘记密码”解锁（keyward unlock）。", role(r)),
            Lang::ZhTw => format!("{}已鎖定。請使用「忘記密碼」解鎖（keyward unlock）。", role(r)),
            Lang::En => format!("the {} is locked. Use “forgot password” to unlock it (keyward unlock).", role(r)),
        },
        TokenError::FinalTryUnconfirmed { .. } => lang
            .pick(
                "仅剩最后一次机会：再输错将锁定证书。确认无误请加 --confirm-final-try 重试，或使用“忘记密码”。",
                "僅剩最後一次機會：再輸錯將鎖定憑證。確認無誤請加 --confirm-final-try 重試，或使用「忘記密碼」。",
                "one try left: another wrong PIN locks the certificate. If you are sure, retry with --confirm-final-try, or use “forgot password”.",
            )
            .into(),
        TokenError::PinPolicy(rules) => {
            let text = keyward_pki::pin::explain(rules, lang);
            match lang {
                Lang::ZhCn => format!("{text}。未向设备提交，不消耗尝试次数。"),
                Lang::ZhTw => format!("{text}。未向設備提交，不消耗嘗試次數。"),
                Lang::En => format!("{text}. Nothing was sent to the key; no try was spent."),
            }
        }
        TokenError::PinLenRange => lang
            .pick("设备不接受这个长度的密码。", "設備不接受這個長度的密碼。", "the key does not accept a PIN of this length.")
            .into(),
        TokenError::PinInvalid => lang
            .pick("设备不接受密码中的字符。", "設備不接受密碼中的字元。", "the key does not accept the PIN's characters.")
            .into(),
        TokenError::PinExpired => lang
            .pick("密码已过期，请先修改密码。", "密碼已過期，請先修改密碼。", "the PIN has expired; change it first.")
            .into(),
        TokenError::KeyRemoved { .. } => lang
            .pick(
                "证书介质（UKey）已拔出。请重新插入后再试，未完成的操作不会自动重做。",
                "憑證介質（UKey）已拔出。請重新插入後再試，未完成的操作不會自動重做。",
                "the key was removed. Plug it in again and retry; nothing is redone automatically.",
            )
            .into(),
        TokenError::NoSuchToken(sel) => match lang {
            Lang::ZhCn => format!("未找到证书介质 {sel}。请插入 UKey，或用 keyward tokens 查看已插入的设备。"),
            Lang::ZhTw => format!("未找到憑證介質 {sel}。請插入 UKey，或用 keyward tokens 查看已插入的設備。"),
            Lang::En => format!("no key matches {sel}. Plug in the key, or list keys with keyward tokens."),
        },
        TokenError::AmbiguousToken(n) => match lang {
            Lang::ZhCn => format!("插入了 {n} 个证书介质，请用 --token 指定序列号或 PKCS#11 URI。"),
            Lang::ZhTw => format!("插入了 {n} 個憑證介質，請用 --token 指定序號或 PKCS#11 URI。"),
            Lang::En => format!("{n} keys are plugged in; name one with --token (serial or PKCS#11 URI)."),
        },
        TokenError::ModuleLoad { .. } | TokenError::NoModule { .. } | TokenError::Profile { .. } => {
            let lead = lang.pick(
                "无法加载证书介质驱动（PKCS#11 模块）",
                "無法載入憑證介質驅動（PKCS#11 模組）",
                "the key's driver (PKCS#11 module) could not be loaded",
            );
            format!("{lead}: {e}")
        }
        TokenError::NotLoggedIn
        | TokenError::ObjectNotFound(_)
        | TokenError::Unsupported(_)
        | TokenError::Uri(_)
        | TokenError::Pkcs11 { .. }
        | TokenError::Pki(_) => {
            let lead = lang.pick("操作失败", "操作失敗", "the operation failed");
            format!("{lead}: {e}")
        }
    }
}

/// The PIN state as the operator reads it.
pub fn pin_state(status: &PinStatus, lang: Lang) -> String {
    let base = match status.user {
        PinState::Ok => lang.pick("正常", "正常", "OK"),
        PinState::CountLow => lang.pick("曾输错密码", "曾輸錯密碼", "wrong PINs were entered"),
        PinState::FinalTry => lang.pick("仅剩最后一次机会", "僅剩最後一次機會", "one try left"),
        PinState::Locked => lang.pick(
            "已锁定（请使用忘记密码）",
            "已鎖定（請使用忘記密碼）",
            "locked (use forgot password)",
        ),
    };
    match (status.user, status.user_tries_left) {
        (PinState::Locked, _) | (_, None) => base.to_owned(),
        (_, Some(n)) => match lang {
            Lang::ZhCn => format!("{base}，剩余 {n} 次"),
            Lang::ZhTw => format!("{base}，剩餘 {n} 次"),
            Lang::En => format!("{base}, {n} tries left"),
        },
    }
}

/// Renewal status as the operator reads it.
pub fn renewal(status: &RenewalStatus, lang: Lang) -> String {
    match status {
        RenewalStatus::NotYet { opens_in_days, .. } => match lang {
            Lang::ZhCn => format!("{opens_in_days} 天后可续期"),
            Lang::ZhTw => format!("{opens_in_days} 天後可續期"),
            Lang::En => format!("renewal opens in {opens_in_days} days"),
        },
        RenewalStatus::Open { days_left } => match lang {
            Lang::ZhCn => format!("可续期（{days_left} 天后到期）"),
            Lang::ZhTw => format!("可續期（{days_left} 天後到期）"),
            Lang::En => format!("renew now ({days_left} days left)"),
        },
        RenewalStatus::Expired => lang
            .pick(
                "已过期，需重新申请",
                "已過期，需重新申請",
                "expired: apply for a new certificate",
            )
            .into(),
    }
}

/// Fixed labels.
pub fn label(key: &str, lang: Lang) -> &'static str {
    match key {
        "label" => lang.pick("名称", "名稱", "Label"),
        "serial" => lang.pick("序列号", "序號", "Serial"),
        "manufacturer" => lang.pick("厂商", "廠商", "Manufacturer"),
        "pin" => lang.pick("密码状态", "密碼狀態", "PIN"),
        "org" => lang.pick("单位名称", "單位名稱", "Organisation"),
        "code" => lang.pick("统一社会信用代码", "統一社會信用代碼", "Credit code"),
        "issuer" => lang.pick("颁发者", "頒發者", "Issuer"),
        "validity" => lang.pick("有效期", "有效期", "Valid"),
        "renewal" => lang.pick("续期", "續期", "Renewal"),
        "key" => lang.pick("密钥", "密鑰", "Key"),
        "chain" => lang.pick("证书链", "憑證鏈", "Chain"),
        "no_keys" => lang.pick(
            "没有插入证书介质（UKey）。请插入 UKey 后再试。",
            "沒有插入憑證介質（UKey）。請插入 UKey 後再試。",
            "No key is plugged in. Plug in your key and try again.",
        ),
        "no_cert" => lang.pick(
            "设备上没有证书。",
            "設備上沒有憑證。",
            "There is no certificate on the key.",
        ),
        "changed" => lang.pick("密码修改成功。", "密碼修改成功。", "PIN changed."),
        "old_pin" => lang.pick("原密码: ", "原密碼: ", "Current PIN: "),
        "new_pin" => lang.pick("新密码: ", "新密碼: ", "New PIN: "),
        "again" => lang.pick("再次输入新密码: ", "再次輸入新密碼: ", "New PIN again: "),
        "mismatch" => lang.pick(
            "两次输入的新密码不一致。",
            "兩次輸入的新密碼不一致。",
            "The two new PINs differ.",
        ),
        "final_try_q" => lang.pick(
            "仅剩最后一次机会，再输错将锁定证书。确定继续吗？[y/N] ",
            "僅剩最後一次機會，再輸錯將鎖定憑證。確定繼續嗎？[y/N] ",
            "One try left: another wrong PIN locks the certificate. Continue? [y/N] ",
        ),
        "days" => lang.pick("天", "天", "days"),
        _ => "",
    }
}

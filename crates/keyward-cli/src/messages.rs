//! What the command line says to a person, in the user's language, and the exit codes.

use keyward_ca_api::ErrorCode;
use keyward_flows::keys::NextStep;
use keyward_flows::{FlowError, PinState, PinStatus, TokenError};
use keyward_pki::{Lang, RenewalStatus};

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
    /// The CA service could not be reached, or refused the request.
    pub const CA: i32 = 10;
    /// The business is not at this step: renewal not open, not paid, under review, done.
    pub const NOT_NOW: i32 = 11;
    /// The document cannot be stamped as asked (encrypted, damaged, too large, no such
    /// page, off the page, the output exists): nothing was signed, the input is untouched.
    pub const DOCUMENT: i32 = 12;
    /// A document's signatures were read and at least one does not hold.
    pub const NOT_VALID: i32 = 13;
}

/// The exit code for a workflow error.
pub fn flow_exit_code(e: &FlowError) -> i32 {
    match e {
        FlowError::Token(t) => exit_code(t),
        FlowError::Ca(c) => match c.api_code() {
            Some(
                ErrorCode::RenewalWindowNotOpen
                | ErrorCode::CertificateExpired
                | ErrorCode::KeyNotActivated
                | ErrorCode::WrongState,
            ) => exit::NOT_NOW,
            _ => exit::CA,
        },
        FlowError::PinPolicy(_) => exit::PIN_POLICY,
        // `--ca-root` names a file that is no root: the command line's to fix.
        FlowError::CaRoot { .. } => exit::USAGE,
        FlowError::RenewalNotOpen { .. }
        | FlowError::CertificateExpired
        | FlowError::AlreadyActive
        | FlowError::AwaitingReview
        | FlowError::Rejected { .. }
        | FlowError::NotPaid
        | FlowError::NoSeal
        | FlowError::UnlockByOther(_)
        | FlowError::CodeNotRequested
        | FlowError::NothingInProgress(_) => exit::NOT_NOW,
        FlowError::Pki(_)
        | FlowError::Journal(_)
        | FlowError::NoCertificate
        | FlowError::CertificateMismatch
        | FlowError::CertificateUntrusted(_)
        | FlowError::SealScanNotImage
        | FlowError::SealInvalid(_)
        | FlowError::SealOtherCertificate
        | FlowError::SealWriteMismatch
        | FlowError::File { .. } => exit::FAILURE,
        FlowError::Pdf(_) | FlowError::OutputExists(_) | FlowError::OutputIsInput => exit::DOCUMENT,
    }
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

/// What comes next for a key, as `keyward tokens` says it, with the command that does it.
pub fn next_step(next: &NextStep, lang: Lang) -> String {
    match next {
        NextStep::Unlock => lang
            .pick(
                "密码已锁定：忘记密码（keyward unlock apply）",
                "密碼已鎖定：忘記密碼（keyward unlock apply）",
                "the PIN is locked: unlock it (keyward unlock apply)",
            )
            .into(),
        NextStep::Activate => lang
            .pick(
                "激活证书（keyward activate）",
                "啟用憑證（keyward activate）",
                "activate the certificate (keyward activate)",
            )
            .into(),
        NextStep::InstallCertificate => lang
            .pick(
                "安装证书（keyward renew install）",
                "安裝憑證（keyward renew install）",
                "install the renewed certificate (keyward renew install)",
            )
            .into(),
        NextStep::ApplyNew => lang
            .pick(
                "证书已过期，请重新申请证书",
                "憑證已過期，請重新申請憑證",
                "the certificate has expired: apply for a new one",
            )
            .into(),
        NextStep::Renew { days_left } => match lang {
            Lang::ZhCn => format!("{days_left} 天后到期：证书续期（keyward renew apply）"),
            Lang::ZhTw => format!("{days_left} 天後到期：憑證續期（keyward renew apply）"),
            Lang::En => format!("expires in {days_left} days: renew (keyward renew apply)"),
        },
        NextStep::InstallSeal => lang
            .pick(
                "安装印章（keyward seal install）",
                "安裝印章（keyward seal install）",
                "install the seal (keyward seal install)",
            )
            .into(),
        NextStep::PayRenewal => lang
            .pick(
                "续期待支付（keyward renew pay）",
                "續期待支付（keyward renew pay）",
                "the renewal waits for payment (keyward renew pay)",
            )
            .into(),
        NextStep::NoCertificate => lang
            .pick(
                "设备上没有证书",
                "設備上沒有憑證",
                "no certificate on the key",
            )
            .into(),
        NextStep::Nothing => lang.pick("无需操作", "無需操作", "nothing to do").into(),
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
        "next" => lang.pick("下一步", "下一步", "Next"),
        "until" => lang.pick("有效期至", "有效期至", "Valid until"),
        "no_keys" => lang.pick(
            "没有插入 USB Key。请插入 USB Key 后再试。",
            "沒有插入 USB Key。請插入 USB Key 後再試。",
            "No key is plugged in. Plug in your key and try again.",
        ),
        "no_cert" => lang.pick(
            "设备上没有证书。",
            "設備上沒有憑證。",
            "There is no certificate on the key.",
        ),
        "changed" => lang.pick("密码修改成功。", "密碼修改成功。", "PIN changed."),
        "bundle_written" => lang.pick("支持包已生成", "支援包已產生", "Support bundle written"),
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

//! The one error every command returns: a stable `code` the UI branches on and a
//! `message` in the operator's language that says what to do next.
//!
//! Every [`TokenError`] variant (re-exported by keyward-flows) is mapped here, exhaustively; the codes are pinned by tests
//! and listed in `ui/src/error-codes.json`, which the front end's types are built from.

use keyward_flows::{ClientError, PinRole, PinState, PinStatus, TokenError};
use keyward_pki::Lang;
use serde::Serialize;

/// Codes of the desktop shell's own failures (the token layer's come from
/// [`TokenError::code`]).
pub mod codes {
    /// The two new PINs typed differ.
    pub const PIN_MISMATCH: &str = "pin_mismatch";
    /// The settings could not be read or written.
    pub const SETTINGS: &str = "settings";
    /// A bug: a command failed in a way it should not (it is in the log).
    pub const INTERNAL: &str = "internal";
    /// The support bundle could not be written (disk full, folder not writable).
    pub const SUPPORT_BUNDLE: &str = "support_bundle";
    /// No CA service address is set (设置 · CA 服务).
    pub const CA_NOT_SET: &str = "ca_not_set";
    /// The pinned CA root file cannot be read or is not a certificate.
    pub const CA_ROOT: &str = "ca_root";
    /// An argument the UI sent is out of range (years, seal kind, attachment kind).
    pub const BAD_ARGUMENT: &str = "bad_argument";
    /// A CA answer with a code this build does not know yet (the raw code is in `detail`).
    pub const CA_OTHER: &str = "ca_other";
    /// The chosen root file is larger than one certificate can be (64 KiB).
    pub const CA_ROOT_TOO_LARGE: &str = "ca_root_too_large";
    /// The chosen root file holds several certificates (a chain or a bundle).
    pub const CA_ROOT_BUNDLE: &str = "ca_root_bundle";
    /// The root file changed between its confirmation and the pin.
    pub const CA_ROOT_CHANGED: &str = "ca_root_changed";
    /// A new root was to be pinned without the confirmed fingerprint.
    pub const CA_ROOT_UNCONFIRMED: &str = "ca_root_unconfirmed";
    /// A plain `http://` CA address to another computer.
    pub const CA_URL_INSECURE: &str = "ca_url_insecure";
    /// A CA address that is not an http(s) address.
    pub const CA_URL_INVALID: &str = "ca_url_invalid";
}

/// The workflow layer's codes (keyward_flows::user_error), after the token layer's.
pub const FLOW_CODES: &[&str] = &[
    "ca_offline",
    "ca_timeout",
    "ca_untrusted",
    "ca_unavailable",
    "ca_malformed",
    "key_signature",
    "client_config",
    "journal",
    "no_certificate",
    "already_active",
    "renewal_not_open",
    "certificate_expired",
    "certificate_mismatch",
    "awaiting_review",
    "rejected",
    "not_paid",
    "seal_scan_not_image",
    "seal_invalid",
    "seal_other_certificate",
    "seal_write_mismatch",
    "no_seal",
    "nothing_in_progress",
    "ca_invalid_request",
    "ca_key_not_found",
    "ca_business_not_found",
    "ca_signature_invalid",
    "ca_code_invalid",
    "ca_code_expired",
    "ca_code_attempts_exhausted",
    "ca_code_cooldown",
    "ca_code_daily_limit",
    "ca_wrong_state",
    "ca_key_not_activated",
    "ca_renewal_window_not_open",
    "ca_certificate_expired",
    "ca_invalid_years",
    "ca_invalid_attachment",
    "ca_attachment_required",
    "ca_name_change_not_seal",
    "unlock_by_other",
    "code_not_requested",
    "certificate_untrusted",
    "ca_rate_limited",
    "ca_unlock_under_way",
    "ca_forbidden",
    "ca_unauthorized",
    "pdf_too_large",
    "pdf_encrypted",
    "pdf_damaged",
    "page_out_of_range",
    "seal_off_page",
    "page_rotated",
    "cross_page_after_signature",
    "seal_picture",
    "signature_too_large",
    "pdf_signature_unreadable",
    "file_io",
    "output_exists",
    "output_is_input",
    codes::CA_NOT_SET,
    codes::CA_ROOT,
    codes::BAD_ARGUMENT,
    codes::CA_OTHER,
    codes::CA_ROOT_TOO_LARGE,
    codes::CA_ROOT_BUNDLE,
    codes::CA_ROOT_CHANGED,
    codes::CA_ROOT_UNCONFIRMED,
    codes::CA_URL_INSECURE,
    codes::CA_URL_INVALID,
];

/// Every code a command can return, in one list the UI's list is checked against.
pub const ALL_CODES: &[&str] = &[
    "module_load",
    "no_module",
    "driver_profile",
    "key_removed",
    "no_such_key",
    "ambiguous_key",
    "pin_incorrect",
    "pin_locked",
    "pin_final_try",
    "pin_policy",
    "pin_length",
    "pin_invalid",
    "pin_expired",
    "not_logged_in",
    "object_not_found",
    "unsupported",
    "bad_uri",
    "pkcs11",
    "malformed_data",
    codes::PIN_MISMATCH,
    codes::SETTINGS,
    codes::INTERNAL,
    codes::SUPPORT_BUNDLE,
];

/// Every code at all: the token layer's and the shell's, then the workflows'.
pub fn all_codes() -> impl Iterator<Item = &'static str> {
    ALL_CODES.iter().chain(FLOW_CODES.iter()).copied()
}

/// What a command returns when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// A stable code from [`ALL_CODES`].
    pub code: &'static str,
    /// What happened and what to do next, in the operator's language.
    pub message: String,
    /// The key's PIN status, for the PIN errors (tries left, final try, locked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinStatus>,
    /// The PIN rules broken, for `pin_policy`, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The raw detail support staff need (PKCS#11 function and return code), untranslated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `unlock_by_other`: the unlock in the way, as the CA names it (masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_business: Option<Box<keyward_ca_api::OpenBusinessNotice>>,
}

impl CommandError {
    /// A shell failure with its own code.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            pin: None,
            rules: Vec::new(),
            detail: None,
            open_business: None,
        }
    }

    /// A failure that should not happen; the detail goes to the log, not the screen.
    pub fn internal(detail: impl std::fmt::Display, lang: Lang) -> Self {
        tracing::error!(%detail, "command failed unexpectedly");
        CommandError::new(
            codes::INTERNAL,
            lang.pick(
                "程序出现意外错误，请重试；如仍失败，请联系客服并提供日志文件夹中的日志。",
                "程式出現意外錯誤，請重試；如仍失敗，請聯絡客服並提供日誌資料夾中的日誌。",
                "Something went wrong unexpectedly. Try again; if it keeps failing, contact support with the log folder's logs.",
            ),
        )
    }

    /// A workflow failure: token errors keep their PIN status and rules; a refused root
    /// file says where in the window to choose another; the others take keyward_flows'
    /// `{code, message}` as they are.
    pub fn flow(e: &keyward_flows::FlowError, lang: Lang) -> Self {
        match e {
            keyward_flows::FlowError::Token(t) => return CommandError::token(t, lang),
            keyward_flows::FlowError::CaRoot { path, problem } => {
                return crate::root::refusal(path, *problem, lang);
            }
            _ => {}
        }
        let user = keyward_flows::messages::user_error(e, lang);
        match all_codes().find(|c| *c == user.code) {
            Some(code) => {
                let mut out = CommandError::new(code, user.message);
                match e {
                    keyward_flows::FlowError::PinPolicy(rules) => {
                        out.rules = rules.iter().map(|r| r.message(lang)).collect();
                    }
                    keyward_flows::FlowError::UnlockByOther(notice)
                    | keyward_flows::FlowError::Ca(ClientError::Api {
                        open_business: Some(notice),
                        ..
                    }) => out.open_business = Some(Box::new(notice.clone())),
                    _ => {}
                }
                out
            }
            None => {
                let mut out = CommandError::new(codes::CA_OTHER, user.message);
                out.detail = Some(user.code);
                out
            }
        }
    }

    /// A token-layer failure, mapped exhaustively.
    pub fn token(e: &TokenError, lang: Lang) -> Self {
        let mut out = CommandError::new(e.code(), describe(e, lang));
        match e {
            TokenError::PinIncorrect { status, .. } => out.pin = Some(*status),
            TokenError::PinPolicy(rules) => {
                out.rules = rules.iter().map(|r| r.message(lang)).collect();
            }
            TokenError::ModuleLoad { .. }
            | TokenError::NoModule { .. }
            | TokenError::Profile { .. }
            | TokenError::KeyRemoved { .. }
            | TokenError::Pkcs11 { .. }
            | TokenError::Pki(_)
            | TokenError::Unsupported(_) => out.detail = Some(e.to_string()),
            TokenError::NoSuchToken(_)
            | TokenError::AmbiguousToken(_)
            | TokenError::PinLocked { .. }
            | TokenError::FinalTryUnconfirmed { .. }
            | TokenError::PinLenRange
            | TokenError::PinInvalid
            | TokenError::PinExpired
            | TokenError::NotLoggedIn
            | TokenError::ObjectNotFound(_)
            | TokenError::Uri(_) => {}
        }
        out
    }
}

/// Wrong PINs in a row that lock a key.
const PIN_TRIES: u32 = 10;

/// How many tries are left, as the key reports it.
pub fn tries_left(status: &PinStatus, lang: Lang) -> String {
    match (status.user, status.user_tries_left) {
        (PinState::Locked, _) => lang.pick("已锁定", "已鎖定", "locked").into(),
        (PinState::FinalTry, _) => lang
            .pick("只剩最后一次机会", "只剩最後一次機會", "one try left")
            .into(),
        (_, Some(n)) => {
            // The keys Keyward knows lock after ten wrong PINs in a row.
            let spent = PIN_TRIES.saturating_sub(n);
            match (lang, spent) {
                (Lang::ZhCn, 0) => format!("再错 {n} 次将锁定"),
                (Lang::ZhTw, 0) => format!("再錯 {n} 次將鎖定"),
                (Lang::En, 0) => format!("{n} more wrong tries lock it"),
                (Lang::ZhCn, _) => format!("已输错 {spent} 次，再错 {n} 次将锁定"),
                (Lang::ZhTw, _) => format!("已輸錯 {spent} 次，再錯 {n} 次將鎖定"),
                (Lang::En, _) => format!("{spent} wrong so far, {n} more lock it"),
            }
        }
        (PinState::CountLow, None) => lang
            .pick(
                "已有输错记录，连续输错 10 次将锁定",
                "已有輸錯記錄，連續輸錯 10 次將鎖定",
                "wrong tries are on record; ten in a row lock it",
            )
            .into(),
        (PinState::Ok, None) => lang.pick("正常", "正常", "OK").into(),
    }
}

/// A token error as a sentence for a dialog: what happened, then what to do.
fn describe(e: &TokenError, lang: Lang) -> String {
    let role = |r: &PinRole| match r {
        PinRole::User => lang.pick("证书密码", "憑證密碼", "certificate PIN"),
        PinRole::So => lang.pick("管理员密码", "管理員密碼", "administrator PIN"),
    };
    match e {
        TokenError::ModuleLoad { .. } => lang
            .pick(
                "无法加载 USB Key 驱动。请重新安装证书驱动后再试；“环境检测”页会指出缺少什么。",
                "無法載入 USB Key 驅動。請重新安裝憑證驅動後再試；「環境檢測」頁會指出缺少什麼。",
                "The USB key driver cannot be loaded. Reinstall the certificate driver and try again; the Environment check page says what is missing.",
            )
            .into(),
        TokenError::NoModule { .. } => lang
            .pick(
                "没有找到 USB Key 驱动。请先安装 CA 提供的证书驱动；“环境检测”页会指出缺少哪一个。",
                "沒有找到 USB Key 驅動。請先安裝 CA 提供的憑證驅動；「環境檢測」頁會指出缺少哪一個。",
                "No USB key driver was found. Install the certificate driver your CA provides first; the Environment check page says which one is missing.",
            )
            .into(),
        TokenError::Profile { .. } => lang
            .pick(
                "驱动配置文件有误，请重新安装 Keyward。",
                "驅動設定檔有誤，請重新安裝 Keyward。",
                "A driver profile is broken; reinstall Keyward.",
            )
            .into(),
        TokenError::KeyRemoved { .. } => lang
            .pick(
                "USB Key 已被拔出。请插回后重新操作，未完成的操作不会自动重做。",
                "USB Key 已被拔出。請插回後重新操作，未完成的操作不會自動重做。",
                "The USB key was removed. Plug it back in and start again; nothing is redone by itself.",
            )
            .into(),
        TokenError::NoSuchToken(_) => lang
            .pick(
                "找不到这把 USB Key，它可能已被拔出。",
                "找不到這把 USB Key，它可能已被拔出。",
                "This USB key is not there; it may have been removed.",
            )
            .into(),
        TokenError::AmbiguousToken(n) => match lang {
            Lang::ZhCn => format!("有 {n} 把 USB Key 符合，请在主页选择其中一把。"),
            Lang::ZhTw => format!("有 {n} 把 USB Key 符合，請在主頁選擇其中一把。"),
            Lang::En => format!("{n} USB keys match; pick one on the home page."),
        },
        TokenError::PinIncorrect { role: r, status } => match lang {
            Lang::ZhCn => format!("{}错误，{}。", role(r), tries_left(status, lang)),
            Lang::ZhTw => format!("{}錯誤，{}。", role(r), tries_left(status, lang)),
            Lang::En => format!("Wrong {}: {}.", role(r), tries_left(status, lang)),
        },
        TokenError::PinLocked { role: r } => match lang {
            Lang::ZhCn => format!("{}已锁定。请点击“忘记密码”解锁，解锁免费。", role(r)),
            Lang::ZhTw => format!("{}已鎖定。請點擊「忘記密碼」解鎖，解鎖免費。", role(r)),
            Lang::En => format!(
                "The {} is locked. Use “Forgot PIN” to unlock it; unlocking is free.",
                role(r)
            ),
        },
        TokenError::FinalTryUnconfirmed { .. } => lang
            .pick(
                "只剩最后一次机会：再输错一次 USB Key 就会锁定。请确认后再试，或点击“忘记密码”。",
                "只剩最後一次機會：再輸錯一次 USB Key 就會鎖定。請確認後再試，或點擊「忘記密碼」。",
                "One try left: one more wrong PIN locks the key. Confirm to try, or use “Forgot PIN”.",
            )
            .into(),
        TokenError::PinPolicy(rules) => {
            let list = rules
                .iter()
                .map(|r| r.message(lang))
                .collect::<Vec<_>>()
                .join(lang.pick("；", "；", "; "));
            match lang {
                Lang::ZhCn => format!("新密码不符合要求（{list}），USB Key 未作任何改动。"),
                Lang::ZhTw => format!("新密碼不符合要求（{list}），USB Key 未作任何改動。"),
                Lang::En => format!("The new PIN needs: {list}. Nothing was sent to the key."),
            }
        }
        TokenError::PinLenRange => lang
            .pick(
                "USB Key 不接受这个长度的密码，请换一个。",
                "USB Key 不接受這個長度的密碼，請換一個。",
                "The key refuses a PIN of this length; choose another.",
            )
            .into(),
        TokenError::PinInvalid => lang
            .pick(
                "USB Key 不接受密码中的某些字符，请只用英文字母、数字和英文符号。",
                "USB Key 不接受密碼中的某些字元，請只用英文字母、數字和英文符號。",
                "The key refuses some characters; use only English letters, digits and symbols.",
            )
            .into(),
        TokenError::PinExpired => lang
            .pick(
                "密码已过期，请先修改密码。",
                "密碼已過期，請先修改密碼。",
                "The PIN has expired; change it first.",
            )
            .into(),
        TokenError::NotLoggedIn => lang
            .pick(
                "需要先输入证书密码。",
                "需要先輸入憑證密碼。",
                "Enter the certificate PIN first.",
            )
            .into(),
        TokenError::ObjectNotFound(_) => lang
            .pick(
                "USB Key 上没有找到所需的内容。",
                "USB Key 上沒有找到所需的內容。",
                "What was needed is not on the key.",
            )
            .into(),
        TokenError::Unsupported(_) => lang
            .pick(
                "这把 USB Key 或其驱动不支持此操作，请联系 CA 客服。",
                "這把 USB Key 或其驅動不支援此操作，請聯絡 CA 客服。",
                "This key or its driver cannot do that; contact the CA's support.",
            )
            .into(),
        TokenError::Uri(_) => lang
            .pick(
                "USB Key 地址（PKCS#11 URI）格式有误。",
                "USB Key 位址（PKCS#11 URI）格式有誤。",
                "The key's PKCS#11 URI is malformed.",
            )
            .into(),
        TokenError::Pkcs11 { .. } => lang
            .pick(
                "USB Key 操作失败。请重新插拔后再试；如仍失败，请联系客服并提供日志。",
                "USB Key 操作失敗。請重新插拔後再試；如仍失敗，請聯絡客服並提供日誌。",
                "The key operation failed. Re-plug the key and try again; if it still fails, contact support with the logs.",
            )
            .into(),
        TokenError::Pki(_) => lang
            .pick(
                "USB Key 上的证书无法读取，请联系 CA 客服。",
                "USB Key 上的憑證無法讀取，請聯絡 CA 客服。",
                "The certificate on the key cannot be read; contact the CA's support.",
            )
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_pki::{PinRule, PkiError};
    use std::path::PathBuf;

    fn status(user: PinState, tries: Option<u32>) -> PinStatus {
        PinStatus {
            user,
            user_tries_left: tries,
            user_to_be_changed: false,
            user_initialized: true,
            so: PinState::Ok,
            so_tries_left: None,
        }
    }

    /// One of each variant, so a new variant fails to compile here until it is mapped.
    fn every_token_error() -> Vec<TokenError> {
        let all = vec![
            TokenError::ModuleLoad {
                path: PathBuf::from("/x.so"),
                reason: "r".into(),
            },
            TokenError::NoModule { tried: "t".into() },
            TokenError::Profile {
                path: PathBuf::from("p"),
                reason: "r".into(),
            },
            TokenError::KeyRemoved {
                function: "C_Sign".into(),
                rv: "CKR_DEVICE_REMOVED".into(),
            },
            TokenError::NoSuchToken("s".into()),
            TokenError::AmbiguousToken(2),
            TokenError::PinIncorrect {
                role: PinRole::User,
                status: status(PinState::CountLow, Some(7)),
            },
            TokenError::PinLocked {
                role: PinRole::User,
            },
            TokenError::FinalTryUnconfirmed {
                role: PinRole::User,
            },
            TokenError::PinPolicy(vec![PinRule::NoDigit]),
            TokenError::PinLenRange,
            TokenError::PinInvalid,
            TokenError::PinExpired,
            TokenError::NotLoggedIn,
            TokenError::ObjectNotFound("o".into()),
            TokenError::Unsupported("u".into()),
            TokenError::Uri("u".into()),
            TokenError::Pkcs11 {
                function: "C_Sign".into(),
                rv: "CKR_DEVICE_ERROR".into(),
            },
            TokenError::Pki(PkiError::Certificate("c".into())),
        ];
        for e in &all {
            // Exhaustive on purpose: adding a variant breaks this until it is listed above.
            match e {
                TokenError::ModuleLoad { .. }
                | TokenError::NoModule { .. }
                | TokenError::Profile { .. }
                | TokenError::KeyRemoved { .. }
                | TokenError::NoSuchToken(_)
                | TokenError::AmbiguousToken(_)
                | TokenError::PinIncorrect { .. }
                | TokenError::PinLocked { .. }
                | TokenError::FinalTryUnconfirmed { .. }
                | TokenError::PinPolicy(_)
                | TokenError::PinLenRange
                | TokenError::PinInvalid
                | TokenError::PinExpired
                | TokenError::NotLoggedIn
                | TokenError::ObjectNotFound(_)
                | TokenError::Unsupported(_)
                | TokenError::Uri(_)
                | TokenError::Pkcs11 { .. }
                | TokenError::Pki(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_token_error_has_a_listed_code_and_a_message_in_each_language() {
        for e in every_token_error() {
            for lang in Lang::ALL {
                let c = CommandError::token(&e, lang);
                assert!(ALL_CODES.contains(&c.code), "{} is not listed", c.code);
                assert!(!c.message.is_empty());
            }
        }
        let zh = CommandError::token(
            &TokenError::PinLocked {
                role: PinRole::User,
            },
            Lang::ZhCn,
        );
        assert!(zh.message.contains("忘记密码"), "{}", zh.message);
    }

    #[test]
    fn workflow_errors_keep_their_code_or_fall_back_with_the_raw_one() {
        use keyward_flows::FlowError;
        let cases = [
            (FlowError::AlreadyActive, "already_active"),
            (
                FlowError::RenewalNotOpen { opens_in_days: 12 },
                "renewal_not_open",
            ),
            (FlowError::CertificateExpired, "certificate_expired"),
            (FlowError::NotPaid, "not_paid"),
            (FlowError::AwaitingReview, "awaiting_review"),
            (FlowError::SealScanNotImage, "seal_scan_not_image"),
            (FlowError::NoSeal, "no_seal"),
            (FlowError::NothingInProgress("x"), "nothing_in_progress"),
            (
                FlowError::Token(TokenError::PinLocked {
                    role: PinRole::User,
                }),
                "pin_locked",
            ),
        ];
        for (e, code) in cases {
            for lang in Lang::ALL {
                let c = CommandError::flow(&e, lang);
                assert_eq!(c.code, code);
                assert!(!c.message.is_empty());
            }
        }
        // 签章's files: the original never overwritten, an existing output refused.
        let out = PathBuf::from("/tmp/投标书-已盖章.pdf");
        let cases = [
            (FlowError::OutputExists(out.clone()), "output_exists"),
            (FlowError::OutputIsInput, "output_is_input"),
            (
                FlowError::File {
                    path: out.clone(),
                    reason: "denied".into(),
                },
                "file_io",
            ),
        ];
        for (e, code) in cases {
            for lang in Lang::ALL {
                let c = CommandError::flow(&e, lang);
                assert_eq!(c.code, code);
                assert!(FLOW_CODES.contains(&c.code));
            }
        }
        let zh = CommandError::flow(&FlowError::OutputExists(out), Lang::ZhCn);
        assert!(zh.message.contains("已存在"), "{}", zh.message);
        let zh = CommandError::flow(&FlowError::RenewalNotOpen { opens_in_days: 12 }, Lang::ZhCn);
        assert!(zh.message.contains("12"), "{}", zh.message);

        // The trust model's own refusals.
        let api = |code| {
            FlowError::Ca(ClientError::Api {
                status: 400,
                code,
                message: String::new(),
                open_business: None,
            })
        };
        use keyward_ca_api::ErrorCode;
        let cases = [
            (FlowError::CodeNotRequested, "code_not_requested"),
            (
                FlowError::CertificateUntrusted("not under the pinned root".into()),
                "certificate_untrusted",
            ),
            (api(ErrorCode::RateLimited), "ca_rate_limited"),
            (api(ErrorCode::UnlockUnderWay), "ca_unlock_under_way"),
            (api(ErrorCode::Forbidden), "ca_forbidden"),
            (api(ErrorCode::Unauthorized), "ca_unauthorized"),
        ];
        for (e, code) in cases {
            for lang in Lang::ALL {
                let c = CommandError::flow(&e, lang);
                assert_eq!(c.code, code);
                assert!(!c.message.is_empty());
                assert!(c.open_business.is_none());
            }
        }
    }

    #[test]
    fn another_requesters_unlock_is_named_masked_in_the_message_and_as_data() {
        use keyward_flows::FlowError;
        let notice = keyward_ca_api::OpenBusinessNotice {
            kind: keyward_ca_api::BusinessKind::Unlock,
            requester_masked: "王*".into(),
            phone_masked: "139****0002".into(),
            opened_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        };
        for lang in Lang::ALL {
            let c = CommandError::flow(&FlowError::UnlockByOther(notice.clone()), lang);
            assert_eq!(c.code, "unlock_by_other");
            assert!(c.message.contains("王*") && c.message.contains("139****0002"));
            assert_eq!(c.open_business.as_deref(), Some(&notice));
        }
        let v = serde_json::to_value(CommandError::flow(
            &FlowError::UnlockByOther(notice),
            Lang::ZhCn,
        ))
        .unwrap();
        assert_eq!(v["open_business"]["requester_masked"], "王*");
        assert_eq!(v["open_business"]["phone_masked"], "139****0002");
        assert!(v["open_business"]["opened_at"].is_string());
    }

    #[test]
    fn every_ca_code_is_listed_or_falls_back_with_the_raw_code() {
        use keyward_flows::FlowError;
        for code in keyward_ca_api::ErrorCode::ALL {
            let e = FlowError::Ca(ClientError::Api {
                status: 400,
                code: *code,
                message: String::new(),
                open_business: None,
            });
            for lang in Lang::ALL {
                let c = CommandError::flow(&e, lang);
                assert!(!c.message.is_empty());
                if c.code == codes::CA_OTHER {
                    assert_eq!(c.detail, Some(format!("ca_{}", code.as_str())));
                } else {
                    assert_eq!(c.code, format!("ca_{}", code.as_str()));
                    assert!(FLOW_CODES.contains(&c.code));
                }
            }
        }
        // Flow codes never collide with the token layer's or the shell's.
        for c in FLOW_CODES {
            assert!(!ALL_CODES.contains(c), "{c} twice");
        }
    }

    #[test]
    fn codes_are_pinned() {
        let codes: Vec<&str> = every_token_error().iter().map(TokenError::code).collect();
        assert_eq!(codes, ALL_CODES[..codes.len()]);
        assert_eq!(
            &ALL_CODES[codes.len()..],
            &["pin_mismatch", "settings", "internal", "support_bundle"]
        );
    }

    #[test]
    fn the_ui_lists_exactly_the_same_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/error-codes.json");
        let text = std::fs::read_to_string(path).unwrap();
        let ui: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(ui, ALL_CODES);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/flow-codes.json");
        let text = std::fs::read_to_string(path).unwrap();
        let ui: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(ui, FLOW_CODES);
    }

    #[test]
    fn the_wire_shape_is_code_and_message_with_pin_status_for_wrong_pins() {
        let e = CommandError::token(
            &TokenError::PinIncorrect {
                role: PinRole::User,
                status: status(PinState::CountLow, Some(7)),
            },
            Lang::ZhCn,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "pin_incorrect");
        assert_eq!(v["message"], "证书密码错误，已输错 3 次，再错 7 次将锁定。");
        assert_eq!(v["pin"]["user_tries_left"], 7);
        assert!(v.get("rules").is_none() && v.get("detail").is_none());

        let e = CommandError::token(
            &TokenError::PinPolicy(vec![PinRule::NoDigit, PinRule::NoSpecial]),
            Lang::En,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "pin_policy");
        assert_eq!(v["rules"][0], "a digit");
    }

    #[test]
    fn pkcs11_failures_keep_function_and_return_code_for_support() {
        let e = CommandError::token(
            &TokenError::Pkcs11 {
                function: "C_Sign".into(),
                rv: "CKR_DEVICE_ERROR".into(),
            },
            Lang::ZhCn,
        );
        assert_eq!(e.detail.as_deref(), Some("C_Sign failed: CKR_DEVICE_ERROR"));
    }

    #[test]
    fn tries_left_reads_what_the_key_says() {
        assert_eq!(
            tries_left(&status(PinState::FinalTry, Some(1)), Lang::En),
            "one try left"
        );
        assert_eq!(
            tries_left(&status(PinState::FinalTry, None), Lang::ZhCn),
            "只剩最后一次机会"
        );
        assert_eq!(
            tries_left(&status(PinState::Locked, Some(0)), Lang::ZhTw),
            "已鎖定"
        );
    }
}

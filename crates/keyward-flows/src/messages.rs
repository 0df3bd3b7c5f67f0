//! Every error of the workflows as the `{code, message}` a person reads: what happened and
//! what to do next, in zh-CN, zh-TW or English. The mapping is exhaustive — a new error
//! variant anywhere below does not compile until it is given its words here — and the codes
//! are stable: the desktop UI and scripts branch on them.

use keyward_ca_api::ErrorCode;
use keyward_ca_client::ClientError;
use keyward_pki::{Lang, PkiError};
use keyward_token::{PinRole, PinState, PinStatus, TokenError};
use serde::Serialize;

use crate::FlowError;
use crate::connect::{ROOT_FILE_MAX_BYTES, RootProblem};

/// What the user is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserError {
    /// Stable code.
    pub code: String,
    /// The sentence, in the user's language.
    pub message: String,
}

fn ue(code: &str, message: impl Into<String>) -> UserError {
    UserError {
        code: code.to_owned(),
        message: message.into(),
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
                "剩余次数以设备为准",
                "剩餘次數以設備為準",
                "the key does not say how many tries are left",
            )
            .into(),
    }
}

/// A token error in words.
pub fn token_error(e: &TokenError, lang: Lang) -> UserError {
    let role = |r: &PinRole| match r {
        PinRole::User => lang.pick("密码", "密碼", "PIN"),
        PinRole::So => lang.pick("管理员密码", "管理員密碼", "SO PIN"),
    };
    let message = match e {
        TokenError::PinIncorrect { role: r, status } => match lang {
            Lang::ZhCn => format!("{}错误，{}。连续输错 10 次将锁定证书。", role(r), tries(status, lang)),
            Lang::ZhTw => format!("{}錯誤，{}。連續輸錯 10 次將鎖定憑證。", role(r), tries(status, lang)),
            Lang::En => format!("wrong {}; {}. Ten wrong PINs in a row lock the certificate.", role(r), tries(status, lang)),
        },
        TokenError::PinLocked { role: r } => match lang {
            Lang::ZhCn => format!("{}已锁定。请使用“忘记密码”解锁。", role(r)),
            Lang::ZhTw => format!("{}已鎖定。請使用「忘記密碼」解鎖。", role(r)),
            Lang::En => format!("the {} is locked. Use “forgot password” to unlock it.", role(r)),
        },
        TokenError::FinalTryUnconfirmed { .. } => lang
            .pick(
                "仅剩最后一次机会：再输错将锁定证书。确认无误后再试，或使用“忘记密码”。",
                "僅剩最後一次機會：再輸錯將鎖定憑證。確認無誤後再試，或使用「忘記密碼」。",
                "one try left: another wrong PIN locks the certificate. Confirm to try, or use “forgot password”.",
            )
            .into(),
        TokenError::PinPolicy(rules) => policy_text(rules, lang),
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
                "USB Key 已拔出。请重新插入，再继续刚才的操作。",
                "USB Key 已拔出。請重新插入，再繼續剛才的操作。",
                "the key was removed. Plug it in again, then carry on where you stopped.",
            )
            .into(),
        TokenError::NoSuchToken(sel) => match lang {
            Lang::ZhCn => format!("未找到 USB Key {sel}。请插入 USB Key。"),
            Lang::ZhTw => format!("未找到 USB Key {sel}。請插入 USB Key。"),
            Lang::En => format!("no key matches {sel}. Plug in the key."),
        },
        TokenError::AmbiguousToken(n) => match lang {
            Lang::ZhCn => format!("插入了 {n} 把 USB Key，请指定要操作的一个。"),
            Lang::ZhTw => format!("插入了 {n} 把 USB Key，請指定要操作的一個。"),
            Lang::En => format!("{n} keys are plugged in; choose one."),
        },
        TokenError::ModuleLoad { .. } | TokenError::NoModule { .. } | TokenError::Profile { .. } => format!(
            "{}: {e}",
            lang.pick(
                "无法加载 USB Key 驱动，请安装 USB Key 驱动后重试",
                "無法載入 USB Key 驅動，請安裝 USB Key 驅動後重試",
                "the key's driver could not be loaded; install it and try again"
            )
        ),
        TokenError::NotLoggedIn => lang
            .pick("请先输入密码登录证书。", "請先輸入密碼登入憑證。", "enter the PIN first.")
            .into(),
        TokenError::ObjectNotFound(_) | TokenError::Unsupported(_) | TokenError::Uri(_) | TokenError::Pkcs11 { .. } => {
            format!("{}: {e}", lang.pick("USB Key 操作失败", "USB Key 操作失敗", "the key reported an error"))
        }
        TokenError::Pki(p) => return pki_error(p, lang),
    };
    ue(e.code(), message)
}

fn policy_text(rules: &[keyward_pki::PinRule], lang: Lang) -> String {
    let text = keyward_pki::pin::explain(rules, lang);
    match lang {
        Lang::ZhCn => format!("{text}。未向设备提交，不消耗尝试次数。"),
        Lang::ZhTw => format!("{text}。未向設備提交，不消耗嘗試次數。"),
        Lang::En => format!("{text}. Nothing was sent to the key; no try was spent."),
    }
}

fn pki_error(e: &PkiError, lang: Lang) -> UserError {
    ue(
        "malformed_data",
        format!(
            "{}: {e}",
            lang.pick(
                "证书数据无法识别，请联系 CA 客服",
                "憑證資料無法識別，請聯絡 CA 客服",
                "certificate data could not be read; contact the CA's support"
            )
        ),
    )
}

/// A document that cannot be stamped or read, in words. Nothing was signed and the
/// document itself is untouched in every case.
fn pdf_error(e: &keyward_pdf::PdfError, lang: Lang) -> UserError {
    use keyward_pdf::PdfError as P;
    let untouched = lang.pick(
        "原文件未改动。",
        "原檔案未改動。",
        "The document is untouched.",
    );
    let (code, text) = match e {
        P::TooLarge { limit, .. } => (
            "pdf_too_large",
            match lang {
                Lang::ZhCn => format!("文件超过 {} MB，无法盖章。", limit / (1024 * 1024)),
                Lang::ZhTw => format!("檔案超過 {} MB，無法蓋章。", limit / (1024 * 1024)),
                Lang::En => format!("the document is larger than {} MB and cannot be stamped.", limit / (1024 * 1024)),
            },
        ),
        P::Encrypted => (
            "pdf_encrypted",
            lang.pick(
                "文件已加密或设有密码，无法盖章。请先取消加密再试。",
                "檔案已加密或設有密碼，無法蓋章。請先取消加密再試。",
                "the document is encrypted or password-protected; remove the protection first.",
            )
            .to_owned(),
        ),
        P::Damaged(_) => (
            "pdf_damaged",
            lang.pick(
                "文件不是有效的 PDF 或已损坏，无法盖章。",
                "檔案不是有效的 PDF 或已損毀，無法蓋章。",
                "the file is not a valid PDF or is damaged.",
            )
            .to_owned(),
        ),
        P::PageOutOfRange { page, pages } => (
            "page_out_of_range",
            match lang {
                Lang::ZhCn => format!("文件只有 {pages} 页，没有第 {page} 页。"),
                Lang::ZhTw => format!("檔案只有 {pages} 頁，沒有第 {page} 頁。"),
                Lang::En => format!("the document has {pages} pages; there is no page {page}."),
            },
        ),
        P::OffPage => (
            "seal_off_page",
            lang.pick(
                "印章超出了页面范围，请把盖章位置往页面内移。",
                "印章超出了頁面範圍，請把蓋章位置往頁面內移。",
                "the seal would not lie wholly on the page; move it inwards.",
            )
            .to_owned(),
        ),
        P::RotatedPage(page) => (
            "page_rotated",
            match lang {
                Lang::ZhCn => format!("第 {page} 页是旋转页面，暂不支持在旋转页面上盖章。"),
                Lang::ZhTw => format!("第 {page} 頁是旋轉頁面，暫不支援在旋轉頁面上蓋章。"),
                Lang::En => format!("page {page} is rotated; stamping rotated pages is not supported yet."),
            },
        ),
        P::CrossPageAfterSignature => (
            "cross_page_after_signature",
            lang.pick(
                "文件已有签章，骑缝章须在其他签章之前加盖。请对未签章的文件先盖骑缝章。",
                "檔案已有簽章，騎縫章須在其他簽章之前加蓋。請對未簽章的檔案先蓋騎縫章。",
                "the document is signed already; a cross-page seal goes on before any other signature.",
            )
            .to_owned(),
        ),
        P::Picture(_) => (
            "seal_picture",
            lang.pick(
                "印章图片无法使用，请联系 CA 客服重新制作印章。",
                "印章圖片無法使用，請聯絡 CA 客服重新製作印章。",
                "the seal's picture cannot be used; ask the CA to make the seal again.",
            )
            .to_owned(),
        ),
        P::SignatureTooLarge { .. } => (
            "signature_too_large",
            lang.pick(
                "签名数据过大，无法写入文件。请联系 CA 客服。",
                "簽章資料過大，無法寫入檔案。請聯絡 CA 客服。",
                "the signature is too large for the room kept for it; contact the CA.",
            )
            .to_owned(),
        ),
        P::Signature(_) => (
            "pdf_signature_unreadable",
            lang.pick(
                "文件中的签章无法读取。",
                "檔案中的簽章無法讀取。",
                "a signature in the document cannot be read.",
            )
            .to_owned(),
        ),
    };
    ue(code, format!("{text} {untouched}（{e}）"))
}

/// An instant as the operator reads it: in the computer's own time zone, to the minute.
pub fn local_time(at: time::OffsetDateTime) -> String {
    crate::localtime::minute(at)
}

fn api_message(code: ErrorCode, lang: Lang) -> String {
    let t = |a: &str, b: &str, c: &str| lang.pick(a, b, c).to_owned();
    match code {
        ErrorCode::RateLimited => t(
            "操作过于频繁，请稍后再试。",
            "操作過於頻繁，請稍後再試。",
            "too many attempts in a short time; try again a little later.",
        ),
        ErrorCode::UnlockUnderWay => t(
            "该证书已有他人提交的解锁申请正在办理，请等待其结束或联系 CA 客服。",
            "該憑證已有他人提交的解鎖申請正在辦理，請等待其結束或聯絡 CA 客服。",
            "someone else's unlock of this key is under way; wait for it to end, or contact the CA.",
        ),
        ErrorCode::Forbidden => t(
            "该账号无权进行此操作。",
            "該帳號無權進行此操作。",
            "this account may not do that.",
        ),
        ErrorCode::CodeInvalid => t(
            "验证码错误，请核对短信后重新输入。",
            "驗證碼錯誤，請核對簡訊後重新輸入。",
            "wrong code; check the SMS and type it again.",
        ),
        ErrorCode::CodeExpired => t(
            "验证码已过期或未发送，请重新获取验证码。",
            "驗證碼已過期或未發送，請重新取得驗證碼。",
            "the code has expired or was never sent; ask for a new one.",
        ),
        ErrorCode::CodeAttemptsExhausted => t(
            "验证码错误次数过多，已失效，请重新获取。",
            "驗證碼錯誤次數過多，已失效，請重新取得。",
            "too many wrong codes; ask for a new one.",
        ),
        ErrorCode::CodeCooldown => t(
            "验证码刚刚发送，请稍后再获取。",
            "驗證碼剛剛發送，請稍後再取得。",
            "a code was sent moments ago; wait a little before asking again.",
        ),
        ErrorCode::CodeDailyLimit => t(
            "今日获取验证码次数已达上限，请明天再试。",
            "今日取得驗證碼次數已達上限，請明天再試。",
            "no more codes today; try again tomorrow.",
        ),
        ErrorCode::RenewalWindowNotOpen => t(
            "证书到期前 90 天内才能续期。",
            "憑證到期前 90 天內才能續期。",
            "renewal opens 90 days before expiry.",
        ),
        ErrorCode::CertificateExpired => t(
            "证书已过期，无法续期，请重新申请证书。",
            "憑證已過期，無法續期，請重新申請憑證。",
            "the certificate has expired; apply for a new one.",
        ),
        ErrorCode::KeyNotActivated => t(
            "证书尚未激活，请先激活证书。",
            "憑證尚未啟用，請先啟用憑證。",
            "the certificate is not activated yet; activate it first.",
        ),
        ErrorCode::KeyNotFound => t(
            "CA 没有这把 USB Key 的记录，请联系 CA 客服。",
            "CA 沒有這把 USB Key 的記錄，請聯絡 CA 客服。",
            "the CA has no record of this key; contact its support.",
        ),
        ErrorCode::WrongState => t(
            "该业务当前状态不允许此操作，请查看办理进度。",
            "該業務目前狀態不允許此操作，請查看辦理進度。",
            "the business is not at this step; check its progress.",
        ),
        ErrorCode::InvalidYears => t(
            "续期年限为 1 至 5 年。",
            "續期年限為 1 至 5 年。",
            "renewal is for 1 to 5 years.",
        ),
        ErrorCode::InvalidAttachment => t(
            "附件须为 JPG、PNG 或 PDF，且不超过 5 MB。",
            "附件須為 JPG、PNG 或 PDF，且不超過 5 MB。",
            "attachments are JPG, PNG or PDF, at most 5 MB.",
        ),
        ErrorCode::AttachmentRequired => t(
            "请先上传申请材料。",
            "請先上傳申請材料。",
            "upload the documents first.",
        ),
        ErrorCode::RefundNotAllowed => t(
            "只有未受理的业务，或交付 14 天内未激活的证书可以退款。",
            "只有未受理的業務，或交付 14 天內未啟用的憑證可以退款。",
            "only business not yet accepted, or a key not activated within 14 days of delivery, can be refunded.",
        ),
        ErrorCode::NameChangeNotSeal => t(
            "单位名称变更须办理“变更”业务，不能只变更印章。",
            "單位名稱變更須辦理「變更」業務，不能只變更印章。",
            "a company-name change goes through the change business, not the seal.",
        ),
        ErrorCode::SignatureInvalid
        | ErrorCode::SignatureMissing
        | ErrorCode::NonceInvalid
        | ErrorCode::NonceReplayed => t(
            "证书签名校验未通过，请重新操作。",
            "憑證簽章校驗未通過，請重新操作。",
            "the key's signature was not accepted; try again.",
        ),
        ErrorCode::CertificateMismatch | ErrorCode::InvalidCertificate => t(
            "证书与 CA 的记录不符，请联系 CA 客服。",
            "憑證與 CA 的記錄不符，請聯絡 CA 客服。",
            "the certificate does not match the CA's records; contact its support.",
        ),
        ErrorCode::InvalidJson
        | ErrorCode::InvalidRequest
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::BodyTooLarge
        | ErrorCode::NotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::Unauthorized
        | ErrorCode::InvalidUscc
        | ErrorCode::InvalidParty
        | ErrorCode::OrganisationNotFound
        | ErrorCode::KeyAlreadyRegistered
        | ErrorCode::BusinessNotFound
        | ErrorCode::InvalidCsr
        | ErrorCode::CsrSignatureInvalid
        | ErrorCode::CsrKeyReused
        | ErrorCode::UnsupportedKeyAlgorithm
        | ErrorCode::PaymentNotFound
        | ErrorCode::PaymentSignatureInvalid
        | ErrorCode::AlreadyDecided
        | ErrorCode::Internal
        | ErrorCode::Unknown => t(
            "CA 服务拒绝了请求，请稍后重试或联系 CA 客服。",
            "CA 服務拒絕了請求，請稍後重試或聯絡 CA 客服。",
            "the CA service refused the request; try again later or contact its support.",
        ),
    }
}

/// A CA client error in words.
pub fn client_error(e: &ClientError, lang: Lang) -> UserError {
    match e {
        ClientError::Offline { .. } => ue(
            "ca_offline",
            lang.pick(
                "无法连接 CA 服务，请检查网络后重试。已完成的步骤不会丢失。",
                "無法連線 CA 服務，請檢查網路後重試。已完成的步驟不會遺失。",
                "the CA service cannot be reached; check the network and retry. Nothing done so far is lost.",
            ),
        ),
        ClientError::Timeout => ue(
            "ca_timeout",
            lang.pick("CA 服务响应超时，请稍后重试。", "CA 服務回應逾時，請稍後重試。", "the CA service did not answer in time; retry later."),
        ),
        ClientError::Tls(_) => ue(
            "ca_untrusted",
            lang.pick(
                "CA 服务的身份校验失败，已停止连接。请确认网络环境安全，或联系 CA 客服。",
                "CA 服務的身分校驗失敗，已停止連線。請確認網路環境安全，或聯絡 CA 客服。",
                "the CA service's identity could not be verified, so Keyward did not connect. Check your network, or contact the CA.",
            ),
        ),
        ClientError::Server { .. } => ue(
            "ca_unavailable",
            lang.pick("CA 服务暂时不可用，请稍后重试。", "CA 服務暫時無法使用，請稍後重試。", "the CA service is unavailable; retry later."),
        ),
        ClientError::Malformed(_) => ue(
            "ca_malformed",
            lang.pick("CA 服务的应答无法识别，请稍后重试。", "CA 服務的回應無法識別，請稍後重試。", "the CA service's answer could not be read; retry later."),
        ),
        ClientError::Api { code, .. } => ue(&format!("ca_{}", code.as_str()), api_message(*code, lang)),
        ClientError::Signer(inner) => match inner.downcast_ref::<TokenError>() {
            Some(t) => token_error(t, lang),
            None => ue("key_signature", format!("{}: {inner}", lang.pick("证书签名失败", "憑證簽章失敗", "the key could not sign"))),
        },
        ClientError::Config(_) | ClientError::Credentials(_) => ue(
            "client_config",
            format!("{}: {e}", lang.pick("客户端配置有误", "用戶端設定有誤", "client configuration")),
        ),
    }
}

/// A CA root file that cannot be pinned, in words.
fn root_error(path: &std::path::Path, problem: RootProblem, lang: Lang) -> UserError {
    let file = path.display();
    match problem {
        RootProblem::Unreadable => ue(
            "ca_root",
            match lang {
                Lang::ZhCn => format!(
                    "无法读取 CA 根证书文件 {file}，或它不是一张证书。请使用 CA 提供的根证书（PEM 格式）。未连接 CA 服务。"
                ),
                Lang::ZhTw => format!(
                    "無法讀取 CA 根憑證檔案 {file}，或它不是一張憑證。請使用 CA 提供的根憑證（PEM 格式）。未連線 CA 服務。"
                ),
                Lang::En => format!(
                    "the CA root file {file} cannot be read, or is not a certificate. Use the root your CA gives (PEM); the CA was not contacted."
                ),
            },
        ),
        RootProblem::TooLarge => {
            let kib = ROOT_FILE_MAX_BYTES / 1024;
            ue(
                "ca_root_too_large",
                match lang {
                    Lang::ZhCn => format!(
                        "CA 根证书文件 {file} 超过 {kib} KB，不是一张根证书。请使用 CA 提供的根证书文件（只含一张证书的 PEM 文件）。"
                    ),
                    Lang::ZhTw => format!(
                        "CA 根憑證檔案 {file} 超過 {kib} KB，不是一張根憑證。請使用 CA 提供的根憑證檔案（只含一張憑證的 PEM 檔案）。"
                    ),
                    Lang::En => format!(
                        "the CA root file {file} is larger than {kib} KB, so it is not a root certificate. Use the root file your CA gives (a PEM file with one certificate)."
                    ),
                },
            )
        }
        RootProblem::Bundle(n) => ue(
            "ca_root_bundle",
            match lang {
                Lang::ZhCn => format!(
                    "CA 根证书文件 {file} 包含 {n} 张证书。Keyward 只信任一张根证书：请使用只含 CA 根证书的文件，不要使用证书链或证书包。"
                ),
                Lang::ZhTw => format!(
                    "CA 根憑證檔案 {file} 包含 {n} 張憑證。Keyward 只信任一張根憑證：請使用只含 CA 根憑證的檔案，不要使用憑證鏈或憑證包。"
                ),
                Lang::En => format!(
                    "the CA root file {file} holds {n} certificates. Keyward trusts exactly one root: use the file with the CA's root alone, not a chain or bundle."
                ),
            },
        ),
    }
}

/// A workflow error in words. Exhaustive.
pub fn user_error(e: &FlowError, lang: Lang) -> UserError {
    let t = |a: &str, b: &str, c: &str| lang.pick(a, b, c).to_owned();
    match e {
        FlowError::Token(t) => token_error(t, lang),
        FlowError::Ca(c) => client_error(c, lang),
        FlowError::Pki(p) => pki_error(p, lang),
        FlowError::PinPolicy(rules) => ue("pin_policy", policy_text(rules, lang)),
        FlowError::CaRoot { path, problem } => root_error(path, *problem, lang),
        FlowError::Journal(_) => ue(
            "journal",
            format!(
                "{}: {e}",
                lang.pick(
                    "无法读写本机的办理记录",
                    "無法讀寫本機的辦理記錄",
                    "the local workflow journal could not be used"
                )
            ),
        ),
        FlowError::NoCertificate => ue(
            "no_certificate",
            t(
                "USB Key 上没有单位证书。",
                "USB Key 上沒有單位憑證。",
                "there is no organisation certificate on the key.",
            ),
        ),
        FlowError::AlreadyActive => ue(
            "already_active",
            t(
                "此证书无需激活：它已激活，或不是这家 CA 签发的证书。",
                "此憑證無需啟用：它已啟用，或不是這家 CA 簽發的憑證。",
                "this certificate needs no activation: it is active already, or not one this CA issued.",
            ),
        ),
        FlowError::RenewalNotOpen { opens_in_days } => ue(
            "renewal_not_open",
            match lang {
                Lang::ZhCn => format!("证书到期前 90 天内才能续期，{opens_in_days} 天后可以办理。"),
                Lang::ZhTw => format!("憑證到期前 90 天內才能續期，{opens_in_days} 天後可以辦理。"),
                Lang::En => {
                    format!("renewal opens 90 days before expiry, in {opens_in_days} days.")
                }
            },
        ),
        FlowError::CertificateExpired => ue(
            "certificate_expired",
            t(
                "证书已过期，不能续期，请重新申请证书。",
                "憑證已過期，不能續期，請重新申請憑證。",
                "the certificate has expired and cannot be renewed; apply for a new one.",
            ),
        ),
        FlowError::CertificateMismatch => ue(
            "certificate_mismatch",
            t(
                "CA 签发的证书与新密钥不符，未写入 USB Key，原证书仍可使用。请联系 CA 客服。",
                "CA 簽發的憑證與新金鑰不符，未寫入 USB Key，原憑證仍可使用。請聯絡 CA 客服。",
                "the issued certificate does not match the new key; nothing was written and the old certificate still works. Contact the CA.",
            ),
        ),
        FlowError::AwaitingReview => ue(
            "awaiting_review",
            t(
                "CA 正在审核（约 2 个工作日），请稍后查看办理进度。",
                "CA 正在審核（約 2 個工作日），請稍後查看辦理進度。",
                "the CA is reviewing (about two working days); check the progress later.",
            ),
        ),
        FlowError::Rejected { note } => ue(
            "rejected",
            match lang {
                Lang::ZhCn => format!("CA 审核未通过：{note}"),
                Lang::ZhTw => format!("CA 審核未通過：{note}"),
                Lang::En => format!("the CA rejected the application: {note}"),
            },
        ),
        FlowError::NotPaid => ue(
            "not_paid",
            t(
                "续期费用尚未支付，请先完成支付。",
                "續期費用尚未支付，請先完成支付。",
                "the renewal is not paid yet; pay first.",
            ),
        ),
        FlowError::SealScanNotImage => ue(
            "seal_scan_not_image",
            t(
                "印章扫描件须为 PNG 或 JPG 图片：请将盖章后的印模扫描为图片后上传。",
                "印章掃描檔須為 PNG 或 JPG 圖片：請將蓋章後的印模掃描為圖片後上傳。",
                "the seal scan must be a PNG or JPEG image: scan the stamped impression as a picture and upload it.",
            ),
        ),
        FlowError::SealInvalid(why) => ue(
            "seal_invalid",
            match lang {
                Lang::ZhCn => format!(
                    "电子印章校验未通过，未写入 USB Key，原有印章不变。请联系 CA 客服。（{why}）"
                ),
                Lang::ZhTw => format!(
                    "電子印章校驗未通過，未寫入 USB Key，原有印章不變。請聯絡 CA 客服。（{why}）"
                ),
                Lang::En => format!(
                    "the electronic seal failed its checks; nothing was written and any seal already on the key is unchanged. Contact the CA. ({why})"
                ),
            },
        ),
        FlowError::SealOtherCertificate => ue(
            "seal_other_certificate",
            t(
                "该电子印章不属于本证书，未写入 USB Key。请确认插入的是本单位的 USB Key，或联系 CA 客服。",
                "該電子印章不屬於本憑證，未寫入 USB Key。請確認插入的是本單位的 USB Key，或聯絡 CA 客服。",
                "this electronic seal belongs to another certificate; nothing was written. Check that this is your organisation's key, or contact the CA.",
            ),
        ),
        FlowError::SealWriteMismatch => ue(
            "seal_write_mismatch",
            t(
                "印章写入后读回不一致。请重新点击“安装印章”。",
                "印章寫入後讀回不一致。請重新點擊「安裝印章」。",
                "the seal read back from the key differs from what was written. Click “install seal” again.",
            ),
        ),
        FlowError::NoSeal => ue(
            "no_seal",
            t(
                "USB Key 上没有电子印章。可先“申请印章”，审核通过后“安装印章”。",
                "USB Key 上沒有電子印章。可先「申請印章」，審核通過後「安裝印章」。",
                "there is no electronic seal on the key. Apply for one, then install it once the CA approves.",
            ),
        ),
        FlowError::UnlockByOther(n) => ue(
            "unlock_by_other",
            match lang {
                Lang::ZhCn => format!(
                    "该证书已有一笔解锁申请正在办理（申请人 {}，手机 {}，{} 提交），本机不会接手他人的申请。请等待其审核结束，或联系 CA 客服。",
                    n.requester_masked,
                    n.phone_masked,
                    local_time(n.opened_at)
                ),
                Lang::ZhTw => format!(
                    "該憑證已有一筆解鎖申請正在辦理（申請人 {}，手機 {}，{} 提交），本機不會接手他人的申請。請等待其審核結束，或聯絡 CA 客服。",
                    n.requester_masked,
                    n.phone_masked,
                    local_time(n.opened_at)
                ),
                Lang::En => format!(
                    "an unlock of this key is already under way (requested by {}, phone {}, on {}); Keyward never takes over someone else's. Wait for its review to end, or contact the CA.",
                    n.requester_masked,
                    n.phone_masked,
                    local_time(n.opened_at)
                ),
            },
        ),
        FlowError::CodeNotRequested => ue(
            "code_not_requested",
            t(
                "请先在本机获取验证码，再输入短信中的验证码（只有本机获取的验证码可以使用）。",
                "請先在本機取得驗證碼，再輸入簡訊中的驗證碼（只有本機取得的驗證碼可以使用）。",
                "ask for the code on this computer first, then type the code the SMS brings (only a code asked for here can be used).",
            ),
        ),
        FlowError::CertificateUntrusted(why) => ue(
            "certificate_untrusted",
            match lang {
                Lang::ZhCn => format!(
                    "CA 签发的新证书未通过校验，未写入 USB Key，原证书仍可使用。请联系 CA 客服。（{why}）"
                ),
                Lang::ZhTw => format!(
                    "CA 簽發的新憑證未通過校驗，未寫入 USB Key，原憑證仍可使用。請聯絡 CA 客服。（{why}）"
                ),
                Lang::En => format!(
                    "the new certificate failed its checks; nothing was written and the old certificate still works. Contact the CA. ({why})"
                ),
            },
        ),
        FlowError::Pdf(p) => pdf_error(p, lang),
        FlowError::File { path, reason } => ue(
            "file_io",
            match lang {
                Lang::ZhCn => format!("无法读写文件 {}：{reason}", path.display()),
                Lang::ZhTw => format!("無法讀寫檔案 {}：{reason}", path.display()),
                Lang::En => format!(
                    "the file {} could not be read or written: {reason}",
                    path.display()
                ),
            },
        ),
        FlowError::OutputExists(path) => ue(
            "output_exists",
            match lang {
                Lang::ZhCn => format!(
                    "文件 {} 已存在。盖章后的文件另存为新文件，请换一个文件名。",
                    path.display()
                ),
                Lang::ZhTw => format!(
                    "檔案 {} 已存在。蓋章後的檔案另存為新檔案，請換一個檔名。",
                    path.display()
                ),
                Lang::En => format!(
                    "{} exists already. A stamped document is saved as a new file: choose another name.",
                    path.display()
                ),
            },
        ),
        FlowError::OutputIsInput => ue(
            "output_is_input",
            t(
                "不能覆盖原文件。盖章后的文件另存为新文件，请换一个文件名。",
                "不能覆蓋原檔案。蓋章後的檔案另存為新檔案，請換一個檔名。",
                "the original is never overwritten. A stamped document is saved as a new file: choose another name.",
            ),
        ),
        FlowError::NothingInProgress(what) => ue(
            "nothing_in_progress",
            format!(
                "{}（{what}）",
                lang.pick(
                    "没有进行中的业务",
                    "沒有進行中的業務",
                    "nothing in progress"
                )
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_every_language_has_words() {
        let samples = [
            FlowError::NoCertificate,
            FlowError::AlreadyActive,
            FlowError::RenewalNotOpen { opens_in_days: 12 },
            FlowError::CertificateExpired,
            FlowError::NotPaid,
            FlowError::SealOtherCertificate,
            FlowError::NoSeal,
            FlowError::Token(TokenError::PinLocked {
                role: PinRole::User,
            }),
            FlowError::Ca(ClientError::Timeout),
            FlowError::Ca(ClientError::Api {
                status: 400,
                code: ErrorCode::CodeInvalid,
                message: String::new(),
                open_business: None,
            }),
            FlowError::CaRoot {
                path: "root.pem".into(),
                problem: RootProblem::Bundle(2),
            },
            FlowError::CaRoot {
                path: "root.pem".into(),
                problem: RootProblem::TooLarge,
            },
            FlowError::CaRoot {
                path: "root.pem".into(),
                problem: RootProblem::Unreadable,
            },
        ];
        let codes: Vec<String> = samples
            .iter()
            .map(|e| user_error(e, Lang::ZhCn).code)
            .collect();
        assert_eq!(
            codes,
            [
                "no_certificate",
                "already_active",
                "renewal_not_open",
                "certificate_expired",
                "not_paid",
                "seal_other_certificate",
                "no_seal",
                "pin_locked",
                "ca_timeout",
                "ca_code_invalid",
                "ca_root_bundle",
                "ca_root_too_large",
                "ca_root",
            ]
        );
        for e in &samples {
            for lang in Lang::ALL {
                assert!(!user_error(e, lang).message.is_empty());
            }
        }
        assert!(
            user_error(&samples[7], Lang::ZhCn)
                .message
                .contains("忘记密码")
        );
        assert!(
            user_error(&samples[2], Lang::En)
                .message
                .contains("12 days")
        );
    }
}

//! The operator's workflows with the CA as commands: activate, unlock, renew, seal and
//! progress, thin over `keyward_flows`. Each runs on a blocking worker thread; slow ones
//! report their steps through a [`Channel`] of [`keyward_flows::Progress`].
//!
//! PINs become [`Pin`] on entry and are never logged, stored or returned.

use std::sync::PoisonError;

use base64::Engine;
use keyward_ca_api::{AttachmentKind, Business, CodeSent, Handler, InvoiceDetails, SealKind};
use keyward_flows::connect::{CaClient, CaSettings, RootSource};
use keyward_flows::{Env, FinalTry, FlowError, FlowKind, Journal, Progress, TokenRef};
use keyward_pki::{CertSummary, Lang, Pin};
use serde::Serialize;
use tauri::State;
use tauri::ipc::{Channel, InvokeBody, Request};

use crate::error::{CommandError, codes};
use crate::root::RootInfo;
use crate::{Desktop, keys};

/// Largest file accepted for an attachment or a seal scan (the CA's own limit).
pub const MAX_UPLOAD: usize = 5 * 1024 * 1024;

/// What a workflow needs from the settings, read once per command: the CA client's
/// settings (none while no CA address is set) and where the journal is.
#[derive(Debug, Clone)]
pub(crate) struct FlowSettings {
    ca: Option<CaSettings>,
    journal: std::path::PathBuf,
}

impl Desktop {
    fn flow_settings(&self) -> FlowSettings {
        let s = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        FlowSettings {
            ca: s
                .get()
                .ca_url
                .clone()
                .map(|url| CaSettings::new(url, s.get().ca_root.clone().map(RootSource::File))),
            journal: self.journal_dir.clone(),
        }
    }

    /// A CA client for the current settings, when a CA is set and its root reads, and the
    /// journal of this computer's workflows.
    pub(crate) fn standing_client(&self) -> Option<(CaClient, Journal)> {
        let settings = self.flow_settings();
        let client = keyward_flows::connect::connect(settings.ca.as_ref()?).ok()?;
        Some((client, Journal::new(&settings.journal)))
    }

    /// Runs workflow work for the key `serial` on a blocking worker thread. Afterwards the
    /// CA is asked again where the key stands, so Home follows what the workflow did.
    async fn flow<T, F>(&self, serial: String, work: F) -> Result<T, CommandError>
    where
        T: Send + 'static,
        F: FnOnce(&Env, &TokenRef) -> Result<T, FlowError> + Send + 'static,
    {
        let lang = self.lang();
        let settings = self.flow_settings();
        let keys = std::sync::Arc::clone(&self.keys);
        let standings = std::sync::Arc::clone(&self.standings);
        let asked = serial.clone();
        let run = move || -> Result<T, CommandError> {
            // The settings first: a CA not set or a root gone bad is said before the key.
            let ca = settings.ca.as_ref().ok_or_else(|| ca_not_set(lang))?;
            let client =
                keyward_flows::connect::connect(ca).map_err(|e| CommandError::flow(&e, lang))?;
            let (module, token) = keys
                .find(Some(&serial))
                .map_err(|e| CommandError::token(&e, lang))?;
            let env = Env::new(module, client, Journal::new(&settings.journal));
            work(&env, &token).map_err(|e| {
                tracing::info!(error = %e, "workflow command failed");
                CommandError::flow(&e, lang)
            })
        };
        let result = match tauri::async_runtime::spawn_blocking(run).await {
            Ok(r) => r,
            Err(join) => Err(CommandError::internal(join, lang)),
        };
        standings.ask(&asked);
        result
    }
}

/// No CA address is set yet: Settings is where it goes.
fn ca_not_set(lang: Lang) -> CommandError {
    CommandError::new(
        codes::CA_NOT_SET,
        lang.pick(
            "尚未设置 CA 服务地址。请在“设置 · CA 服务”中填写 CA 提供的地址和根证书。",
            "尚未設定 CA 服務位址。請在「設定 · CA 服務」中填寫 CA 提供的位址和根憑證。",
            "No CA service is set. Enter the address and root certificate your CA gives in Settings · CA service.",
        ),
    )
}

/// The CA root named in the settings (none when unset), with where a pinned copy came from.
#[tauri::command]
pub(crate) async fn ca_root_show(
    desktop: State<'_, Desktop>,
) -> Result<Option<RootInfo>, CommandError> {
    let lang = desktop.lang();
    let (path, origin) = {
        let s = desktop
            .settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (s.get().ca_root.clone(), s.get().ca_root_origin.clone())
    };
    let Some(path) = path else {
        return Ok(None);
    };
    let mut info = tauri::async_runtime::spawn_blocking(move || crate::root::inspect(&path, lang))
        .await
        .map_err(|e| CommandError::internal(e, lang))??;
    info.copied_from = origin;
    Ok(Some(info))
}

/// Where an SMS code went, as the window shows it: the masked phone and the 编号 the SMS
/// prints beside the code. Built field by field from the CA's answer, so a code's ticket
/// can never ride along to the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeNotice {
    /// The phone the SMS went to, masked: `138****8000`.
    pub phone_masked: String,
    /// The 编号 printed in the SMS beside the code.
    pub reference: String,
    /// Until when the code works.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// No new code can be asked for before this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub resend_after: time::OffsetDateTime,
}

impl From<CodeSent> for CodeNotice {
    fn from(sent: CodeSent) -> Self {
        CodeNotice {
            phone_masked: sent.phone_masked.clone(),
            reference: sent.reference.clone(),
            expires_at: sent.expires_at,
            resend_after: sent.resend_after,
        }
    }
}

pub(crate) fn confirm(yes: bool) -> FinalTry {
    if yes {
        FinalTry::Confirmed
    } else {
        FinalTry::Refuse
    }
}

fn bad_argument(lang: Lang, zh_cn: &str, zh_tw: &str, en: &str) -> CommandError {
    CommandError::new(codes::BAD_ARGUMENT, lang.pick(zh_cn, zh_tw, en))
}

fn sender(progress: Channel<Progress>) -> impl FnMut(Progress) {
    move |p| {
        if let Err(e) = progress.send(p) {
            tracing::debug!(error = %e, "progress not delivered to the window");
        }
    }
}

/// 激活证书, step 1: asked from this computer, the CA sends an activation code to the
/// handler's phone. Its ticket stays in this computer's journal; the window learns where the
/// code went and its 编号.
#[tauri::command]
pub(crate) async fn activate_send_code(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<CodeNotice, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::activate::send_code(env, &t.serial).map(CodeNotice::from)
        })
        .await
}

/// 激活证书, step 2: the SMS code and the new PIN typed twice.
#[tauri::command]
pub(crate) async fn activate(
    desktop: State<'_, Desktop>,
    serial: String,
    code: String,
    new_pin: String,
    new_pin_again: String,
    progress: Channel<Progress>,
) -> Result<keyward_ca_api::KeyStatus, CommandError> {
    let (new, again) = (Pin::new(new_pin), Pin::new(new_pin_again));
    keys::check_typed_twice(&new, &again, desktop.lang())?;
    drop(again);
    let code = Some(code.trim().to_owned()).filter(|c| !c.is_empty());
    desktop
        .flow(serial, move |env, t| {
            let input = keyward_flows::activate::ActivateInput { code, new_pin: new };
            let mut on = sender(progress);
            keyward_flows::activate::activate(env, t, &input, Some(&mut on))
        })
        .await
}

/// 忘记密码, step 1: who is asking. The latest business's handler is approved at once.
#[tauri::command]
pub(crate) async fn unlock_apply(
    desktop: State<'_, Desktop>,
    serial: String,
    name: String,
    id_number: String,
    phone: String,
) -> Result<Business, CommandError> {
    let lang = desktop.lang();
    if name.trim().is_empty() || id_number.trim().is_empty() || phone.trim().is_empty() {
        return Err(bad_argument(
            lang,
            "请填写姓名、身份证号和手机号。",
            "請填寫姓名、身分證號和手機號。",
            "Enter your name, ID number and mobile number.",
        ));
    }
    let requester = Handler {
        name: name.trim().to_owned(),
        id_number: id_number.trim().to_owned(),
        phone: phone.trim().to_owned(),
    };
    desktop
        .flow(serial, move |env, t| {
            keyward_flows::unlock::apply(env, &t.serial, &requester)
        })
        .await
}

/// The header carrying a file command's other arguments: JSON, percent-encoded (a header
/// value is ASCII, a seal's name is Chinese). The file itself is the raw request body, so a
/// 5 MB scan crosses the IPC as 5 MB of bytes, not as a JSON array of numbers four times
/// that size.
pub const ARGS_HEADER: &str = "keyward-args";

/// A file command's arguments from [`ARGS_HEADER`] and its bytes from the raw body.
fn file_request<A: serde::de::DeserializeOwned>(
    request: &Request<'_>,
    lang: Lang,
) -> Result<(A, Vec<u8>), CommandError> {
    let malformed = || {
        bad_argument(
            lang,
            "文件没有按原样传给客户端，请重新选择文件。",
            "檔案沒有按原樣傳給用戶端，請重新選擇檔案。",
            "The file did not reach the client as bytes; choose it again.",
        )
    };
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(malformed());
    };
    let args = request
        .headers()
        .get(ARGS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| percent_encoding::percent_decode_str(v).decode_utf8().ok())
        .and_then(|json| serde_json::from_str(&json).ok())
        .ok_or_else(malformed)?;
    Ok((args, bytes.clone()))
}

/// Checks an uploaded file: not empty, at most 5 MB.
fn check_upload(bytes: &[u8], lang: Lang) -> Result<(), CommandError> {
    if bytes.is_empty() || bytes.len() > MAX_UPLOAD {
        return Err(bad_argument(
            lang,
            "文件为空或超过 5 MB，请重新选择。",
            "檔案為空或超過 5 MB，請重新選擇。",
            "The file is empty or larger than 5 MB; choose another.",
        ));
    }
    Ok(())
}

/// The MIME type of an image or PDF, from its first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// What `unlock_attach` takes beside the file.
#[derive(Debug, serde::Deserialize)]
struct AttachArgs {
    serial: String,
    kind: String,
}

/// 忘记密码: one document for the reviewer (JPEG, PNG or PDF, at most 5 MB): the file as
/// the raw body, `{serial, kind}` in [`ARGS_HEADER`].
#[tauri::command]
pub(crate) async fn unlock_attach(
    desktop: State<'_, Desktop>,
    request: Request<'_>,
) -> Result<keyward_ca_api::Attachment, CommandError> {
    let lang = desktop.lang();
    let (AttachArgs { serial, kind }, bytes) = file_request(&request, lang)?;
    let kind = AttachmentKind::parse(&kind).ok_or_else(|| {
        bad_argument(
            lang,
            "请选择材料类型。",
            "請選擇材料類型。",
            "Choose what kind of document this is.",
        )
    })?;
    check_upload(&bytes, lang)?;
    let mime = sniff(&bytes).ok_or_else(|| {
        bad_argument(
            lang,
            "只能上传 JPG、PNG 或 PDF 文件。",
            "只能上傳 JPG、PNG 或 PDF 檔案。",
            "Only JPG, PNG or PDF files can be uploaded.",
        )
    })?;
    desktop
        .flow(serial, move |env, t| {
            keyward_flows::unlock::attach(env, &t.serial, kind, mime, bytes)
        })
        .await
}

/// 忘记密码: hands the documents to the reviewer.
#[tauri::command]
pub(crate) async fn unlock_submit(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<Business, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::unlock::submit(env, &t.serial)
        })
        .await
}

/// 忘记密码: where the review stands.
#[tauri::command]
pub(crate) async fn unlock_status(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<Business, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::unlock::status(env, &t.serial)
        })
        .await
}

/// 忘记密码: once approved, a (new) SMS code to the requester's phone. The handler of
/// record's application is approved with its first code already sent.
#[tauri::command]
pub(crate) async fn unlock_send_code(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<CodeNotice, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::unlock::send_code(env, &t.serial).map(CodeNotice::from)
        })
        .await
}

/// 忘记密码, last step: the SMS code and the new PIN typed twice.
#[tauri::command]
pub(crate) async fn unlock_finish(
    desktop: State<'_, Desktop>,
    serial: String,
    code: String,
    new_pin: String,
    new_pin_again: String,
    progress: Channel<Progress>,
) -> Result<Business, CommandError> {
    let (new, again) = (Pin::new(new_pin), Pin::new(new_pin_again));
    keys::check_typed_twice(&new, &again, desktop.lang())?;
    drop(again);
    let code = Some(code.trim().to_owned()).filter(|c| !c.is_empty());
    desktop
        .flow(serial, move |env, t| {
            let mut on = sender(progress);
            keyward_flows::unlock::finish(env, t, code.as_deref(), &new, Some(&mut on))
        })
        .await
}

/// Whether and when the certificate can be renewed, and the renewal under way.
#[derive(Debug, Clone, Serialize)]
pub struct RenewState {
    /// The certificate now on the key, with its renewal status.
    pub certificate: CertSummary,
    /// The renewal journaled on this computer, if any (its step; its secret stays here).
    pub pending: Option<keyward_flows::renew::RenewPending>,
    /// The CA's business for it, if any.
    pub business: Option<Business>,
    /// The fee per year, in fen.
    pub fee_per_year_fen: i64,
}

/// 证书续期: eligibility (the 90-day window), the renewal under way and its business.
#[tauri::command]
pub(crate) async fn renew_status(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<RenewState, CommandError> {
    desktop
        .flow(serial, |env, t| {
            let certificate = keyward_flows::renew::eligibility(env, t)?;
            let (pending, business) = match keyward_flows::renew::under_way(env, &t.serial)? {
                Some((p, b)) => (Some(p), b),
                None => (None, None),
            };
            Ok(RenewState {
                certificate,
                pending,
                business,
                fee_per_year_fen: keyward_flows::renew::fee_fen(1),
            })
        })
        .await
}

/// 证书续期: applies for 1–5 years (200 元/年) with the invoice details, signed by the key.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub(crate) async fn renew_apply(
    desktop: State<'_, Desktop>,
    serial: String,
    years: u8,
    invoice_title: String,
    tax_id: String,
    email: String,
    pin: String,
    confirm_final_try: bool,
) -> Result<Business, CommandError> {
    let pin = Pin::new(pin);
    let lang = desktop.lang();
    if !(1..=5).contains(&years) {
        return Err(bad_argument(
            lang,
            "续期年限为 1 至 5 年。",
            "續期年限為 1 至 5 年。",
            "Renew for 1 to 5 years.",
        ));
    }
    if invoice_title.trim().is_empty() || !email.contains('@') {
        return Err(bad_argument(
            lang,
            "请填写发票抬头和接收发票的邮箱。",
            "請填寫發票抬頭和接收發票的郵箱。",
            "Enter the invoice title and the e-mail address for the invoice.",
        ));
    }
    let invoice = InvoiceDetails {
        title: invoice_title.trim().to_owned(),
        tax_id: tax_id.trim().to_owned(),
        email: email.trim().to_owned(),
    };
    desktop
        .flow(serial, move |env, t| {
            keyward_flows::renew::apply(env, t, &pin, confirm(confirm_final_try), years, invoice)
        })
        .await
}

/// 证书续期: pays the renewal (the sandbox provider in the demo and tests).
#[tauri::command]
pub(crate) async fn renew_pay(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<keyward_ca_api::PaymentRequest, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::renew::pay_sandbox(env, &t.serial)
        })
        .await
}

/// 安装证书: new key pair, request, issuance, write, verify, old pair retired; resumes an
/// interrupted install.
#[tauri::command]
pub(crate) async fn renew_install(
    desktop: State<'_, Desktop>,
    serial: String,
    pin: String,
    confirm_final_try: bool,
    progress: Channel<Progress>,
) -> Result<CertSummary, CommandError> {
    let pin = Pin::new(pin);
    desktop
        .flow(serial, move |env, t| {
            let mut on = sender(progress);
            keyward_flows::renew::install(env, t, &pin, confirm(confirm_final_try), Some(&mut on))
        })
        .await
}

/// What `seal_apply` takes beside the scan.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealApplyArgs {
    serial: String,
    name: String,
    kind: String,
    change: bool,
    pin: String,
    confirm_final_try: bool,
}

/// 申请印章 / 变更印章: the stamped scan (PNG or JPEG) as the raw body, the seal's name and
/// kind, the PIN and the final-try confirmation in [`ARGS_HEADER`].
#[tauri::command]
pub(crate) async fn seal_apply(
    desktop: State<'_, Desktop>,
    request: Request<'_>,
) -> Result<Business, CommandError> {
    let lang = desktop.lang();
    let (args, scan) = file_request::<SealApplyArgs>(&request, lang)?;
    let SealApplyArgs {
        serial,
        name,
        kind,
        change,
        pin,
        confirm_final_try,
    } = args;
    let pin = Pin::new(pin);
    let kind = SealKind::parse(&kind).ok_or_else(|| {
        bad_argument(
            lang,
            "请选择印章类型：公章或合同专用章。",
            "請選擇印章類型：公章或合約專用章。",
            "Choose the seal kind: official or contract.",
        )
    })?;
    if name.trim().is_empty() {
        return Err(bad_argument(
            lang,
            "请填写印章名称（单位全称）。",
            "請填寫印章名稱（單位全稱）。",
            "Enter the seal's name (the organisation's registered name).",
        ));
    }
    check_upload(&scan, lang)?;
    let mime = match sniff(&scan) {
        Some(m @ ("image/png" | "image/jpeg")) => m,
        _ => {
            return Err(bad_argument(
                lang,
                "印章扫描件只能是 PNG 或 JPG 图片。",
                "印章掃描檔只能是 PNG 或 JPG 圖片。",
                "The seal scan must be a PNG or JPG image.",
            ));
        }
    };
    desktop
        .flow(serial, move |env, t| {
            keyward_flows::seal::apply(
                env,
                t,
                &pin,
                confirm(confirm_final_try),
                name.trim(),
                kind,
                change,
                &scan,
                mime,
            )
        })
        .await
}

/// The seal business of a key, if any.
#[tauri::command]
pub(crate) async fn seal_status(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<Option<Business>, CommandError> {
    desktop
        .flow(serial, |env, t| keyward_flows::seal::status(env, &t.serial))
        .await
}

/// A seal with its image, for an `<img>` (a data URL).
#[derive(Debug, Clone, Serialize)]
pub struct SealShown {
    /// Name, kind, validity and whether it verifies.
    #[serde(flatten)]
    pub seal: keyward_flows::seal::SealView,
    /// `data:` URL of the image, when its type is known.
    pub image_url: Option<String>,
}

fn shown(seal: keyward_flows::seal::SealView) -> SealShown {
    let image_url = seal.mime_type.map(|m| {
        format!(
            "data:{m};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&seal.image)
        )
    });
    SealShown { seal, image_url }
}

/// 安装印章: checks the seal the CA made and writes it to the key.
#[tauri::command]
pub(crate) async fn seal_install(
    desktop: State<'_, Desktop>,
    serial: String,
    pin: String,
    confirm_final_try: bool,
    progress: Channel<Progress>,
) -> Result<SealShown, CommandError> {
    let pin = Pin::new(pin);
    desktop
        .flow(serial, move |env, t| {
            let mut on = sender(progress);
            keyward_flows::seal::install(env, t, &pin, confirm(confirm_final_try), Some(&mut on))
                .map(shown)
        })
        .await
}

/// 下载电子印章申请表: the CA's blank seal form, saved in the operator's download folder
/// (the home folder when there is none) under a name not yet taken; answers the file's path.
#[tauri::command]
pub(crate) async fn seal_form_download<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<String, CommandError> {
    use tauri::Manager;
    let paths = app.path();
    let dir = paths
        .download_dir()
        .ok()
        .filter(|d| d.is_dir())
        .or_else(|| paths.home_dir().ok())
        .unwrap_or_else(std::env::temp_dir);
    desktop
        .flow(serial, move |env, _| {
            keyward_flows::seal::save_form(env, &dir).map(|p| p.display().to_string())
        })
        .await
}

/// The seal on the key, with its image.
#[tauri::command]
pub(crate) async fn seal_show(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<SealShown, CommandError> {
    desktop
        .flow(serial, |env, t| {
            keyward_flows::seal::show(env, t).map(shown)
        })
        .await
}

/// 办理进度查询: every business of the key, newest first, with its timeline. The CA shows
/// them to the key alone, so the PIN comes through the login guard.
#[tauri::command]
pub(crate) async fn progress_list(
    desktop: State<'_, Desktop>,
    serial: String,
    pin: String,
    confirm_final_try: bool,
) -> Result<keyward_flows::progress::KeyProgress, CommandError> {
    let pin = Pin::new(pin);
    desktop
        .flow(serial, move |env, t| {
            keyward_flows::progress::progress(env, t, &pin, confirm(confirm_final_try))
        })
        .await
}

/// The workflows journaled on this computer that can be resumed for a key (no CA call).
#[tauri::command]
pub(crate) async fn flow_pending(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<Vec<FlowKind>, CommandError> {
    Ok(Journal::new(&desktop.journal_dir).pending(&serial))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyward_ca_api::{BusinessKind, BusinessState, Secret};
    use keyward_flows::activate::{ActivateJournal, ActivateStep};
    use keyward_flows::renew::{RenewJournal, RenewPending, RenewStep};
    use keyward_flows::seal::{SealJournal, SealStep};
    use keyward_flows::unlock::{UnlockJournal, UnlockStep};
    use serde_json::Value;

    /// Field names of the CA's secrets (`pin` and `code` are taken: a PIN *status*, an
    /// error code; their values are checked below instead).
    const NAMES: &[&str] = &["secret", "ticket", "transport_pin", "so_pin", "new_so_pin"];

    /// No field named like a secret, and none of `secrets` anywhere in the text.
    pub(crate) fn assert_clean(what: &str, v: &Value, secrets: &[String]) {
        fn walk(what: &str, v: &Value) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        assert!(!NAMES.contains(&k.as_str()), "{what} carries `{k}`: {v}");
                        walk(what, v);
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(what, v)),
                _ => {}
            }
        }
        walk(what, v);
        let text = v.to_string();
        for s in secrets {
            assert!(
                !text.contains(s.as_str()),
                "{what} carries a secret: {text}"
            );
        }
    }

    fn summary() -> CertSummary {
        let now = time::OffsetDateTime::now_utc();
        CertSummary {
            subject: "CN=广州示例科技有限公司".into(),
            organization: Some("广州示例科技有限公司".into()),
            common_name: None,
            credit_code: None,
            issuer: "CN=CA".into(),
            issuer_name: None,
            serial: "01".into(),
            not_before: now,
            not_after: now + time::Duration::days(40),
            days_left: 40,
            key: keyward_pki::KeyAlgorithm::Ec {
                curve: "P-256".into(),
            },
            is_ca: false,
            sha256: "AB".into(),
            renewal: keyward_pki::RenewalStatus::Open { days_left: 40 },
        }
    }

    fn business(kind: BusinessKind, state: BusinessState) -> Business {
        let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        Business {
            id: "bu_1".into(),
            kind,
            state,
            key_serial: Some("K1".into()),
            uscc: "91440101MA5DM00032".into(),
            fee_fen: 20000,
            created_at: at,
            updated_at: at,
            timeline: Vec::new(),
        }
    }

    /// Every answer the window gets that is made from what the journal holds: built from
    /// journal entries that each carry a secret, then serialised as the IPC does.
    #[test]
    fn nothing_the_window_receives_carries_a_journaled_secret_or_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let secrets: Vec<String> = (1..=4).map(|i| format!("SECRET-VALUE-{i}-x9")).collect();
        let serial = "K1";
        journal
            .save(
                FlowKind::Activate,
                serial,
                &ActivateJournal {
                    step: ActivateStep::CodeSent,
                    ticket: Some(Secret::new(&secrets[0])),
                },
            )
            .unwrap();
        journal
            .save(
                FlowKind::Unlock,
                serial,
                &UnlockJournal {
                    business_id: "bu_u".into(),
                    secret: Secret::new(&secrets[1]),
                    requester_sha256: Some("ab".repeat(32)),
                    step: UnlockStep::Applied,
                },
            )
            .unwrap();
        let renew = RenewJournal {
            business_id: "bu_r".into(),
            secret: Some(Secret::new(&secrets[2])),
            old_id: "01".into(),
            step: RenewStep::Issued {
                new_id: "02".into(),
                certificate_pem: "-----BEGIN CERTIFICATE-----".into(),
                chain_pem: Vec::new(),
            },
        };
        journal.save(FlowKind::Renew, serial, &renew).unwrap();
        journal
            .save(
                FlowKind::Seal,
                serial,
                &SealJournal {
                    business_id: "bu_s".into(),
                    secret: Some(Secret::new(&secrets[3])),
                    step: SealStep::Submitted,
                },
            )
            .unwrap();
        // The journal does hold them (so the checks below would see a leak).
        let on_disk: String = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect();
        assert!(secrets.iter().all(|s| on_disk.contains(s.as_str())));

        // flow_pending, and the resumable part of progress_list.
        let pending = journal.pending(serial);
        assert_eq!(pending.len(), 4);
        assert_clean(
            "flow_pending",
            &serde_json::to_value(&pending).unwrap(),
            &secrets,
        );
        let progress = keyward_flows::progress::KeyProgress {
            businesses: vec![business(BusinessKind::Renewal, BusinessState::Paid)],
            resumable: pending,
        };
        assert_clean(
            "progress_list",
            &serde_json::to_value(&progress).unwrap(),
            &secrets,
        );

        // renew_status: what the journal says of the renewal, as the window sees it.
        let state = RenewState {
            certificate: summary(),
            pending: Some(RenewPending {
                business_id: renew.business_id.clone(),
                old_id: renew.old_id.clone(),
                step: renew.step.clone(),
            }),
            business: Some(business(
                BusinessKind::Renewal,
                BusinessState::CertificateIssued,
            )),
            fee_per_year_fen: 20000,
        };
        assert_clean(
            "renew_status",
            &serde_json::to_value(&state).unwrap(),
            &secrets,
        );

        // activate_send_code / unlock_send_code: the CA's answer carries the ticket; the
        // window's does not.
        let sent = CodeSent {
            phone_masked: "138****8001".into(),
            reference: "38".into(),
            ticket: Some(Secret::new(&secrets[0])),
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            resend_after: time::OffsetDateTime::UNIX_EPOCH,
        };
        let notice = serde_json::to_value(CodeNotice::from(sent)).unwrap();
        assert_clean("activate_send_code", &notice, &secrets);
        assert_eq!(notice["reference"], "38");

        // Home's badges: what waits, from the businesses this computer follows.
        let standing = keyward_flows::standing::Standing {
            state: keyward_ca_api::KeyState::Active,
            waiting: keyward_flows::standing::collect_waiting(&[
                business(BusinessKind::Unlock, BusinessState::Approved),
                business(BusinessKind::Seal, BusinessState::CertificateIssued),
            ]),
        };
        assert_clean(
            "token_list standing",
            &serde_json::to_value(&standing).unwrap(),
            &secrets,
        );

        // A failing workflow's error, e.g. the journal unreadable.
        let e = CommandError::flow(
            &keyward_flows::FlowError::Journal(dir.path().display().to_string()),
            Lang::ZhCn,
        );
        assert_clean("an error", &serde_json::to_value(&e).unwrap(), &secrets);
    }
}

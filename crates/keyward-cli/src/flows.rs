//! The workflow commands: activate, unlock, renew, seal, progress, resume, watch.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use keyward_ca_api::{AttachmentKind, Handler, InvoiceDetails};
use keyward_flows::connect::{CaSettings, RootSource};
use keyward_flows::keys::{KeyView, TokenEvent, WatchOptions, Watcher};
use keyward_flows::{
    Env, FinalTry, FlowError, FlowKind, Journal, Module, PinRole, PinState, Progress, Step,
    TokenError, TokenRef,
};
use keyward_pki::{Lang, Pin};

use crate::messages::exit;
use crate::{CliResult, Ctx, Failure, TokenArg, ask_yes, label, print_json};

/// Where PINs come from: a prompt without echo, or lines on a file descriptor.
#[derive(Debug, Args)]
pub(crate) struct PinInput {
    /// Read PINs, one per line, from this file descriptor instead of asking (0: standard
    /// input). The order is the command's: see its help.
    #[arg(long, value_name = "FD")]
    pin_fd: Option<u32>,
    /// Spend the last PIN try: only when the key is at its final try.
    #[arg(long)]
    confirm_final_try: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProgressArgs {
    #[command(flatten)]
    token: TokenArg,
    /// Lines on --pin-fd: the PIN.
    #[command(flatten)]
    pins: PinInput,
}

#[derive(Debug, Args)]
pub(crate) struct ActivateArgs {
    #[command(flatten)]
    token: TokenArg,
    /// The activation code from the SMS (asked for when not given).
    #[arg(long)]
    code: Option<String>,
    /// Send the activation code again, then stop.
    #[arg(long)]
    send_code: bool,
    /// Lines on --pin-fd: the new PIN.
    #[command(flatten)]
    pins: PinInput,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UnlockCommand {
    /// Apply, saying who you are (approved at once for the key's handler of record).
    Apply {
        #[command(flatten)]
        token: TokenArg,
        /// Your name.
        #[arg(long)]
        name: String,
        /// Your resident identity card number.
        #[arg(long)]
        id_number: String,
        /// Your mobile number.
        #[arg(long)]
        phone: String,
    },
    /// Upload a document for the reviewer (JPEG, PNG or PDF, at most 5 MB).
    Attach {
        #[command(flatten)]
        token: TokenArg,
        /// id_card, authorisation_letter, business_licence or other.
        #[arg(long)]
        kind: String,
        /// The file.
        file: PathBuf,
    },
    /// Hand the documents to the reviewer.
    Submit(TokenArg),
    /// Where the review stands.
    Status(TokenArg),
    /// Send the SMS code again.
    Code(TokenArg),
    /// Finish with the SMS code and a new PIN (lines on --pin-fd: the new PIN).
    Finish {
        #[command(flatten)]
        token: TokenArg,
        /// The code from the SMS.
        #[arg(long)]
        code: Option<String>,
        #[command(flatten)]
        pins: PinInput,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SealCommand {
    /// 申请印章 (or 变更印章 with --change): the seal's name and kind, and the stamped scan
    /// (PNG or JPEG); handed to the CA's review (lines on --pin-fd: the PIN).
    Apply {
        #[command(flatten)]
        token: TokenArg,
        /// The seal's text: the organisation's registered name (a contract seal may add
        /// 合同专用章).
        #[arg(long)]
        name: String,
        /// official (公章) or contract (合同专用章).
        #[arg(long)]
        kind: String,
        /// Replace the key's seal (it no longer matches the physical stamp).
        #[arg(long)]
        change: bool,
        /// The stamped scan, PNG or JPEG.
        scan_file: PathBuf,
        #[command(flatten)]
        pins: PinInput,
    },
    /// Where the seal business stands.
    Status(TokenArg),
    /// 安装印章: check the seal the CA made and write it to the key (lines on --pin-fd: the
    /// PIN).
    Install {
        #[command(flatten)]
        token: TokenArg,
        #[command(flatten)]
        pins: PinInput,
    },
    /// The seal on the key.
    Show {
        #[command(flatten)]
        token: TokenArg,
        /// Write the seal's image to this file.
        #[arg(long, value_name = "FILE")]
        export_image: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RenewCommand {
    /// Whether the certificate can be renewed now.
    Status(TokenArg),
    /// Apply for renewal (lines on --pin-fd: the PIN).
    Apply {
        #[command(flatten)]
        token: TokenArg,
        /// 1 to 5 years, 200 yuan a year.
        #[arg(long, default_value_t = 1)]
        years: u8,
        /// Invoice title (default: the organisation's name).
        #[arg(long)]
        invoice_title: Option<String>,
        /// Taxpayer id (default: the unified social credit code).
        #[arg(long)]
        tax_id: Option<String>,
        /// Where the electronic invoice goes.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        pins: PinInput,
    },
    /// Pay the renewal (prints where to pay; --sandbox pays with the test provider).
    Pay {
        #[command(flatten)]
        token: TokenArg,
        /// Pay with the CA's sandbox provider (tests and demos).
        #[arg(long)]
        sandbox: bool,
    },
    /// 安装证书: install the renewed certificate (lines on --pin-fd: the PIN).
    Install {
        #[command(flatten)]
        token: TokenArg,
        #[command(flatten)]
        pins: PinInput,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    #[command(flatten)]
    token: TokenArg,
    /// The SMS code, where the interrupted step still needs one.
    #[arg(long)]
    code: Option<String>,
    /// Lines on --pin-fd: the PIN (the new one for activation and unlock).
    #[command(flatten)]
    pins: PinInput,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<u64>,
    /// Poll instead of waiting for the module's slot events.
    #[arg(long)]
    poll: bool,
}

pub(crate) fn step_text(step: Step, lang: Lang) -> &'static str {
    match step {
        Step::ReadingKey => lang.pick("读取 USB Key", "讀取 USB Key", "reading the key"),
        Step::ContactingCa => lang.pick("连接 CA 服务", "連線 CA 服務", "contacting the CA"),
        Step::SettingPin => lang.pick("设置密码", "設定密碼", "setting the PIN"),
        Step::GeneratingKey => lang.pick(
            "在 USB Key 内生成新密钥",
            "在 USB Key 內產生新金鑰",
            "generating the key pair on the key",
        ),
        Step::SigningRequest => lang.pick(
            "签署证书请求",
            "簽署憑證請求",
            "signing the certificate request",
        ),
        Step::Signing => lang.pick(
            "在 USB Key 内签名",
            "在 USB Key 內簽章",
            "signing on the key",
        ),
        Step::Issuing => lang.pick(
            "CA 签发证书",
            "CA 簽發憑證",
            "the CA issues the certificate",
        ),
        Step::Writing => lang.pick("写入 USB Key", "寫入 USB Key", "writing to the key"),
        Step::Verifying => lang.pick(
            "校验写入的内容",
            "校驗寫入的內容",
            "checking what was written",
        ),
        Step::RetiringOld => lang.pick(
            "移除被替换的旧证书",
            "移除被替換的舊憑證",
            "removing the certificate it replaces",
        ),
        Step::Confirming => lang.pick("通知 CA 办理完成", "通知 CA 辦理完成", "telling the CA"),
    }
}

pub(crate) fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_owned();
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("keyward")
}

impl Ctx {
    fn flow_err(&self) -> impl Fn(FlowError) -> Failure + '_ {
        move |e| Failure::flow(&e, self.lang)
    }

    /// The CA client's settings from `--ca` and `--ca-root`, when a CA is named.
    pub(crate) fn ca_settings(&self) -> Option<CaSettings> {
        let url = self.ca.clone()?;
        Some(CaSettings::new(
            url,
            self.ca_root.clone().map(RootSource::File),
        ))
    }

    fn journal(&self) -> Journal {
        Journal::new(data_dir(self.data_dir.as_deref()).join("journal"))
    }

    fn env(&self, module: Arc<Module>) -> CliResult<Env> {
        let settings = self.ca_settings().ok_or_else(|| {
            Failure::other(
                exit::USAGE,
                "ca_missing",
                "name the CA service with --ca URL (or KEYWARD_CA_URL)",
            )
        })?;
        Env::from_settings(module, &settings, self.journal()).map_err(self.flow_err())
    }

    /// The keys with what the CA says of each (awaiting activation, something to install),
    /// when a CA is named; a CA that cannot be asked leaves each key as it says itself.
    pub(crate) fn with_standings(&self, keys: Vec<KeyView>) -> Vec<KeyView> {
        let Some(settings) = self.ca_settings().filter(|_| !keys.is_empty()) else {
            return keys;
        };
        let unreachable = |e: &FlowError| {
            tracing::info!(error = %e, "cannot ask the CA about the keys");
            eprintln!(
                "keyward: {} ({})",
                self.lang.pick(
                    "无法向 CA 服务查询，以下只显示 USB Key 本身的信息",
                    "無法向 CA 服務查詢，以下只顯示 USB Key 本身的資訊",
                    "the CA service could not be asked; what follows is what the keys say themselves",
                ),
                keyward_flows::user_error(e, self.lang).message
            );
        };
        let ca = match keyward_flows::connect::connect(&settings) {
            Ok(ca) => ca,
            Err(e) => {
                unreachable(&e);
                return keys;
            }
        };
        let journal = self.journal();
        let mut told = false;
        keys.into_iter()
            .map(|k| {
                let standing = keyward_flows::standing::standing(&ca, &journal, &k.token.serial)
                    .map_err(|e| {
                        if !told {
                            unreachable(&e);
                            told = true;
                        }
                    })
                    .ok();
                k.with_standing(standing)
            })
            .collect()
    }

    fn key_env(&self, token: &TokenArg) -> CliResult<(Env, TokenRef)> {
        let (m, t) = self.one_token(token.token.as_deref())?;
        Ok((self.env(m)?, t))
    }

    fn progress_printer(&self) -> impl FnMut(Progress) + '_ {
        let lang = self.lang;
        let json = self.json;
        move |p: Progress| {
            if !json {
                eprintln!("[{}/{}] {}…", p.index, p.total, step_text(p.step, lang));
            }
        }
    }

    /// Reads `n` PINs: lines on the descriptor, or prompts (`prompts` are label keys).
    fn read_pins(&self, input: &PinInput, prompts: &[&str]) -> CliResult<Vec<Pin>> {
        if let Some(fd) = input.pin_fd {
            return read_lines(fd, prompts.len())
                .map_err(|e| Failure::other(exit::USAGE, "pin_input", e));
        }
        prompts
            .iter()
            .map(|key| {
                rpassword::prompt_password(label(key, self.lang))
                    .map(Pin::new)
                    .map_err(|e| {
                        Failure::other(
                            exit::USAGE,
                            "pin_input",
                            format!("{e} (no terminal? use --pin-fd)"),
                        )
                    })
            })
            .collect()
    }

    /// A new PIN typed twice (or one line on the descriptor).
    fn read_new_pin(&self, input: &PinInput) -> CliResult<Pin> {
        if input.pin_fd.is_some() {
            return self.read_pins(input, &["new_pin"]).map(|mut v| v.remove(0));
        }
        let mut v = self.read_pins(input, &["new_pin", "again"])?;
        let (new, again) = (v.remove(0), v.remove(0));
        if !new.matches(&again) {
            return Err(Failure::other(
                exit::USAGE,
                "pin_mismatch",
                label("mismatch", self.lang),
            ));
        }
        Ok(new)
    }

    /// The guard's confirmation: from the flag, or asked at a terminal when the key is at
    /// its final try. Locked keys go to the unlock wizard.
    fn confirmation(&self, env: &Env, token: &TokenRef, input: &PinInput) -> CliResult<FinalTry> {
        if input.confirm_final_try {
            return Ok(FinalTry::Confirmed);
        }
        let status = env.pin_status(token).map_err(self.flow_err())?;
        match status.user {
            PinState::Locked => Err(Failure::token(
                &TokenError::PinLocked {
                    role: PinRole::User,
                },
                self.lang,
            )),
            PinState::FinalTry if input.pin_fd.is_none() && std::io::stdin().is_terminal() => {
                if ask_yes(label("final_try_q", self.lang)) {
                    Ok(FinalTry::Confirmed)
                } else {
                    Err(Failure::token(
                        &TokenError::FinalTryUnconfirmed {
                            role: PinRole::User,
                        },
                        self.lang,
                    ))
                }
            }
            _ => Ok(FinalTry::Refuse),
        }
    }

    fn done<T: serde::Serialize>(&self, value: &T, text: &str) -> CliResult<()> {
        if self.json {
            print_json(value)
        } else {
            println!("{text}");
            Ok(())
        }
    }

    pub(crate) fn activate(&self, a: ActivateArgs) -> CliResult<()> {
        let (env, t) = self.key_env(&a.token)?;
        let fail = self.flow_err();
        let sent_text = |sent: &keyward_ca_api::CodeSent| match self.lang {
            Lang::ZhCn => format!(
                "激活验证码已发送至 {}，短信编号 {}。请输入编号为 {} 的短信中的验证码。",
                sent.phone_masked, sent.reference, sent.reference
            ),
            Lang::ZhTw => format!(
                "啟用驗證碼已發送至 {}，簡訊編號 {}。請輸入編號為 {} 的簡訊中的驗證碼。",
                sent.phone_masked, sent.reference, sent.reference
            ),
            Lang::En => format!(
                "the activation code was sent to {} under reference {}; type the code from the SMS with that reference.",
                sent.phone_masked, sent.reference
            ),
        };
        if a.send_code {
            let sent = keyward_flows::activate::send_code(&env, &t.serial).map_err(&fail)?;
            return self.done(&sent, &sent_text(&sent));
        }
        let step = keyward_flows::activate::pending(&env, &t.serial).map_err(&fail)?;
        let resuming = step == Some(keyward_flows::activate::ActivateStep::PinSet);
        let code = match (a.code, resuming) {
            (Some(c), _) => Some(c),
            (None, true) => None,
            (None, false) => {
                // No code asked for on this computer yet: ask for one before prompting.
                if step.is_none() && std::io::stdin().is_terminal() {
                    let sent =
                        keyward_flows::activate::send_code(&env, &t.serial).map_err(&fail)?;
                    eprintln!("{}", sent_text(&sent));
                }
                Some(self.prompt_line(self.lang.pick(
                    "短信激活码: ",
                    "簡訊啟用碼: ",
                    "SMS activation code: ",
                ))?)
            }
        };
        let new_pin = self.read_new_pin(&a.pins)?;
        let mut on = self.progress_printer();
        let status = keyward_flows::activate::activate(
            &env,
            &t,
            &keyward_flows::activate::ActivateInput { code, new_pin },
            Some(&mut on),
        )
        .map_err(&fail)?;
        self.done(
            &status,
            self.lang.pick(
                "证书激活成功，请牢记您设置的密码。",
                "憑證啟用成功，請牢記您設定的密碼。",
                "Activated. Keep your PIN safe.",
            ),
        )
    }

    fn prompt_line(&self, prompt: &str) -> CliResult<String> {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::other(
                exit::USAGE,
                "code_missing",
                "give the SMS code with --code",
            ));
        }
        eprint!("{prompt}");
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::other(exit::USAGE, "code_missing", e.to_string()))?;
        Ok(line.trim().to_owned())
    }

    pub(crate) fn unlock(&self, c: UnlockCommand) -> CliResult<()> {
        let fail = self.flow_err();
        match c {
            UnlockCommand::Apply {
                token,
                name,
                id_number,
                phone,
            } => {
                // A locked key cannot sign: the application names the key by serial only.
                let (env, t) = self.key_env(&token)?;
                let b = keyward_flows::unlock::apply(
                    &env,
                    &t.serial,
                    &Handler {
                        name,
                        id_number,
                        phone,
                    },
                )
                .map_err(&fail)?;
                let text = match b.state {
                    keyward_ca_api::BusinessState::Approved => self.lang.pick(
                        "审核已自动通过，验证码已发送至经办人手机。请执行 keyward unlock finish。",
                        "審核已自動通過，驗證碼已發送至經辦人手機。請執行 keyward unlock finish。",
                        "approved at once; the SMS code is on its way. Next: keyward unlock finish.",
                    ),
                    _ => self.lang.pick(
                        "您不是最近一次业务的经办人，请上传材料（keyward unlock attach）后提交审核（keyward unlock submit）。",
                        "您不是最近一次業務的經辦人，請上傳材料（keyward unlock attach）後提交審核（keyward unlock submit）。",
                        "you are not the latest business's handler: upload documents (keyward unlock attach), then submit (keyward unlock submit).",
                    ),
                };
                self.done(&b, text)
            }
            UnlockCommand::Attach { token, kind, file } => {
                let (env, t) = self.key_env(&token)?;
                let kind = AttachmentKind::parse(&kind).ok_or_else(|| {
                    Failure::other(
                        exit::USAGE,
                        "attachment_kind",
                        format!("unknown kind {kind}"),
                    )
                })?;
                let bytes = std::fs::read(&file).map_err(|e| {
                    Failure::other(
                        exit::USAGE,
                        "attachment_file",
                        format!("{}: {e}", file.display()),
                    )
                })?;
                let content_type = match file
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("png") => "image/png",
                    Some("pdf") => "application/pdf",
                    _ => {
                        return Err(Failure::other(
                            exit::USAGE,
                            "attachment_type",
                            "attachments are JPG, PNG or PDF",
                        ));
                    }
                };
                let a = keyward_flows::unlock::attach(&env, &t.serial, kind, content_type, bytes)
                    .map_err(&fail)?;
                self.done(
                    &a,
                    self.lang.pick("材料已上传。", "材料已上傳。", "uploaded."),
                )
            }
            UnlockCommand::Submit(token) => {
                let (env, t) = self.key_env(&token)?;
                let b = keyward_flows::unlock::submit(&env, &t.serial).map_err(&fail)?;
                self.done(
                    &b,
                    self.lang.pick(
                        "已提交审核，约 2 个工作日。",
                        "已提交審核，約 2 個工作日。",
                        "submitted for review (about two working days).",
                    ),
                )
            }
            UnlockCommand::Status(token) => {
                let (env, t) = self.key_env(&token)?;
                let b = keyward_flows::unlock::status(&env, &t.serial).map_err(&fail)?;
                self.done(&b, &format!("{}: {}", b.id, b.state.as_str()))
            }
            UnlockCommand::Code(token) => {
                let (env, t) = self.key_env(&token)?;
                let sent = keyward_flows::unlock::send_code(&env, &t.serial).map_err(&fail)?;
                self.done(&sent, &format!("→ {}", sent.phone_masked))
            }
            UnlockCommand::Finish { token, code, pins } => {
                let (env, t) = self.key_env(&token)?;
                let new_pin = self.read_new_pin(&pins)?;
                let mut on = self.progress_printer();
                let b = keyward_flows::unlock::finish(
                    &env,
                    &t,
                    code.as_deref(),
                    &new_pin,
                    Some(&mut on),
                )
                .map_err(&fail)?;
                self.done(
                    &b,
                    self.lang.pick(
                        "解锁成功，请使用新密码。",
                        "解鎖成功，請使用新密碼。",
                        "unlocked; use your new PIN.",
                    ),
                )
            }
        }
    }

    pub(crate) fn renew(&self, c: RenewCommand) -> CliResult<()> {
        let fail = self.flow_err();
        match c {
            RenewCommand::Status(token) => {
                let (env, t) = self.key_env(&token)?;
                let s = keyward_flows::renew::eligibility(&env, &t).map_err(&fail)?;
                let text = crate::messages::renewal(&s.renewal, self.lang);
                self.done(&s, &text)
            }
            RenewCommand::Apply {
                token,
                years,
                invoice_title,
                tax_id,
                email,
                pins,
            } => {
                let (env, t) = self.key_env(&token)?;
                let cert = keyward_flows::renew::eligibility(&env, &t).map_err(&fail)?;
                let invoice = InvoiceDetails {
                    title: invoice_title.or(cert.organization).unwrap_or_default(),
                    tax_id: tax_id.or(cert.credit_code).unwrap_or_default(),
                    email,
                };
                let confirm = self.confirmation(&env, &t, &pins)?;
                let pin = self.read_pins(&pins, &["old_pin"])?.remove(0);
                let b = keyward_flows::renew::apply(&env, &t, &pin, confirm, years, invoice)
                    .map_err(&fail)?;
                let yuan = b.fee_fen / 100;
                let text = match self.lang {
                    Lang::ZhCn => format!(
                        "续期申请已提交：{years} 年，费用 {yuan} 元。下一步：keyward renew pay"
                    ),
                    Lang::ZhTw => format!(
                        "續期申請已提交：{years} 年，費用 {yuan} 元。下一步：keyward renew pay"
                    ),
                    Lang::En => format!(
                        "renewal applied for: {years} years, {yuan} yuan. Next: keyward renew pay"
                    ),
                };
                self.done(&b, &text)
            }
            RenewCommand::Pay { token, sandbox } => {
                let (env, t) = self.key_env(&token)?;
                let p = if sandbox {
                    keyward_flows::renew::pay_sandbox(&env, &t.serial)
                } else {
                    keyward_flows::renew::pay(&env, &t.serial)
                }
                .map_err(&fail)?;
                let text = format!("{} {}{}", p.status.as_str(), env.ca.base_url(), p.pay_url);
                self.done(&p, &text)
            }
            RenewCommand::Install { token, pins } => {
                let (env, t) = self.key_env(&token)?;
                let confirm = self.confirmation(&env, &t, &pins)?;
                let pin = self.read_pins(&pins, &["old_pin"])?.remove(0);
                let mut on = self.progress_printer();
                let s = keyward_flows::renew::install(&env, &t, &pin, confirm, Some(&mut on))
                    .map_err(&fail)?;
                let text = match self.lang {
                    Lang::ZhCn => format!(
                        "证书安装成功，新有效期至 {}。",
                        keyward_flows::localtime::date(s.not_after)
                    ),
                    Lang::ZhTw => format!(
                        "憑證安裝成功，新有效期至 {}。",
                        keyward_flows::localtime::date(s.not_after)
                    ),
                    Lang::En => {
                        format!(
                            "certificate installed; valid until {}.",
                            keyward_flows::localtime::date(s.not_after)
                        )
                    }
                };
                self.done(&s, &text)
            }
        }
    }

    pub(crate) fn seal(&self, c: SealCommand) -> CliResult<()> {
        let fail = self.flow_err();
        match c {
            SealCommand::Apply {
                token,
                name,
                kind,
                change,
                scan_file,
                pins,
            } => {
                let kind = keyward_ca_api::SealKind::parse(&kind).ok_or_else(|| {
                    Failure::other(
                        exit::USAGE,
                        "seal_kind",
                        self.lang.pick(
                            "印章类型只能是 official（公章）或 contract（合同专用章）。",
                            "印章類型只能是 official（公章）或 contract（合同專用章）。",
                            "the seal kind is official (公章) or contract (合同专用章).",
                        ),
                    )
                })?;
                let scan = std::fs::read(&scan_file).map_err(|e| {
                    Failure::other(
                        exit::USAGE,
                        "seal_scan_file",
                        format!("{}: {e}", scan_file.display()),
                    )
                })?;
                let content_type = match scan_file
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("png") => "image/png",
                    _ => "",
                };
                let (env, t) = self.key_env(&token)?;
                let confirm = self.confirmation(&env, &t, &pins)?;
                let pin = self.read_pins(&pins, &["old_pin"])?.remove(0);
                let b = keyward_flows::seal::apply(
                    &env,
                    &t,
                    &pin,
                    confirm,
                    &name,
                    kind,
                    change,
                    &scan,
                    content_type,
                )
                .map_err(&fail)?;
                let text = match (self.lang, change) {
                    (Lang::ZhCn, false) => {
                        "申请印章已提交审核（约 2 个工作日）。审核通过后请执行 keyward seal install 安装印章。"
                    }
                    (Lang::ZhCn, true) => {
                        "变更印章已提交审核（约 2 个工作日）。审核通过后请执行 keyward seal install 安装印章。"
                    }
                    (Lang::ZhTw, false) => {
                        "申請印章已提交審核（約 2 個工作日）。審核通過後請執行 keyward seal install 安裝印章。"
                    }
                    (Lang::ZhTw, true) => {
                        "變更印章已提交審核（約 2 個工作日）。審核通過後請執行 keyward seal install 安裝印章。"
                    }
                    (Lang::En, false) => {
                        "seal application submitted for review (about two working days). Once approved: keyward seal install."
                    }
                    (Lang::En, true) => {
                        "seal change submitted for review (about two working days). Once approved: keyward seal install."
                    }
                };
                self.done(&b, text)
            }
            SealCommand::Status(token) => {
                let (env, t) = self.key_env(&token)?;
                let b = keyward_flows::seal::status(&env, &t.serial).map_err(&fail)?;
                let text = match &b {
                    Some(b) => format!("{}: {}", b.id, b.state.as_str()),
                    None => self
                        .lang
                        .pick(
                            "尚未申请印章。",
                            "尚未申請印章。",
                            "no seal application yet.",
                        )
                        .to_owned(),
                };
                self.done(&b, &text)
            }
            SealCommand::Install { token, pins } => {
                let (env, t) = self.key_env(&token)?;
                let confirm = self.confirmation(&env, &t, &pins)?;
                let pin = self.read_pins(&pins, &["old_pin"])?.remove(0);
                let mut on = self.progress_printer();
                let v = keyward_flows::seal::install(&env, &t, &pin, confirm, Some(&mut on))
                    .map_err(&fail)?;
                let text = match self.lang {
                    Lang::ZhCn => format!("印章“{}”安装成功。", v.summary.name),
                    Lang::ZhTw => format!("印章「{}」安裝成功。", v.summary.name),
                    Lang::En => format!("seal “{}” installed.", v.summary.name),
                };
                self.done(&v, &text)
            }
            SealCommand::Show {
                token,
                export_image,
            } => {
                let (m, t) = self.one_token(token.token.as_deref())?;
                let env = self.env(m)?;
                let v = keyward_flows::seal::show(&env, &t).map_err(&fail)?;
                if let Some(path) = &export_image {
                    std::fs::write(path, &v.image).map_err(|e| {
                        Failure::other(
                            exit::FAILURE,
                            "export_image",
                            format!("{}: {e}", path.display()),
                        )
                    })?;
                }
                let kind = match v.kind {
                    Some(keyward_ca_api::SealKind::Official) => {
                        self.lang.pick("公章", "公章", "official seal")
                    }
                    Some(keyward_ca_api::SealKind::Contract) => {
                        self.lang.pick("合同专用章", "合同專用章", "contract seal")
                    }
                    None => "?",
                };
                let checked = if v.verified {
                    self.lang.pick("校验通过", "校驗通過", "verified")
                } else {
                    self.lang.pick("校验未通过", "校驗未通過", "NOT verified")
                };
                let text = format!(
                    "{} ({kind}) {} — {} {} {} bytes, {checked}",
                    v.summary.name,
                    keyward_flows::localtime::date(v.summary.valid_start),
                    keyward_flows::localtime::date(v.summary.valid_end),
                    v.summary.image_type,
                    v.summary.image_len,
                );
                self.done(&v, &text)
            }
        }
    }

    pub(crate) fn progress(&self, a: ProgressArgs) -> CliResult<()> {
        let (env, t) = self.key_env(&a.token)?;
        let confirm = self.confirmation(&env, &t, &a.pins)?;
        let pin = self.read_pins(&a.pins, &["old_pin"])?.remove(0);
        let p =
            keyward_flows::progress::progress(&env, &t, &pin, confirm).map_err(self.flow_err())?;
        if self.json {
            return print_json(&p);
        }
        for b in &p.businesses {
            println!(
                "{} {} {} ({} 元)",
                b.id,
                b.kind.as_str(),
                b.state.as_str(),
                b.fee_fen / 100
            );
            for e in &b.timeline {
                println!(
                    "    {} {} {}",
                    keyward_flows::localtime::minute(e.at),
                    e.state.as_str(),
                    e.note
                );
            }
        }
        for k in &p.resumable {
            println!(
                "{}: {k:?} — keyward resume",
                self.lang.pick("可继续", "可繼續", "resumable")
            );
        }
        Ok(())
    }

    pub(crate) fn resume(&self, a: ResumeArgs) -> CliResult<()> {
        let (env, t) = self.key_env(&a.token)?;
        let pending = env.journal.pending(&t.serial);
        let Some(kind) = pending.first() else {
            return self.done(
                &serde_json::json!({ "resumed": null }),
                self.lang.pick(
                    "没有需要继续的业务。",
                    "沒有需要繼續的業務。",
                    "nothing to resume.",
                ),
            );
        };
        match kind {
            FlowKind::Activate => self.activate(ActivateArgs {
                token: a.token,
                code: a.code,
                send_code: false,
                pins: a.pins,
            }),
            FlowKind::Unlock => self.unlock(UnlockCommand::Finish {
                token: a.token,
                code: a.code,
                pins: a.pins,
            }),
            FlowKind::Renew => self.renew(RenewCommand::Install {
                token: a.token,
                pins: a.pins,
            }),
            FlowKind::Seal => {
                let not_submitted = matches!(
                    keyward_flows::seal::pending(&env, &t.serial)
                        .map_err(self.flow_err())?
                        .map(|j| j.step),
                    Some(
                        keyward_flows::seal::SealStep::Applied
                            | keyward_flows::seal::SealStep::Uploaded
                    )
                );
                if not_submitted {
                    // The scan is not journaled: the application is finished by running it again.
                    return Err(Failure::other(
                        exit::NOT_NOW,
                        "seal_scan_needed",
                        self.lang.pick(
                            "印章申请尚未提交审核：请再次执行 keyward seal apply 并给出盖章扫描件。",
                            "印章申請尚未提交審核：請再次執行 keyward seal apply 並給出蓋章掃描檔。",
                            "the seal application is not with the reviewers yet: run keyward seal apply again with the stamped scan.",
                        ),
                    ));
                }
                self.seal(SealCommand::Install {
                    token: a.token,
                    pins: a.pins,
                })
            }
        }
    }

    pub(crate) fn watch(&self, a: WatchArgs) -> CliResult<()> {
        let modules = self.modules()?;
        let json = self.json;
        let mut watchers = Vec::new();
        for m in modules {
            let options = WatchOptions {
                force_polling: a.poll,
                ..Default::default()
            };
            let w = Watcher::spawn(m, options, move |e| {
                if json {
                    if let Ok(line) = serde_json::to_string(&e) {
                        println!("{line}");
                    }
                } else {
                    match &e {
                        TokenEvent::Inserted { token } => {
                            println!("+ {} {}", token.serial, token.label)
                        }
                        TokenEvent::Removed { serial } => println!("- {serial}"),
                        TokenEvent::Changed { token } => {
                            println!("~ {} {:?}", token.serial, token.pin.user)
                        }
                    }
                }
            })
            .map_err(|e| Failure::other(exit::FAILURE, "watch", e.to_string()))?;
            watchers.push(w);
        }
        match a.seconds {
            Some(s) => std::thread::sleep(Duration::from_secs(s)),
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
        drop(watchers);
        Ok(())
    }
}

/// Reads `n` lines from an open file descriptor.
pub(crate) fn read_lines(fd: u32, n: usize) -> Result<Vec<Pin>, String> {
    let path = if fd == 0 {
        PathBuf::from("/dev/stdin")
    } else {
        Path::new("/dev/fd").join(fd.to_string())
    };
    let file = std::fs::File::open(&path)
        .map_err(|e| format!("cannot read PINs from descriptor {fd}: {e}"))?;
    let mut reader = std::io::BufReader::new(file);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut buf = Vec::new();
        reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("reading descriptor {fd}: {e}"))?;
        if buf.is_empty() {
            return Err(format!(
                "descriptor {fd} gave {i} PIN lines; {n} are needed"
            ));
        }
        out.push(Pin::from_line(buf).ok_or_else(|| "a PIN must be UTF-8 text".to_owned())?);
    }
    Ok(out)
}

//! `keyward`: the command line of Keyward, for operators at a terminal and for IT admins'
//! scripts (`--json`, PKCS#11 URIs, exit codes).

mod bridge;
mod flows;
mod messages;
mod stamp;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use keyward_flows::doctor::ProbeRunner;
use keyward_flows::keys::{Keys, MODULE_ENV, ROLE_CHAIN, ROLE_ORGANISATION};
use keyward_flows::{FinalTry, Module, PinRole, PinState, PinStatus, TokenError, TokenRef};
use keyward_pki::{Lang, Pin};
use serde::Serialize;

use messages::{exit, exit_code, label};

const EXIT_CODES: &str = "Exit codes: 0 done · 1 failure · 2 usage · 3 no key or several keys · \
4 wrong PIN · 5 PIN locked (use keyward unlock) · 6 one try left, not confirmed · \
7 new PIN breaks the policy (nothing sent to the key) · 8 key removed · 9 PKCS#11 module missing or broken · \
10 CA service unreachable or refused · 11 not at this step yet (renewal not open, not paid, under review) · \
12 document refused (encrypted, damaged, too large, no such page, off the page, output exists; nothing signed) · \
13 a signature checked by stamp verify does not hold";

/// Keyward: your organisation certificate on its USB key.
#[derive(Debug, Parser)]
#[command(name = "keyward", version = keyward_version::VERSION_LINE, about, after_help = EXIT_CODES)]
struct Cli {
    /// The PKCS#11 module to use, bypassing driver discovery.
    #[arg(long, global = true, env = MODULE_ENV, value_name = "PATH")]
    module: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Language: zh-CN (default), zh-TW or en.
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
    /// The CA online service.
    #[arg(long, global = true, env = "KEYWARD_CA_URL", value_name = "URL")]
    ca: Option<String>,
    /// The CA's root certificate (PEM), the one trust anchor for the service's TLS.
    #[arg(long, global = true, env = "KEYWARD_CA_ROOT", value_name = "FILE")]
    ca_root: Option<PathBuf>,
    /// Where workflows keep their journal (default: the user's data folder).
    #[arg(long, global = true, env = "KEYWARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the keys plugged in.
    Tokens,
    /// The PKCS#11 modules found, and why others failed.
    Drivers,
    /// 环境检测: which key is plugged in and what is missing (drivers, PC/SC, udev, the
    /// CA). Exits 0 when all is well, 1 when it finds a problem.
    Doctor,
    /// A support bundle (.tar.gz) for the CA's support: the environment check, versions,
    /// modules, token infos, unfinished workflows' steps and recent logs — no PIN, code,
    /// secret or ID number.
    SupportBundle {
        /// The archive to write.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Certificates on a key.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// PIN status and PIN change.
    Pin {
        #[command(subcommand)]
        command: PinCommand,
    },
    /// 激活证书: activate a newly issued key with the SMS code and a PIN of your own.
    Activate(flows::ActivateArgs),
    /// 忘记密码: unlock a key whose PIN is forgotten or locked.
    Unlock {
        #[command(subcommand)]
        command: flows::UnlockCommand,
    },
    /// 证书续期: apply, pay, and install the renewed certificate.
    Renew {
        #[command(subcommand)]
        command: flows::RenewCommand,
    },
    /// 申请印章, 变更印章, 安装印章: the organisation's electronic seal.
    Seal {
        #[command(subcommand)]
        command: flows::SealCommand,
    },
    /// 办理进度查询: every business of a key with its timeline (the CA shows them to the key
    /// alone: asks for the PIN; one line on --pin-fd).
    Progress(flows::ProgressArgs),
    /// 盖章: stamp a PDF with the key's electronic seal, signed on the key (PAdES), saved
    /// as a new file; `stamp verify FILE` checks a document's stamps.
    Stamp(stamp::StampArgs),
    /// Carry on with an interrupted workflow.
    Resume(flows::ResumeArgs),
    /// Report keys plugged in, pulled out and changed, until stopped.
    Watch(flows::WatchArgs),
    /// 网页调用: the browser bridge, for web pages of granted origins.
    Bridge {
        #[command(subcommand)]
        command: bridge::BridgeCommand,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TokenArg {
    /// The key: its serial number or a PKCS#11 URI (needed when several are plugged in).
    #[arg(long, value_name = "SERIAL|URI")]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Show the certificates on a key: organisation, credit code, validity, renewal.
    Show(TokenArg),
}

#[derive(Debug, Subcommand)]
enum PinCommand {
    /// Show the PIN status: OK, wrong PINs entered, final try, locked.
    Status(TokenArg),
    /// Change the PIN (修改密码). The new PIN is checked before the key sees it.
    Change {
        #[command(flatten)]
        token: TokenArg,
        /// Read the current and the new PIN, one per line, from this file descriptor
        /// instead of asking (0 for standard input).
        #[arg(long, value_name = "FD")]
        pin_fd: Option<u32>,
        /// Spend the last try: only when the key is at its final try.
        #[arg(long)]
        confirm_final_try: bool,
    },
}

/// A failure on its way out: an exit code and what to say.
pub(crate) struct Failure {
    code: i32,
    error_code: String,
    message: String,
}

impl Failure {
    pub(crate) fn token(e: &TokenError, lang: Lang) -> Self {
        let u = keyward_flows::messages::token_error(e, lang);
        Failure {
            code: exit_code(e),
            error_code: u.code,
            message: u.message,
        }
    }
    pub(crate) fn flow(e: &keyward_flows::FlowError, lang: Lang) -> Self {
        let u = keyward_flows::user_error(e, lang);
        Failure {
            code: messages::flow_exit_code(e),
            error_code: u.code,
            message: u.message,
        }
    }
    pub(crate) fn other(code: i32, error_code: &str, message: impl Into<String>) -> Self {
        Failure {
            code,
            error_code: error_code.to_owned(),
            message: message.into(),
        }
    }
}

pub(crate) type CliResult<T> = Result<T, Failure>;

fn main() {
    // Started again as a module's test load: load it, answer, exit.
    keyward_flows::doctor::serve_probe_if_asked();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KEYWARD_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let lang = cli
        .lang
        .as_deref()
        .and_then(Lang::from_tag)
        .or_else(|| {
            std::env::var("LANG")
                .ok()
                .as_deref()
                .and_then(Lang::from_tag)
        })
        .unwrap_or_default();
    let json = cli.json;
    match run(cli, lang) {
        Ok(()) => {}
        Err(f) => {
            if json {
                let body =
                    serde_json::json!({ "error": { "code": f.error_code, "message": f.message } });
                println!("{body}");
            } else {
                eprintln!("keyward: {}", f.message);
            }
            std::process::exit(f.code);
        }
    }
}

fn run(cli: Cli, lang: Lang) -> CliResult<()> {
    let ctx = Ctx {
        lang,
        json: cli.json,
        keys: match &cli.module {
            Some(path) => Keys::with_module(path),
            None => Keys::new(),
        }
        .with_probe(ProbeRunner::this_executable()),
        ca: cli.ca,
        ca_root: cli.ca_root,
        data_dir: cli.data_dir,
    };
    match cli.command {
        Command::Tokens => ctx.tokens(),
        Command::Drivers => ctx.drivers(),
        Command::Doctor => ctx.doctor(),
        Command::SupportBundle { output } => ctx.support_bundle(&output),
        Command::Cert {
            command: CertCommand::Show(t),
        } => ctx.cert_show(t.token.as_deref()),
        Command::Pin {
            command: PinCommand::Status(t),
        } => ctx.pin_status(t.token.as_deref()),
        Command::Pin {
            command:
                PinCommand::Change {
                    token,
                    pin_fd,
                    confirm_final_try,
                },
        } => ctx.pin_change(token.token.as_deref(), pin_fd, confirm_final_try),
        Command::Activate(a) => ctx.activate(a),
        Command::Unlock { command } => ctx.unlock(command),
        Command::Renew { command } => ctx.renew(command),
        Command::Seal { command } => ctx.seal(command),
        Command::Progress(a) => ctx.progress(a),
        Command::Stamp(a) => ctx.stamp(a),
        Command::Resume(a) => ctx.resume(a),
        Command::Watch(a) => ctx.watch(a),
        Command::Bridge { command } => ctx.bridge(command),
    }
}

pub(crate) struct Ctx {
    pub(crate) lang: Lang,
    pub(crate) json: bool,
    pub(crate) keys: Keys,
    pub(crate) ca: Option<String>,
    pub(crate) ca_root: Option<PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> CliResult<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::other(exit::FAILURE, "internal", e.to_string()))?;
    println!("{text}");
    Ok(())
}

impl Ctx {
    fn token_err(&self) -> impl Fn(TokenError) -> Failure + '_ {
        move |e| Failure::token(&e, self.lang)
    }

    /// Every module that loads. An explicitly named module must load; discovered ones that
    /// fail are skipped (`keyward drivers` says why).
    pub(crate) fn modules(&self) -> CliResult<Vec<Arc<Module>>> {
        self.keys.modules().map_err(self.token_err())
    }

    /// The key the selector names (serial or PKCS#11 URI), or the only one plugged in.
    pub(crate) fn one_token(&self, selector: Option<&str>) -> CliResult<(Arc<Module>, TokenRef)> {
        self.keys.find(selector).map_err(self.token_err())
    }

    fn tokens(&self) -> CliResult<()> {
        let list = self.keys.list().map_err(self.token_err())?;
        let list = self.with_standings(list);
        if self.json {
            return print_json(&list);
        }
        if list.is_empty() {
            println!("{}", label("no_keys", self.lang));
        }
        let l = self.lang;
        for k in &list {
            let d = &k.token;
            println!("{}", d.label);
            println!("  {}: {}", label("serial", l), d.serial);
            println!(
                "  {}: {} {}",
                label("manufacturer", l),
                d.manufacturer,
                d.model
            );
            println!("  {}: {}", label("pin", l), messages::pin_state(&d.pin, l));
            println!("  URI: {}", d.uri);
            if let Some(c) = &k.certificate {
                println!(
                    "  {}: {} ({})",
                    label("org", l),
                    c.organization.as_deref().unwrap_or("-"),
                    c.credit_code.as_deref().unwrap_or("-")
                );
                println!(
                    "  {}: {} ({} {})",
                    label("until", l),
                    keyward_flows::localtime::date(c.not_after),
                    c.days_left,
                    label("days", l)
                );
            }
            println!(
                "  {}: {}",
                label("next", l),
                messages::next_step(&k.next, l)
            );
        }
        Ok(())
    }

    fn drivers(&self) -> CliResult<()> {
        let report = self.keys.drivers().map_err(self.token_err())?;
        if self.json {
            return print_json(&report);
        }
        for r in &report {
            let mark = if r.loaded { "✓" } else { "✗" };
            println!("{mark} {} ({})", r.path.display(), r.source);
            if let Some(e) = &r.error {
                println!("    {e}");
            }
        }
        Ok(())
    }

    fn doctor_report(&self) -> keyward_flows::doctor::DoctorReport {
        let mut options = keyward_flows::doctor::DoctorOptions::new(self.lang);
        options.probe = ProbeRunner::this_executable();
        options.ca = self.ca_settings();
        keyward_flows::doctor::check(&self.keys, &options)
    }

    fn support_bundle(&self, output: &std::path::Path) -> CliResult<()> {
        let report = self.doctor_report();
        let data = flows::data_dir(self.data_dir.as_deref());
        let journal = keyward_flows::Journal::new(data.join("journal"));
        let input = keyward_flows::support::BundleInput {
            keys: &self.keys,
            doctor: &report,
            journal: &journal,
            log_dirs: vec![data.join("logs")],
            log_days: 7,
        };
        let summary = keyward_flows::support::write_bundle(output, &input).map_err(|e| {
            Failure::other(
                exit::FAILURE,
                "support_bundle",
                format!("{}: {e}", output.display()),
            )
        })?;
        if self.json {
            return print_json(&summary);
        }
        println!(
            "{}: {}",
            label("bundle_written", self.lang),
            summary.path.display()
        );
        Ok(())
    }

    fn doctor(&self) -> CliResult<()> {
        use keyward_flows::doctor::Severity;
        let report = self.doctor_report();
        if self.json {
            print_json(&report)?;
        } else {
            println!("{}", report.verdict);
            for f in &report.findings {
                let mark = match f.severity {
                    Severity::Problem => "✗",
                    Severity::Warning => "!",
                    Severity::Ok => "✓",
                    Severity::Info => "·",
                };
                println!("{mark} [{}] {}", f.code, f.message);
                if let Some(fix) = f.fix.as_ref().filter(|_| f.severity <= Severity::Warning) {
                    println!("    → {fix}");
                }
            }
        }
        if !report.healthy {
            std::process::exit(exit::FAILURE);
        }
        Ok(())
    }

    fn cert_show(&self, selector: Option<&str>) -> CliResult<()> {
        let details = self.keys.cert_show(selector).map_err(self.token_err())?;
        if self.json {
            return print_json(&details);
        }
        let shown = &details.certificates;
        if shown.is_empty() {
            println!("{}", label("no_cert", self.lang));
        }
        let l = self.lang;
        for s in shown.iter().filter(|s| s.role == ROLE_ORGANISATION) {
            let c = &s.summary;
            println!(
                "{}: {}",
                label("org", l),
                c.organization.as_deref().unwrap_or("-")
            );
            println!(
                "{}: {}",
                label("code", l),
                c.credit_code.as_deref().unwrap_or("-")
            );
            println!(
                "{}: {}",
                label("issuer", l),
                c.issuer_name.as_deref().unwrap_or(&c.issuer)
            );
            println!(
                "{}: {} — {} ({} {})",
                label("validity", l),
                keyward_flows::localtime::date(c.not_before),
                keyward_flows::localtime::date(c.not_after),
                c.days_left,
                label("days", l)
            );
            println!(
                "{}: {}",
                label("renewal", l),
                messages::renewal(&c.renewal, l)
            );
            println!("{}: {}", label("key", l), c.key);
            println!("{}: {}", label("serial", l), c.serial);
            println!("SHA-256: {}", c.sha256);
        }
        for s in shown.iter().filter(|s| s.role == ROLE_CHAIN) {
            println!(
                "{}: {}",
                label("chain", l),
                s.summary
                    .common_name
                    .as_deref()
                    .unwrap_or(&s.summary.subject)
            );
        }
        Ok(())
    }

    fn pin_status(&self, selector: Option<&str>) -> CliResult<()> {
        let (_, t) = self.one_token(selector)?;
        let info = self
            .keys
            .pin_status(Some(&t.serial))
            .map_err(self.token_err())?;
        if self.json {
            #[derive(Serialize)]
            struct Out<'a> {
                serial: &'a str,
                #[serde(flatten)]
                status: PinStatus,
            }
            return print_json(&Out {
                serial: &t.serial,
                status: info.status,
            });
        }
        println!(
            "{} ({}): {}",
            t.label,
            t.serial,
            messages::pin_state(&info.status, self.lang)
        );
        Ok(())
    }

    fn pin_change(
        &self,
        selector: Option<&str>,
        pin_fd: Option<u32>,
        confirm_final_try: bool,
    ) -> CliResult<()> {
        let (_, t) = self.one_token(selector)?;
        let key = Some(t.serial.as_str());
        let fail = self.token_err();
        // Locked: nothing to ask for. Final try: ask before reading a PIN at all.
        let status = self.keys.pin_status(key).map_err(&fail)?.status;
        let mut confirm = if confirm_final_try {
            FinalTry::Confirmed
        } else {
            FinalTry::Refuse
        };
        match status.user {
            PinState::Locked => {
                return Err(fail(TokenError::PinLocked {
                    role: PinRole::User,
                }));
            }
            PinState::FinalTry if confirm == FinalTry::Refuse => {
                if pin_fd.is_none()
                    && std::io::stdin().is_terminal()
                    && ask_yes(label("final_try_q", self.lang))
                {
                    confirm = FinalTry::Confirmed;
                } else {
                    return Err(fail(TokenError::FinalTryUnconfirmed {
                        role: PinRole::User,
                    }));
                }
            }
            _ => {}
        }
        let (old, new) = match pin_fd {
            Some(fd) => {
                read_pins_from_fd(fd).map_err(|e| Failure::other(exit::USAGE, "pin_input", e))?
            }
            None => self.prompt_pins()?,
        };
        self.keys
            .pin_change(key, &old, &new, confirm)
            .map_err(fail)?;
        if self.json {
            return print_json(&serde_json::json!({ "changed": true, "serial": t.serial }));
        }
        println!("{}", label("changed", self.lang));
        Ok(())
    }

    fn prompt_pins(&self) -> CliResult<(Pin, Pin)> {
        let prompt = |key: &str| -> CliResult<Pin> {
            rpassword::prompt_password(label(key, self.lang))
                .map(Pin::new)
                .map_err(|e| {
                    Failure::other(
                        exit::USAGE,
                        "pin_input",
                        format!("{e} (no terminal? use --pin-fd)"),
                    )
                })
        };
        let old = prompt("old_pin")?;
        let new = prompt("new_pin")?;
        let again = prompt("again")?;
        if !new.matches(&again) {
            return Err(Failure::other(
                exit::USAGE,
                "pin_mismatch",
                label("mismatch", self.lang),
            ));
        }
        Ok((old, new))
    }
}

pub(crate) fn ask_yes(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok()
        && matches!(line.trim(), "y" | "Y" | "yes" | "是")
}

/// Reads two lines — current PIN, new PIN — from an open file descriptor.
fn read_pins_from_fd(fd: u32) -> Result<(Pin, Pin), String> {
    let mut v = flows::read_lines(fd, 2)?;
    let new = v.remove(1);
    Ok((v.remove(0), new))
}

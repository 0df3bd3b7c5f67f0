//! `keyward stamp` (盖章) and `keyward stamp verify`: thin over keyward-flows' `stamp`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use keyward_flows::stamp::{self, Place, StampReport};
use keyward_flows::{FinalTry, PinRole, PinState, TokenError};
use keyward_pki::{Lang, Pin};
use time::OffsetDateTime;

use crate::messages::{exit, label};
use crate::{CliResult, Ctx, Failure, ask_yes, print_json};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct StampArgs {
    #[command(subcommand)]
    command: Option<StampCommand>,
    /// The PDF to stamp (only read, never changed).
    #[arg(value_name = "IN.pdf", required = true)]
    input: Option<PathBuf>,
    /// The stamped PDF, a new file (an existing one is never replaced).
    #[arg(long, value_name = "OUT.pdf", required = true)]
    output: Option<PathBuf>,
    /// The key: its serial number or a PKCS#11 URI (needed when several are plugged in).
    #[arg(long, value_name = "SERIAL|URI")]
    token: Option<String>,
    /// The page to stamp, from 1 (default: the last).
    #[arg(long, value_name = "N")]
    page: Option<u32>,
    /// The seal's centre, millimetres from the page's left edge (with --y).
    #[arg(long, value_name = "MM", requires = "y")]
    x: Option<f64>,
    /// The seal's centre, millimetres from the page's top edge (with --x; alone with
    /// --cross-page).
    #[arg(long, value_name = "MM")]
    y: Option<f64>,
    /// 骑缝章: the seal split across the right edge of every page, one signature.
    #[arg(long, conflicts_with_all = ["page", "x"])]
    cross_page: bool,
    /// Read the PIN, one line, from this file descriptor instead of asking (0: standard
    /// input).
    #[arg(long, value_name = "FD")]
    pin_fd: Option<u32>,
    /// Spend the last PIN try: only when the key is at its final try.
    #[arg(long)]
    confirm_final_try: bool,
}

#[derive(Debug, Subcommand)]
enum StampCommand {
    /// Check every stamp of a PDF: signer, time, unchanged since, chain to the CA root
    /// (--ca-root), seal bound to the signer. Exit 13 when one does not hold.
    Verify {
        /// The PDF to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn yes_no(v: bool, lang: Lang) -> &'static str {
    if v {
        lang.pick("是", "是", "yes")
    } else {
        lang.pick("否", "否", "no")
    }
}

impl Ctx {
    pub(crate) fn stamp(&self, a: StampArgs) -> CliResult<()> {
        if let Some(StampCommand::Verify { file }) = a.command {
            return self.stamp_verify(&file);
        }
        let usage = |m: &str| Failure::other(exit::USAGE, "usage", m);
        let input = a.input.ok_or_else(|| usage("IN.pdf is needed"))?;
        let output = a.output.ok_or_else(|| usage("--output is needed"))?;
        let place = if a.cross_page {
            Place::CrossPage { y_mm: a.y }
        } else {
            match (a.x, a.y) {
                (Some(x_mm), Some(y_mm)) => Place::At {
                    page: a.page,
                    x_mm,
                    y_mm,
                },
                _ => Place::Usual { page: a.page },
            }
        };
        let (m, t) = self.one_token(a.token.as_deref())?;
        let fail = |e: &keyward_flows::FlowError| Failure::flow(e, self.lang);
        let status = stamp::pin_status(&m, &t).map_err(|e| fail(&e))?;
        let mut confirm = if a.confirm_final_try {
            FinalTry::Confirmed
        } else {
            FinalTry::Refuse
        };
        match status.user {
            PinState::Locked => {
                return Err(Failure::token(
                    &TokenError::PinLocked {
                        role: PinRole::User,
                    },
                    self.lang,
                ));
            }
            PinState::FinalTry if confirm == FinalTry::Refuse => {
                if a.pin_fd.is_none()
                    && std::io::stdin().is_terminal()
                    && ask_yes(label("final_try_q", self.lang))
                {
                    confirm = FinalTry::Confirmed;
                } else {
                    return Err(Failure::token(
                        &TokenError::FinalTryUnconfirmed {
                            role: PinRole::User,
                        },
                        self.lang,
                    ));
                }
            }
            _ => {}
        }
        // Everything the document can be refused for is refused before the PIN is asked.
        let document = stamp::read_document(&input).map_err(|e| fail(&e))?;
        stamp::preview(&m, &t, &document, OffsetDateTime::now_utc()).map_err(|e| fail(&e))?;
        let pin = match a.pin_fd {
            Some(fd) => crate::flows::read_lines(fd, 1)
                .map_err(|e| Failure::other(exit::USAGE, "pin_input", e))?
                .remove(0),
            None => rpassword::prompt_password(label("pin", self.lang).to_owned() + ": ")
                .map(Pin::new)
                .map_err(|e| {
                    Failure::other(
                        exit::USAGE,
                        "pin_input",
                        format!("{e} (no terminal? use --pin-fd)"),
                    )
                })?,
        };
        let lang = self.lang;
        let json = self.json;
        let mut printer = move |p: keyward_flows::Progress| {
            if !json {
                eprintln!(
                    "[{}/{}] {}…",
                    p.index,
                    p.total,
                    crate::flows::step_text(p.step, lang)
                );
            }
        };
        let done = stamp::stamp_file(
            &m,
            &t,
            &pin,
            confirm,
            &input,
            &output,
            place,
            OffsetDateTime::now_utc(),
            Some(&mut printer),
        )
        .map_err(|e| fail(&e))?;
        if self.json {
            return print_json(&done);
        }
        let pages: Vec<String> = done.stamped.pages.iter().map(u32::to_string).collect();
        println!(
            "{}",
            match lang {
                Lang::ZhCn => format!(
                    "已盖章：{}（第 {} 页，签名域 {}）",
                    done.output.display(),
                    pages.join("、"),
                    done.stamped.field
                ),
                Lang::ZhTw => format!(
                    "已蓋章：{}（第 {} 頁，簽章欄位 {}）",
                    done.output.display(),
                    pages.join("、"),
                    done.stamped.field
                ),
                Lang::En => format!(
                    "stamped: {} (page {}, signature field {})",
                    done.output.display(),
                    pages.join(", "),
                    done.stamped.field
                ),
            }
        );
        Ok(())
    }

    fn stamp_verify(&self, file: &std::path::Path) -> CliResult<()> {
        let lang = self.lang;
        let root_path = self.ca_root.as_deref().ok_or_else(|| {
            Failure::other(
                exit::USAGE,
                "ca_root_needed",
                lang.pick(
                    "请用 --ca-root 指定 CA 根证书（或设置 KEYWARD_CA_ROOT），签章依此校验。",
                    "請用 --ca-root 指定 CA 根憑證（或設定 KEYWARD_CA_ROOT），簽章依此校驗。",
                    "give the CA root with --ca-root (or KEYWARD_CA_ROOT): stamps are checked against it.",
                ),
            )
        })?;
        let report = stamp::verify_file(file, root_path, OffsetDateTime::now_utc())
            .map_err(|e| Failure::flow(&e, lang))?;
        if self.json {
            print_json(&report)?;
        } else {
            self.print_report(&report);
        }
        if report.all_valid {
            Ok(())
        } else {
            std::process::exit(exit::NOT_VALID)
        }
    }

    fn print_report(&self, report: &StampReport) {
        let l = self.lang;
        if report.signatures.is_empty() {
            println!(
                "{}",
                l.pick(
                    "文件中没有签章。",
                    "檔案中沒有簽章。",
                    "the document has no stamps."
                )
            );
        }
        for (i, s) in report.signatures.iter().enumerate() {
            let mark = if s.valid { "✓" } else { "✗" };
            println!("{mark} #{} {}", i + 1, s.field);
            println!(
                "  {}: {}",
                l.pick("单位", "單位", "organisation"),
                s.organization.as_deref().unwrap_or("-")
            );
            println!(
                "  {}: {}",
                l.pick("统一社会信用代码", "統一社會信用代碼", "credit code"),
                s.credit_code.as_deref().unwrap_or("-")
            );
            println!(
                "  {}: {}",
                l.pick("签章时间", "簽章時間", "signed at"),
                s.signed_at
                    .as_deref()
                    .map(|at| {
                        time::OffsetDateTime::parse(
                            at,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .map_or_else(|_| at.to_owned(), keyward_flows::localtime::minute)
                    })
                    .unwrap_or_else(|| "-".to_owned())
            );
            let pages: Vec<String> = s.pages.iter().map(u32::to_string).collect();
            println!(
                "  {}: {}",
                l.pick("页码", "頁碼", "pages"),
                pages.join(", ")
            );
            println!(
                "  {}: {}",
                l.pick("签名完好", "簽章完好", "intact"),
                yes_no(s.intact, l)
            );
            println!(
                "  {}: {}",
                l.pick("此后文件未改动", "此後檔案未改動", "unchanged since"),
                yes_no(s.unchanged_since, l)
            );
            println!(
                "  {}: {}",
                l.pick(
                    "证书链可信（CA 根证书）",
                    "憑證鏈可信（CA 根憑證）",
                    "chain to the CA root"
                ),
                yes_no(s.chain_trusted, l)
            );
            match &s.seal {
                Some(seal) => println!(
                    "  {}: {} ({}: {}, {}: {}, {}: {})",
                    l.pick("电子印章", "電子印章", "seal"),
                    seal.name,
                    l.pick("CA 制作", "CA 製作", "made under the root"),
                    yes_no(seal.made_under_root, l),
                    l.pick("属于签章证书", "屬於簽章憑證", "bound to the signer"),
                    yes_no(seal.bound_to_signer, l),
                    l.pick("图像一致", "圖像一致", "picture matches"),
                    yes_no(seal.picture_matches, l),
                ),
                None => println!("  {}: -", l.pick("电子印章", "電子印章", "seal")),
            }
            for p in &s.problems {
                println!("  ! {p}");
            }
        }
    }
}

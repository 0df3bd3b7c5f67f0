//! `keyward bridge serve`: the browser bridge without a window, for IT admins' managed
//! deployments and for tests.
//!
//! The origins named with `--allow-origin` are granted; any other is refused without a
//! question. Each private-key operation is described on standard error and takes one PIN
//! line: from `--pin-fd` (that line is the operator's confirmation; an empty line or the end
//! of the input cancels), or typed at the terminal. A line is read only when an operation
//! asks for it, and one that arrives after the operation timed out is dropped: nothing is
//! kept between operations. A PIN line never spends the final try: the page is told
//! `FINAL_TRY_UNCONFIRMED`, and the operator turns to Keyward's window or `keyward pin`; at
//! the terminal the operator is asked.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use keyward_bridge::agent::{Action, Agent, Answer, Confirmation, Consent, KeyShown};
use keyward_bridge::audit::Audit;
use keyward_bridge::consent::Grants;
use keyward_bridge::protocol::Screen;
use keyward_bridge::{Config, Origin, parse_origin};
use keyward_flows::usekey::WebKeys;
use keyward_flows::{FinalTry, Pin, PinState};

use crate::messages::exit;
use crate::{CliResult, Ctx, Failure};

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeCommand {
    /// Serve web pages of the granted origins on a loopback WebSocket until stopped.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: a loopback address and port.
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], keyward_bridge::DEFAULT_PORT)))]
    listen: SocketAddr,
    /// An origin granted access (https://host[:port]); repeat for more. Any other is refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Read one PIN line from this descriptor for each private-key operation.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
    /// How long an operation waits for its PIN, in seconds (1–600).
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    user_timeout: u64,
    /// Developers only: accept http://localhost and http://127.0.0.1 origins.
    #[arg(long)]
    dev_allow_http_localhost: bool,
}

impl Ctx {
    pub(crate) fn bridge(&self, command: BridgeCommand) -> CliResult<()> {
        let BridgeCommand::Serve(args) = command;
        let managed = args
            .allow_origin
            .iter()
            .map(|o| {
                parse_origin(Some(o), args.dev_allow_http_localhost).map_err(|e| {
                    Failure::other(
                        exit::USAGE,
                        "bad_origin",
                        format!("--allow-origin {o}: {e}"),
                    )
                })
            })
            .collect::<CliResult<Vec<Origin>>>()?;
        let keys = WebKeys::new(self.modules()?);
        let audit_path =
            crate::flows::data_dir(self.data_dir.as_deref()).join("bridge-audit.jsonl");
        let grants = Grants::load(None, managed.clone())
            .map_err(|e| Failure::other(exit::FAILURE, "bridge", e.to_string()))?;
        let agent = Headless::new(args.pin_fd, managed);
        let config = Config {
            listen: args.listen,
            allow_http_localhost: args.dev_allow_http_localhost,
            user_timeout: Duration::from_secs(args.user_timeout),
            ..Config::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failure::other(exit::FAILURE, "bridge", e.to_string()))?;
        runtime.block_on(async {
            let running = keyward_bridge::start(
                config,
                keys,
                std::sync::Arc::new(agent),
                grants,
                Audit::to_file(audit_path.clone()),
            )
            .await
            .map_err(|e| Failure::other(exit::FAILURE, "bridge", e.to_string()))?;
            let addr = running.addr();
            if self.json {
                let line = serde_json::json!({
                    "listening": format!("ws://{addr}/"),
                    "audit_log": audit_path,
                });
                println!("{line}");
            } else {
                println!("ws://{addr}/");
                eprintln!(
                    "keyward: the browser bridge listens on ws://{addr}/ (audit log {}); Ctrl-C stops it",
                    audit_path.display()
                );
            }
            let _ = std::io::stdout().flush();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = running.wait() => {}
            }
            Ok(())
        })
    }
}

/// The headless host: no window, no questions but the PIN.
struct Headless {
    pins: Option<Mutex<mpsc::Sender<mpsc::Sender<Option<Pin>>>>>,
    managed: Vec<Origin>,
}

impl Headless {
    fn new(pin_fd: Option<u32>, managed: Vec<Origin>) -> Self {
        let pins = pin_fd.map(|fd| {
            let (ask, asked) = mpsc::channel::<mpsc::Sender<Option<Pin>>>();
            std::thread::spawn(move || read_on_demand(&descriptor(fd), &asked));
            Mutex::new(ask)
        });
        Headless { pins, managed }
    }

    fn pin_line(
        pins: &Mutex<mpsc::Sender<mpsc::Sender<Option<Pin>>>>,
        deadline: Instant,
    ) -> Answer {
        let (reply, line) = mpsc::channel();
        let asked = pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(reply);
        if asked.is_err() {
            return Answer::Cancel;
        }
        match line.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some(pin)) if !pin.is_empty() => Answer::Pin {
                pin,
                final_try: FinalTry::Refuse,
            },
            Ok(_) => Answer::Cancel,
            Err(mpsc::RecvTimeoutError::Timeout) => Answer::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => Answer::Cancel,
        }
    }
}

fn descriptor(fd: u32) -> PathBuf {
    if fd == 0 {
        PathBuf::from("/dev/stdin")
    } else {
        Path::new("/dev/fd").join(fd.to_string())
    }
}

/// Reads one line each time one is asked for; the end of the input answers `None` from then
/// on. A line whose asker gave up is dropped (and zeroised with its PIN).
fn read_on_demand(path: &Path, asked: &mpsc::Receiver<mpsc::Sender<Option<Pin>>>) {
    let mut reader = match std::fs::File::open(path) {
        Ok(f) => Some(std::io::BufReader::new(f)),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read PINs");
            None
        }
    };
    while let Ok(reply) = asked.recv() {
        let pin = reader.as_mut().and_then(|r| {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => None,
                Ok(_) => Pin::from_line(buf),
            }
        });
        if pin.is_none() {
            reader = None;
        }
        let _ = reply.send(pin);
    }
}

fn describe(c: &Confirmation) -> String {
    let what = match &c.action {
        Action::Login => "登录 (log in)".to_owned(),
        Action::Bind => "绑定 (bind the key to an account)".to_owned(),
        Action::SignDigest { hash, digest_hex } => {
            format!(
                "签名 a {} digest {digest_hex} (its content cannot be shown)",
                hash.name()
            )
        }
        Action::SignMessage {
            text,
            bytes,
            sha256_hex,
        } => match text {
            Some(t) => format!("签名 this text ({bytes} bytes):\n{t}"),
            None => format!("签名 {bytes} bytes of binary data, SHA-256 {sha256_hex}"),
        },
    };
    let tries = match (c.pin.user, c.pin.user_tries_left) {
        (PinState::FinalTry, _) => " — one PIN try left".to_owned(),
        (_, Some(n)) => format!(" — {n} PIN tries left"),
        _ => String::new(),
    };
    format!(
        "{} asks to use key {} ({}{}): {what}{tries}",
        c.origin,
        c.key.serial,
        c.key.organisation,
        c.key
            .credit_code
            .as_deref()
            .map(|u| format!(", {u}"))
            .unwrap_or_default(),
    )
}

impl Agent for Headless {
    fn consent(&self, origin: &Origin, _deadline: Instant) -> Consent {
        tracing::info!(%origin, granted = self.managed.len(), "origin not granted with --allow-origin; refused");
        Consent::Deny
    }

    fn confirm(&self, c: &Confirmation) -> Answer {
        eprintln!("keyward bridge: {}", describe(c));
        if let Some(pins) = &self.pins {
            return Self::pin_line(pins, c.deadline);
        }
        match rpassword::prompt_password("PIN (empty to refuse): ") {
            Ok(p) if !p.is_empty() => Answer::Pin {
                pin: Pin::new(p),
                final_try: if c.pin.user == PinState::FinalTry
                    && crate::ask_yes("One try is left. Spend it? [y/N] ")
                {
                    FinalTry::Confirmed
                } else {
                    FinalTry::Refuse
                },
            },
            _ => Answer::Cancel,
        }
    }

    fn open(
        &self,
        _origin: &Origin,
        _screen: Screen,
        _key: Option<&KeyShown>,
    ) -> Result<(), String> {
        Err("this bridge runs without a window (keyward bridge serve): open Keyward itself".into())
    }
}

//! The browser bridge, hosted by the desktop app while it runs.
//!
//! - **Lifecycle**: started on launch (off the window's threads), stopped on quit. When its
//!   port is taken the bridge asks who holds it ([`keyward_bridge::probe`]): another copy of
//!   Keyward (or `keyward bridge serve`), or another program. Either is a [`Status`] 设置
//!   shows and the tray names, never a silent failure.
//! - **The agent** ([`Prompts`]): each question the bridge puts to the operator — an origin's
//!   first contact, a private-key operation with the PIN, opening a screen, a locked key —
//!   becomes a prompt in Keyward's main window, which is brought forward over the browser
//!   and kept on top while prompts wait. The bridge's worker blocks until the window answers,
//!   the deadline passes, the page goes away or the key is pulled out.
//! - **The PIN** arrives once, in the command that answers a confirmation
//!   ([`bridge_confirm`]), becomes a [`Pin`] at once and goes to the bridge in its answer. It
//!   is in no event, no log and no prompt; the command returns how the operation ended.
//! - **Grants** are kept per user in the config folder (`bridge-grants.json`); the same
//!   [`Grants`] is shared with the running bridge, so 设置 lists and revokes them live.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keyward_bridge::agent::{Action, Agent, Answer, Confirmation, Consent, KeyShown, Outcome};
use keyward_bridge::audit::Audit;
use keyward_bridge::consent::Grants;
use keyward_bridge::protocol::Screen;
use keyward_bridge::{BridgeError, Config, Origin, Running};
use keyward_flows::keys::PinStatus;
use keyward_flows::{FinalTry, Pin};
use keyward_pki::Lang;
use serde::{Deserialize, Serialize};
use tauri::{Emitter, Manager, State};

use crate::deeplink::Navigate;
use crate::error::{CommandError, codes};

/// Event: the prompts waiting changed (payload: the list, oldest first).
pub const EVENT_PROMPTS: &str = "bridge://prompts";
/// Event: a prompt ended without the window's answer (payload: [`EndedNote`]).
pub const EVENT_ENDED: &str = "bridge://ended";
/// Event: the bridge started, failed or stopped (payload: [`Status`]).
pub const EVENT_STATUS: &str = "bridge://status";
/// Event: the window is asked to go to a screen; it takes where with `navigation_take`.
pub const EVENT_NAVIGATE: &str = "app://navigate";

/// Where the bridge listens instead of `127.0.0.1:28231` (tests, and several copies on one
/// machine for development); a loopback address.
pub const LISTEN_ENV: &str = "KEYWARD_BRIDGE_LISTEN";
/// How long the operator has to answer instead of 120 seconds (tests and demos; 5 to 600).
pub const TIMEOUT_ENV: &str = "KEYWARD_BRIDGE_USER_TIMEOUT";

/// How long a confirmed operation may take on the key before the window stops waiting for
/// its outcome.
const OUTCOME_WAIT: Duration = Duration::from_secs(90);
/// After its own deadline a consent prompt waits this much more before answering, so the
/// bridge's timeout (the same deadline) is what the page receives.
const GRACE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// What the window is shown.

/// An origin as the operator reads it: the registrable domain (by the Public Suffix List)
/// emphasised, what is in front of it and the port shown plainly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginShown {
    /// The whole origin, as the bridge and the page's tokens name it.
    pub origin: String,
    /// `https://` (or `http://` in development).
    pub scheme: String,
    /// The labels in front of the registrable domain, with their dot (`www.`), or empty.
    pub prefix: String,
    /// The registrable domain (`ggzy.gov.cn`); the whole host for an IP address or a name
    /// without one (`localhost`).
    pub registrable: String,
    /// The port, when the origin has one.
    pub port: Option<u16>,
}

/// Splits an origin for display.
pub fn origin_shown(origin: &Origin) -> OriginShown {
    let text = origin.as_str();
    let (scheme, rest) = text.split_once("://").unwrap_or(("https", text));
    let host = origin.host();
    let port = rest
        .strip_prefix(host)
        .and_then(|p| p.strip_prefix(':'))
        .and_then(|p| p.parse().ok());
    let is_ip = host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    let registrable = if is_ip {
        None
    } else {
        psl::domain_str(host).filter(|d| host.ends_with(d))
    };
    let (prefix, registrable) = match registrable {
        Some(d) => (host[..host.len() - d.len()].to_owned(), d.to_owned()),
        None => (String::new(), host.to_owned()),
    };
    OriginShown {
        origin: text.to_owned(),
        scheme: format!("{scheme}://"),
        prefix,
        registrable,
        port,
    }
}

/// What a prompt asks.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Question {
    /// An origin's first contact: 允许一次 / 始终允许 / 拒绝.
    Consent,
    /// A private-key operation: the key, what is done, the PIN state; then the PIN.
    Confirm {
        /// The key.
        key: KeyShown,
        /// What will be done.
        action: Action,
        /// The key's PIN state as the login guard reads it.
        pin: PinStatus,
    },
    /// Bring a screen of Keyward forward.
    Open {
        /// Which.
        screen: Screen,
        /// For which key.
        key: Option<KeyShown>,
    },
    /// A notice: an operation was refused because the key's PIN is locked (忘记密码).
    Locked {
        /// The key.
        key: KeyShown,
    },
}

/// A prompt as the window receives it.
#[derive(Debug, Clone, Serialize)]
pub struct PromptView {
    /// Its number, for the answer.
    pub id: u64,
    /// Who asks.
    pub origin: OriginShown,
    /// What.
    #[serde(flatten)]
    pub question: Question,
    /// Milliseconds left to answer when this was sent; `None` for a notice.
    pub expires_in_ms: Option<u64>,
    /// The whole time the operator has, in seconds (the "2 minutes" shown).
    pub timeout_seconds: u64,
}

/// Why a prompt ended without the window's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The time to answer passed.
    Timeout,
    /// The page closed its connection.
    Withdrawn,
    /// The key was pulled out.
    KeyRemoved,
    /// Keyward is quitting.
    Closed,
}

/// The payload of [`EVENT_ENDED`].
#[derive(Debug, Clone, Serialize)]
pub struct EndedNote {
    /// The prompt.
    pub id: u64,
    /// Why.
    pub reason: Ended,
}

/// What the window does for the host; the Tauri side emits events and raises the window,
/// tests record the calls.
pub trait Window: Send + Sync {
    /// The prompts waiting, oldest first; `raise` when one was just added.
    fn prompts(&self, prompts: Vec<PromptView>, raise: bool);
    /// A prompt ended without the window's answer.
    fn ended(&self, id: u64, reason: Ended);
    /// Go to a screen (the operator agreed to a page's `keyward.open`).
    fn navigate(&self, to: Navigate);
    /// A confirmed operation ended on the key `serial`: its PIN state may have changed
    /// (a try spent, or the count reset), so the window's view of it is read again.
    fn key_used(&self, serial: &str) {
        let _ = serial;
    }
}

// ---------------------------------------------------------------------------------------
// The agent.

/// The window's answer to a prompt (never the PIN: see [`Prompts::confirm_with_pin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// 允许一次.
    Once,
    /// 始终允许.
    Always,
    /// 拒绝.
    Deny,
    /// 取消 (a confirmation), 不用了 (opening a screen).
    Cancel,
    /// 打开 (opening a screen).
    Open,
    /// 关闭 (a notice).
    Dismiss,
}

/// What wakes a waiting question.
enum Wake {
    Reply(Reply),
    Pin(Pin, FinalTry),
    KeyRemoved,
    Withdrawn,
}

struct Waiting {
    id: u64,
    origin: Origin,
    question: Question,
    deadline: Option<Instant>,
    wake: Option<mpsc::Sender<Wake>>,
}

#[derive(Default)]
struct Book {
    next: u64,
    waiting: Vec<Waiting>,
    /// The window waiting for the outcome of an origin's confirmed operation, and the key.
    outcomes: Vec<(Origin, String, mpsc::Sender<Outcome>)>,
}

/// The desktop's [`Agent`]: every question becomes a prompt in the window.
pub struct Prompts {
    state: Mutex<Book>,
    window: Box<dyn Window>,
    timeout: Duration,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().waiting.len();
        f.debug_struct("Prompts").field("waiting", &n).finish()
    }
}

impl Prompts {
    /// Prompts shown through `window`; `timeout` is the time the bridge gives the operator.
    pub fn new(window: Box<dyn Window>, timeout: Duration) -> Self {
        Prompts {
            state: Mutex::default(),
            window,
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn views(&self, state: &Book) -> Vec<PromptView> {
        let now = Instant::now();
        state
            .waiting
            .iter()
            .map(|w| PromptView {
                id: w.id,
                origin: origin_shown(&w.origin),
                question: w.question.clone(),
                expires_in_ms: w.deadline.map(|d| {
                    u64::try_from(d.saturating_duration_since(now).as_millis()).unwrap_or(0)
                }),
                timeout_seconds: self.timeout.as_secs(),
            })
            .collect()
    }

    /// The prompts waiting now (for a window that just loaded).
    pub fn list(&self) -> Vec<PromptView> {
        self.views(&self.lock())
    }

    fn add(
        &self,
        origin: &Origin,
        question: Question,
        deadline: Option<Instant>,
        wake: Option<mpsc::Sender<Wake>>,
    ) -> u64 {
        let mut state = self.lock();
        state.next += 1;
        let id = state.next;
        state.waiting.push(Waiting {
            id,
            origin: origin.clone(),
            question,
            deadline,
            wake,
        });
        let views = self.views(&state);
        drop(state);
        self.window.prompts(views, true);
        id
    }

    /// Takes a prompt down; whether it was still up.
    fn remove(&self, id: u64) -> Option<Waiting> {
        let mut state = self.lock();
        let at = state.waiting.iter().position(|w| w.id == id)?;
        let gone = state.waiting.remove(at);
        let views = self.views(&state);
        drop(state);
        self.window.prompts(views, false);
        Some(gone)
    }

    /// Puts a question up and waits for the window until `deadline`; `None` when it passed
    /// (the prompt is then taken down and the window told).
    fn ask(&self, origin: &Origin, question: Question, deadline: Instant) -> Option<Wake> {
        let (tx, rx) = mpsc::channel();
        let id = self.add(origin, question, Some(deadline), Some(tx));
        let woken = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match woken {
            Ok(w) => {
                self.remove(id);
                Some(w)
            }
            Err(_) => {
                if self.remove(id).is_some() {
                    self.window.ended(id, Ended::Timeout);
                }
                // An answer that raced the deadline is dropped (a PIN in it is zeroised).
                None
            }
        }
    }

    fn wake(&self, id: u64, check: impl FnOnce(&Question) -> bool, wake: Wake) -> bool {
        let state = self.lock();
        let Some(w) = state.waiting.iter().find(|w| w.id == id) else {
            return false;
        };
        if !check(&w.question) {
            return false;
        }
        match &w.wake {
            Some(tx) => tx.send(wake).is_ok(),
            None => false,
        }
    }

    /// The window's answer to prompt `id`. `false` when there is no such prompt (it ended
    /// meanwhile) or the answer does not fit its question.
    pub fn answer(&self, id: u64, reply: Reply) -> bool {
        let fits = |q: &Question| match q {
            Question::Consent => matches!(reply, Reply::Once | Reply::Always | Reply::Deny),
            Question::Confirm { .. } => reply == Reply::Cancel,
            Question::Open { .. } => matches!(reply, Reply::Open | Reply::Cancel),
            Question::Locked { .. } => reply == Reply::Dismiss,
        };
        if reply == Reply::Dismiss {
            let is_notice = {
                let state = self.lock();
                state
                    .waiting
                    .iter()
                    .any(|w| w.id == id && matches!(w.question, Question::Locked { .. }))
            };
            return is_notice && self.remove(id).is_some();
        }
        self.wake(id, fits, Wake::Reply(reply))
    }

    /// The operator confirmed prompt `id` with the PIN. Returns where the operation's outcome
    /// will arrive, or `None` when there is no such confirmation waiting (the PIN is then
    /// dropped, and zeroised).
    pub fn confirm_with_pin(
        &self,
        id: u64,
        pin: Pin,
        final_try: FinalTry,
    ) -> Option<mpsc::Receiver<Outcome>> {
        let (tx, rx) = mpsc::channel();
        let mut state = self.lock();
        let w = state
            .waiting
            .iter()
            .find(|w| w.id == id && matches!(w.question, Question::Confirm { .. }))?;
        let serial = match &w.question {
            Question::Confirm { key, .. } => key.serial.clone(),
            _ => return None,
        };
        let (origin, wake) = (w.origin.clone(), w.wake.clone()?);
        state.outcomes.retain(|(o, _, _)| o != &origin);
        state.outcomes.push((origin, serial, tx));
        drop(state);
        wake.send(Wake::Pin(pin, final_try)).ok()?;
        Some(rx)
    }

    /// A key was pulled out: its confirmations end (the page is told `KEY_REMOVED`).
    pub fn key_removed(&self, serial: &str) {
        let ids: Vec<u64> = self
            .lock()
            .waiting
            .iter()
            .filter(
                |w| matches!(&w.question, Question::Confirm { key, .. } if key.serial == serial),
            )
            .map(|w| w.id)
            .collect();
        for id in ids {
            if self.wake(id, |_| true, Wake::KeyRemoved) {
                self.window.ended(id, Ended::KeyRemoved);
            }
        }
    }

    /// Keyward quits: every question is cancelled.
    pub fn close_all(&self) {
        let ids: Vec<u64> = self.lock().waiting.iter().map(|w| w.id).collect();
        for id in ids {
            if !self.wake(id, |_| true, Wake::Reply(Reply::Cancel)) {
                self.remove(id);
            }
            self.window.ended(id, Ended::Closed);
        }
    }
}

impl Agent for Prompts {
    fn consent(&self, origin: &Origin, deadline: Instant) -> Consent {
        match self.ask(origin, Question::Consent, deadline) {
            Some(Wake::Reply(Reply::Once)) => Consent::Once,
            Some(Wake::Reply(Reply::Always)) => Consent::Always,
            Some(_) => Consent::Deny,
            None => {
                // Let the bridge's own timeout answer the page (USER_TIMEOUT), not a refusal.
                std::thread::sleep(GRACE);
                Consent::Deny
            }
        }
    }

    fn confirm(&self, c: &Confirmation) -> Answer {
        let question = Question::Confirm {
            key: c.key.clone(),
            action: c.action.clone(),
            pin: c.pin,
        };
        match self.ask(&c.origin, question, c.deadline) {
            Some(Wake::Pin(pin, final_try)) => Answer::Pin { pin, final_try },
            Some(Wake::KeyRemoved) => Answer::KeyRemoved,
            Some(_) => Answer::Cancel,
            None => Answer::TimedOut,
        }
    }

    fn open(&self, origin: &Origin, screen: Screen, key: Option<&KeyShown>) -> Result<(), String> {
        let question = Question::Open {
            screen,
            key: key.cloned(),
        };
        match self.ask(origin, question, Instant::now() + self.timeout) {
            Some(Wake::Reply(Reply::Open)) => {
                self.window.navigate(Navigate {
                    screen,
                    key: key.map(|k| k.serial.clone()),
                });
                Ok(())
            }
            Some(_) => Err("the operator declined to open Keyward there".into()),
            None => Err("the operator did not answer in time".into()),
        }
    }

    fn finished(&self, origin: &Origin, outcome: &Outcome) {
        let mut state = self.lock();
        let Some(at) = state.outcomes.iter().position(|(o, _, _)| o == origin) else {
            return;
        };
        let (_, serial, tx) = state.outcomes.remove(at);
        drop(state);
        let _ = tx.send(outcome.clone());
        if *outcome != Outcome::KeyRemoved {
            self.window.key_used(&serial);
        }
    }

    fn withdrawn(&self, origin: &Origin) {
        let ids: Vec<u64> = self
            .lock()
            .waiting
            .iter()
            .filter(|w| &w.origin == origin && w.wake.is_some())
            .map(|w| w.id)
            .collect();
        for id in ids {
            if self.wake(id, |_| true, Wake::Withdrawn) {
                self.window.ended(id, Ended::Withdrawn);
            }
        }
    }

    fn locked(&self, origin: &Origin, key: &KeyShown) {
        let shown = self.lock().waiting.iter().any(|w| {
            &w.origin == origin && matches!(&w.question, Question::Locked { key: k } if k == key)
        });
        if !shown {
            self.add(origin, Question::Locked { key: key.clone() }, None, None);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The host: lifecycle, status, grants.

/// Where the bridge stands, as 设置 and the tray show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Starting.
    Starting,
    /// Listening.
    Listening {
        /// `ws://127.0.0.1:28231/`.
        url: String,
    },
    /// Another copy of Keyward (or `keyward bridge serve`) holds the port.
    OtherKeyward {
        /// The address.
        addr: String,
        /// The version it answered with.
        version: String,
    },
    /// Another program holds the port, or it cannot be used.
    PortBusy {
        /// The address.
        addr: String,
        /// What the system said.
        reason: String,
    },
    /// It could not start otherwise.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped (Keyward is quitting).
    Stopped,
}

impl Status {
    /// The tray's line when the bridge cannot serve pages; `None` when all is well.
    pub fn tray_line(&self, lang: Lang) -> Option<String> {
        Some(match self {
            Status::Starting | Status::Listening { .. } | Status::Stopped => return None,
            Status::OtherKeyward { .. } => lang
                .pick(
                    "网页调用：另一个 Keyward 正在提供，请关闭多余的 Keyward",
                    "網頁呼叫：另一個 Keyward 正在提供，請關閉多餘的 Keyward",
                    "Web access: another Keyward provides it; close the extra Keyward",
                )
                .to_owned(),
            Status::PortBusy { addr, .. } => match lang {
                Lang::ZhCn => format!("网页调用不可用：端口 {addr} 被其他程序占用"),
                Lang::ZhTw => format!("網頁呼叫無法使用：連接埠 {addr} 被其他程式佔用"),
                Lang::En => {
                    format!("Web access unavailable: port {addr} is taken by another program")
                }
            },
            Status::Failed { .. } => lang
                .pick(
                    "网页调用不可用，详情见“设置与关于”",
                    "網頁呼叫無法使用，詳情見「設定與關於」",
                    "Web access unavailable; see Settings",
                )
                .to_owned(),
        })
    }
}

/// A kept grant as 设置 lists it (times RFC 3339, UTC; the window shows local time).
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    /// The origin.
    pub origin: OriginShown,
    /// When 始终允许 was chosen.
    pub granted_at: String,
    /// When it was last used.
    pub last_used: String,
}

/// What 设置 shows of the bridge.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeInfo {
    /// Where it stands.
    pub status: Status,
    /// The origins kept with 始终允许.
    pub grants: Vec<GrantView>,
}

/// The bridge as the desktop hosts it.
pub struct BridgeHost {
    grants: Arc<Mutex<Grants>>,
    prompts: Arc<Prompts>,
    status: Mutex<Status>,
    running: Mutex<Option<Running>>,
    listen: SocketAddr,
    audit: PathBuf,
}

impl std::fmt::Debug for BridgeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHost")
            .field("listen", &self.listen)
            .field(
                "status",
                &*self.status.lock().unwrap_or_else(PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

/// The address from [`LISTEN_ENV`], or the bridge's own.
pub fn listen_address() -> SocketAddr {
    let default = SocketAddr::from(([127, 0, 0, 1], keyward_bridge::DEFAULT_PORT));
    match std::env::var(LISTEN_ENV) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => a,
            _ => {
                tracing::warn!(value = %v, "{LISTEN_ENV} is not a loopback address; the default is used");
                default
            }
        },
        _ => default,
    }
}

/// The time to answer from [`TIMEOUT_ENV`], or two minutes.
pub fn user_timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (5..=600).contains(s))
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// The grants in `file`; a damaged file is set aside (and logged) so the operator starts
/// over rather than without the bridge.
fn load_grants(file: PathBuf) -> Grants {
    match Grants::load(Some(file.clone()), Vec::new()) {
        Ok(g) => g,
        Err(e) => {
            let aside = file.with_extension("json.damaged");
            tracing::warn!(error = %e, aside = %aside.display(), "origin grants unreadable; set aside");
            let _ = std::fs::rename(&file, &aside);
            Grants::load(Some(file), Vec::new()).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "origin grants cannot be kept this time");
                Grants::default()
            })
        }
    }
}

impl BridgeHost {
    /// The host, with grants in `config_dir/bridge-grants.json` and the audit log in
    /// `data_dir/bridge-audit.jsonl`, prompts shown through `window`.
    pub fn new(config_dir: &Path, data_dir: &Path, window: Box<dyn Window>) -> Self {
        Self::at(
            config_dir,
            data_dir,
            window,
            listen_address(),
            user_timeout(),
        )
    }

    /// [`BridgeHost::new`] listening on `listen`, giving the operator `timeout` to answer,
    /// whatever the environment says.
    pub fn at(
        config_dir: &Path,
        data_dir: &Path,
        window: Box<dyn Window>,
        listen: SocketAddr,
        timeout: Duration,
    ) -> Self {
        BridgeHost {
            grants: Arc::new(Mutex::new(load_grants(
                config_dir.join("bridge-grants.json"),
            ))),
            prompts: Arc::new(Prompts::new(window, timeout)),
            status: Mutex::new(Status::Starting),
            running: Mutex::new(None),
            listen,
            audit: data_dir.join("bridge-audit.jsonl"),
        }
    }

    /// The agent the bridge asks.
    pub fn prompts(&self) -> &Arc<Prompts> {
        &self.prompts
    }

    /// Where the bridge stands.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_status(&self, status: Status) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// Status and grants, for 设置.
    pub fn info(&self) -> BridgeInfo {
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let grants = self
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list()
            .into_iter()
            .filter_map(|g| {
                let origin = keyward_bridge::parse_origin(Some(&g.origin), true).ok()?;
                Some(GrantView {
                    origin: origin_shown(&origin),
                    granted_at: fmt(g.granted_at),
                    last_used: fmt(g.last_used),
                })
            })
            .collect();
        BridgeInfo {
            status: self.status(),
            grants,
        }
    }

    /// Revokes a kept grant; whether there was one.
    pub fn revoke(&self, origin: &str) -> Result<bool, BridgeError> {
        let had = self
            .grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .revoke(origin)?;
        if had {
            tracing::info!(origin, "origin grant revoked in Settings");
        }
        Ok(had)
    }

    /// Starts listening over `keys`; the status says how it went.
    pub async fn start(&self, keys: keyward_flows::usekey::WebKeys) -> Status {
        let config = Config {
            listen: self.listen,
            user_timeout: self.prompts.timeout,
            ..Config::default()
        };
        let agent: Arc<dyn Agent + Send + Sync> = Arc::clone(&self.prompts) as _;
        let started = keyward_bridge::start_with_grants(
            config,
            keys,
            agent,
            Arc::clone(&self.grants),
            Audit::to_file(self.audit.clone()),
        )
        .await;
        let status = match started {
            Ok(running) => {
                let url = format!("ws://{}/", running.addr());
                *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(running);
                Status::Listening { url }
            }
            Err(BridgeError::Bind { addr, reason }) => match keyward_bridge::probe(addr).await {
                Some(version) => {
                    tracing::warn!(%addr, version, "another Keyward serves the bridge; this copy does not");
                    Status::OtherKeyward {
                        addr: addr.to_string(),
                        version,
                    }
                }
                None => {
                    tracing::warn!(%addr, reason, "the bridge's port is taken by another program");
                    Status::PortBusy {
                        addr: addr.to_string(),
                        reason,
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "the bridge cannot start");
                Status::Failed {
                    reason: e.to_string(),
                }
            }
        };
        self.set_status(status.clone());
        status
    }

    /// Stops the bridge (Keyward quits): questions cancelled, connections closed.
    pub async fn stop(&self) {
        self.prompts.close_all();
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(r) = running {
            r.stop().await;
            tracing::info!("browser bridge stopped");
        }
        self.set_status(Status::Stopped);
    }
}

// ---------------------------------------------------------------------------------------
// The Tauri side.

/// Where the window was last asked to go, until it takes it.
#[derive(Debug, Default)]
pub struct Navigation(Mutex<Option<Navigate>>);

impl Navigation {
    /// Where to go next (replacing a place not yet taken).
    pub fn set(&self, to: Navigate) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(to);
    }
}

/// Brings the main window forward.
pub fn raise<R: tauri::Runtime>(app: &tauri::AppHandle<R>, on_top: bool) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_always_on_top(on_top);
        let _ = w.set_focus();
        if on_top {
            let _ = w.request_user_attention(Some(tauri::UserAttentionType::Critical));
        }
    }
}

/// Asks the window to go to a screen, bringing it forward.
pub fn navigate<R: tauri::Runtime>(app: &tauri::AppHandle<R>, to: Navigate) {
    if let Some(nav) = app.try_state::<Navigation>() {
        nav.set(to);
    }
    raise(app, false);
    if let Err(e) = app.emit_to("main", EVENT_NAVIGATE, ()) {
        tracing::warn!(error = %e, "asking the window to change screens failed");
    }
}

/// The main window, as the agent's [`Window`].
pub struct TauriWindow(pub tauri::AppHandle);

impl std::fmt::Debug for TauriWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TauriWindow(main)")
    }
}

impl Window for TauriWindow {
    fn prompts(&self, prompts: Vec<PromptView>, raise_it: bool) {
        let any = !prompts.is_empty();
        if let Err(e) = self.0.emit_to("main", EVENT_PROMPTS, prompts) {
            tracing::warn!(error = %e, "sending the bridge's prompts to the window failed");
        }
        if raise_it {
            raise(&self.0, true);
        } else if let (false, Some(w)) = (any, self.0.get_webview_window("main")) {
            let _ = w.set_always_on_top(false);
        }
    }

    fn ended(&self, id: u64, reason: Ended) {
        let _ = self
            .0
            .emit_to("main", EVENT_ENDED, EndedNote { id, reason });
    }

    fn navigate(&self, to: Navigate) {
        navigate(&self.0, to);
    }

    fn key_used(&self, serial: &str) {
        crate::resend_key(&self.0, serial);
    }
}

/// Starts the bridge over the desktop's keys, on a worker thread; the tray and the window
/// hear how it went.
pub fn start<R: tauri::Runtime>(app: tauri::AppHandle<R>) {
    let spawned = std::thread::Builder::new()
        .name("keyward-bridge-start".into())
        .spawn(move || {
            let desktop = app.state::<crate::Desktop>();
            let modules = desktop.keys.modules().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the bridge starts with no module: pages will see no key");
                Vec::new()
            });
            let keys = keyward_flows::usekey::WebKeys::new(modules);
            let host = app.state::<BridgeHost>();
            let status = tauri::async_runtime::block_on(host.start(keys));
            let lang = desktop.lang();
            app.state::<crate::tray::Tray>()
                .set_bridge(status.tray_line(lang), lang);
            let _ = app.emit_to("main", EVENT_STATUS, status);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the bridge");
    }
}

fn bad_argument(lang: Lang) -> CommandError {
    CommandError::new(
        codes::BAD_ARGUMENT,
        lang.pick(
            "这个请求已经结束（已超时、已取消或网页已关闭）。",
            "這個請求已經結束（已逾時、已取消或網頁已關閉）。",
            "This request has ended (timed out, cancelled, or the page closed).",
        ),
    )
}

/// The bridge's status and the origins kept with 始终允许.
#[tauri::command]
pub async fn bridge_status(host: State<'_, BridgeHost>) -> Result<BridgeInfo, CommandError> {
    Ok(host.info())
}

/// Revokes an origin's 始终允许; the next request from it is asked again.
#[tauri::command]
pub async fn bridge_revoke(
    host: State<'_, BridgeHost>,
    desktop: State<'_, crate::Desktop>,
    origin: String,
) -> Result<BridgeInfo, CommandError> {
    host.revoke(&origin).map_err(|e| {
        tracing::warn!(error = %e, "revoking a grant failed");
        CommandError::new(
            codes::SETTINGS,
            desktop.lang().pick(
                "无法保存网站授权，请检查磁盘空间和文件夹权限。",
                "無法儲存網站授權，請檢查磁碟空間和資料夾權限。",
                "The site permissions cannot be saved; check disk space and folder permissions.",
            ),
        )
    })?;
    Ok(host.info())
}

/// Opens a portal the operator already allowed (始终允许) in the system's browser, for its
/// 【CA 管理】-【绑定】: only an origin among the grants, never an address from the page.
#[tauri::command]
pub async fn portal_open(
    host: State<'_, BridgeHost>,
    desktop: State<'_, crate::Desktop>,
    origin: String,
) -> Result<(), CommandError> {
    let lang = desktop.lang();
    let known = host.info().grants.iter().any(|g| g.origin.origin == origin);
    if !known {
        return Err(CommandError::new(
            codes::BAD_ARGUMENT,
            lang.pick(
                "只能打开已在 Keyward 中允许过的采购平台。",
                "只能開啟已在 Keyward 中允許過的採購平台。",
                "Only a portal already allowed in Keyward can be opened.",
            ),
        ));
    }
    std::process::Command::new("xdg-open")
        .arg(&origin)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot start the browser");
            CommandError::new(
                codes::INTERNAL,
                lang.pick(
                    "无法打开浏览器。请自己在浏览器中打开采购平台。",
                    "無法開啟瀏覽器。請自行在瀏覽器中開啟採購平台。",
                    "The browser cannot be started; open the portal in your browser yourself.",
                ),
            )
        })
}

/// The prompts waiting (a window that just loaded asks).
#[tauri::command]
pub async fn bridge_prompts(host: State<'_, BridgeHost>) -> Result<Vec<PromptView>, CommandError> {
    Ok(host.prompts.list())
}

/// The window's answer to a prompt, other than a confirmation with the PIN.
#[tauri::command]
pub async fn bridge_answer(
    host: State<'_, BridgeHost>,
    desktop: State<'_, crate::Desktop>,
    id: u64,
    reply: Reply,
) -> Result<(), CommandError> {
    if host.prompts.answer(id, reply) {
        Ok(())
    } else {
        Err(bad_argument(desktop.lang()))
    }
}

/// The operator confirmed with the PIN: it becomes a secret at once and goes to the bridge.
/// Returns how the operation ended on the key.
#[tauri::command]
pub async fn bridge_confirm(
    host: State<'_, BridgeHost>,
    desktop: State<'_, crate::Desktop>,
    id: u64,
    pin: String,
    confirm_final_try: bool,
) -> Result<Outcome, CommandError> {
    let lang = desktop.lang();
    let pin = Pin::new(pin);
    let final_try = crate::flows::confirm(confirm_final_try);
    let outcome = host
        .prompts
        .confirm_with_pin(id, pin, final_try)
        .ok_or_else(|| bad_argument(lang))?;
    tauri::async_runtime::spawn_blocking(move || outcome.recv_timeout(OUTCOME_WAIT))
        .await
        .map_err(|e| CommandError::internal(e, lang))?
        .map_err(|_| {
            CommandError::new(
                codes::INTERNAL,
                lang.pick(
                    "没有收到操作结果，请回到网页查看。",
                    "沒有收到操作結果，請回到網頁查看。",
                    "No result came back; check the web page.",
                ),
            )
        })
}

/// Where the window was last asked to go (a `keyward://` link, or a page's `keyward.open`
/// the operator agreed to); taken once.
#[tauri::command]
pub async fn navigation_take(nav: State<'_, Navigation>) -> Result<Option<Navigate>, CommandError> {
    Ok(nav.0.lock().unwrap_or_else(PoisonError::into_inner).take())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyward_bridge::parse_origin;
    use keyward_flows::keys::PinState;

    #[derive(Default)]
    struct Recorded {
        prompts: Mutex<Vec<(Vec<PromptView>, bool)>>,
        ended: Mutex<Vec<(u64, Ended)>>,
        navigated: Mutex<Vec<Navigate>>,
        used: Mutex<Vec<String>>,
    }

    struct Fake(Arc<Recorded>);

    impl Window for Fake {
        fn prompts(&self, prompts: Vec<PromptView>, raise: bool) {
            self.0.prompts.lock().unwrap().push((prompts, raise));
        }
        fn ended(&self, id: u64, reason: Ended) {
            self.0.ended.lock().unwrap().push((id, reason));
        }
        fn navigate(&self, to: Navigate) {
            self.0.navigated.lock().unwrap().push(to);
        }
        fn key_used(&self, serial: &str) {
            self.0.used.lock().unwrap().push(serial.to_owned());
        }
    }

    fn agent() -> (Arc<Prompts>, Arc<Recorded>) {
        let rec = Arc::new(Recorded::default());
        (
            Arc::new(Prompts::new(
                Box::new(Fake(Arc::clone(&rec))),
                Duration::from_secs(120),
            )),
            rec,
        )
    }

    fn o(s: &str) -> Origin {
        parse_origin(Some(s), false).unwrap()
    }

    fn key(serial: &str) -> KeyShown {
        KeyShown {
            serial: serial.into(),
            organisation: "广州示例科技有限公司".into(),
            credit_code: Some("91440101MA5DM00032".into()),
        }
    }

    fn pin(user: PinState, tries: Option<u32>) -> PinStatus {
        PinStatus {
            user,
            user_tries_left: tries,
            user_to_be_changed: false,
            user_initialized: true,
            so: PinState::Ok,
            so_tries_left: Some(10),
        }
    }

    fn confirmation(origin: &str, serial: &str, secs: u64) -> Confirmation {
        Confirmation {
            origin: o(origin),
            key: key(serial),
            action: Action::SignMessage {
                text: Some("同意以下投标文件".into()),
                bytes: 24,
                sha256_hex: "00".repeat(32),
            },
            pin: pin(PinState::Ok, Some(10)),
            deadline: Instant::now() + Duration::from_secs(secs),
        }
    }

    /// Waits until the window shows a prompt; its id.
    fn shown(rec: &Recorded) -> PromptView {
        for _ in 0..400 {
            if let Some(p) = rec
                .prompts
                .lock()
                .unwrap()
                .last()
                .and_then(|(l, _)| l.last())
            {
                return p.clone();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no prompt shown");
    }

    #[test]
    fn consent_is_asked_in_the_window_and_brings_it_forward() {
        for (reply, want) in [
            (Reply::Once, Consent::Once),
            (Reply::Always, Consent::Always),
            (Reply::Deny, Consent::Deny),
        ] {
            let (a, rec) = agent();
            let asked = {
                let a = Arc::clone(&a);
                std::thread::spawn(move || {
                    a.consent(
                        &o("https://www.ggzy.gov.cn"),
                        Instant::now() + Duration::from_secs(30),
                    )
                })
            };
            let p = shown(&rec);
            assert!(matches!(p.question, Question::Consent));
            assert!(rec.prompts.lock().unwrap()[0].1, "the window is raised");
            assert!(p.expires_in_ms.unwrap() > 25_000);
            assert_eq!(p.timeout_seconds, 120);
            // An answer that does not fit the question is refused, and changes nothing.
            assert!(!a.answer(p.id, Reply::Open));
            assert!(!a.answer(p.id + 1, reply));
            assert!(a.answer(p.id, reply));
            assert_eq!(asked.join().unwrap(), want);
            assert!(a.list().is_empty(), "taken down once answered");
            assert!(!a.answer(p.id, reply), "answered once only");
        }
    }

    #[test]
    fn the_pin_goes_to_the_bridge_and_the_outcome_back_to_the_window() {
        let (a, rec) = agent();
        let c = confirmation("https://portal.test", "K1", 30);
        let asked = {
            let (a, c) = (Arc::clone(&a), c.clone());
            std::thread::spawn(move || a.confirm(&c))
        };
        let p = shown(&rec);
        let Question::Confirm {
            key,
            action,
            pin: status,
        } = &p.question
        else {
            panic!("not a confirmation");
        };
        assert_eq!(key.serial, "K1");
        assert!(
            matches!(action, Action::SignMessage { text: Some(t), .. } if t == "同意以下投标文件")
        );
        assert_eq!(status.user_tries_left, Some(10));
        // A cancel is not a PIN; a PIN for a prompt that is not a confirmation goes nowhere.
        assert!(
            a.confirm_with_pin(p.id + 7, Pin::new("x".into()), FinalTry::Refuse)
                .is_none()
        );
        let outcome = a
            .confirm_with_pin(p.id, Pin::new("Fixture#2026".into()), FinalTry::Refuse)
            .unwrap();
        match asked.join().unwrap() {
            Answer::Pin { pin, final_try } => {
                assert!(pin.matches(&Pin::new("Fixture#2026".into())));
                assert_eq!(final_try, FinalTry::Refuse);
            }
            other => panic!("{other:?}"),
        }
        let wrong = Outcome::PinIncorrect {
            pin: pin(PinState::CountLow, Some(9)),
        };
        a.finished(&c.origin, &wrong);
        assert_eq!(outcome.recv_timeout(Duration::from_secs(1)).unwrap(), wrong);
        // The key's PIN state changed: the window reads it again.
        assert_eq!(rec.used.lock().unwrap().as_slice(), ["K1".to_owned()]);
        // What the window was sent never held the PIN.
        let sent = serde_json::to_string(
            &*rec
                .prompts
                .lock()
                .unwrap()
                .iter()
                .map(|(l, _)| l.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(!sent.contains("Fixture#2026"), "{sent}");
    }

    #[test]
    fn cancel_timeout_withdrawal_and_a_pulled_key_each_end_the_prompt() {
        let (a, rec) = agent();
        // Cancel.
        let c = confirmation("https://portal.test", "K1", 30);
        let t = {
            let (a, c) = (Arc::clone(&a), c.clone());
            std::thread::spawn(move || a.confirm(&c))
        };
        let p = shown(&rec);
        assert!(
            !a.answer(p.id, Reply::Once),
            "a confirmation is not consented"
        );
        assert!(a.answer(p.id, Reply::Cancel));
        assert!(matches!(t.join().unwrap(), Answer::Cancel));

        // The deadline passes: taken down, the window told.
        let c = confirmation("https://portal.test", "K1", 0);
        assert!(matches!(a.confirm(&c), Answer::TimedOut));
        assert!(a.list().is_empty());
        assert!(matches!(
            rec.ended.lock().unwrap().last(),
            Some((_, Ended::Timeout))
        ));

        // The page goes away.
        let c = confirmation("https://portal.test", "K1", 30);
        let t = {
            let (a, c) = (Arc::clone(&a), c.clone());
            std::thread::spawn(move || a.confirm(&c))
        };
        let p = shown(&rec);
        a.withdrawn(&o("https://other.test"));
        assert_eq!(
            a.list().len(),
            1,
            "another origin's withdrawal changes nothing"
        );
        a.withdrawn(&c.origin);
        assert!(matches!(t.join().unwrap(), Answer::Cancel));
        assert_eq!(
            rec.ended.lock().unwrap().last(),
            Some(&(p.id, Ended::Withdrawn))
        );

        // The key is pulled out: its confirmation ends as KEY_REMOVED, another key's stays.
        let mine = confirmation("https://portal.test", "K1", 30);
        let other = confirmation("https://other.test", "K2", 30);
        let t1 = {
            let (a, c) = (Arc::clone(&a), mine.clone());
            std::thread::spawn(move || a.confirm(&c))
        };
        shown(&rec);
        let t2 = {
            let (a, c) = (Arc::clone(&a), other.clone());
            std::thread::spawn(move || a.confirm(&c))
        };
        while a.list().len() < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.key_removed("K1");
        assert!(matches!(t1.join().unwrap(), Answer::KeyRemoved));
        let left = a.list();
        assert_eq!(left.len(), 1);
        assert!(matches!(&left[0].question, Question::Confirm { key, .. } if key.serial == "K2"));
        assert!(a.answer(left[0].id, Reply::Cancel));
        assert!(matches!(t2.join().unwrap(), Answer::Cancel));
    }

    #[test]
    fn opening_a_screen_waits_for_the_operator_and_a_locked_key_is_a_notice() {
        let (a, rec) = agent();
        for (reply, opened) in [(Reply::Open, true), (Reply::Cancel, false)] {
            let t = {
                let a = Arc::clone(&a);
                std::thread::spawn(move || {
                    a.open(&o("https://portal.test"), Screen::Renew, Some(&key("K1")))
                })
            };
            let p = shown(&rec);
            assert!(matches!(
                p.question,
                Question::Open {
                    screen: Screen::Renew,
                    ..
                }
            ));
            assert!(rec.navigated.lock().unwrap().len() == usize::from(!opened));
            assert!(a.answer(p.id, reply));
            assert_eq!(t.join().unwrap().is_ok(), opened);
        }
        assert_eq!(
            rec.navigated.lock().unwrap().as_slice(),
            &[Navigate {
                screen: Screen::Renew,
                key: Some("K1".into())
            }]
        );

        a.locked(&o("https://portal.test"), &key("K1"));
        a.locked(&o("https://portal.test"), &key("K1"));
        let list = a.list();
        assert_eq!(list.len(), 1, "one notice per origin and key");
        assert!(matches!(list[0].question, Question::Locked { .. }));
        assert_eq!(list[0].expires_in_ms, None);
        assert!(!a.answer(list[0].id, Reply::Cancel));
        assert!(a.answer(list[0].id, Reply::Dismiss));
        assert!(a.list().is_empty());
    }

    #[test]
    fn the_registrable_domain_is_what_the_operator_reads_first() {
        let s = origin_shown(&o("https://www.ggzy.gov.cn"));
        assert_eq!(
            (s.prefix.as_str(), s.registrable.as_str(), s.port),
            ("www.", "ggzy.gov.cn", None)
        );
        let s = origin_shown(&o("https://ggzy.gov.cn.evil.example.com:8443"));
        assert_eq!(s.prefix, "ggzy.gov.cn.evil.");
        assert_eq!(s.registrable, "example.com");
        assert_eq!(s.port, Some(8443));
        assert_eq!(s.scheme, "https://");
        let s = origin_shown(&o("https://a.b.example.co.uk"));
        assert_eq!(
            (s.prefix.as_str(), s.registrable.as_str()),
            ("a.b.", "example.co.uk")
        );
        let s = origin_shown(&o("https://127.0.0.1:9443"));
        assert_eq!(
            (s.prefix.as_str(), s.registrable.as_str(), s.port),
            ("", "127.0.0.1", Some(9443))
        );
        let s = origin_shown(&o("https://[::1]:9443"));
        assert_eq!((s.registrable.as_str(), s.port), ("[::1]", Some(9443)));
        let s = origin_shown(&o("https://portal.test"));
        assert_eq!(
            (s.prefix.as_str(), s.registrable.as_str()),
            ("", "portal.test")
        );
    }

    #[test]
    fn the_tray_names_a_bridge_that_cannot_serve() {
        assert_eq!(Status::Starting.tray_line(Lang::ZhCn), None);
        assert_eq!(
            Status::Listening {
                url: "ws://127.0.0.1:28231/".into()
            }
            .tray_line(Lang::ZhCn),
            None
        );
        let busy = Status::PortBusy {
            addr: "127.0.0.1:28231".into(),
            reason: "Address in use".into(),
        };
        assert!(
            busy.tray_line(Lang::ZhCn)
                .unwrap()
                .contains("127.0.0.1:28231")
        );
        let other = Status::OtherKeyward {
            addr: "127.0.0.1:28231".into(),
            version: "0.1.0".into(),
        };
        assert!(
            other
                .tray_line(Lang::ZhCn)
                .unwrap()
                .contains("另一个 Keyward")
        );
    }

    #[test]
    fn a_damaged_grants_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bridge-grants.json");
        std::fs::write(&file, "{not json").unwrap();
        let g = load_grants(file.clone());
        assert!(g.list().is_empty());
        assert!(dir.path().join("bridge-grants.json.damaged").exists());
    }
}

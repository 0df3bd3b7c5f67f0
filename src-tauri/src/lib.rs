//! Keyward's desktop app: a thin layer of Tauri commands and events over keyward-flows.
//!
//! - Commands are noun-first (`token_list`, `cert_show`, `pin_status`, `pin_change`,
//!   `driver_list`, `settings_get`, `settings_set`, `app_info`), all async; the PKCS#11 work
//!   runs on a blocking worker thread, never on the UI thread.
//! - The workflows with the CA ([`flows`]): `activate_send_code`, `activate`, `unlock_*`,
//!   `renew_status`, `renew_apply`, `renew_pay`, `renew_install`, `seal_*` (with
//!   `seal_form_download`),
//!   `progress_list`, `flow_pending`, and `ca_root_show` / `ca_root_inspect` for Settings.
//! - 签章 ([`stamp`]): `stamp_preview`, `stamp_file`, `stamp_verify`, over the key alone
//!   (no CA): a PDF named by its path stamped with the key's seal into a new file, and its
//!   signatures checked against the pinned root.
//!   Slow ones report their steps through a `tauri::ipc::Channel`. The CA address and its
//!   pinned root are settings (defaults from `KEYWARD_CA_URL` / `KEYWARD_CA_ROOT`); a root
//!   chosen in the window is pinned only after its fingerprint was confirmed there, as a
//!   copy in the config folder ([`root`]). The journal that lets an interrupted workflow
//!   resume is in the app's data folder; what the window receives never carries a
//!   business's secret or a code's ticket from it.
//! - Every command fails with one [`CommandError`] `{code, message}`; the codes are pinned.
//! - Keys plugged in and pulled out reach the UI as events: `token://inserted`,
//!   `token://removed` and `token://changed`, from a [`keyward_flows::keys::Watcher`] per
//!   module.
//! - PINs arrive as strings, become [`keyward_pki::Pin`] (zeroised on drop) at once, and are
//!   never logged, stored or returned.
//! - Logs go to a daily-rotated file in the app's log folder.
//! - What only the CA knows of a key — that it waits for activation, or that a certificate
//!   or seal waits to be installed — is asked off every thread the window waits on
//!   ([`standing`]) and arrives as `token://changed`.
//! - A tray icon keeps the app reachable and names the keys that need something (expiry
//!   within 90, 30 or 7 days, a locked PIN, an activation, an install waiting).
//! - The browser bridge runs while the app runs ([`bridge`]): consent, confirmation and the
//!   PIN in this window, grants listed and revoked in 设置; a busy port or another copy of
//!   Keyward is shown there and in the tray.
//! - One copy runs at a time: a second launch hands its `keyward://` link ([`deeplink`]) to
//!   the running one and exits.

pub mod bridge;
pub mod deeplink;
pub mod error;
pub mod export;
pub mod flows;
pub mod keys;
pub mod root;
pub mod settings;
pub mod stamp;
pub mod standing;
pub mod support;
pub mod tray;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use keyward_flows::keys::{
    CertDetails, DriverReport, KeyView, Keys, PinInfo, PinStatus, TokenError, TokenEvent,
    WatchMode, WatchOptions, Watcher,
};
use keyward_pki::{Lang, Pin};
use serde::Serialize;
use tauri::{Emitter, Manager, State};

pub use error::CommandError;
use settings::{Settings, SettingsStore};

/// Event: a key was plugged in (payload: [`KeyView`]).
pub const EVENT_INSERTED: &str = "token://inserted";
/// Event: a key was pulled out (payload: `{serial}`).
pub const EVENT_REMOVED: &str = "token://removed";
/// Event: a key's state changed, e.g. its PIN status (payload: [`KeyView`]).
pub const EVENT_CHANGED: &str = "token://changed";

/// Folder for settings and logs instead of the platform's own (tests and demos).
pub const DIR_ENV: &str = "KEYWARD_DESKTOP_DIR";

/// `1` keeps WebKit's OpenGL compositing of the window on Linux, which the app otherwise
/// turns off (WebKitWebDriver's screenshots need it).
pub const COMPOSITING_ENV: &str = "KEYWARD_WEBVIEW_COMPOSITING";

/// What the commands share.
#[derive(Debug)]
pub struct Desktop {
    keys: Arc<Keys>,
    settings: Mutex<SettingsStore>,
    watchers: Mutex<Vec<(String, Watcher)>>,
    standings: Arc<standing::Standings>,
    log_dir: PathBuf,
    journal_dir: PathBuf,
}

impl Desktop {
    /// The desktop's state over `keys`, with settings in `config_dir` and the workflow
    /// journal in `config_dir/journal` (see [`Desktop::with_journal_dir`]).
    pub fn new(keys: Keys, config_dir: &std::path::Path, log_dir: PathBuf) -> Self {
        Desktop {
            keys: Arc::new(keys),
            settings: Mutex::new(SettingsStore::load(config_dir)),
            watchers: Mutex::new(Vec::new()),
            standings: Arc::default(),
            log_dir,
            journal_dir: config_dir.join("journal"),
        }
    }

    /// Keeps the workflow journal (what lets an interrupted workflow resume) in `dir`.
    pub fn with_journal_dir(mut self, dir: PathBuf) -> Self {
        self.journal_dir = dir;
        self
    }

    fn lang(&self) -> Lang {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get()
            .language
    }

    /// Runs token work on a blocking worker thread; its error, or its panic, comes back as
    /// a [`CommandError`].
    async fn blocking<T, F>(&self, work: F) -> Result<T, CommandError>
    where
        T: Send + 'static,
        F: FnOnce(&Keys) -> Result<T, TokenError> + Send + 'static,
    {
        let lang = self.lang();
        let keys = Arc::clone(&self.keys);
        match tauri::async_runtime::spawn_blocking(move || work(&keys)).await {
            Ok(r) => r.map_err(|e| {
                tracing::info!(code = e.code(), error = %e, "command failed");
                CommandError::token(&e, lang)
            }),
            Err(join) => Err(CommandError::internal(join, lang)),
        }
    }
}

/// The keys plugged in, each with its organisation certificate and what is next. Each is
/// also queued for a question to the CA; a changed answer arrives as `token://changed`.
#[tauri::command]
async fn token_list(desktop: State<'_, Desktop>) -> Result<Vec<KeyView>, CommandError> {
    let asked = std::time::Instant::now();
    let list = desktop.blocking(|k| k.list()).await?;
    tracing::debug!(keys = list.len(), took = ?asked.elapsed(), "keys listed");
    Ok(list
        .into_iter()
        .map(|v| {
            desktop.standings.plugged(&v.token.serial);
            desktop.standings.enrich(v)
        })
        .collect())
}

/// All certificates on one key: the organisation certificate, then its chain.
#[tauri::command]
async fn cert_show(
    desktop: State<'_, Desktop>,
    serial: String,
) -> Result<CertDetails, CommandError> {
    desktop.blocking(move |k| k.cert_show(Some(&serial))).await
}

/// The PIN status of one key and the policy a new PIN must meet on it.
#[tauri::command]
async fn pin_status(desktop: State<'_, Desktop>, serial: String) -> Result<PinInfo, CommandError> {
    desktop.blocking(move |k| k.pin_status(Some(&serial))).await
}

/// 修改密码. The PINs become secrets at once; the new one is checked (typed twice, then the
/// policy) before the key sees anything.
#[tauri::command]
async fn pin_change(
    desktop: State<'_, Desktop>,
    serial: String,
    old_pin: String,
    new_pin: String,
    new_pin_again: String,
    confirm_final_try: bool,
) -> Result<PinStatus, CommandError> {
    let (old, new, again) = (
        Pin::new(old_pin),
        Pin::new(new_pin),
        Pin::new(new_pin_again),
    );
    keys::check_typed_twice(&new, &again, desktop.lang())?;
    drop(again);
    desktop
        .blocking(move |k| {
            k.pin_change(Some(&serial), &old, &new, flows::confirm(confirm_final_try))
        })
        .await
}

/// Every PKCS#11 module discovery tried, and why those that failed did.
#[tauri::command]
async fn driver_list(desktop: State<'_, Desktop>) -> Result<Vec<DriverReport>, CommandError> {
    desktop.blocking(|k| k.drivers()).await
}

/// The operator's settings.
#[tauri::command]
async fn settings_get(desktop: State<'_, Desktop>) -> Result<Settings, CommandError> {
    Ok(desktop
        .settings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get()
        .clone())
}

/// Saves the operator's settings; returns them as saved.
///
/// A CA address must be https (plain http only to this computer). A CA root other than the
/// one pinned now is pinned only with `root_sha256`, the fingerprint the operator confirmed
/// in the window after [`ca_root_inspect`]: the file is read again, refused if it differs,
/// and a copy of it in the config folder is what the settings then name.
#[tauri::command]
async fn settings_set(
    desktop: State<'_, Desktop>,
    settings: Settings,
    root_sha256: Option<String>,
) -> Result<Settings, CommandError> {
    let lang = settings.language;
    let mut next = settings;
    next.ca_url = next
        .ca_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(url) = &next.ca_url {
        root::check_url(url, lang)?;
    }
    let mut store = desktop
        .settings
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let before = store.get().clone();
    let mut replaced = None;
    match next.ca_root.clone() {
        None => next.ca_root_origin = None,
        Some(p) if Some(&p) == before.ca_root.as_ref() => {
            next.ca_root_origin = before.ca_root_origin.clone();
        }
        Some(p) => {
            let confirmed = root_sha256.ok_or_else(|| root::unconfirmed(lang))?;
            let copy = root::pin(store.dir(), &p, &confirmed, lang)?;
            next.ca_root = Some(copy);
            next.ca_root_origin = Some(p);
            replaced = before.ca_root.clone();
        }
    }
    store.set(next).map_err(|e| {
        tracing::warn!(error = %e, "saving settings failed");
        CommandError::new(
            error::codes::SETTINGS,
            lang.pick(
                "无法保存设置，请检查磁盘空间和文件夹权限。",
                "無法儲存設定，請檢查磁碟空間和資料夾權限。",
                "The settings cannot be saved; check disk space and folder permissions.",
            ),
        )
    })?;
    let saved = store.get().clone();
    if let Some(old) = replaced.filter(|old| Some(old) != saved.ca_root.as_ref()) {
        root::forget_copy(store.dir(), &old);
    }
    drop(store);
    // Another CA address or root: what it says of the keys plugged in.
    desktop.standings.ask_all();
    Ok(saved)
}

/// What a root file holds — subject, SHA-256 fingerprint, validity — for the operator to
/// confirm before it is pinned. Changes nothing.
#[tauri::command]
async fn ca_root_inspect(
    desktop: State<'_, Desktop>,
    path: PathBuf,
) -> Result<root::RootInfo, CommandError> {
    let lang = desktop.lang();
    tauri::async_runtime::spawn_blocking(move || root::inspect(&path, lang))
        .await
        .map_err(|e| CommandError::internal(e, lang))?
}

/// What the About page shows.
#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    /// Keyward's version.
    pub version: &'static str,
    /// Where the logs are.
    pub log_dir: PathBuf,
    /// The module named by `KEYWARD_PKCS11_MODULE`, when set.
    pub module_env: Option<String>,
    /// Each watched module and how it is watched.
    pub watching: Vec<WatchInfo>,
}

/// One module being watched.
#[derive(Debug, Clone, Serialize)]
pub struct WatchInfo {
    /// The module file.
    pub module: String,
    /// Slot events or polling.
    pub mode: WatchMode,
}

/// Version, log folder and how keys are watched.
#[tauri::command]
async fn app_info(desktop: State<'_, Desktop>) -> Result<AppInfo, CommandError> {
    let watching = desktop
        .watchers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(module, w)| WatchInfo {
            module: module.clone(),
            mode: w.mode(),
        })
        .collect();
    Ok(AppInfo {
        version: keyward_version::VERSION_LINE,
        log_dir: desktop.log_dir.clone(),
        module_env: std::env::var(keyward_flows::keys::MODULE_ENV).ok(),
        watching,
    })
}

/// The payload of `token://removed`.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The key's serial.
    pub serial: String,
}

/// Starts one watcher per module; each event is enriched with the certificate and sent to
/// the UI. Runs on a worker thread at start-up, so the window opens at once.
fn start_watching(app: tauri::AppHandle) {
    let desktop = app.state::<Desktop>();
    let modules = match desktop.keys.modules() {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "no module to watch; the home page will say so");
            return;
        }
    };
    for module in modules {
        let handle = app.clone();
        let m = Arc::clone(&module);
        let spawned = Watcher::spawn(Arc::clone(&module), WatchOptions::default(), move |e| {
            tracing::debug!(event = ?e, "key event");
            let lang = handle.state::<Desktop>().lang();
            let tray = handle.state::<tray::Tray>();
            let standings = &handle.state::<Desktop>().standings;
            let sent = match e {
                TokenEvent::Inserted { token } => {
                    standings.plugged(&token.serial);
                    let view = standings.enrich(Keys::view_of(&m, token));
                    tray.upsert(&handle, &view, lang);
                    handle.emit(EVENT_INSERTED, view)
                }
                TokenEvent::Changed { token } => {
                    let view = standings.enrich(Keys::view_of(&m, token));
                    tray.upsert(&handle, &view, lang);
                    handle.emit(EVENT_CHANGED, view)
                }
                TokenEvent::Removed { serial } => {
                    standings.gone(&serial);
                    if let Some(host) = handle.try_state::<bridge::BridgeHost>() {
                        host.prompts().key_removed(&serial);
                    }
                    tray.remove(&serial, lang);
                    handle.emit(EVENT_REMOVED, Removed { serial })
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "sending a key event to the window failed");
            }
        });
        match spawned {
            Ok(w) => desktop
                .watchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((module.info().path.display().to_string(), w)),
            Err(e) => tracing::warn!(error = %e, "cannot start the key watcher"),
        }
    }
}

/// Starts asking the CA about the keys plugged in; a changed answer re-sends the key's view
/// to the window and the tray.
fn start_standings(app: &tauri::AppHandle) -> std::io::Result<()> {
    let desktop = app.state::<Desktop>();
    let for_client = app.clone();
    let for_change = app.clone();
    desktop.standings.start(
        move || for_client.state::<Desktop>().standing_client(),
        move |serial| resend_key(&for_change, serial),
    )
}

/// Reads a key again and re-sends its view to the window and the tray (its standing with
/// the CA changed, or the bridge used it and its PIN state may have).
pub(crate) fn resend_key(app: &tauri::AppHandle, serial: &str) {
    let desktop = app.state::<Desktop>();
    let view = match desktop.keys.view(Some(serial)) {
        Ok(v) => desktop.standings.enrich(v),
        // Pulled out meanwhile: the removal event says so.
        Err(_) => return,
    };
    let lang = desktop.lang();
    app.state::<tray::Tray>().upsert(app, &view, lang);
    if let Err(e) = app.emit(EVENT_CHANGED, view) {
        tracing::warn!(error = %e, "sending a key's new state to the window failed");
    }
}

/// Logs to `keyward.YYYY-MM-DD.log` in `dir`, a week kept; `KEYWARD_LOG` sets the filter.
fn init_logging(dir: &std::path::Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_appender::rolling::{RollingFileAppender, Rotation};
    // The appender prunes old files before it creates the folder; create it first.
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "keyward: cannot create the log folder {}: {e}",
            dir.display()
        );
    }
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("keyward")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir);
    let appender = match appender {
        Ok(a) => a,
        Err(e) => {
            eprintln!("keyward: cannot log to {}: {e}", dir.display());
            return None;
        }
    };
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    installed.is_ok().then_some(guard)
}

/// Folders for settings, logs and the workflow journal: `KEYWARD_DESKTOP_DIR` when set,
/// else the platform's.
fn folders(app: &tauri::App) -> (PathBuf, PathBuf, PathBuf) {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return (dir.clone(), dir.join("logs"), dir.join("journal"));
    }
    let paths = app.path();
    let config = paths
        .app_config_dir()
        .unwrap_or_else(|_| std::env::temp_dir().join("keyward"));
    let logs = paths.app_log_dir().unwrap_or_else(|_| config.join("logs"));
    let journal = paths
        .app_data_dir()
        .map(|d| d.join("journal"))
        .unwrap_or_else(|_| config.join("journal"));
    (config, logs, journal)
}

/// Every command the window may call (the capability grants exactly these).
pub fn commands<R: tauri::Runtime>()
-> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        token_list,
        cert_show,
        pin_status,
        pin_change,
        driver_list,
        settings_get,
        settings_set,
        app_info,
        ca_root_inspect,
        flows::ca_root_show,
        flows::activate_send_code,
        flows::activate,
        flows::unlock_apply,
        flows::unlock_attach,
        flows::unlock_submit,
        flows::unlock_status,
        flows::unlock_send_code,
        flows::unlock_finish,
        flows::renew_status,
        flows::renew_apply,
        flows::renew_pay,
        flows::renew_install,
        flows::seal_apply,
        flows::seal_status,
        flows::seal_install,
        flows::seal_show,
        flows::seal_form_download,
        flows::progress_list,
        flows::flow_pending,
        stamp::stamp_preview,
        stamp::stamp_file,
        export::cert_export_path,
        export::cert_export,
        stamp::stamp_verify,
        bridge::portal_open,
        bridge::bridge_status,
        bridge::bridge_revoke,
        bridge::bridge_prompts,
        bridge::bridge_answer,
        bridge::bridge_confirm,
        bridge::navigation_take,
        support::ca_profile,
        support::doctor_report,
        support::support_bundle,
    ]
}

/// A second launch of Keyward: its `keyward://` link, if it carries a valid one, opens that
/// screen here; the window comes forward either way.
fn second_launch<R: tauri::Runtime>(app: &tauri::AppHandle<R>, argv: Vec<String>) {
    tracing::info!("a second launch handed over to this copy");
    match deeplink::from_args(argv.iter().skip(1)) {
        Some(to) => bridge::navigate(app, to),
        None => bridge::raise(app, false),
    }
}

/// Builds the app: state, commands, logging and the key watchers.
pub fn builder() -> tauri::Builder<tauri::Wry> {
    tauri::Builder::default()
        // First, so a second copy hands its arguments over and exits before it does anything.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            second_launch(app, argv);
        }))
        // Registers the keyward:// scheme with the system; the links themselves are read by
        // `deeplink`, from the arguments (Linux, Windows) or the system's open event (macOS).
        .plugin(tauri_plugin_deep_link::init())
        // Expiry reminders as desktop notifications, sent from Rust only: the window's
        // capability grants none of the plugin's commands.
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(commands())
        .setup(|app| {
            let (config, logs, journal) = folders(app);
            let _ = std::fs::create_dir_all(&config);
            if let Some(guard) = init_logging(&logs) {
                app.manage(guard);
            }
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "Keyward desktop starting"
            );
            web_view_settings(app);
            let data = journal
                .parent()
                .map_or_else(|| config.clone(), PathBuf::from);
            // A driver whose profile asks for it is test-loaded in a child (this executable,
            // started again) before this process loads it.
            let keys =
                Keys::new().with_probe(keyward_flows::doctor::ProbeRunner::this_executable());
            let desktop = Desktop::new(keys, &config, logs).with_journal_dir(journal);
            let lang = desktop.lang();
            app.manage(desktop);
            app.manage(tray::Tray::new(&config));
            tray::Tray::install_soon(app.handle(), lang);
            app.manage(bridge::BridgeHost::new(
                &config,
                &data,
                Box::new(bridge::TauriWindow(app.handle().clone())),
            ));
            let navigation = bridge::Navigation::default();
            if let Some(to) = deeplink::from_args(std::env::args().skip(1)) {
                navigation.set(to);
            }
            app.manage(navigation);
            deep_links(app);
            bridge::start(app.handle().clone());
            if let Err(e) = start_standings(app.handle()) {
                tracing::warn!(error = %e, "cannot start asking the CA about keys");
            }
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("keyward-watch-start".into())
                .spawn(move || start_watching(handle))?;
            tracing::debug!("Keyward desktop set up");
            Ok(())
        })
}

/// How the window's web view draws. On Linux, WebKitGTK composites the page with OpenGL by
/// default, which on a computer without a usable GPU (a virtual desktop, a remote session)
/// is Mesa's software renderer: LLVM and its buffers loaded in both the app and the web
/// process for a page of forms that draws as fast without it. Keyward's pages have no
/// animation, video or 3D to accelerate, so the web view draws without compositing, unless
/// [`COMPOSITING_ENV`] is `1` (WebKitWebDriver's screenshots wait for a repaint that a still
/// page drawn without compositing never makes: the desktop end-to-end run sets it).
fn web_view_settings(app: &tauri::App) {
    #[cfg(target_os = "linux")]
    if !compositing_kept()
        && let Some(window) = app.get_webview_window("main")
    {
        let set = window.with_webview(|view| {
            use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
            if let Some(settings) = view.inner().settings() {
                settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        });
        if let Err(e) = set {
            tracing::warn!(error = %e, "cannot set how the window draws");
        }
    }
    let _ = app;
}

/// The `keyward://` scheme: registered with the desktop where the system learns it at run
/// time (release builds only, so development and test runs leave the system's handlers
/// alone), and on macOS, where links arrive as an event rather than as arguments, read here.
fn deep_links(app: &tauri::App) {
    // Registering runs the desktop's own tools on Linux (update-desktop-database and the
    // xdg-mime script: a few dozen processes). Only when the scheme has no handler yet, and
    // on a thread of its own once the window has had its start, so they take no processor
    // time from it.
    #[cfg(all(any(target_os = "linux", windows), not(debug_assertions)))]
    {
        let handle = app.handle().clone();
        let spawned = std::thread::Builder::new()
            .name("keyward-scheme".into())
            .spawn(move || {
                use tauri_plugin_deep_link::DeepLinkExt;
                #[cfg(target_os = "linux")]
                {
                    let needed = match (std::env::current_exe(), deeplink::config_home()) {
                        (Ok(exe), Some(config)) => {
                            deeplink::scheme_needs_registering(&exe, &config)
                        }
                        _ => true,
                    };
                    if !needed {
                        tracing::debug!("the keyward:// scheme has its handler");
                        return;
                    }
                    std::thread::sleep(SCHEME_REGISTER_DELAY);
                }
                if let Err(e) = handle.deep_link().register_all() {
                    tracing::warn!(error = %e, "cannot register the keyward:// scheme");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot register the keyward:// scheme");
        }
    }
    #[cfg(target_os = "macos")]
    {
        use tauri_plugin_deep_link::DeepLinkExt;
        let handle = app.handle().clone();
        app.deep_link().on_open_url(move |event| {
            let links: Vec<String> = event.urls().iter().map(|u| u.to_string()).collect();
            if let Some(to) = deeplink::from_args(links) {
                bridge::navigate(&handle, to);
            }
        });
    }
    let _ = app;
}

/// How long after the start the `keyward://` scheme is registered, when it must be.
#[cfg(all(target_os = "linux", not(debug_assertions)))]
const SCHEME_REGISTER_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether WebKit's default compositing is kept ([`COMPOSITING_ENV`] is `1`).
#[cfg(target_os = "linux")]
fn compositing_kept() -> bool {
    std::env::var_os(COMPOSITING_ENV).is_some_and(|v| v == "1")
}

/// WebKitGTK's own switch for drawing without compositing, read when it starts.
#[cfg(target_os = "linux")]
const WEBKIT_COMPOSITING_OFF: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// Makes the web view draw without compositing from its first page (see
/// [`web_view_settings`]): WebKitGTK reads this switch when it starts, whereas the setting
/// made in `setup` arrives after the page has begun to load and makes the web process leave
/// the compositing mode it started in. To be called first in `main`, before any thread.
pub fn draw_without_compositing_from_the_start() {
    #[cfg(target_os = "linux")]
    if !compositing_kept() && std::env::var_os(WEBKIT_COMPOSITING_OFF).is_none() {
        // SAFETY: called first in `main`, before the app starts any thread, so nothing
        // reads the environment while it changes.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(WEBKIT_COMPOSITING_OFF, "1");
        }
    }
}

/// Runs the app until it quits; the bridge stops with it.
pub fn run() {
    let app = match builder().build(tauri::generate_context!()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("keyward: the desktop app failed: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let (tauri::RunEvent::Exit, Some(host)) =
            (event, handle.try_state::<bridge::BridgeHost>())
        {
            tauri::async_runtime::block_on(host.stop());
        }
    });
}

//! The tray icon and expiry reminders: the icon's title says which keys need something —
//! a certificate inside 90, 30 or 7 days of expiry, a locked PIN, a key to activate, a
//! certificate or seal waiting to be installed (the "install waiting" badge) — and a
//! desktop notification is shown once per certificate as it reaches each reminder step
//! (remembered in `reminders.json`, so a restart does not repeat it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use keyward_flows::keys::{KeyView, NextStep};
use keyward_pki::Lang;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};

/// Days before expiry at which the operator is reminded, nearest last.
pub const REMINDER_DAYS: [i64; 3] = [90, 30, 7];

/// The reminder step a certificate with `days_left` has reached: 90, 30 or 7, or none.
pub fn reminder(days_left: i64) -> Option<i64> {
    REMINDER_DAYS
        .iter()
        .rev()
        .find(|d| days_left >= 0 && days_left <= **d)
        .copied()
}

/// One line about a key that needs something, or `None`.
pub fn attention(key: &KeyView, lang: Lang) -> Option<String> {
    let who = key
        .certificate
        .as_ref()
        .and_then(|c| c.organization.clone())
        .unwrap_or_else(|| key.token.label.clone());
    let what = match &key.next {
        NextStep::Unlock => lang
            .pick("密码已锁定", "密碼已鎖定", "PIN locked")
            .to_owned(),
        NextStep::Activate => lang.pick("待激活", "待啟用", "to be activated").to_owned(),
        NextStep::InstallCertificate => lang
            .pick("新证书待安装", "新憑證待安裝", "new certificate to install")
            .to_owned(),
        NextStep::InstallSeal => lang
            .pick("电子印章待安装", "電子印章待安裝", "seal to install")
            .to_owned(),
        NextStep::PayRenewal => lang
            .pick("续期待支付", "續期待支付", "renewal awaiting payment")
            .to_owned(),
        NextStep::ApplyNew => lang
            .pick("证书已过期", "憑證已過期", "certificate expired")
            .to_owned(),
        NextStep::Renew { days_left } => {
            let step = reminder(*days_left).unwrap_or(90);
            match lang {
                Lang::ZhCn => format!("{step} 天内到期（剩 {days_left} 天），请续期"),
                Lang::ZhTw => format!("{step} 天內到期（剩 {days_left} 天），請續期"),
                Lang::En => format!("expires within {step} days ({days_left} left): renew"),
            }
        }
        NextStep::NoCertificate | NextStep::Nothing => return None,
    };
    Some(format!("{who}: {what}"))
}

/// The reminder steps already shown, by certificate fingerprint.
#[derive(Debug, Default)]
pub struct Reminders {
    path: PathBuf,
    shown: BTreeMap<String, i64>,
}

impl Reminders {
    /// Reads `reminders.json` in `dir` (missing or unreadable: nothing shown yet).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join("reminders.json");
        let shown = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Reminders { path, shown }
    }

    /// The reminder due for this key now, if one is, marking it shown.
    pub fn due(&mut self, key: &KeyView) -> Option<i64> {
        let cert = key.certificate.as_ref()?;
        let step = reminder(cert.days_left)?;
        let last = self.shown.get(&cert.sha256).copied();
        if last.is_some_and(|l| l <= step) {
            return None;
        }
        self.shown.insert(cert.sha256.clone(), step);
        let body = serde_json::to_vec_pretty(&self.shown).unwrap_or_default();
        if let Err(e) = std::fs::write(&self.path, body) {
            tracing::warn!(error = %e, "cannot remember the reminder shown");
        }
        Some(step)
    }
}

/// The notification for a certificate reaching a reminder step.
pub fn reminder_text(key: &KeyView, lang: Lang) -> Option<(String, String)> {
    let cert = key.certificate.as_ref()?;
    let who = cert
        .organization
        .clone()
        .unwrap_or_else(|| key.token.label.clone());
    // The date on the operator's calendar, as 我的证书 shows it.
    let (days, date) = (
        cert.days_left,
        keyward_flows::localtime::date(cert.not_after),
    );
    Some(match lang {
        Lang::ZhCn => (
            "证书即将到期".to_owned(),
            format!("{who}的证书将在 {days} 天后（{date}）到期，请在到期前办理证书续期。"),
        ),
        Lang::ZhTw => (
            "憑證即將到期".to_owned(),
            format!("{who}的憑證將在 {days} 天後（{date}）到期，請在到期前辦理憑證續期。"),
        ),
        Lang::En => (
            "Certificate expiring".to_owned(),
            format!(
                "The certificate of {who} expires in {days} days ({date}); renew it before then."
            ),
        ),
    })
}

/// The tray and what it currently knows of the keys.
#[derive(Default)]
pub struct Tray {
    icon: Mutex<Option<TrayIcon>>,
    keys: Mutex<BTreeMap<String, KeyView>>,
    reminders: Mutex<Reminders>,
    /// What is wrong with the browser bridge, when something is (a busy port, another copy).
    bridge: Mutex<Option<String>>,
}

impl std::fmt::Debug for Tray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Tray").field("keys", &keys.len()).finish()
    }
}

impl Tray {
    /// A tray remembering its reminders in `config_dir`.
    pub fn new(config_dir: &Path) -> Self {
        Tray {
            reminders: Mutex::new(Reminders::load(config_dir)),
            ..Tray::default()
        }
    }

    /// Creates the tray icon. Where the desktop has no tray (no AppIndicator library), the
    /// app goes on without one.
    pub fn install(app: &AppHandle, lang: Lang) {
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(app, lang)));
        let icon = match built {
            Ok(Ok(icon)) => Some(icon),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no tray icon");
                None
            }
            Err(_) => {
                tracing::warn!("no tray icon: the desktop has no tray library");
                None
            }
        };
        let tray = app.state::<Tray>();
        *tray.icon.lock().unwrap_or_else(PoisonError::into_inner) = icon;
        // What came meanwhile (keys, the bridge's state) is shown at once.
        tray.refresh(lang);
    }

    /// Creates the tray icon a moment after the start, on the main thread, so the window's
    /// first page does not wait for the desktop's tray (a D-Bus exchange and a menu built on
    /// the thread that also serves the page). Keys and the bridge's state that come before
    /// it are kept and shown when it appears.
    pub fn install_soon(app: &AppHandle, lang: Lang) {
        let handle = app.clone();
        let spawned = std::thread::Builder::new()
            .name("keyward-tray".into())
            .spawn(move || {
                std::thread::sleep(INSTALL_DELAY);
                let on_main = handle.clone();
                if let Err(e) = handle.run_on_main_thread(move || Tray::install(&on_main, lang)) {
                    tracing::warn!(error = %e, "no tray icon");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no tray icon");
        }
    }

    /// A key came or changed: the title is refreshed, and a reminder shown when one is due.
    pub fn upsert(&self, app: &AppHandle, key: &KeyView, lang: Lang) {
        let due = self
            .reminders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(key);
        if let (Some(_), Some((title, body))) = (due, reminder_text(key, lang)) {
            use tauri_plugin_notification::NotificationExt;
            if let Err(e) = app.notification().builder().title(title).body(body).show() {
                tracing::warn!(error = %e, "cannot show the expiry reminder");
            }
        }
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.token.serial.clone(), key.clone());
        self.refresh(lang);
    }

    /// A key went.
    pub fn remove(&self, serial: &str, lang: Lang) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(serial);
        self.refresh(lang);
    }

    /// The browser bridge's trouble, or `None` once it serves.
    pub fn set_bridge(&self, line: Option<String>, lang: Lang) {
        *self.bridge.lock().unwrap_or_else(PoisonError::into_inner) = line;
        self.refresh(lang);
    }

    /// The tray's title and tooltip now.
    pub fn text(&self, lang: Lang) -> (String, String) {
        let lines: Vec<String> = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|k| attention(k, lang))
            .collect();
        let bridge = self
            .bridge
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let title = if lines.is_empty() {
            match &bridge {
                Some(_) => lang
                    .pick(
                        "Keyward · 网页调用不可用",
                        "Keyward · 網頁呼叫無法使用",
                        "Keyward · web access unavailable",
                    )
                    .to_owned(),
                None => "Keyward".to_owned(),
            }
        } else {
            match lang {
                Lang::ZhCn => format!("Keyward · {} 把 USB Key 需要处理", lines.len()),
                Lang::ZhTw => format!("Keyward · {} 把 USB Key 需要處理", lines.len()),
                Lang::En => format!("Keyward · {} USB key(s) need attention", lines.len()),
            }
        };
        let tooltip = std::iter::once(title.clone())
            .chain(bridge)
            .chain(lines)
            .collect::<Vec<_>>()
            .join("\n");
        (title, tooltip)
    }

    fn refresh(&self, lang: Lang) {
        let (title, tooltip) = self.text(lang);
        if let Some(icon) = self
            .icon
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = icon.set_tooltip(Some(&tooltip));
            let _ = icon.set_title(Some(&title));
        }
    }
}

/// How long after the start the tray icon appears.
const INSTALL_DELAY: std::time::Duration = std::time::Duration::from_millis(1500);

fn build(app: &AppHandle, lang: Lang) -> tauri::Result<TrayIcon> {
    let open = MenuItem::with_id(
        app,
        "open",
        lang.pick("打开 Keyward", "開啟 Keyward", "Open Keyward"),
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(
        app,
        "quit",
        lang.pick("退出", "結束", "Quit"),
        true,
        None::<&str>,
    )?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut builder = TrayIconBuilder::with_id("keyward")
        .menu(&menu)
        .tooltip("Keyward")
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.show();
                    let _ = w.unminimize();
                    let _ = w.set_focus();
                }
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_reminder_step_is_shown_once_per_certificate_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut key = sample(80);
        let mut r = Reminders::load(dir.path());
        assert_eq!(r.due(&key), Some(90));
        assert_eq!(r.due(&key), None);
        let mut r = Reminders::load(dir.path());
        assert_eq!(r.due(&key), None, "remembered across a restart");
        key.certificate.as_mut().unwrap().days_left = 29;
        assert_eq!(r.due(&key), Some(30));
        key.certificate.as_mut().unwrap().days_left = 6;
        assert_eq!(r.due(&key), Some(7));
        assert_eq!(r.due(&sample(200)), None);
        let (title, body) = reminder_text(&key, Lang::ZhCn).unwrap();
        assert_eq!(title, "证书即将到期");
        assert!(body.contains("6 天后"), "{body}");
    }

    #[test]
    fn the_reminder_names_the_expiry_date_in_beijing_time() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "tray::tests::reminder_date_under_tz",
                "--ignored",
                "--test-threads=1",
            ])
            .env("TZ", "Asia/Shanghai")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run by the_reminder_names_the_expiry_date_in_beijing_time with TZ set"]
    fn reminder_date_under_tz() {
        let mut key = sample(6);
        // 17:30 UTC on 22 October is 01:30 on the 23rd in Beijing.
        key.certificate.as_mut().unwrap().not_after = time::macros::datetime!(2026-10-22 17:30 UTC);
        let (_, body) = reminder_text(&key, Lang::ZhCn).unwrap();
        assert!(body.contains("（2026-10-23）"), "{body}");
        let (_, body) = reminder_text(&key, Lang::En).unwrap();
        assert!(body.contains("(2026-10-23)"), "{body}");
    }

    fn sample(days_left: i64) -> KeyView {
        use keyward_flows::keys::{PinState, PinStatus, TokenDescription};
        use keyward_pki::{CertSummary, KeyAlgorithm, RenewalStatus};
        let now = time::OffsetDateTime::now_utc();
        KeyView {
            token: TokenDescription {
                uri: "pkcs11:serial=1".into(),
                module: "m".into(),
                slot_id: 1,
                label: "kw".into(),
                manufacturer: "Keyward".into(),
                model: "Sim".into(),
                serial: "1".into(),
                pin: PinStatus {
                    user: PinState::Ok,
                    user_tries_left: Some(10),
                    user_to_be_changed: false,
                    user_initialized: true,
                    so: PinState::Ok,
                    so_tries_left: Some(10),
                },
                min_pin_len: 4,
                max_pin_len: 255,
                free_public_memory: None,
                free_private_memory: None,
                flags: Vec::new(),
            },
            certificate: Some(CertSummary {
                subject: "CN=示例".into(),
                organization: Some("广州示例科技有限公司".into()),
                common_name: None,
                credit_code: None,
                issuer: "CN=CA".into(),
                issuer_name: None,
                serial: "01".into(),
                not_before: now,
                not_after: now + time::Duration::days(days_left),
                days_left,
                key: KeyAlgorithm::Ec {
                    curve: "P-256".into(),
                },
                is_ca: false,
                sha256: "AB".into(),
                renewal: RenewalStatus::Open { days_left },
            }),
            certificate_error: None,
            seal: keyward_flows::keys::SealState::None,
            standing: None,
            next: NextStep::Renew { days_left },
        }
    }

    #[test]
    fn the_tray_names_a_key_with_an_install_waiting() {
        let mut key = sample(200);
        key.next = NextStep::Nothing;
        assert_eq!(attention(&key, Lang::ZhCn), None);
        key.next = NextStep::InstallCertificate;
        assert_eq!(
            attention(&key, Lang::ZhCn).as_deref(),
            Some("广州示例科技有限公司: 新证书待安装")
        );
        key.next = NextStep::InstallSeal;
        assert_eq!(
            attention(&key, Lang::En).as_deref(),
            Some("广州示例科技有限公司: seal to install")
        );
    }

    #[test]
    fn a_bridge_that_cannot_serve_is_named_in_the_tray() {
        let tray = Tray::default();
        assert_eq!(tray.text(Lang::ZhCn).0, "Keyward");
        tray.set_bridge(
            Some("网页调用不可用：端口 127.0.0.1:28231 被其他程序占用".into()),
            Lang::ZhCn,
        );
        let (title, tooltip) = tray.text(Lang::ZhCn);
        assert_eq!(title, "Keyward · 网页调用不可用");
        assert!(tooltip.contains("28231"), "{tooltip}");
        tray.set_bridge(None, Lang::ZhCn);
        assert_eq!(tray.text(Lang::ZhCn).1, "Keyward");
    }

    #[test]
    fn reminders_come_at_90_30_and_7_days() {
        assert_eq!(reminder(120), None);
        assert_eq!(reminder(90), Some(90));
        assert_eq!(reminder(31), Some(90));
        assert_eq!(reminder(30), Some(30));
        assert_eq!(reminder(8), Some(30));
        assert_eq!(reminder(7), Some(7));
        assert_eq!(reminder(0), Some(7));
        assert_eq!(reminder(-1), None);
    }
}

//! The tray icon: the app stays reachable while its window is closed, and the icon's title
//! says which keys need something — a certificate inside 90, 30 or 7 days of expiry, a
//! locked PIN, a key to activate.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use keyward_pki::Lang;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};

use crate::keys::{KeyView, NextStep};

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

/// The tray and what it currently knows of the keys.
#[derive(Default)]
pub struct Tray {
    icon: Mutex<Option<TrayIcon>>,
    keys: Mutex<BTreeMap<String, KeyView>>,
}

impl std::fmt::Debug for Tray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Tray").field("keys", &keys.len()).finish()
    }
}

impl Tray {
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
    }

    /// A key came or changed.
    pub fn upsert(&self, key: &KeyView, lang: Lang) {
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

    fn refresh(&self, lang: Lang) {
        let lines: Vec<String> = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|k| attention(k, lang))
            .collect();
        let title = if lines.is_empty() {
            "Keyward".to_owned()
        } else {
            match lang {
                Lang::ZhCn => format!("Keyward · {} 把 USB Key 需要处理", lines.len()),
                Lang::ZhTw => format!("Keyward · {} 把 USB Key 需要處理", lines.len()),
                Lang::En => format!("Keyward · {} USB key(s) need attention", lines.len()),
            }
        };
        let tooltip = std::iter::once(title.clone())
            .chain(lines)
            .collect::<Vec<_>>()
            .join("\n");
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
    use super::*;

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

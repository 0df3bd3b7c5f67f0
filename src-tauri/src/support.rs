//! Where the operator turns when stuck: the CA's support contacts (`ca_profile`), 环境检测
//! (`doctor_report`) and the support bundle (`support_bundle`), thin over
//! `keyward_flows::contacts`, `keyward_flows::doctor` and `keyward_flows::support`.
//!
//! The bundle is written into a folder the app picks, not one a dialog asks for: the window
//! has no file-system access, and a clerk sending a file to support needs to find it, so it
//! goes to the Downloads folder (the app's own folder under `KEYWARD_DESKTOP_DIR`, in tests
//! and demos) under a new name each time, and the page shows where.

use std::path::PathBuf;
use std::sync::PoisonError;

use keyward_flows::connect::{CaSettings, RootSource};
use keyward_flows::contacts::{Contacts, support_contacts};
use keyward_flows::doctor::{DoctorOptions, DoctorReport, ProbeRunner};
use keyward_flows::support::{BundleInput, BundleSummary};
use serde::Serialize;
use tauri::{Manager, State};

use crate::error::{CommandError, codes};
use crate::{DIR_ENV, Desktop};

impl Desktop {
    /// The CA in the settings, when one is set.
    fn support_ca(&self) -> Option<CaSettings> {
        let s = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        let s = s.get();
        s.ca_url
            .clone()
            .map(|url| CaSettings::new(url, s.ca_root.clone().map(RootSource::File)))
    }

    /// The app's data folder (the journal's parent): where the CA's contacts are kept.
    fn data_dir(&self) -> PathBuf {
        self.journal_dir
            .parent()
            .map_or_else(|| self.journal_dir.clone(), PathBuf::from)
    }

    fn doctor(&self, with_ca: bool) -> DoctorReport {
        let mut options = DoctorOptions::new(self.lang());
        options.probe = ProbeRunner::this_executable();
        options.ca = if with_ca { self.support_ca() } else { None };
        keyward_flows::doctor::check(&self.keys, &options)
    }
}

/// The CA's support contacts: fetched now, or the copy kept from the last fetch when the
/// CA does not answer (`fresh` false, with when it was fetched); none when neither exists.
#[tauri::command]
pub(crate) async fn ca_profile(
    desktop: State<'_, Desktop>,
) -> Result<Option<Contacts>, CommandError> {
    let lang = desktop.lang();
    let ca = desktop.support_ca();
    let data = desktop.data_dir();
    tauri::async_runtime::spawn_blocking(move || support_contacts(ca.as_ref(), &data))
        .await
        .map_err(|e| CommandError::internal(e, lang))
}

/// 环境检测: which key is plugged in and what is missing, the verdict in one sentence.
/// `with_ca` false leaves the CA out (Home's empty state, re-checked every few seconds while
/// no key is in: only the computer's side can change what it says there).
#[tauri::command]
pub(crate) async fn doctor_report<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    with_ca: Option<bool>,
) -> Result<DoctorReport, CommandError> {
    let lang = app.state::<Desktop>().lang();
    let handle = app.clone();
    let with_ca = with_ca.unwrap_or(true);
    tauri::async_runtime::spawn_blocking(move || handle.state::<Desktop>().doctor(with_ca))
        .await
        .map_err(|e| CommandError::internal(e, lang))
}

/// What 生成诊断包 made.
#[derive(Debug, Clone, Serialize)]
pub struct BundleWritten {
    /// The archive.
    pub path: PathBuf,
    /// The folder it is in.
    pub folder: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The files in it.
    pub files: Vec<String>,
}

impl From<BundleSummary> for BundleWritten {
    fn from(s: BundleSummary) -> Self {
        BundleWritten {
            folder: s
                .path
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| s.path.clone()),
            path: s.path,
            bytes: s.bytes,
            files: s.files,
        }
    }
}

/// The folder bundles go to: `KEYWARD_DESKTOP_DIR/support` when that is set, else the
/// user's Downloads folder, else the app's data folder.
fn bundle_folder<R: tauri::Runtime>(app: &tauri::AppHandle<R>, desktop: &Desktop) -> PathBuf {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("support");
    }
    app.path()
        .download_dir()
        .unwrap_or_else(|_| desktop.data_dir().join("support"))
}

/// A name no earlier bundle has: the time (UTC, as support reads logs) and a counter.
fn bundle_name(folder: &std::path::Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut path = folder.join(format!("keyward-support-{stamp}.tar.gz"));
    let mut n = 2;
    while path.exists() {
        path = folder.join(format!("keyward-support-{stamp}-{n}.tar.gz"));
        n += 1;
    }
    path
}

/// 生成诊断包: the environment check run again, then the bundle for the CA's support (no
/// PIN, code, secret or full ID number in it) written to a new file; where it is comes back.
#[tauri::command]
pub(crate) async fn support_bundle<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
) -> Result<BundleWritten, CommandError> {
    let lang = app.state::<Desktop>().lang();
    let handle = app.clone();
    let work = move || -> Result<BundleWritten, CommandError> {
        let desktop = handle.state::<Desktop>();
        let folder = bundle_folder(&handle, &desktop);
        let failed = |e: std::io::Error| {
            tracing::warn!(error = %e, folder = %folder.display(), "writing the support bundle failed");
            CommandError::new(
                codes::SUPPORT_BUNDLE,
                lang.pick(
                    "无法生成诊断包，请检查磁盘空间和文件夹权限。",
                    "無法產生診斷包，請檢查磁碟空間和資料夾權限。",
                    "The support bundle cannot be written; check disk space and folder permissions.",
                ),
            )
        };
        std::fs::create_dir_all(&folder).map_err(failed)?;
        let report = desktop.doctor(true);
        let journal = keyward_flows::Journal::new(&desktop.journal_dir);
        let input = BundleInput {
            keys: &desktop.keys,
            doctor: &report,
            journal: &journal,
            log_dirs: vec![desktop.log_dir.clone()],
            log_days: 7,
        };
        let summary =
            keyward_flows::support::write_bundle(&bundle_name(&folder), &input).map_err(failed)?;
        tracing::info!(path = %summary.path.display(), bytes = summary.bytes, "support bundle written");
        Ok(summary.into())
    };
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| CommandError::internal(e, lang))?
}

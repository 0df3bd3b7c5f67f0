//! 导出证书: the key's organisation certificate written to a file the operator names, PEM or
//! DER, thin over `keyward_flows::identity::export_certificate`. Like 签章's output, the
//! file is named by its path in the window (a suggestion in the Documents folder, which the
//! operator may change) and never replaces a file that exists.

use std::path::{Path, PathBuf};

use keyward_flows::identity::{self, CertFormat};
use keyward_pki::Lang;
use serde::Serialize;
use tauri::{Manager, State};

use crate::Desktop;
use crate::error::{CommandError, codes};

/// `<organisation>-证书.pem` (or `.cer`) in `dir`, numbered when taken.
pub fn suggested_path(dir: &Path, organisation: &str, format: CertFormat, lang: Lang) -> PathBuf {
    // Characters a file name cannot hold on the systems the file may travel to.
    let clean: String = organisation
        .chars()
        .map(|c| {
            if "/\\:*?\"<>|".contains(c) || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mark = lang.pick("证书", "憑證", "certificate");
    let ext = format.extension();
    let named = |n: u32| {
        if n == 1 {
            dir.join(format!("{clean}-{mark}.{ext}"))
        } else {
            dir.join(format!("{clean}-{mark}-{n}.{ext}"))
        }
    };
    (1..100)
        .map(named)
        .find(|p| !p.exists())
        .unwrap_or_else(|| named(1))
}

/// Where 导出证书 would write the certificate of the key `serial` in `format`.
#[tauri::command]
pub(crate) async fn cert_export_path<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    desktop: State<'_, Desktop>,
    serial: String,
    format: CertFormat,
) -> Result<String, CommandError> {
    let lang = desktop.lang();
    let details = desktop
        .blocking(move |k| k.cert_show(Some(&serial)))
        .await?;
    let organisation = details
        .certificates
        .iter()
        .find(|c| c.role == keyward_flows::keys::ROLE_ORGANISATION)
        .and_then(|c| {
            c.summary
                .organization
                .clone()
                .or_else(|| c.summary.common_name.clone())
        })
        .unwrap_or_else(|| details.token.serial.clone());
    let dir = app
        .path()
        .document_dir()
        .ok()
        .filter(|d| d.is_dir())
        .or_else(|| app.path().home_dir().ok())
        .unwrap_or_else(std::env::temp_dir);
    Ok(suggested_path(&dir, &organisation, format, lang)
        .display()
        .to_string())
}

/// What 导出证书 wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The file.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// 导出证书: writes the organisation certificate of the key `serial` to the new file `path`.
#[tauri::command]
pub(crate) async fn cert_export(
    desktop: State<'_, Desktop>,
    serial: String,
    format: CertFormat,
    path: String,
) -> Result<Exported, CommandError> {
    let lang = desktop.lang();
    let p = path.trim();
    if p.is_empty() {
        return Err(CommandError::new(
            codes::BAD_ARGUMENT,
            lang.pick(
                "请填写证书要保存到的文件路径。",
                "請填寫憑證要儲存到的檔案路徑。",
                "Enter the path of the file to save the certificate to.",
            ),
        ));
    }
    let file = PathBuf::from(p);
    let written = file.clone();
    desktop
        .stamping(serial, move |m, t| {
            identity::export_certificate(m, t, format, &file)
        })
        .await?;
    let bytes = std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0);
    Ok(Exported {
        path: written.display().to_string(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_suggestion_is_a_free_name_without_path_characters() {
        let dir = tempfile::tempdir().unwrap();
        let first = suggested_path(dir.path(), "广州/示例:科技", CertFormat::Pem, Lang::ZhCn);
        assert_eq!(first, dir.path().join("广州_示例_科技-证书.pem"));
        std::fs::write(&first, "taken").unwrap();
        let second = suggested_path(dir.path(), "广州/示例:科技", CertFormat::Pem, Lang::ZhCn);
        assert_eq!(second, dir.path().join("广州_示例_科技-证书-2.pem"));
        let der = suggested_path(dir.path(), "Example", CertFormat::Der, Lang::En);
        assert_eq!(der, dir.path().join("Example-certificate.cer"));
    }
}

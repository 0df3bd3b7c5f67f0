//! 签章: the 盖章 commands, thin over `keyward_flows::stamp`. A document is named by its
//! path (read by the shell, never handed to the window whole); the stamped copy is always a
//! new file; the result is checked against the pinned CA root.
//!
//! - `stamp_preview`: the document's pages (sizes in millimetres) and the key's seal, its
//!   picture as a data URL, and where the stamped copy would go. No PIN, nothing changes;
//!   a document or seal that cannot be stamped is refused here already.
//! - `stamp_file`: the stamp, the PIN through the login guard (the final try only when
//!   confirmed), from the input to a new output file.
//! - `stamp_verify`: every signature of a document against the pinned root.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use base64::Engine;
use keyward_flows::stamp::{self, Place, StampReport, StampedFile};
use keyward_flows::{FlowError, Progress};
use keyward_pki::{Lang, Pin};
use serde::Serialize;
use tauri::State;
use tauri::ipc::Channel;

use crate::Desktop;
use crate::error::{CommandError, codes};

/// What the 签章 page draws before the PIN.
#[derive(Debug, Clone, Serialize)]
pub struct StampView {
    /// The document's pages, in order.
    pub pages: Vec<stamp::PageView>,
    /// Signatures already in the document.
    pub signatures: usize,
    /// The seal's name.
    pub seal_name: String,
    /// The seal's size on paper, millimetres.
    pub seal_width_mm: f64,
    /// The seal's size on paper, millimetres.
    pub seal_height_mm: f64,
    /// `data:` URL of the seal's picture.
    pub seal_image_url: String,
    /// The organisation that signs.
    pub organization: Option<String>,
    /// A name for the stamped copy beside the original that does not exist yet.
    pub suggested_output: PathBuf,
}

/// `<name>-已盖章.pdf` beside `input` (numbered when taken): the original is never the
/// output.
pub fn suggested_output(input: &Path, lang: Lang) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".to_owned());
    let mark = lang.pick("已盖章", "已蓋章", "stamped");
    let named = |n: u32| {
        let name = if n == 1 {
            format!("{stem}-{mark}.pdf")
        } else {
            format!("{stem}-{mark}-{n}.pdf")
        };
        input.with_file_name(name)
    };
    (1..100)
        .map(named)
        .find(|p| !p.exists())
        .unwrap_or_else(|| named(1))
}

fn no_path(lang: Lang) -> CommandError {
    CommandError::new(
        codes::BAD_ARGUMENT,
        lang.pick(
            "请填写要盖章的 PDF 文件路径。",
            "請填寫要蓋章的 PDF 檔案路徑。",
            "Enter the path of the PDF to stamp.",
        ),
    )
}

fn path_arg(path: &str, lang: Lang) -> Result<PathBuf, CommandError> {
    let p = path.trim();
    if p.is_empty() {
        return Err(no_path(lang));
    }
    Ok(PathBuf::from(p))
}

impl Desktop {
    /// Runs stamp work for the key `serial` on a blocking worker thread (no CA involved).
    pub(crate) async fn stamping<T, F>(&self, serial: String, work: F) -> Result<T, CommandError>
    where
        T: Send + 'static,
        F: FnOnce(
                &std::sync::Arc<keyward_flows::keys::Module>,
                &keyward_flows::TokenRef,
            ) -> Result<T, FlowError>
            + Send
            + 'static,
    {
        let lang = self.lang();
        let keys = std::sync::Arc::clone(&self.keys);
        let run = move || -> Result<T, CommandError> {
            let (module, token) = keys
                .find(Some(&serial))
                .map_err(|e| CommandError::token(&e, lang))?;
            work(&module, &token).map_err(|e| {
                tracing::info!(error = %e, "stamp command failed");
                CommandError::flow(&e, lang)
            })
        };
        match tauri::async_runtime::spawn_blocking(run).await {
            Ok(r) => r,
            Err(join) => Err(CommandError::internal(join, lang)),
        }
    }
}

/// The document's pages and the key's seal, before any PIN.
#[tauri::command]
pub(crate) async fn stamp_preview(
    desktop: State<'_, Desktop>,
    serial: String,
    path: String,
) -> Result<StampView, CommandError> {
    let lang = desktop.lang();
    let input = path_arg(&path, lang)?;
    desktop
        .stamping(serial, move |m, t| {
            let document = stamp::read_document(&input)?;
            let p = stamp::preview(m, t, &document, time::OffsetDateTime::now_utc())?;
            Ok(StampView {
                pages: p.pages,
                signatures: p.signatures,
                seal_name: p.seal_name,
                seal_width_mm: p.seal_width_mm,
                seal_height_mm: p.seal_height_mm,
                seal_image_url: format!(
                    "data:{};base64,{}",
                    p.seal_mime_type,
                    base64::engine::general_purpose::STANDARD.encode(&p.seal_image)
                ),
                organization: p.organization,
                suggested_output: suggested_output(&input, lang),
            })
        })
        .await
}

/// Where the operator put the seal, as the page sends it.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlaceArg {
    /// The seal's centre on one page, millimetres from its left and top edges.
    At {
        /// 1-based.
        page: u32,
        /// From the left edge.
        x_mm: f64,
        /// From the top edge.
        y_mm: f64,
    },
    /// 骑缝章 across the right edge of every page, centred `y_mm` from the top.
    CrossPage {
        /// From the top edge; the middle when absent.
        y_mm: Option<f64>,
    },
}

impl PlaceArg {
    fn place(self, lang: Lang) -> Result<Place, CommandError> {
        let finite = |v: f64| v.is_finite();
        let ok = match self {
            PlaceArg::At { page, x_mm, y_mm } => page >= 1 && finite(x_mm) && finite(y_mm),
            PlaceArg::CrossPage { y_mm } => y_mm.is_none_or(finite),
        };
        if !ok {
            return Err(CommandError::new(
                codes::BAD_ARGUMENT,
                lang.pick(
                    "请在页面上点击选择盖章位置。",
                    "請在頁面上點擊選擇蓋章位置。",
                    "Click on the page to choose where the seal goes.",
                ),
            ));
        }
        Ok(match self {
            PlaceArg::At { page, x_mm, y_mm } => Place::At {
                page: Some(page),
                x_mm,
                y_mm,
            },
            PlaceArg::CrossPage { y_mm } => Place::CrossPage { y_mm },
        })
    }
}

/// 盖章: the document at `path` stamped with the key's seal at `place`, saved as the new file
/// `output`. The PIN becomes a secret at once and goes only to the login guard.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub(crate) async fn stamp_file(
    desktop: State<'_, Desktop>,
    serial: String,
    path: String,
    output: String,
    place: PlaceArg,
    pin: String,
    confirm_final_try: bool,
    progress: Channel<Progress>,
) -> Result<StampedFile, CommandError> {
    let pin = Pin::new(pin);
    let lang = desktop.lang();
    let input = path_arg(&path, lang)?;
    let output = path_arg(&output, lang)?;
    let place = place.place(lang)?;
    let confirm = crate::flows::confirm(confirm_final_try);
    desktop
        .stamping(serial, move |m, t| {
            let mut on = move |p: Progress| {
                if let Err(e) = progress.send(p) {
                    tracing::debug!(error = %e, "progress not delivered to the window");
                }
            };
            stamp::stamp_file(
                m,
                t,
                &pin,
                confirm,
                &input,
                &output,
                place,
                time::OffsetDateTime::now_utc(),
                Some(&mut on),
            )
        })
        .await
}

/// Every signature of the document at `path`, checked against the pinned CA root.
#[tauri::command]
pub(crate) async fn stamp_verify(
    desktop: State<'_, Desktop>,
    path: String,
) -> Result<StampReport, CommandError> {
    let lang = desktop.lang();
    let file = path_arg(&path, lang)?;
    let root = desktop
        .settings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get()
        .ca_root
        .clone()
        .ok_or_else(|| {
            CommandError::new(
                codes::CA_NOT_SET,
                lang.pick(
                    "尚未设置 CA 根证书，无法校验签章。请在“设置 · CA 服务”中选择 CA 提供的根证书。",
                    "尚未設定 CA 根憑證，無法校驗簽章。請在「設定 · CA 服務」中選擇 CA 提供的根憑證。",
                    "No CA root is set, so stamps cannot be checked. Choose the root your CA gives in Settings · CA service.",
                ),
            )
        })?;
    let run = move || {
        stamp::verify_file(&file, &root, time::OffsetDateTime::now_utc())
            .map_err(|e| CommandError::flow(&e, lang))
    };
    tauri::async_runtime::spawn_blocking(run)
        .await
        .map_err(|e| CommandError::internal(e, lang))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_suggested_copy_sits_beside_the_original_and_is_never_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("投标书.pdf");
        std::fs::write(&input, b"%PDF-").unwrap();
        let first = suggested_output(&input, Lang::ZhCn);
        assert_eq!(first, dir.path().join("投标书-已盖章.pdf"));
        std::fs::write(&first, b"taken").unwrap();
        let second = suggested_output(&input, Lang::ZhCn);
        assert_eq!(second, dir.path().join("投标书-已盖章-2.pdf"));
        assert_eq!(
            suggested_output(&input, Lang::En),
            dir.path().join("投标书-stamped.pdf")
        );
        assert_ne!(second, input);
    }

    #[test]
    fn a_place_off_the_numbers_is_refused_before_anything() {
        let bad = PlaceArg::At {
            page: 0,
            x_mm: 10.0,
            y_mm: 10.0,
        };
        assert_eq!(bad.place(Lang::ZhCn).unwrap_err().code, codes::BAD_ARGUMENT);
        let nan = PlaceArg::At {
            page: 1,
            x_mm: f64::NAN,
            y_mm: 10.0,
        };
        assert!(nan.place(Lang::En).is_err());
        assert_eq!(
            PlaceArg::CrossPage { y_mm: None }.place(Lang::En).unwrap(),
            Place::CrossPage { y_mm: None }
        );
    }
}

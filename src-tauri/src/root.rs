//! The CA root Keyward trusts, and the CA address it is used for.
//!
//! A root is read as every front end reads it ([`keyward_flows::connect::read_root`]: a PEM
//! file of at most [`ROOT_FILE_MAX_BYTES`] holding exactly one certificate, [`inspect`]) and
//! shown by subject and SHA-256 fingerprint. It is pinned only
//! with the fingerprint the operator confirmed in Keyward's own window ([`pin`]): the file is
//! read again, refused if it no longer matches, and its certificate is copied into the app's
//! config folder. The copy is what is trusted from then on, so replacing or editing the
//! original file later changes nothing.
//!
//! A root named by `KEYWARD_CA_ROOT` (or written into the settings file by hand) is the
//! operator's explicit choice and is read where it is.
//!
//! A CA address must be `https://`; plain `http://` is refused unless it names this computer
//! (loopback), as the CA client itself refuses it ([`check_url`]).

use std::path::{Path, PathBuf};

use base64::Engine;
use keyward_flows::FlowError;
use keyward_flows::connect::{PinnedRoot, ROOT_FILE_MAX_BYTES, RootProblem};
use keyward_pki::{CertSummary, Lang};
use serde::Serialize;

use crate::error::{CommandError, codes};

/// File names of pinned copies in the config folder: `ca-root-<fingerprint prefix>.pem`.
pub const COPY_PREFIX: &str = "ca-root-";

/// A root as Settings shows it, and as the confirmation shows the file about to be pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootInfo {
    /// The file read.
    pub path: PathBuf,
    /// The root's subject.
    pub subject: String,
    /// Who signed it (itself, for a root).
    pub issuer: String,
    /// SHA-256 over its DER, upper-case hex pairs joined by colons, as
    /// `openssl x509 -fingerprint -sha256` prints it.
    pub sha256: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: time::OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: time::OffsetDateTime,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// For a pinned copy: the file it was copied from (never read again).
    pub copied_from: Option<PathBuf>,
    /// Whether the file is the one `KEYWARD_CA_ROOT` names.
    pub from_env: bool,
}

fn unreadable(lang: Lang, path: &Path) -> CommandError {
    let mut e = CommandError::new(
        codes::CA_ROOT,
        lang.pick(
            "无法读取 CA 根证书文件，或它不是一张证书。请在“设置 · CA 根证书”中重新选择 CA 提供的根证书（PEM 格式）。",
            "無法讀取 CA 根憑證檔案，或它不是一張憑證。請在「設定 · CA 根憑證」中重新選擇 CA 提供的根憑證（PEM 格式）。",
            "The CA root certificate file cannot be read, or is not a certificate. Choose the root your CA gives (PEM) again in Settings · CA root.",
        ),
    );
    e.detail = Some(path.display().to_string());
    e
}

fn too_large(lang: Lang, path: &Path) -> CommandError {
    let kib = ROOT_FILE_MAX_BYTES / 1024;
    let mut e = CommandError::new(
        codes::CA_ROOT_TOO_LARGE,
        match lang {
            Lang::ZhCn => format!(
                "这个文件超过 {kib} KB，不是一张根证书。请选择 CA 提供的根证书文件（只含一张证书的 PEM 文件），未作任何更改。"
            ),
            Lang::ZhTw => format!(
                "這個檔案超過 {kib} KB，不是一張根憑證。請選擇 CA 提供的根憑證檔案（只含一張憑證的 PEM 檔案），未作任何變更。"
            ),
            Lang::En => format!(
                "This file is larger than {kib} KB, so it is not a root certificate. Choose the root file your CA gives (a PEM file with one certificate); nothing was changed."
            ),
        },
    );
    e.detail = Some(path.display().to_string());
    e
}

fn bundle(lang: Lang, path: &Path, n: usize) -> CommandError {
    let mut e = CommandError::new(
        codes::CA_ROOT_BUNDLE,
        match lang {
            Lang::ZhCn => format!(
                "这个文件包含 {n} 张证书。Keyward 只信任一张根证书：请选择只含 CA 根证书的文件，不要选择证书链或证书包。未作任何更改。"
            ),
            Lang::ZhTw => format!(
                "這個檔案包含 {n} 張憑證。Keyward 只信任一張根憑證：請選擇只含 CA 根憑證的檔案，不要選擇憑證鏈或憑證包。未作任何變更。"
            ),
            Lang::En => format!(
                "This file holds {n} certificates. Keyward trusts exactly one root: choose the file with the CA's root alone, not a chain or bundle. Nothing was changed."
            ),
        },
    );
    e.detail = Some(path.display().to_string());
    e
}

/// The confirmation is missing: a root is pinned only after its fingerprint was confirmed.
pub fn unconfirmed(lang: Lang) -> CommandError {
    CommandError::new(
        codes::CA_ROOT_UNCONFIRMED,
        lang.pick(
            "更换根证书前，请先点击“检查文件”，在 Keyward 窗口中核对并确认它的 SHA-256 指纹。未作任何更改。",
            "更換根憑證前，請先點擊「檢查檔案」，在 Keyward 視窗中核對並確認它的 SHA-256 指紋。未作任何變更。",
            "Before the root is changed, use “Check file” and confirm its SHA-256 fingerprint in Keyward's window. Nothing was changed.",
        ),
    )
}

fn changed(lang: Lang, path: &Path) -> CommandError {
    let mut e = CommandError::new(
        codes::CA_ROOT_CHANGED,
        lang.pick(
            "根证书文件在您核对之后发生了变化，指纹与您确认的不一致，因此没有固定它。请重新检查这个文件，再次核对指纹。",
            "根憑證檔案在您核對之後發生了變化，指紋與您確認的不一致，因此沒有固定它。請重新檢查這個檔案，再次核對指紋。",
            "The root file changed after you checked it: its fingerprint is not the one you confirmed, so it was not pinned. Check the file again and compare the fingerprint once more.",
        ),
    );
    e.detail = Some(path.display().to_string());
    e
}

/// A root file refused, in the window's words: what to choose instead, and where.
pub fn refusal(path: &Path, problem: RootProblem, lang: Lang) -> CommandError {
    match problem {
        RootProblem::Unreadable => unreadable(lang, path),
        RootProblem::TooLarge => too_large(lang, path),
        RootProblem::Bundle(n) => bundle(lang, path, n),
    }
}

/// Reads a root file: its one certificate (DER) and what Settings shows of it.
fn read(path: &Path, lang: Lang) -> Result<(PinnedRoot, RootInfo), CommandError> {
    let root = keyward_flows::connect::read_root(path).map_err(|e| match e {
        FlowError::CaRoot { problem, .. } => refusal(path, problem, lang),
        other => CommandError::flow(&other, lang),
    })?;
    let summary = CertSummary::from_der(&root.der, time::OffsetDateTime::now_utc())
        .map_err(|_| unreadable(lang, path))?;
    let from_env = std::env::var_os("KEYWARD_CA_ROOT").is_some_and(|v| Path::new(&v) == path);
    let info = RootInfo {
        path: path.to_owned(),
        subject: summary.subject,
        issuer: summary.issuer,
        sha256: root.fingerprint.clone(),
        not_before: summary.not_before,
        not_after: summary.not_after,
        is_ca: summary.is_ca,
        copied_from: None,
        from_env,
    };
    Ok((root, info))
}

/// What a root file holds, for the confirmation (nothing is changed).
pub fn inspect(path: &Path, lang: Lang) -> Result<RootInfo, CommandError> {
    read(path, lang).map(|(_, info)| info)
}

/// Whether two fingerprints are the same, however they are written (colons, spaces, case).
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    a.len() == 64 && a == b
}

fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Pins the root in `path`, whose fingerprint the operator confirmed as `confirmed`: the file
/// is read again and refused if it differs; its certificate is written to a copy in
/// `config_dir`, which is returned (the path to put in the settings).
pub fn pin(
    config_dir: &Path,
    path: &Path,
    confirmed: &str,
    lang: Lang,
) -> Result<PathBuf, CommandError> {
    let (root, _) = read(path, lang)?;
    if !same_fingerprint(&root.fingerprint, confirmed) {
        tracing::warn!(file = %path.display(), "the root file changed after its confirmation; not pinned");
        return Err(changed(lang, path));
    }
    let prefix: String = root
        .fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    let copy = config_dir.join(format!("{COPY_PREFIX}{prefix}.pem"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(config_dir)?;
        let tmp = copy.with_extension("pem.tmp");
        std::fs::write(&tmp, pem(&root.der))?;
        std::fs::rename(&tmp, &copy)
    };
    write().map_err(|e| {
        tracing::warn!(error = %e, "writing the pinned root failed");
        CommandError::new(
            codes::SETTINGS,
            lang.pick(
                "无法在 Keyward 的配置文件夹中保存根证书，请检查磁盘空间和文件夹权限。",
                "無法在 Keyward 的設定資料夾中儲存根憑證，請檢查磁碟空間和資料夾權限。",
                "The root cannot be saved in Keyward's config folder; check disk space and folder permissions.",
            ),
        )
    })?;
    // What was written is what was confirmed.
    let (again, _) = read(&copy, lang)?;
    if !same_fingerprint(&again.fingerprint, confirmed) {
        return Err(changed(lang, &copy));
    }
    tracing::info!(from = %path.display(), copy = %copy.display(), sha256 = %root.fingerprint, "CA root pinned");
    Ok(copy)
}

/// Removes a pinned copy Keyward made in `config_dir` (after another root replaced it).
pub fn forget_copy(config_dir: &Path, old: &Path) {
    let ours = old.parent() == Some(config_dir)
        && old
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(COPY_PREFIX) && n.ends_with(".pem"));
    if ours && let Err(e) = std::fs::remove_file(old) {
        tracing::debug!(file = %old.display(), error = %e, "an old pinned root stays");
    }
}

/// Whether an `http://` URL names this computer (loopback), as the CA client decides it.
fn loopback(url: &tauri::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a CA address before it is saved: https, or http to this computer only.
pub fn check_url(text: &str, lang: Lang) -> Result<(), CommandError> {
    let invalid = || {
        let mut e = CommandError::new(
            codes::CA_URL_INVALID,
            lang.pick(
                "CA 服务地址格式不对。请填写 CA 提供的完整地址，例如 https://ca.example.cn:8443。未作任何更改。",
                "CA 服務位址格式不對。請填寫 CA 提供的完整位址，例如 https://ca.example.cn:8443。未作任何變更。",
                "The CA address is not a valid address. Enter the full address your CA gives, e.g. https://ca.example.cn:8443. Nothing was changed.",
            ),
        );
        e.detail = Some(text.to_owned());
        e
    };
    let url = tauri::Url::parse(text).map_err(|_| invalid())?;
    if url.host().is_none() {
        return Err(invalid());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback(&url) => Ok(()),
        "http" => {
            let mut e = CommandError::new(
                codes::CA_URL_INSECURE,
                lang.pick(
                    "CA 服务地址必须以 https:// 开头：http:// 不加密，也无法核实对方是不是您的 CA。请改用 CA 提供的 https 地址。未作任何更改。",
                    "CA 服務位址必須以 https:// 開頭：http:// 不加密，也無法核實對方是不是您的 CA。請改用 CA 提供的 https 位址。未作任何變更。",
                    "The CA address must start with https://: http:// is not encrypted and cannot prove the other side is your CA. Use the https address your CA gives. Nothing was changed.",
                ),
            );
            e.detail = Some(text.to_owned());
            Err(e)
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn self_signed(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn.to_owned());
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn openssl_fingerprint(file: &Path) -> Option<String> {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(file)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        Some(text.trim().split('=').nth(1)?.to_owned())
    }

    #[test]
    fn a_root_reads_as_subject_and_the_fingerprint_openssl_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.pem");
        std::fs::write(&file, self_signed("Keyward Test Root")).unwrap();
        let info = inspect(&file, Lang::ZhCn).unwrap();
        assert!(
            info.subject.contains("Keyward Test Root"),
            "{}",
            info.subject
        );
        assert!(info.is_ca);
        assert_eq!(info.sha256.len(), 32 * 3 - 1);
        match openssl_fingerprint(&file) {
            Some(fp) => assert_eq!(info.sha256, fp),
            None => eprintln!("openssl not found; fingerprint not compared"),
        }
        assert!(same_fingerprint(
            &info.sha256.to_lowercase().replace(':', " "),
            &info.sha256
        ));
        assert!(!same_fingerprint("", ""));
    }

    #[test]
    fn bundles_large_files_and_non_certificates_are_refused_with_their_own_codes() {
        let dir = tempfile::tempdir().unwrap();
        let one = self_signed("Root One");
        let two = format!("{one}{}", self_signed("Root Two"));
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("bundle.pem", two.into_bytes(), codes::CA_ROOT_BUNDLE),
            (
                "padded.pem",
                format!("{one}{}", "\n".repeat(ROOT_FILE_MAX_BYTES)).into_bytes(),
                codes::CA_ROOT_TOO_LARGE,
            ),
            ("empty.pem", Vec::new(), codes::CA_ROOT),
            (
                "junk.pem",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                codes::CA_ROOT,
            ),
        ];
        for (name, body, code) in cases {
            let file = dir.path().join(name);
            std::fs::write(&file, body).unwrap();
            for lang in Lang::ALL {
                let e = inspect(&file, lang).unwrap_err();
                assert_eq!(e.code, code, "{name}");
                assert!(!e.message.is_empty());
            }
        }
        let e = inspect(&dir.path().join("bundle.pem"), Lang::ZhCn).unwrap_err();
        assert!(e.message.contains("2 张证书"), "{}", e.message);
        let e = inspect(&dir.path().join("padded.pem"), Lang::En).unwrap_err();
        assert!(e.message.contains("64 KB"), "{}", e.message);
        assert_eq!(
            inspect(&dir.path().join("missing.pem"), Lang::En)
                .unwrap_err()
                .code,
            codes::CA_ROOT
        );
    }

    #[test]
    fn pinning_copies_what_was_confirmed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let original = dir.path().join("root.pem");
        std::fs::write(&original, self_signed("Root A")).unwrap();
        let a = inspect(&original, Lang::ZhCn).unwrap();

        // Replaced between the confirmation and the pin: refused, nothing written.
        std::fs::write(&original, self_signed("Root B")).unwrap();
        let e = pin(&config, &original, &a.sha256, Lang::ZhCn).unwrap_err();
        assert_eq!(e.code, codes::CA_ROOT_CHANGED);
        assert!(!config.exists());

        let b = inspect(&original, Lang::ZhCn).unwrap();
        let copy = pin(&config, &original, &b.sha256, Lang::ZhCn).unwrap();
        assert_eq!(copy.parent(), Some(config.as_path()));
        // The original replaced later: the copy still holds B.
        std::fs::write(&original, self_signed("Root C")).unwrap();
        assert_eq!(inspect(&copy, Lang::ZhCn).unwrap().sha256, b.sha256);
        let (text, _) = keyward_flows::connect::read_root_file(&copy).unwrap();
        assert!(text.starts_with("-----BEGIN"));

        forget_copy(&config, &copy);
        assert!(!copy.exists());
        // Only Keyward's own copies are ever removed.
        forget_copy(dir.path(), &original);
        assert!(original.exists());
    }

    #[test]
    fn plain_http_only_to_this_computer() {
        for ok in [
            "https://ca.example.cn:8443",
            "http://127.0.0.1:8750",
            "http://localhost:1",
            "http://[::1]:1",
        ] {
            assert!(check_url(ok, Lang::En).is_ok(), "{ok}");
        }
        for (url, code) in [
            ("http://ca.example.cn", codes::CA_URL_INSECURE),
            ("http://10.0.0.1:8750", codes::CA_URL_INSECURE),
            ("http://127.0.0.1.ca.example", codes::CA_URL_INSECURE),
            ("http://localhost.ca.example", codes::CA_URL_INSECURE),
            ("ftp://ca.example.cn", codes::CA_URL_INVALID),
            ("ca.example.cn", codes::CA_URL_INVALID),
        ] {
            let e = check_url(url, Lang::ZhCn).unwrap_err();
            assert_eq!(e.code, code, "{url}");
        }
        let e = check_url("http://ca.example.cn", Lang::ZhCn).unwrap_err();
        assert!(e.message.contains("https"), "{}", e.message);
    }
}

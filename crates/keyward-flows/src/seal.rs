//! 申请印章 / 变更印章 and 安装印章: the organisation's electronic seal.
//!
//! - [`apply`]: the seal's name and kind (official seal 公章 or contract seal 合同专用章),
//!   signed by the key; the stamped scan (PNG or JPEG) uploaded; handed to the CA's review.
//!   A change replaces the seal when it no longer matches the physical stamp; a change of
//!   the company's name is not a seal business (the CA refuses it).
//! - [`status`]: the key's latest seal business.
//! - [`install`]: the **install seal** button: the seal the CA made is fetched, its maker's
//!   signature checked over the bytes as received, the maker checked against the pinned
//!   root, its binding to this key's organisation certificate checked; only then is it
//!   written as the key's one seal object (application [`SEAL_APPLICATION`], label
//!   [`SEAL_LABEL`]), replacing the old one with the new object created first; read back and
//!   compared; the CA told, signed by the key.
//! - [`show`]: the seal on the key, parsed, with its image.
//! - [`save_form`]: 下载电子印章申请表, the CA's blank form, saved where the operator finds it.
//!
//! Steps that change the CA or the key are journaled first ([`FlowKind::Seal`]).

use keyward_ca_api::{
    AttachmentKind, Business, BusinessKind, BusinessState, CreatedBusiness, SealApplication,
    SealKind, Secret,
};
use keyward_ca_client::BusinessAuth;
use keyward_pki::Pin;
use keyward_pki::seal::{SEAL_TYPE_CONTRACT, SEAL_TYPE_OFFICIAL, Seal, SealSummary};
use keyward_token::{FinalTry, TokenRef, TokenSession};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{KeySigner, identity};
use crate::journal::FlowKind;
use crate::{Env, FlowError, OnProgress, Step, report};

/// CKA_APPLICATION of the key's seal object.
pub const SEAL_APPLICATION: &str = "keyward";
/// CKA_LABEL of the key's seal object.
pub const SEAL_LABEL: &str = "electronic-seal";

/// Where a seal business stands on this side (journaled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SealStep {
    /// Applied at the CA; the scan is uploaded next.
    Applied,
    /// The scan is uploaded; handed to review next.
    Uploaded,
    /// With the CA's reviewers; install once approved.
    Submitted,
    /// The seal with this SHA-256 is being written to the key.
    Writing {
        /// SHA-256 of the seal's DER, hex.
        seal_sha256: String,
    },
    /// The seal is on the key and read back; the CA is told next.
    Written {
        /// SHA-256 of the seal's DER, hex.
        seal_sha256: String,
    },
}

/// The journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealJournal {
    /// The CA's business id.
    pub business_id: String,
    /// The seal business's secret, for following it without the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The step.
    #[serde(flatten)]
    pub step: SealStep,
}

/// A seal as a person sees it, with its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealView {
    /// Name, type, validity, image type and size.
    #[serde(flatten)]
    pub summary: SealSummary,
    /// Official or contract seal, when the type says.
    pub kind: Option<SealKind>,
    /// The image's MIME type, when known.
    pub mime_type: Option<&'static str>,
    /// Whether the maker's signature holds and the seal is bound to this key's certificate.
    pub verified: bool,
    /// The image file's bytes.
    #[serde(skip)]
    pub image: Vec<u8>,
}

fn view(seal: &Seal, verified: bool) -> SealView {
    SealView {
        summary: seal.summary(),
        kind: match seal.info.seal_type {
            SEAL_TYPE_OFFICIAL => Some(SealKind::Official),
            SEAL_TYPE_CONTRACT => Some(SealKind::Contract),
            _ => None,
        },
        mime_type: seal.info.picture.mime_type(),
        verified,
        image: seal.info.picture.data.clone(),
    }
}

/// The seal business under way for a key, if any (journaled).
pub fn pending(env: &Env, serial: &str) -> Result<Option<SealJournal>, FlowError> {
    env.journal.load(FlowKind::Seal, serial)
}

fn finished(state: BusinessState) -> bool {
    matches!(
        state,
        BusinessState::Completed | BusinessState::Cancelled | BusinessState::Rejected
    )
}

/// The scan's type from its first bytes: only PNG and JPEG can become a seal's picture.
fn scan_type(bytes: &[u8], declared: &str) -> Result<&'static str, FlowError> {
    let sniffed = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else {
        return Err(FlowError::SealScanNotImage);
    };
    let declared = declared.trim().to_ascii_lowercase();
    let declared = if declared == "image/jpg" {
        "image/jpeg".to_owned()
    } else {
        declared
    };
    if !declared.is_empty() && declared != sniffed {
        return Err(FlowError::SealScanNotImage);
    }
    Ok(sniffed)
}

fn read(env: &Env, j: &SealJournal) -> Result<Option<Business>, FlowError> {
    match &j.secret {
        Some(secret) => Ok(Some(
            env.ca
                .business(&j.business_id, BusinessAuth::Secret(secret))?,
        )),
        None => Ok(None),
    }
}

/// Journals a seal business the CA opened for this computer (the remade seal after a
/// renewal), so the seal page follows it without the PIN.
pub(crate) fn take_up(env: &Env, serial: &str, created: CreatedBusiness) -> Result<(), FlowError> {
    env.journal.save(
        FlowKind::Seal,
        serial,
        &SealJournal {
            business_id: created.business.id,
            secret: Some(created.secret),
            step: SealStep::Submitted,
        },
    )
}

/// 申请印章 (`change == false`) or 变更印章 (`change == true`): applies, signed by the key,
/// uploads the stamped scan and hands the business to review. Resumes an application whose
/// scan or submission was interrupted.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    env: &Env,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
    name: &str,
    kind: SealKind,
    change: bool,
    scan: &[u8],
    content_type: &str,
) -> Result<Business, FlowError> {
    let serial = token.serial.as_str();
    let content_type = scan_type(scan, content_type)?;
    let open_here = match pending(env, serial)? {
        Some(j) => match read(env, &j)? {
            Some(b) if !finished(b.state) => Some(j),
            _ => None,
        },
        None => None,
    };
    let mut j = match open_here {
        Some(j) => j,
        None => {
            let session = env.module.session(token)?;
            let id = identity(&session, env.now())?;
            session.login(pin, confirm)?;
            let signer = KeySigner::new(&session, &id.key_id);
            let created = match env.ca.apply_seal(
                &SealApplication {
                    seal_name: name.trim().to_owned(),
                    seal_kind: kind,
                    change,
                },
                &signer,
            ) {
                Ok(c) => c,
                // An application whose answer was lost is already at the CA: this key's
                // own, taken up with a fresh secret.
                Err(e) if e.api_code() == Some(keyward_ca_api::ErrorCode::WrongState) => {
                    let open = env
                        .ca
                        .businesses(&signer)?
                        .businesses
                        .into_iter()
                        .find(|b| {
                            b.kind == BusinessKind::Seal
                                && b.state == BusinessState::AwaitingDocuments
                        });
                    match open {
                        Some(b) => env.ca.renew_business_secret(&b.id, &signer)?,
                        None => {
                            let _ = session.logout();
                            return Err(e.into());
                        }
                    }
                }
                Err(e) => {
                    let _ = session.logout();
                    return Err(e.into());
                }
            };
            let _ = session.logout();
            let j = SealJournal {
                business_id: created.business.id,
                secret: Some(created.secret),
                step: SealStep::Applied,
            };
            env.journal.save(FlowKind::Seal, serial, &j)?;
            j
        }
    };
    let secret = j
        .secret
        .clone()
        .ok_or_else(|| FlowError::Journal("the seal journal holds no secret".into()))?;
    let auth = BusinessAuth::Secret(&secret);
    if j.step == SealStep::Applied {
        env.ca.upload_attachment(
            &j.business_id,
            auth,
            AttachmentKind::SealScan,
            content_type,
            scan.to_vec(),
        )?;
        j.step = SealStep::Uploaded;
        env.journal.save(FlowKind::Seal, serial, &j)?;
    }
    if j.step == SealStep::Uploaded {
        let b = env.ca.business(&j.business_id, auth)?;
        let b = if b.state == BusinessState::AwaitingDocuments {
            env.ca.submit_for_review(&j.business_id, auth)?
        } else {
            b
        };
        j.step = SealStep::Submitted;
        env.journal.save(FlowKind::Seal, serial, &j)?;
        return Ok(b);
    }
    Ok(env.ca.business(&j.business_id, auth)?)
}

/// The seal business this computer follows for the key (applied here, or remade for it
/// after a renewal), as the CA sees it now; `None` when there is none. A seal the CA holds
/// for the key without such a business shows in the key's standing.
pub fn status(env: &Env, serial: &str) -> Result<Option<Business>, FlowError> {
    match pending(env, serial)? {
        Some(j) => read(env, &j),
        None => Ok(None),
    }
}

const TOTAL: u8 = 5;

/// The install-seal button (安装印章): fetches the seal the CA made for this key, checks it,
/// writes it as the key's one seal object and tells the CA.
pub fn install(
    env: &Env,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
    mut progress: Option<OnProgress<'_>>,
) -> Result<SealView, FlowError> {
    report(&mut progress, Step::ContactingCa, 1, TOTAL);
    // The business followed here says first whether there is anything to install.
    if let Some(business) = status(env, &token.serial)? {
        match business.state {
            BusinessState::CertificateIssued | BusinessState::Completed => {}
            BusinessState::Rejected => {
                return Err(FlowError::Rejected {
                    note: business
                        .timeline
                        .last()
                        .map(|e| e.note.clone())
                        .unwrap_or_default(),
                });
            }
            BusinessState::Cancelled => {
                return Err(FlowError::NothingInProgress(
                    "the seal business was cancelled",
                ));
            }
            _ => return Err(FlowError::AwaitingReview),
        }
    }
    let doc = {
        let session = env.module.session(token)?;
        let id = identity(&session, env.now())?;
        session.login(pin, confirm)?;
        let doc = env.ca.seal(&KeySigner::new(&session, &id.key_id));
        let _ = session.logout();
        doc?
    };
    let der = keyward_pki::pem::from_base64(&doc.seal_der_base64)
        .map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    install_seal(env, token, pin, confirm, &doc.business_id, &der, progress)
}

/// The checked half of [`install`], over a seal already fetched: verify, write, read back,
/// confirm. Nothing touches the key unless every check passes.
pub fn install_seal(
    env: &Env,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
    business_id: &str,
    der: &[u8],
    mut progress: Option<OnProgress<'_>>,
) -> Result<SealView, FlowError> {
    let serial = token.serial.as_str();
    report(&mut progress, Step::Verifying, 2, TOTAL);
    let seal = Seal::from_der(der).map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    seal.verify_signature()
        .map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    // The maker is checked against the root this client pins, never one the CA sends.
    seal.maker_issued_by(env.pinned_root()?)
        .map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    let session = env.module.session(token)?;
    let id = identity(&session, env.now())?;
    seal.verify_binding(&id.cert_der)
        .map_err(|_| FlowError::SealOtherCertificate)?;
    let sha = hex::encode(Sha256::digest(der));

    session.login(pin, confirm)?;
    let secret = pending(env, serial)?
        .filter(|j| j.business_id == business_id)
        .and_then(|j| j.secret);
    env.journal.save(
        FlowKind::Seal,
        serial,
        &SealJournal {
            business_id: business_id.to_owned(),
            secret: secret.clone(),
            step: SealStep::Writing {
                seal_sha256: sha.clone(),
            },
        },
    )?;
    report(&mut progress, Step::Writing, 3, TOTAL);
    // Written even when the key already shows this seal: a run pulled between creating the
    // new object and destroying the old leaves two, and only a write clears the extra one.
    // Public: anyone may read a seal; the new object is created before the old goes.
    session.write_data(SEAL_APPLICATION, SEAL_LABEL, der, false)?;
    report(&mut progress, Step::Verifying, 4, TOTAL);
    check_on_key(&session, der)?;
    env.journal.save(
        FlowKind::Seal,
        serial,
        &SealJournal {
            business_id: business_id.to_owned(),
            secret,
            step: SealStep::Written { seal_sha256: sha },
        },
    )?;
    report(&mut progress, Step::Confirming, 5, TOTAL);
    let signer = KeySigner::new(&session, &id.key_id);
    match env.ca.confirm_seal_installed(business_id, &signer) {
        Ok(_) => {}
        // Confirmed by a run whose answer was lost: done already.
        Err(e) if e.api_code() == Some(keyward_ca_api::ErrorCode::WrongState) => {
            if env
                .ca
                .business(business_id, BusinessAuth::Key(&signer))?
                .state
                != BusinessState::Completed
            {
                return Err(e.into());
            }
        }
        Err(e) => return Err(e.into()),
    }
    env.journal.clear(FlowKind::Seal, serial)?;
    let _ = session.logout();
    tracing::info!(serial, "electronic seal installed");
    Ok(view(&seal, true))
}

fn check_on_key(session: &TokenSession, der: &[u8]) -> Result<(), FlowError> {
    match session.read_data(SEAL_APPLICATION, SEAL_LABEL)? {
        Some(v) if v == der => Ok(()),
        _ => Err(FlowError::SealWriteMismatch),
    }
}

/// The name the blank seal application form is saved under, without its extension.
pub const SEAL_FORM_NAME: &str = "电子印章申请表";

/// 下载电子印章申请表: the CA's blank seal form, saved in `dir` as `电子印章申请表.html`
/// (or `.pdf`), or `电子印章申请表 (2).html` and so on when that name is taken: a file
/// already there is never replaced. Returns where it was saved. Needs no key and no PIN.
pub fn save_form(env: &Env, dir: &std::path::Path) -> Result<std::path::PathBuf, FlowError> {
    let form = env.ca.seal_form()?;
    let file_error = |path: &std::path::Path, e: std::io::Error| FlowError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{SEAL_FORM_NAME}.{}", form.extension)
        } else {
            format!("{SEAL_FORM_NAME} ({n}).{}", form.extension)
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(&form.bytes).map_err(|e| file_error(&path, e))?;
                tracing::info!(path = %path.display(), "seal form saved");
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(file_error(&path, e)),
        }
    }
    Err(FlowError::OutputExists(
        dir.join(format!("{SEAL_FORM_NAME}.{}", form.extension)),
    ))
}

/// The seal on the key, parsed; `verified` says whether its maker's signature holds and it
/// is bound to the key's organisation certificate. No PIN is needed: the seal is public.
pub fn show(env: &Env, token: &TokenRef) -> Result<SealView, FlowError> {
    let session = env.module.session(token)?;
    let der = session
        .read_data(SEAL_APPLICATION, SEAL_LABEL)?
        .ok_or(FlowError::NoSeal)?;
    let seal = Seal::from_der(&der).map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    let bound = identity(&session, env.now())
        .map(|id| seal.verify_binding(&id.cert_der).is_ok())
        .unwrap_or(false);
    let verified = bound && seal.verify_signature().is_ok();
    Ok(view(&seal, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_png_and_jpeg_scans_become_seals() {
        assert_eq!(
            scan_type(b"\x89PNG\r\n\x1a\nrest", "image/png").expect("png"),
            "image/png"
        );
        assert_eq!(
            scan_type(&[0xFF, 0xD8, 0xFF, 0xE0], "image/jpg").expect("jpeg"),
            "image/jpeg"
        );
        assert_eq!(
            scan_type(b"\x89PNG\r\n\x1a\nrest", "").expect("sniffed"),
            "image/png"
        );
        assert!(matches!(
            scan_type(b"%PDF-1.7", "application/pdf"),
            Err(FlowError::SealScanNotImage)
        ));
        assert!(matches!(
            scan_type(b"\x89PNG\r\n\x1a\nrest", "image/jpeg"),
            Err(FlowError::SealScanNotImage)
        ));
    }
}

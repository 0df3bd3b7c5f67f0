//! 盖章: a document stamped with the key's electronic seal, and stamps checked.
//!
//! - [`preview`]: what a stamp would be made of, before any PIN: the document's pages and
//!   sizes (refusing an encrypted, damaged or oversized one), and the key's seal (its
//!   picture and size), checked to be signed by its maker and bound to the key's
//!   organisation certificate.
//! - [`stamp`]: the stamp itself. Everything that can be refused is refused before the PIN
//!   reaches the key (the document, the page, the place, the seal); then the login guard,
//!   one signature by the key over the PDF's byte range (PAdES B-B, `ETSI.CAdES.detached`,
//!   the organisation certificate and its chain without the root), an incremental update
//!   appended to the document, and the result checked before it is handed back.
//! - [`stamp_file`]: the same from one file to a new one; the input is only read, and an
//!   existing file is never replaced.
//! - [`verify`]: each signature of a document: signer (organisation, credit code), time,
//!   whether the document is unchanged since, the chain against the pinned root, and
//!   whether the picture it shows is that of a seal made under the root and bound to the
//!   signer's certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_pdf::{ImageKind, Placement, SealPicture, StampSpec};
use keyward_pki::cms::{self, Content, Detached, SignOptions};
use keyward_pki::seal::Seal;
use keyward_pki::{CertSummary, Pin};
use keyward_token::{FinalTry, Module, PinStatus, TokenRef, TokenSession};
use serde::Serialize;
use time::OffsetDateTime;

use crate::identity::{Identity, identity};
use crate::seal::{SEAL_APPLICATION, SEAL_LABEL};
use crate::{FlowError, OnProgress, Step, report};

/// The largest document stamped or checked, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = keyward_pdf::MAX_PDF_BYTES;

/// Where the operator wants the seal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// Centre `x_mm` from the left and `y_mm` from the top of page `page` (1-based; the
    /// last when `None`).
    At {
        /// Page, or the last.
        page: Option<u32>,
        /// From the left edge.
        x_mm: f64,
        /// From the top edge.
        y_mm: f64,
    },
    /// The usual place: the bottom right of `page` (the last page when `None`), clear of
    /// the margins.
    Usual {
        /// Page, or the last.
        page: Option<u32>,
    },
    /// 骑缝章 across the right edge of every page, centred `y_mm` from the top (the middle
    /// of the page when `None`).
    CrossPage {
        /// From the top edge.
        y_mm: Option<f64>,
    },
}

/// A page's size, for placing the seal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PageView {
    /// Width, millimetres.
    pub width_mm: f64,
    /// Height, millimetres.
    pub height_mm: f64,
}

/// What a stamp would be made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StampPreview {
    /// The document's pages.
    pub pages: Vec<PageView>,
    /// Signatures already in it.
    pub signatures: usize,
    /// The seal's name.
    pub seal_name: String,
    /// The seal's size on paper, millimetres.
    pub seal_width_mm: f64,
    /// The seal's size on paper, millimetres.
    pub seal_height_mm: f64,
    /// The picture's MIME type.
    pub seal_mime_type: &'static str,
    /// The picture's bytes.
    #[serde(skip)]
    pub seal_image: Vec<u8>,
    /// The organisation that signs.
    pub organization: Option<String>,
}

/// A stamped document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamped {
    /// The new signature field.
    pub field: String,
    /// The pages the seal is on.
    pub pages: Vec<u32>,
    /// The document's size afterwards.
    pub bytes: usize,
    /// The stamped document.
    #[serde(skip)]
    pub document: Vec<u8>,
}

/// The key's seal, checked, with its picture's kind.
struct KeySeal {
    seal: Seal,
    der: Vec<u8>,
    kind: ImageKind,
}

fn key_seal(session: &TokenSession, id: &Identity) -> Result<KeySeal, FlowError> {
    let der = session
        .read_data(SEAL_APPLICATION, SEAL_LABEL)?
        .ok_or(FlowError::NoSeal)?;
    let seal = Seal::from_der(&der).map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    seal.verify_signature()
        .map_err(|e| FlowError::SealInvalid(e.to_string()))?;
    seal.verify_binding(&id.cert_der)
        .map_err(|_| FlowError::SealOtherCertificate)?;
    let kind = ImageKind::from_seal_type(&seal.info.picture.kind).ok_or_else(|| {
        FlowError::SealInvalid(format!(
            "a {} picture cannot be shown in a PDF",
            seal.info.picture.kind
        ))
    })?;
    Ok(KeySeal { seal, der, kind })
}

fn picture(s: &KeySeal) -> SealPicture<'_> {
    SealPicture {
        data: &s.seal.info.picture.data,
        kind: s.kind,
        width_mm: s.seal.info.picture.width as f64,
        height_mm: s.seal.info.picture.height as f64,
    }
}

fn check_size(len: usize) -> Result<(), FlowError> {
    if len > MAX_DOCUMENT_BYTES {
        return Err(FlowError::Pdf(keyward_pdf::PdfError::TooLarge {
            len,
            limit: MAX_DOCUMENT_BYTES,
        }));
    }
    Ok(())
}

/// The document's pages and the key's seal; no PIN, nothing changes.
pub fn preview(
    module: &Arc<Module>,
    token: &TokenRef,
    document: &[u8],
    now: OffsetDateTime,
) -> Result<StampPreview, FlowError> {
    check_size(document.len())?;
    let info = keyward_pdf::inspect(document)?;
    let session = module.session(token)?;
    let id = identity(&session, now)?;
    let s = key_seal(&session, &id)?;
    Ok(StampPreview {
        pages: info
            .pages
            .iter()
            .map(|p| PageView {
                width_mm: p.width_mm,
                height_mm: p.height_mm,
            })
            .collect(),
        signatures: info.signatures,
        seal_name: s.seal.info.name.clone(),
        seal_width_mm: s.seal.info.picture.width as f64,
        seal_height_mm: s.seal.info.picture.height as f64,
        seal_mime_type: s.seal.info.picture.mime_type().unwrap_or("image/png"),
        seal_image: s.seal.info.picture.data.clone(),
        organization: id.summary.organization.clone(),
    })
}

/// The key's PIN status, for asking before the final try.
pub fn pin_status(module: &Arc<Module>, token: &TokenRef) -> Result<PinStatus, FlowError> {
    Ok(module.pin_status(token)?)
}

/// Margin of the usual place from the page's right and bottom edges, millimetres.
const USUAL_MARGIN_MM: f64 = 25.0;

fn placement(place: Place, pages: &[keyward_pdf::PageSize], seal: (f64, f64)) -> Placement {
    match place {
        Place::At { page, x_mm, y_mm } => Placement::Page {
            page: page.unwrap_or(pages.len() as u32),
            x_mm,
            y_mm,
        },
        Place::Usual { page } => {
            let n = page.unwrap_or(pages.len() as u32);
            let size = pages.get((n as usize).wrapping_sub(1));
            let (w, h) = size.map_or((0.0, 0.0), |p| (p.width_mm, p.height_mm));
            Placement::Page {
                page: n,
                x_mm: w - USUAL_MARGIN_MM - seal.0 / 2.0,
                y_mm: h - USUAL_MARGIN_MM - seal.1 / 2.0,
            }
        }
        Place::CrossPage { y_mm } => Placement::CrossPage {
            y_mm: y_mm.unwrap_or_else(|| pages.first().map_or(0.0, |p| p.height_mm / 2.0)),
        },
    }
}

/// Stamps `document` with the key's seal, signed on the key; see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn stamp(
    module: &Arc<Module>,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
    document: &[u8],
    place: Place,
    now: OffsetDateTime,
    mut progress: Option<OnProgress<'_>>,
) -> Result<Stamped, FlowError> {
    const TOTAL: u8 = 3;
    check_size(document.len())?;
    report(&mut progress, Step::ReadingKey, 1, TOTAL);
    let info = keyward_pdf::inspect(document)?;
    let session = module.session(token)?;
    let id = identity(&session, now)?;
    let s = key_seal(&session, &id)?;
    let pic = picture(&s);
    let organisation = id
        .summary
        .organization
        .clone()
        .unwrap_or_else(|| s.seal.info.name.clone());
    let spec = StampSpec {
        picture: pic,
        placement: placement(place, &info.pages, (pic.width_mm, pic.height_mm)),
        seal_der: &s.der,
        signer_name: &organisation,
        time: now,
        reason: Some("盖章 (electronic seal)"),
    };
    // Every refusal of the document, the page or the place happens here, before the PIN.
    let prepared = keyward_pdf::prepare(document, &spec)?;
    let chain = chain_without_root(&session, &id, now)?;

    report(&mut progress, Step::Signing, 2, TOTAL);
    session.login(pin, confirm)?;
    let signed = session
        .signer(&id.key_id)
        .map_err(FlowError::from)
        .and_then(|signer| {
            cms::sign(
                &signer,
                &id.cert_der,
                &chain,
                Content::DetachedDigest(prepared.digest()),
                &SignOptions::pades(),
            )
            .map_err(FlowError::from)
        });
    let _ = session.logout();
    let signature = signed?;
    let field = prepared.field_name().to_owned();
    let out = prepared.finish(&signature)?;

    report(&mut progress, Step::Verifying, 3, TOTAL);
    let found = keyward_pdf::signatures(&out)?;
    let last = found
        .iter()
        .find(|f| f.field == field && f.covers_whole_file)
        .ok_or_else(|| {
            FlowError::Pdf(keyward_pdf::PdfError::Signature(
                "the new signature is missing".into(),
            ))
        })?;
    cms::verify(&last.cms, Some(Detached::Digest(last.digest)))?;
    tracing::info!(serial = %token.serial, field, pages = ?last.pages, "document stamped");
    Ok(Stamped {
        field,
        pages: last.pages.clone(),
        bytes: out.len(),
        document: out,
    })
}

/// The CA certificates on the key, the self-signed root left out: the verifier brings its
/// own trust anchor.
fn chain_without_root(
    session: &TokenSession,
    id: &Identity,
    now: OffsetDateTime,
) -> Result<Vec<Vec<u8>>, FlowError> {
    let mut out = Vec::new();
    for c in session.certificates()? {
        if c.der == id.cert_der {
            continue;
        }
        let Ok(summary) = CertSummary::from_der(&c.der, now) else {
            continue;
        };
        let self_signed = keyward_pki::verify::issued_by(&c.der, &c.der).is_ok();
        if summary.is_ca && !self_signed {
            out.push(c.der);
        }
    }
    Ok(out)
}

/// What became of a stamped file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StampedFile {
    /// The stamp.
    #[serde(flatten)]
    pub stamped: Stamped,
    /// Where it was written.
    pub output: PathBuf,
}

/// Reads a document, refusing one over the size limit before reading it.
pub fn read_document(path: &Path) -> Result<Vec<u8>, FlowError> {
    let io = |e: std::io::Error| FlowError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    check_size(usize::try_from(len).unwrap_or(usize::MAX))?;
    std::fs::read(path).map_err(io)
}

/// Writes `bytes` as a new file at `path`: never over an existing file (the name is taken
/// only once the whole document is on disk).
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), FlowError> {
    use std::io::Write;
    let err = |e: std::io::Error| FlowError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if path.exists() {
        return Err(FlowError::OutputExists(path.to_owned()));
    }
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::Error::other("not a file name")))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let staged = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    // A hard link fails when the name exists: no file is ever replaced.
    let written = staged.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    let written = match written {
        // A file system without hard links (FAT on a USB stick, some network shares): the
        // name itself, created only if absent, written in place.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
            tracing::debug!(error = %e, "no hard link; writing the new file in place");
            write_exclusive(path, bytes)
        }
        other => other,
    };
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(FlowError::OutputExists(path.to_owned()))
        }
        Err(e) => Err(err(e)),
    }
}

/// Creates `path`, which must not exist, with `bytes`; a file left half-written by a failed
/// write is removed (it is ours: the creation succeeded).
fn write_exclusive(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let done = f.write_all(bytes).and_then(|()| f.sync_all());
    if done.is_err() {
        drop(f);
        let _ = std::fs::remove_file(path);
    }
    done
}

/// [`stamp`] from the file `input` to the new file `output`. `output` must name another,
/// not yet existing file; the input is only read.
#[allow(clippy::too_many_arguments)]
pub fn stamp_file(
    module: &Arc<Module>,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
    input: &Path,
    output: &Path,
    place: Place,
    now: OffsetDateTime,
    progress: Option<OnProgress<'_>>,
) -> Result<StampedFile, FlowError> {
    let same = match (std::fs::canonicalize(input), output.parent()) {
        (Ok(i), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::canonicalize(parent)
                .ok()
                .and_then(|p| output.file_name().map(|n| p.join(n)))
                .is_some_and(|o| o == i)
        }
        _ => false,
    };
    if same {
        return Err(FlowError::OutputIsInput);
    }
    if output.exists() {
        return Err(FlowError::OutputExists(output.to_owned()));
    }
    let document = read_document(input)?;
    let stamped = stamp(module, token, pin, confirm, &document, place, now, progress)?;
    write_new_file(output, &stamped.document)?;
    Ok(StampedFile {
        stamped,
        output: output.to_owned(),
    })
}

/// The seal a signature shows, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealCheck {
    /// The seal's name.
    pub name: String,
    /// Its identifier.
    pub es_id: String,
    /// The maker's signature holds and the maker is certified by the pinned root.
    pub made_under_root: bool,
    /// The seal is bound to the signer's certificate.
    pub bound_to_signer: bool,
    /// The picture the signature shows is this seal's picture.
    pub picture_matches: bool,
}

/// One signature of a document, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureReport {
    /// The field's name.
    pub field: String,
    /// The pages the seal is shown on.
    pub pages: Vec<u32>,
    /// The signer's organisation.
    pub organization: Option<String>,
    /// The signer's unified social credit code.
    pub credit_code: Option<String>,
    /// The signer's certificate subject.
    pub signer: Option<String>,
    /// When it was signed (the signature dictionary's /M), RFC 3339 when readable.
    pub signed_at: Option<String>,
    /// The signature holds over the bytes it covers.
    pub intact: bool,
    /// Nothing was added to the document after it.
    pub unchanged_since: bool,
    /// The signer's certificate chains to the pinned root.
    pub chain_trusted: bool,
    /// The seal it shows, when it carries one.
    pub seal: Option<SealCheck>,
    /// All of the above hold (a later revision, such as another stamp, is allowed).
    pub valid: bool,
    /// Why not, when something failed.
    pub problems: Vec<String>,
}

/// Every signature of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StampReport {
    /// The signatures, in the document's order.
    pub signatures: Vec<SignatureReport>,
    /// There is at least one, and every one is valid.
    pub all_valid: bool,
}

fn pdf_date(m: &str) -> Option<String> {
    // D:YYYYMMDDHHmmSS+HH'mm'
    let d = m.strip_prefix("D:")?;
    let digits = |a: usize, b: usize| {
        d.get(a..b)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
    };
    let (y, mo, da, h, mi, s) = (
        digits(0, 4)?,
        digits(4, 6)?,
        digits(6, 8)?,
        digits(8, 10)?,
        digits(10, 12)?,
        digits(12, 14).unwrap_or("00"),
    );
    let zone = match d.get(14..) {
        Some(z) if z.starts_with('Z') || z.is_empty() => "Z".to_owned(),
        Some(z) if z.len() >= 6 && (z.starts_with('+') || z.starts_with('-')) => {
            format!("{}{}:{}", &z[..1], &z[1..3], &z[4..6])
        }
        _ => "Z".to_owned(),
    };
    Some(format!("{y}-{mo}-{da}T{h}:{mi}:{s}{zone}"))
}

/// [`verify`] of the file `path` against the root certificate in the PEM file `root_pem`.
pub fn verify_file(
    path: &Path,
    root_pem: &Path,
    now: OffsetDateTime,
) -> Result<StampReport, FlowError> {
    let text = std::fs::read_to_string(root_pem).map_err(|e| FlowError::File {
        path: root_pem.to_owned(),
        reason: e.to_string(),
    })?;
    let root = keyward_pki::pem::decode(&text, "CERTIFICATE").map_err(|e| FlowError::File {
        path: root_pem.to_owned(),
        reason: e.to_string(),
    })?;
    verify(&read_document(path)?, &root, now)
}

/// Checks every signature of `document` against the pinned root `root_der`; see the module
/// docs. A document without signatures gives an empty report, not an error.
pub fn verify(
    document: &[u8],
    root_der: &[u8],
    now: OffsetDateTime,
) -> Result<StampReport, FlowError> {
    check_size(document.len())?;
    let mut out = Vec::new();
    for f in keyward_pdf::signatures(document)? {
        let mut problems = Vec::new();
        if !f.range_well_formed {
            problems.push("the byte range does not cover the document as it should".to_owned());
        }
        let verified = match cms::verify(&f.cms, Some(Detached::Digest(f.digest))) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let intact = verified.is_some() && f.range_well_formed;
        let summary = verified
            .as_ref()
            .and_then(|v| CertSummary::from_der(&v.signer_cert, now).ok());
        let chain_trusted = match &verified {
            Some(v) => {
                match keyward_pki::verify::chains_to(&v.signer_cert, &v.other_certs, root_der, now)
                {
                    Ok(()) => true,
                    Err(e) => {
                        problems.push(format!("certificate chain: {e}"));
                        false
                    }
                }
            }
            None => false,
        };
        let seal = f.seal_der.as_ref().map(|der| match Seal::from_der(der) {
            Ok(seal) => {
                let made_under_root =
                    seal.verify_signature().is_ok() && seal.maker_issued_by(root_der).is_ok();
                let bound_to_signer = verified
                    .as_ref()
                    .is_some_and(|v| seal.verify_binding(&v.signer_cert).is_ok());
                let picture_matches = ImageKind::from_seal_type(&seal.info.picture.kind)
                    .is_some_and(|kind| {
                        f.shows_picture(&SealPicture {
                            data: &seal.info.picture.data,
                            kind,
                            width_mm: seal.info.picture.width as f64,
                            height_mm: seal.info.picture.height as f64,
                        })
                    });
                SealCheck {
                    name: seal.info.name.clone(),
                    es_id: seal.info.es_id.clone(),
                    made_under_root,
                    bound_to_signer,
                    picture_matches,
                }
            }
            Err(e) => {
                problems.push(e.to_string());
                SealCheck {
                    name: String::new(),
                    es_id: String::new(),
                    made_under_root: false,
                    bound_to_signer: false,
                    picture_matches: false,
                }
            }
        });
        match &seal {
            None => problems.push("no electronic seal is kept with the signature".to_owned()),
            Some(s) => {
                if !s.made_under_root {
                    problems.push("the seal was not made under the pinned root".to_owned());
                }
                if !s.bound_to_signer {
                    problems.push("the seal is bound to another certificate".to_owned());
                }
                if !s.picture_matches {
                    problems.push("the picture shown is not the seal's".to_owned());
                }
            }
        }
        let seal_ok = seal
            .as_ref()
            .is_some_and(|s| s.made_under_root && s.bound_to_signer && s.picture_matches);
        out.push(SignatureReport {
            field: f.field.clone(),
            pages: f.pages.clone(),
            organization: summary.as_ref().and_then(|s| s.organization.clone()),
            credit_code: summary.as_ref().and_then(|s| s.credit_code.clone()),
            signer: summary.as_ref().map(|s| s.subject.clone()),
            signed_at: f.time.as_deref().and_then(pdf_date),
            intact,
            unchanged_since: f.covers_whole_file,
            chain_trusted,
            valid: intact && chain_trusted && seal_ok,
            seal,
            problems,
        });
    }
    let all_valid = !out.is_empty() && out.iter().all(|s| s.valid);
    Ok(StampReport {
        signatures: out,
        all_valid,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_file_is_written_whole_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pdf");
        write_new_file(&path, b"stamped").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"stamped");
        assert!(matches!(
            write_new_file(&path, b"again"),
            Err(FlowError::OutputExists(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"stamped");
        // No staging file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // The fallback for file systems without hard links refuses an existing name too.
        let e = write_exclusive(&path, b"again").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"stamped");
        let other = dir.path().join("other.pdf");
        write_exclusive(&other, b"in place").unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"in place");
    }

    #[test]
    fn pdf_dates_read_as_rfc3339() {
        assert_eq!(
            pdf_date("D:20261121103005+08'00'").as_deref(),
            Some("2026-11-21T10:30:05+08:00")
        );
        assert_eq!(
            pdf_date("D:20261121103005Z").as_deref(),
            Some("2026-11-21T10:30:05Z")
        );
        assert_eq!(pdf_date("yesterday"), None);
    }

    #[test]
    fn the_usual_place_is_bottom_right_of_the_last_page() {
        let pages = [
            keyward_pdf::PageSize {
                width_mm: 210.0,
                height_mm: 297.0,
            },
            keyward_pdf::PageSize {
                width_mm: 297.0,
                height_mm: 210.0,
            },
        ];
        assert_eq!(
            placement(Place::Usual { page: None }, &pages, (40.0, 40.0)),
            Placement::Page {
                page: 2,
                x_mm: 252.0,
                y_mm: 165.0
            }
        );
        assert_eq!(
            placement(Place::CrossPage { y_mm: None }, &pages, (40.0, 40.0)),
            Placement::CrossPage { y_mm: 148.5 }
        );
        // A page that does not exist stays so; prepare refuses it.
        assert!(matches!(
            placement(Place::Usual { page: Some(9) }, &pages, (40.0, 40.0)),
            Placement::Page { page: 9, .. }
        ));
    }
}

//! Pure data for Keyward's stamps (盖章): nothing here touches a file, a key or a clock.
//! The caller passes the PDF's bytes in and gets bytes back.
//!
//! - [`inspect`]: pages and their sizes, signatures already there; refuses an encrypted,
//!   damaged or oversized document with its own error.
//! - [`prepare`]: the stamp as an incremental update (ISO 32000-1 §7.5.6) appended to the
//!   document, so earlier revisions and their signatures stay byte for byte as they were:
//!   the seal's picture as the visible appearance of a signature field at the chosen place
//!   (or, for a cross-page seal 骑缝章, split across the right edge of every page: the
//!   signature field's widget shows the first strip, and a locked stamp annotation on each
//!   further page, named after the field, shows the next), the seal itself (GB/T 38540 `SES_Seal`, DER) kept in the
//!   signature dictionary, and a placeholder for a PAdES signature (`ETSI.CAdES.detached`).
//!   [`Prepared::digest`] is the SHA-256 of the byte range the signature must cover;
//!   [`Prepared::finish`] puts the CMS signature in.
//! - [`signatures`]: every signature field with a value, read back: the byte range and
//!   whether it covers the whole file, the CMS signature, the seal kept with it, and the
//!   picture its appearance shows.
//!
//! Coordinates are millimetres from the top-left corner of the page as shown, to the centre
//! of the seal.

mod image;
mod read;
mod write;

pub use image::{ImageKind, SealPicture};
pub use read::{FoundSignature, signatures};
pub use write::{Placement, Prepared, StampSpec, prepare};

/// The largest document Keyward stamps, in bytes (the whole file is held in memory).
pub const MAX_PDF_BYTES: usize = 64 * 1024 * 1024;

/// Room kept for the CMS signature, in bytes (twice as many hex digits in the file).
pub const SIGNATURE_ROOM: usize = 24 * 1024;

/// Millimetres per PDF point (1/72 inch).
pub const MM_PER_PT: f64 = 25.4 / 72.0;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The document is larger than [`MAX_PDF_BYTES`].
    #[error("the document has {len} bytes, more than the {limit} Keyward stamps")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is encrypted (password-protected or with permissions).
    #[error("the document is encrypted")]
    Encrypted,
    /// The document cannot be read as a PDF.
    #[error("the document is damaged or not a PDF: {0}")]
    Damaged(String),
    /// There is no such page.
    #[error("page {page} does not exist; the document has {pages} pages")]
    PageOutOfRange {
        /// The page asked for (1-based).
        page: u32,
        /// How many there are.
        pages: u32,
    },
    /// The seal would not lie wholly on the page.
    #[error("the seal does not fit on the page at that place")]
    OffPage,
    /// A cross-page seal goes on before any other signature: added later, its strips would
    /// be changes to pages an earlier signature covers.
    #[error("a cross-page seal goes on before any other signature")]
    CrossPageAfterSignature,
    /// A page is shown rotated; stamping such pages is not supported yet.
    #[error("page {0} is rotated; Keyward stamps only unrotated pages")]
    RotatedPage(u32),
    /// The seal's picture cannot be used.
    #[error("the seal's picture cannot be used: {0}")]
    Picture(String),
    /// The signature is larger than the room kept for it.
    #[error("the signature has {len} bytes, more than the {room} kept for it")]
    SignatureTooLarge {
        /// Its size.
        len: usize,
        /// The room.
        room: usize,
    },
    /// A signature in the document cannot be read.
    #[error("a signature in the document cannot be read: {0}")]
    Signature(String),
}

/// A page's size as shown, in millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageSize {
    /// Width.
    pub width_mm: f64,
    /// Height.
    pub height_mm: f64,
}

/// What a document holds, for choosing where to stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInfo {
    /// Every page, in order.
    pub pages: Vec<PageSize>,
    /// Signature fields with a value.
    pub signatures: usize,
}

/// Reads a document's pages and signature count; the checks every stamp starts with.
pub fn inspect(pdf: &[u8]) -> Result<DocumentInfo, PdfError> {
    let doc = write::load(pdf)?;
    let pages = write::page_boxes(&doc)?
        .iter()
        .map(|p| PageSize {
            width_mm: p.width() * MM_PER_PT,
            height_mm: p.height() * MM_PER_PT,
        })
        .collect();
    Ok(DocumentInfo {
        pages,
        signatures: read::signature_fields(&doc).len(),
    })
}

/// A plain document of `pages` A4 pages, each with a line of text: for tests and the demo.
/// `xref_stream` writes it with a cross-reference stream and object streams (PDF 1.5+),
/// otherwise with a classic cross-reference table.
pub fn sample_document(pages: u32, xref_stream: bool) -> Vec<u8> {
    use lopdf::{Dictionary, Object, Stream};
    let mut doc = lopdf::Document::with_version(if xref_stream { "1.7" } else { "1.4" });
    let pages_id = doc.new_object_id();
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
    let font_id = doc.add_object(font);
    let mut kids = Vec::new();
    for n in 1..=pages {
        let text =
            format!("BT /F1 14 Tf 72 770 Td (Keyward sample document, page {n} of {pages}) Tj ET");
        let content_id = doc.add_object(Stream::new(Dictionary::new(), text.into_bytes()));
        let mut fonts = Dictionary::new();
        fonts.set("F1", Object::Reference(font_id));
        let mut res = Dictionary::new();
        res.set("Font", Object::Dictionary(fonts));
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", Object::Reference(pages_id));
        page.set("Resources", Object::Dictionary(res));
        page.set("Contents", Object::Reference(content_id));
        kids.push(Object::Reference(doc.add_object(page)));
    }
    let mut pages_dict = Dictionary::new();
    pages_dict.set("Type", Object::Name(b"Pages".to_vec()));
    pages_dict.set("Count", i64::from(pages));
    pages_dict.set("Kids", Object::Array(kids));
    pages_dict.set(
        "MediaBox",
        Object::Array(vec![0.into(), 0.into(), 595.into(), 842.into()]),
    );
    doc.objects.insert(pages_id, Object::Dictionary(pages_dict));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", Object::Reference(catalog_id));
    let mut out = Vec::new();
    let saved = if xref_stream {
        doc.save_modern(&mut out)
    } else {
        doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
        doc.save_to(&mut out)
    };
    match saved {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

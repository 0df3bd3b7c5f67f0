//! Signatures read back: each signature field with a value, what its byte range covers,
//! and what its appearance shows.

use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::image::{SealPicture, xobjects};
use crate::{PdfError, write};

/// One signature found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSignature {
    /// The field's name (/T).
    pub field: String,
    /// /SubFilter.
    pub sub_filter: String,
    /// The CMS signature (DER, the placeholder's padding left off).
    pub cms: Vec<u8>,
    /// /ByteRange.
    pub byte_range: [usize; 4],
    /// Whether the byte range is well formed: starts at 0, leaves out exactly the
    /// /Contents hex string, and ends where a revision ends (`%%EOF`).
    pub range_well_formed: bool,
    /// Whether the byte range reaches the end of the file: nothing was added since.
    pub covers_whole_file: bool,
    /// SHA-256 over the byte range.
    pub digest: [u8; 32],
    /// /M, as written.
    pub time: Option<String>,
    /// /Name, decoded.
    pub name: Option<String>,
    /// The seal kept with the signature (`SES_Seal` DER), when there is one.
    pub seal_der: Option<Vec<u8>>,
    /// The pages (1-based) its widgets are on.
    pub pages: Vec<u32>,
    /// The image each widget's appearance paints: (dictionary /Width, /Height, stored bytes).
    pub images: Vec<(i64, i64, Vec<u8>)>,
}

impl FoundSignature {
    /// Whether every widget of the signature paints the picture of `picture`, as Keyward
    /// lays it out.
    pub fn shows_picture(&self, picture: &SealPicture<'_>) -> bool {
        let Ok((image, _)) = xobjects(picture) else {
            return false;
        };
        let w = image.dict.get(b"Width").and_then(Object::as_i64).ok();
        let h = image.dict.get(b"Height").and_then(Object::as_i64).ok();
        !self.images.is_empty()
            && self
                .images
                .iter()
                .all(|(iw, ih, bytes)| Some(*iw) == w && Some(*ih) == h && *bytes == image.content)
    }
}

/// Every field of the form, descending through /Kids: (id when indirect, dictionary).
pub(crate) fn all_fields(doc: &Document) -> Vec<(Option<ObjectId>, Dictionary)> {
    let mut out = Vec::new();
    let Ok(catalog) = doc.catalog() else {
        return out;
    };
    let Some(form) = catalog
        .get(b"AcroForm")
        .ok()
        .and_then(|f| doc.dereference(f).ok())
        .and_then(|(_, f)| f.as_dict().ok())
    else {
        return out;
    };
    let Some(fields) = form
        .get(b"Fields")
        .ok()
        .and_then(|f| doc.dereference(f).ok())
        .and_then(|(_, f)| f.as_array().ok())
    else {
        return out;
    };
    let mut stack: Vec<(Object, usize)> = fields.iter().rev().map(|f| (f.clone(), 0)).collect();
    while let Some((f, depth)) = stack.pop() {
        if depth > 16 || out.len() > 10_000 {
            break;
        }
        let Ok((id, obj)) = doc.dereference(&f) else {
            continue;
        };
        let Ok(d) = obj.as_dict() else { continue };
        if let Ok(kids) = d.get(b"Kids").and_then(Object::as_array) {
            // Kids that are fields (they have /T) are visited; widget kids are not fields.
            for k in kids.iter().rev() {
                if let Ok((_, ko)) = doc.dereference(k)
                    && ko.as_dict().is_ok_and(|kd| kd.has(b"T"))
                {
                    stack.push((k.clone(), depth + 1));
                }
            }
        }
        out.push((id, d.clone()));
    }
    out
}

/// The signature fields that carry a value.
pub(crate) fn signature_fields(doc: &Document) -> Vec<(Option<ObjectId>, Dictionary)> {
    all_fields(doc)
        .into_iter()
        .filter(|(_, d)| d.get(b"FT").and_then(Object::as_name).ok() == Some(b"Sig") && d.has(b"V"))
        .collect()
}

/// The length of the DER element at the start of `b`.
fn der_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len * 256 + usize::from(*b.get(2 + i)?);
    }
    Some(2 + n + len)
}

fn text(o: &Object) -> Option<String> {
    let b = o.as_str().ok()?;
    if b.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = b[2..]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    } else {
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

fn revision_ends_at(pdf: &[u8], end: usize) -> bool {
    let head = &pdf[..end];
    let trimmed = head
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(head, |p| &head[..=p]);
    trimmed.ends_with(b"%%EOF")
}

/// Every signature in `pdf`, in the order of the form's fields.
pub fn signatures(pdf: &[u8]) -> Result<Vec<FoundSignature>, PdfError> {
    let doc = write::load(pdf)?;
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    let mut out = Vec::new();
    for (field_id, field) in signature_fields(&doc) {
        let bad = |m: &str| PdfError::Signature(m.to_owned());
        let (_, v) = doc
            .dereference(field.get(b"V").map_err(|_| bad("no /V"))?)
            .map_err(|e| PdfError::Signature(e.to_string()))?;
        let sig = v.as_dict().map_err(|_| bad("/V is not a dictionary"))?;
        let range: Vec<usize> = sig
            .get(b"ByteRange")
            .and_then(Object::as_array)
            .map_err(|_| bad("no /ByteRange"))?
            .iter()
            .filter_map(|o| o.as_i64().ok().and_then(|v| usize::try_from(v).ok()))
            .collect();
        let [a, b, c, d] = range.as_slice() else {
            return Err(bad("a /ByteRange of other than four numbers"));
        };
        let (a, b, c, d) = (*a, *b, *c, *d);
        let end = c
            .checked_add(d)
            .ok_or_else(|| bad("/ByteRange overflows"))?;
        if a != 0 || b > c || end > pdf.len() {
            return Err(bad("a /ByteRange outside the file"));
        }
        let gap = &pdf[b..c];
        let range_well_formed = gap.len() >= 2
            && gap[0] == b'<'
            && gap[gap.len() - 1] == b'>'
            && gap[1..gap.len() - 1].iter().all(u8::is_ascii_hexdigit)
            && revision_ends_at(pdf, end);
        let contents = sig
            .get(b"Contents")
            .and_then(Object::as_str)
            .map_err(|_| bad("no /Contents"))?;
        let cms_len = der_len(contents)
            .filter(|&l| l <= contents.len())
            .ok_or_else(|| bad("/Contents holds no DER signature"))?;
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, &pdf[..b]);
        sha2::Digest::update(&mut h, &pdf[c..end]);
        let digest: [u8; 32] = sha2::Digest::finalize(h).into();

        let seal_der = appearance(&doc, &field)
            .and_then(|form| form.dict.get(crate::write::SEAL_KEY.as_bytes()).ok())
            .and_then(|o| doc.dereference(o).ok())
            .and_then(|(_, o)| o.as_stream().ok().map(|s| s.content.clone()));

        // The widgets: the field itself, or its widget kids; and the strips of a cross-page
        // seal, stamp annotations that name the field.
        let mut widgets: Vec<Dictionary> = Vec::new();
        if field.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Widget") {
            widgets.push(field.clone());
        }
        if let Ok(kids) = field.get(b"Kids").and_then(Object::as_array) {
            for k in kids.iter().rev() {
                if let Ok((_, ko)) = doc.dereference(k)
                    && let Ok(kd) = ko.as_dict()
                    && !kd.has(b"T")
                {
                    widgets.push(kd.clone());
                }
            }
        }
        if let Some(fid) = field_id {
            for page in &pages {
                let Ok(pd) = doc.get_dictionary(*page) else {
                    continue;
                };
                let Some(annots) = pd
                    .get(b"Annots")
                    .ok()
                    .and_then(|a| doc.dereference(a).ok())
                    .and_then(|(_, a)| a.as_array().ok())
                else {
                    continue;
                };
                for a in annots {
                    if let Ok((_, ao)) = doc.dereference(a)
                        && let Ok(ad) = ao.as_dict()
                        && ad
                            .get(crate::write::STRIP_OF.as_bytes())
                            .and_then(Object::as_reference)
                            .ok()
                            == Some(fid)
                    {
                        widgets.push(ad.clone());
                    }
                }
            }
        }
        let mut on_pages = Vec::new();
        let mut images = Vec::new();
        for w in &widgets {
            if let Ok(p) = w.get(b"P").and_then(Object::as_reference)
                && let Some(i) = pages.iter().position(|x| *x == p)
            {
                on_pages.push(i as u32 + 1);
            }
            if let Some(img) = appearance_image(&doc, w) {
                images.push(img);
            }
        }
        out.push(FoundSignature {
            field: field.get(b"T").ok().and_then(text).unwrap_or_default(),
            sub_filter: sig
                .get(b"SubFilter")
                .and_then(Object::as_name)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            cms: contents[..cms_len].to_vec(),
            byte_range: [a, b, c, d],
            range_well_formed,
            covers_whole_file: end == pdf.len(),
            digest,
            time: sig.get(b"M").ok().and_then(text),
            name: sig.get(b"Name").ok().and_then(text),
            seal_der,
            pages: on_pages,
            images,
        });
    }
    Ok(out)
}

/// A widget's normal appearance stream.
fn appearance<'a>(doc: &'a Document, widget: &'a Dictionary) -> Option<&'a lopdf::Stream> {
    let ap = widget.get(b"AP").ok()?;
    let (_, ap) = doc.dereference(ap).ok()?;
    let n = ap.as_dict().ok()?.get(b"N").ok()?;
    let (_, n) = doc.dereference(n).ok()?;
    n.as_stream().ok()
}

/// The image the widget's normal appearance paints first: (Width, Height, stored bytes).
fn appearance_image(doc: &Document, widget: &Dictionary) -> Option<(i64, i64, Vec<u8>)> {
    let form = appearance(doc, widget)?;
    let res = form.dict.get(b"Resources").ok()?;
    let (_, res) = doc.dereference(res).ok()?;
    let xo = res.as_dict().ok()?.get(b"XObject").ok()?;
    let (_, xo) = doc.dereference(xo).ok()?;
    for (_, v) in xo.as_dict().ok()?.iter() {
        let (_, img) = doc.dereference(v).ok()?;
        let s = img.as_stream().ok()?;
        if s.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Image") {
            return Some((
                s.dict.get(b"Width").and_then(Object::as_i64).ok()?,
                s.dict.get(b"Height").and_then(Object::as_i64).ok()?,
                s.content.clone(),
            ));
        }
    }
    None
}

//! The stamp as an incremental update: new and changed objects appended after the last
//! revision, a cross-reference section of the kind the document already uses (table or
//! stream) pointing back at the previous one, and a signature dictionary whose /Contents is
//! a placeholder the signature fills in afterwards.

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::image::{SealPicture, xobjects};
use crate::{MAX_PDF_BYTES, MM_PER_PT, PdfError, SIGNATURE_ROOM};

/// The key, in the signature field's appearance stream, of the seal (`SES_Seal` DER).
pub(crate) const SEAL_KEY: &str = "Keyward_SES_Seal";

/// The key of a cross-page seal's stamp annotation naming its signature field.
pub(crate) const STRIP_OF: &str = "Keyward_StripOf";

/// Where the seal goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// On one page: the seal's centre `x_mm` from the left edge and `y_mm` from the top.
    Page {
        /// 1-based page number.
        page: u32,
        /// Centre, from the left edge.
        x_mm: f64,
        /// Centre, from the top edge.
        y_mm: f64,
    },
    /// 骑缝章: the seal split into as many vertical strips as there are pages, strip *i* on
    /// page *i* against its right edge, so the pages laid overlapping show the whole seal;
    /// its centre `y_mm` from the top of every page.
    CrossPage {
        /// Centre, from the top edge.
        y_mm: f64,
    },
}

/// What a stamp is made of.
#[derive(Debug, Clone, Copy)]
pub struct StampSpec<'a> {
    /// The seal's picture and size.
    pub picture: SealPicture<'a>,
    /// Where.
    pub placement: Placement,
    /// The seal (`SES_Seal`, DER), kept in the signature dictionary for verifiers.
    pub seal_der: &'a [u8],
    /// The signer's name for /Name (the organisation).
    pub signer_name: &'a str,
    /// The signing time for /M.
    pub time: OffsetDateTime,
    /// /Reason, when given.
    pub reason: Option<&'a str>,
}

/// A stamped document waiting for its signature.
#[derive(Debug, Clone)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// Offset of `<` and one past `>` of the /Contents placeholder.
    gap: (usize, usize),
    /// The field's name.
    field: String,
}

impl Prepared {
    /// The ByteRange: everything but the signature's hex string.
    pub fn byte_range(&self) -> [usize; 4] {
        [0, self.gap.0, self.gap.1, self.bytes.len() - self.gap.1]
    }

    /// SHA-256 of the bytes the signature covers.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&self.bytes[..self.gap.0]);
        h.update(&self.bytes[self.gap.1..]);
        h.finalize().into()
    }

    /// The new signature field's name.
    pub fn field_name(&self) -> &str {
        &self.field
    }

    /// The document with `cms` (DER) as the signature.
    pub fn finish(mut self, cms: &[u8]) -> Result<Vec<u8>, PdfError> {
        if cms.len() > SIGNATURE_ROOM {
            return Err(PdfError::SignatureTooLarge {
                len: cms.len(),
                room: SIGNATURE_ROOM,
            });
        }
        let hex: String = cms.iter().map(|b| format!("{b:02X}")).collect();
        let at = self.gap.0 + 1;
        self.bytes[at..at + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.bytes)
    }
}

/// Loads a document, refusing what Keyward does not stamp.
pub(crate) fn load(pdf: &[u8]) -> Result<Document, PdfError> {
    if pdf.len() > MAX_PDF_BYTES {
        return Err(PdfError::TooLarge {
            len: pdf.len(),
            limit: MAX_PDF_BYTES,
        });
    }
    if !pdf.starts_with(b"%PDF-") {
        return Err(PdfError::Damaged("no %PDF- header".into()));
    }
    let doc = match Document::load_mem(pdf) {
        Ok(d) => d,
        Err(e) => {
            let text = e.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("decrypt")
                || lower.contains("password")
                || pdf.windows(8).any(|w| w == b"/Encrypt")
            {
                return Err(PdfError::Encrypted);
            }
            return Err(PdfError::Damaged(text));
        }
    };
    if doc.was_encrypted() || doc.is_encrypted() || doc.trailer.has(b"Encrypt") {
        return Err(PdfError::Encrypted);
    }
    if doc.get_pages().is_empty() {
        return Err(PdfError::Damaged("no pages".into()));
    }
    Ok(doc)
}

/// A rectangle in default user space (points).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub llx: f64,
    pub lly: f64,
    pub urx: f64,
    pub ury: f64,
}

impl Rect {
    pub fn width(&self) -> f64 {
        self.urx - self.llx
    }
    pub fn height(&self) -> f64 {
        self.ury - self.lly
    }
    fn from_array(doc: &Document, o: &Object) -> Option<Rect> {
        let (_, o) = doc.dereference(o).ok()?;
        let a = o.as_array().ok()?;
        let n: Vec<f64> = a
            .iter()
            .filter_map(|v| doc.dereference(v).ok().and_then(|(_, v)| number(v)))
            .collect();
        let [x0, y0, x1, y1] = n.as_slice() else {
            return None;
        };
        Some(Rect {
            llx: x0.min(*x1),
            lly: y0.min(*y1),
            urx: x0.max(*x1),
            ury: y0.max(*y1),
        })
    }
}

pub(crate) fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// A page attribute, inherited through /Parent when the page lacks it.
fn inherited<'a>(doc: &'a Document, page: ObjectId, key: &[u8]) -> Option<&'a Object> {
    let mut id = page;
    for _ in 0..64 {
        let d = doc.get_dictionary(id).ok()?;
        if let Ok(v) = d.get(key) {
            return Some(v);
        }
        id = d.get(b"Parent").and_then(Object::as_reference).ok()?;
    }
    None
}

/// Each page's id, visible box (CropBox within MediaBox) and /Rotate.
pub(crate) fn pages(doc: &Document) -> Result<Vec<(ObjectId, Rect, i64)>, PdfError> {
    let mut out = Vec::new();
    for (n, id) in doc.get_pages() {
        let media = inherited(doc, id, b"MediaBox")
            .and_then(|o| Rect::from_array(doc, o))
            .ok_or_else(|| PdfError::Damaged(format!("page {n} has no MediaBox")))?;
        let crop = inherited(doc, id, b"CropBox")
            .and_then(|o| Rect::from_array(doc, o))
            .map(|c| Rect {
                llx: c.llx.max(media.llx),
                lly: c.lly.max(media.lly),
                urx: c.urx.min(media.urx),
                ury: c.ury.min(media.ury),
            })
            .filter(|c| c.width() > 0.0 && c.height() > 0.0)
            .unwrap_or(media);
        let rotate = inherited(doc, id, b"Rotate")
            .and_then(|o| o.as_i64().ok())
            .unwrap_or(0)
            .rem_euclid(360);
        out.push((id, crop, rotate));
    }
    Ok(out)
}

pub(crate) fn page_boxes(doc: &Document) -> Result<Vec<Rect>, PdfError> {
    Ok(pages(doc)?
        .into_iter()
        .map(|(_, r, rot)| {
            if rot == 90 || rot == 270 {
                Rect {
                    llx: r.lly,
                    lly: r.llx,
                    urx: r.ury,
                    ury: r.urx,
                }
            } else {
                r
            }
        })
        .collect())
}

/// The offset the last `startxref` names.
fn last_startxref(pdf: &[u8]) -> Result<usize, PdfError> {
    let tail_from = pdf.len().saturating_sub(2048);
    let tail = &pdf[tail_from..];
    let at = tail
        .windows(9)
        .rposition(|w| w == b"startxref")
        .ok_or_else(|| PdfError::Damaged("no startxref".into()))?;
    let digits: String = tail[at + 9..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    let offset: usize = digits
        .parse()
        .map_err(|_| PdfError::Damaged("startxref without an offset".into()))?;
    if offset >= pdf.len() {
        return Err(PdfError::Damaged("startxref points past the end".into()));
    }
    Ok(offset)
}

/// Bytes of one serialised object body.
fn body(o: &Object) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::new();
    lopdf::Writer::write_object(&mut out, o).map_err(|e| PdfError::Damaged(e.to_string()))?;
    Ok(out)
}

/// A PDF text string: PDFDocEncoding-safe ASCII as a literal, anything else UTF-16BE.
fn text_string(s: &str) -> Object {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Object::string_literal(s)
    } else {
        let mut bytes = vec![0xFE, 0xFF];
        for u in s.encode_utf16() {
            bytes.extend(u.to_be_bytes());
        }
        Object::String(bytes, lopdf::StringFormat::Hexadecimal)
    }
}

fn pdf_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn name(n: &str) -> Object {
    Object::Name(n.as_bytes().to_vec())
}

fn real(v: f64) -> Object {
    Object::Real((v * 1000.0).round() as f32 / 1000.0)
}

fn rect_obj(r: Rect) -> Object {
    Object::Array(vec![real(r.llx), real(r.lly), real(r.urx), real(r.ury)])
}

fn fmt(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// The next free object number and the update being built.
struct Update<'a> {
    doc: &'a Document,
    next: u32,
    objects: Vec<(u32, Vec<u8>)>,
}

impl Update<'_> {
    fn reserve(&mut self) -> u32 {
        let id = self.next;
        self.next += 1;
        id
    }
    fn put(&mut self, id: u32, o: &Object) -> Result<(), PdfError> {
        self.objects.push((id, body(o)?));
        Ok(())
    }
    fn add(&mut self, o: &Object) -> Result<u32, PdfError> {
        let id = self.reserve();
        self.put(id, o)?;
        Ok(id)
    }
    /// Changes an existing object: written again, whole, under its own number.
    fn replace(&mut self, id: ObjectId, o: &Object) -> Result<(), PdfError> {
        if id.1 != 0 {
            return Err(PdfError::Damaged(format!(
                "object {} has generation {}; not supported",
                id.0, id.1
            )));
        }
        self.objects.retain(|(i, _)| *i != id.0);
        self.put(id.0, o)
    }
}

/// Existing signature field names, to pick a new one.
fn field_names(doc: &Document) -> Vec<Vec<u8>> {
    crate::read::all_fields(doc)
        .into_iter()
        .filter_map(|(_, d)| {
            d.get(b"T")
                .and_then(Object::as_str)
                .ok()
                .map(<[u8]>::to_vec)
        })
        .collect()
}

/// Lays the stamp out as an incremental update of `pdf`; see the crate docs.
pub fn prepare(pdf: &[u8], spec: &StampSpec<'_>) -> Result<Prepared, PdfError> {
    let doc = load(pdf)?;
    let pages = pages(&doc)?;
    let count = u32::try_from(pages.len()).map_err(|_| PdfError::Damaged("pages".into()))?;
    let (w, h) = (
        spec.picture.width_mm / MM_PER_PT,
        spec.picture.height_mm / MM_PER_PT,
    );
    if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()) {
        return Err(PdfError::Picture("a seal without a size".into()));
    }

    // Where each widget goes: (page index, rectangle, strip index).
    let mut widgets: Vec<(usize, Rect, usize)> = Vec::new();
    match spec.placement {
        Placement::Page { page, x_mm, y_mm } => {
            if page == 0 || page > count {
                return Err(PdfError::PageOutOfRange { page, pages: count });
            }
            let i = (page - 1) as usize;
            let (_, b, rotate) = pages[i];
            if rotate != 0 {
                return Err(PdfError::RotatedPage(page));
            }
            let (cx, cy) = (b.llx + x_mm / MM_PER_PT, b.ury - y_mm / MM_PER_PT);
            let r = Rect {
                llx: cx - w / 2.0,
                lly: cy - h / 2.0,
                urx: cx + w / 2.0,
                ury: cy + h / 2.0,
            };
            const EPS: f64 = 0.01;
            if !(x_mm.is_finite() && y_mm.is_finite())
                || r.llx < b.llx - EPS
                || r.urx > b.urx + EPS
                || r.lly < b.lly - EPS
                || r.ury > b.ury + EPS
            {
                return Err(PdfError::OffPage);
            }
            widgets.push((i, r, 0));
        }
        Placement::CrossPage { y_mm } => {
            if !crate::read::signature_fields(&doc).is_empty() {
                return Err(PdfError::CrossPageAfterSignature);
            }
            let strip = w / f64::from(count);
            for (i, (_, b, rotate)) in pages.iter().enumerate() {
                if *rotate != 0 {
                    return Err(PdfError::RotatedPage(i as u32 + 1));
                }
                let cy = b.ury - y_mm / MM_PER_PT;
                let r = Rect {
                    llx: b.urx - strip,
                    lly: cy - h / 2.0,
                    urx: b.urx,
                    ury: cy + h / 2.0,
                };
                if !y_mm.is_finite() || r.lly < b.lly - 0.01 || r.ury > b.ury + 0.01 {
                    return Err(PdfError::OffPage);
                }
                widgets.push((i, r, i));
            }
        }
    }
    let strips = match spec.placement {
        Placement::Page { .. } => 1,
        Placement::CrossPage { .. } => pages.len(),
    };

    let size = doc
        .trailer
        .get(b"Size")
        .and_then(Object::as_i64)
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0)
        .max(doc.max_id + 1);
    let mut up = Update {
        doc: &doc,
        next: size,
        objects: Vec::new(),
    };

    // The picture, once; every widget's appearance shows (a strip of) it.
    let (mut image, mask) = xobjects(&spec.picture)?;
    if let Some(mask) = mask {
        let mask_id = up.add(&Object::Stream(mask))?;
        image.dict.set("SMask", Object::Reference((mask_id, 0)));
    }
    let image_id = up.add(&Object::Stream(image))?;
    let seal_id = up.add(&Object::Stream(
        Stream::new(Dictionary::new(), spec.seal_der.to_vec()).with_compression(false),
    ))?;

    let names = field_names(&doc);
    let field = (1..)
        .map(|n| format!("Keyward-Stamp-{n}"))
        .find(|n| !names.iter().any(|e| e == n.as_bytes()))
        .unwrap_or_else(|| "Keyward-Stamp".into());

    let sig_id = up.reserve();
    let field_id = up.reserve();
    let mut widget_ids = Vec::new();
    for (n, (page_index, rect, strip)) in widgets.iter().enumerate() {
        let strip_w = w / strips as f64;
        let mut res = Dictionary::new();
        let mut xo = Dictionary::new();
        xo.set("Im0", Object::Reference((image_id, 0)));
        res.set("XObject", Object::Dictionary(xo));
        let content = format!(
            "q 0 0 {} {} re W n {} 0 0 {} {} 0 cm /Im0 Do Q",
            fmt(strip_w),
            fmt(h),
            fmt(w),
            fmt(h),
            fmt(-strip_w * *strip as f64)
        );
        let mut ap = Dictionary::new();
        ap.set("Type", name("XObject"));
        ap.set("Subtype", name("Form"));
        ap.set(
            "BBox",
            rect_obj(Rect {
                llx: 0.0,
                lly: 0.0,
                urx: strip_w,
                ury: h,
            }),
        );
        ap.set("Resources", Object::Dictionary(res));
        if n == 0 {
            // The seal travels with the appearance that shows its picture: everything an
            // appearance refers to belongs to its signature field.
            ap.set(SEAL_KEY, Object::Reference((seal_id, 0)));
        }
        let ap_id = up.add(&Object::Stream(
            Stream::new(ap, content.into_bytes()).with_compression(false),
        ))?;
        let mut n = Dictionary::new();
        n.set("N", Object::Reference((ap_id, 0)));
        let mut wd = Dictionary::new();
        wd.set("Type", name("Annot"));
        wd.set("Subtype", name("Widget"));
        wd.set("Rect", rect_obj(*rect));
        // Print, Locked.
        wd.set("F", 132);
        wd.set("P", Object::Reference(pages[*page_index].0));
        wd.set("AP", Object::Dictionary(n));
        widget_ids.push((*page_index, wd));
    }

    // The field, merged with its widget on the first page the seal is on; the further
    // strips of a cross-page seal as locked stamp annotations that name the field (readers
    // take every widget of a signature field for a signature of its own).
    let mut field_dict = Dictionary::new();
    field_dict.set("FT", name("Sig"));
    field_dict.set("T", Object::string_literal(field.as_str()));
    field_dict.set("V", Object::Reference((sig_id, 0)));
    let mut annots_by_page: Vec<(usize, u32)> = Vec::new();
    let mut strips_iter = widget_ids.into_iter();
    if let Some((page_index, wd)) = strips_iter.next() {
        for (k, v) in wd.iter() {
            field_dict.set(k.clone(), v.clone());
        }
        up.put(field_id, &Object::Dictionary(field_dict))?;
        annots_by_page.push((page_index, field_id));
    }
    for (page_index, mut wd) in strips_iter {
        wd.set("Subtype", name("Stamp"));
        // Print, ReadOnly, Locked, LockedContents.
        wd.set("F", 4 | 64 | 128 | 512);
        wd.set(STRIP_OF, Object::Reference((field_id, 0)));
        wd.set(
            "NM",
            Object::string_literal(format!("{field}-{}", page_index + 1)),
        );
        let id = up.add(&Object::Dictionary(wd))?;
        annots_by_page.push((page_index, id));
    }

    // Each page gets its widget in /Annots.
    for (page_index, annot) in annots_by_page {
        let page_id = pages[page_index].0;
        let page = doc
            .get_dictionary(page_id)
            .map_err(|e| PdfError::Damaged(e.to_string()))?;
        match page.get(b"Annots") {
            Ok(Object::Reference(arr_id)) => {
                let mut arr = doc
                    .get_object(*arr_id)
                    .and_then(Object::as_array)
                    .map_err(|e| PdfError::Damaged(e.to_string()))?
                    .clone();
                arr.push(Object::Reference((annot, 0)));
                up.replace(*arr_id, &Object::Array(arr))?;
            }
            other => {
                let mut arr = match other {
                    Ok(Object::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                arr.push(Object::Reference((annot, 0)));
                let mut page = page.clone();
                page.set("Annots", Object::Array(arr));
                up.replace(page_id, &Object::Dictionary(page))?;
            }
        }
    }

    // The form: /Fields gains the field, /SigFlags says signatures exist, append only.
    let root_id = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| PdfError::Damaged("no /Root".into()))?;
    let catalog = doc
        .get_dictionary(root_id)
        .map_err(|e| PdfError::Damaged(e.to_string()))?;
    let field_ref = Object::Reference((field_id, 0));
    match catalog.get(b"AcroForm") {
        Ok(Object::Reference(form_id)) => {
            let mut form = doc
                .get_dictionary(*form_id)
                .map_err(|e| PdfError::Damaged(e.to_string()))?
                .clone();
            add_field(&mut up, &mut form, field_ref)?;
            up.replace(*form_id, &Object::Dictionary(form))?;
        }
        other => {
            let mut form = match other {
                Ok(Object::Dictionary(d)) => d.clone(),
                _ => Dictionary::new(),
            };
            add_field(&mut up, &mut form, field_ref)?;
            let form_id = up.add(&Object::Dictionary(form))?;
            let mut catalog = catalog.clone();
            catalog.set("AcroForm", Object::Reference((form_id, 0)));
            up.replace(root_id, &Object::Dictionary(catalog))?;
        }
    }

    // The signature dictionary, by hand: its placeholders must be found again.
    let mut sig = Vec::new();
    sig.extend_from_slice(b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached");
    let range_at = sig.len() + b" /ByteRange ".len();
    sig.extend_from_slice(format!(" /ByteRange [0 {0:>10} {0:>10} {0:>10}]", 0).as_bytes());
    let range_len = sig.len() - range_at;
    let contents_at = sig.len() + b" /Contents ".len();
    sig.extend_from_slice(b" /Contents <");
    sig.extend(std::iter::repeat_n(b'0', SIGNATURE_ROOM * 2));
    sig.push(b'>');
    sig.extend_from_slice(b" /M ");
    sig.extend(body(&Object::string_literal(pdf_date(spec.time)))?);
    sig.extend_from_slice(b" /Name ");
    sig.extend(body(&text_string(spec.signer_name))?);
    if let Some(reason) = spec.reason {
        sig.extend_from_slice(b" /Reason ");
        sig.extend(body(&text_string(reason))?);
    }
    sig.extend_from_slice(b" >>");
    up.objects.push((sig_id, sig));

    // Assemble: the old file, the objects, the cross-reference section.
    let prev = last_startxref(pdf)?;
    let prev_is_stream = !pdf[prev..].starts_with(b"xref");
    let mut out = pdf.to_vec();
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    up.objects.sort_by_key(|(id, _)| *id);
    let mut offsets: Vec<(u32, usize)> = Vec::new();
    let mut sig_offset = 0;
    for (id, bytes) in &up.objects {
        let head = format!("{id} 0 obj\n");
        let at = out.len();
        offsets.push((*id, at));
        if *id == sig_id {
            sig_offset = at + head.len();
        }
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\nendobj\n");
    }
    let mut trailer = Dictionary::new();
    for key in [&b"Root"[..], b"Info", b"ID"] {
        if let Ok(v) = doc.trailer.get(key) {
            trailer.set(key.to_vec(), v.clone());
        }
    }
    trailer.set("Prev", prev as i64);
    if prev_is_stream {
        let xref_id = up.reserve();
        let xref_at = out.len();
        offsets.push((xref_id, xref_at));
        trailer.set("Size", i64::from(up.next));
        write_xref_stream(&mut out, xref_id, &offsets, trailer)?;
        out.extend_from_slice(format!("startxref\n{xref_at}\n%%EOF\n").as_bytes());
    } else {
        trailer.set("Size", i64::from(up.next));
        let xref_at = out.len();
        write_xref_table(&mut out, &offsets, &trailer)?;
        out.extend_from_slice(format!("startxref\n{xref_at}\n%%EOF\n").as_bytes());
    }

    let gap = (
        sig_offset + contents_at,
        sig_offset + contents_at + SIGNATURE_ROOM * 2 + 2,
    );
    let range = format!(
        "/ByteRange [0 {:>10} {:>10} {:>10}]",
        gap.0,
        gap.1,
        out.len() - gap.1
    );
    let range_bytes = &range.as_bytes()[b"/ByteRange ".len()..];
    if range_bytes.len() != range_len {
        return Err(PdfError::TooLarge {
            len: out.len(),
            limit: MAX_PDF_BYTES,
        });
    }
    let at = sig_offset + range_at;
    out[at..at + range_len].copy_from_slice(range_bytes);
    let _ = up.doc;
    Ok(Prepared {
        bytes: out,
        gap,
        field,
    })
}

fn add_field(up: &mut Update<'_>, form: &mut Dictionary, field: Object) -> Result<(), PdfError> {
    match form.get(b"Fields") {
        Ok(Object::Reference(arr_id)) => {
            let arr_id = *arr_id;
            let mut arr = up
                .doc
                .get_object(arr_id)
                .and_then(Object::as_array)
                .map_err(|e| PdfError::Damaged(e.to_string()))?
                .clone();
            arr.push(field);
            up.replace(arr_id, &Object::Array(arr))?;
        }
        other => {
            let mut arr = match other {
                Ok(Object::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            arr.push(field);
            form.set("Fields", Object::Array(arr));
        }
    }
    form.set("SigFlags", 3);
    Ok(())
}

/// Consecutive runs of object numbers: (first, count).
fn runs(ids: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &id in ids {
        match out.last_mut() {
            Some((first, n)) if *first + *n == id => *n += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

fn write_xref_table(
    out: &mut Vec<u8>,
    offsets: &[(u32, usize)],
    trailer: &Dictionary,
) -> Result<(), PdfError> {
    let mut sorted = offsets.to_vec();
    sorted.sort_by_key(|(id, _)| *id);
    let ids: Vec<u32> = sorted.iter().map(|(id, _)| *id).collect();
    out.extend_from_slice(b"xref\n");
    let mut i = 0;
    for (first, n) in runs(&ids) {
        out.extend_from_slice(format!("{first} {n}\n").as_bytes());
        for _ in 0..n {
            out.extend_from_slice(format!("{:010} 00000 n \n", sorted[i].1).as_bytes());
            i += 1;
        }
    }
    out.extend_from_slice(b"trailer\n");
    out.extend(body(&Object::Dictionary(trailer.clone()))?);
    out.push(b'\n');
    Ok(())
}

fn write_xref_stream(
    out: &mut Vec<u8>,
    xref_id: u32,
    offsets: &[(u32, usize)],
    mut dict: Dictionary,
) -> Result<(), PdfError> {
    let mut sorted = offsets.to_vec();
    sorted.sort_by_key(|(id, _)| *id);
    let ids: Vec<u32> = sorted.iter().map(|(id, _)| *id).collect();
    let mut data = Vec::new();
    for (_, off) in &sorted {
        let off = u32::try_from(*off).map_err(|_| PdfError::TooLarge {
            len: *off,
            limit: MAX_PDF_BYTES,
        })?;
        data.push(1u8);
        data.extend(off.to_be_bytes());
        data.extend([0u8, 0u8]);
    }
    dict.set("Type", name("XRef"));
    dict.set(
        "W",
        Object::Array(vec![
            Object::Integer(1),
            Object::Integer(4),
            Object::Integer(2),
        ]),
    );
    dict.set(
        "Index",
        Object::Array(
            runs(&ids)
                .into_iter()
                .flat_map(|(f, n)| [Object::Integer(i64::from(f)), Object::Integer(i64::from(n))])
                .collect(),
        ),
    );
    let stream = Stream::new(dict, data).with_compression(false);
    out.extend_from_slice(format!("{xref_id} 0 obj\n").as_bytes());
    out.extend(body(&Object::Stream(stream))?);
    out.extend_from_slice(b"\nendobj\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_numbers() {
        assert_eq!(runs(&[3, 4, 5, 9, 11, 12]), vec![(3, 3), (9, 1), (11, 2)]);
    }

    #[test]
    fn numbers_and_text() {
        assert_eq!(fmt(1.0), "1");
        assert_eq!(fmt(-0.0001), "0");
        assert_eq!(fmt(113.3858), "113.386");
        assert!(matches!(
            text_string("Keyward"),
            Object::String(_, lopdf::StringFormat::Literal)
        ));
        match text_string("示例") {
            Object::String(b, _) => assert_eq!(&b[..2], &[0xFE, 0xFF]),
            other => panic!("{other:?}"),
        }
    }
}

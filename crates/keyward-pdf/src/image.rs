//! The seal's picture as a PDF image XObject: JPEG as it is (DCTDecode), PNG decoded and
//! compressed again (FlateDecode) with its alpha as a soft mask. A picture without alpha
//! gets a colour-key mask for near-white, so the paper under the seal shows through as it
//! does under a real stamp. The same picture always gives the same bytes, so a reader can
//! tell whether an appearance shows a given seal's picture.

use std::io::Write;

use lopdf::{Dictionary, Object, Stream};

use crate::PdfError;

/// The picture's file type, as `SES_ESPictrueInfo.type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
}

impl ImageKind {
    /// From a seal's picture type ("PNG", "JPG", ...); `None` for kinds a PDF cannot show.
    pub fn from_seal_type(kind: &str) -> Option<Self> {
        match kind.trim().to_ascii_uppercase().as_str() {
            "PNG" => Some(ImageKind::Png),
            "JPG" | "JPEG" => Some(ImageKind::Jpeg),
            _ => None,
        }
    }
}

/// A seal's picture and its size on paper.
#[derive(Debug, Clone, Copy)]
pub struct SealPicture<'a> {
    /// The image file's bytes.
    pub data: &'a [u8],
    /// PNG or JPEG.
    pub kind: ImageKind,
    /// Width on paper, millimetres.
    pub width_mm: f64,
    /// Height on paper, millimetres.
    pub height_mm: f64,
}

/// The largest picture side, in pixels.
const MAX_SIDE: u32 = 4096;
/// Colours this close to white are not painted.
const WHITE_KEY: i64 = 235;

fn bad(msg: impl Into<String>) -> PdfError {
    PdfError::Picture(msg.into())
}

fn deflate(data: &[u8]) -> Result<Vec<u8>, PdfError> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).map_err(|e| bad(e.to_string()))?;
    e.finish().map_err(|e| bad(e.to_string()))
}

fn image_dict(width: u32, height: u32, color_space: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.set("Type", Object::Name(b"XObject".to_vec()));
    d.set("Subtype", Object::Name(b"Image".to_vec()));
    d.set("Width", i64::from(width));
    d.set("Height", i64::from(height));
    d.set("ColorSpace", Object::Name(color_space.as_bytes().to_vec()));
    d.set("BitsPerComponent", 8);
    d
}

fn white_key(components: usize) -> Object {
    Object::Array(
        (0..components)
            .flat_map(|_| [Object::Integer(WHITE_KEY), Object::Integer(255)])
            .collect(),
    )
}

/// The image XObject for `picture`, and its soft mask when it has one (the caller writes the
/// mask as its own object and points the image's /SMask at it).
pub(crate) fn xobjects(picture: &SealPicture<'_>) -> Result<(Stream, Option<Stream>), PdfError> {
    match picture.kind {
        ImageKind::Jpeg => jpeg(picture.data).map(|s| (s, None)),
        ImageKind::Png => png_image(picture.data),
    }
}

/// Width, height and components from a JPEG's start-of-frame marker.
fn jpeg_frame(data: &[u8]) -> Result<(u32, u32, u8), PdfError> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(bad("not a JPEG file"));
    }
    let mut at = 2;
    while at + 4 <= data.len() {
        if data[at] != 0xFF {
            return Err(bad("a damaged JPEG file"));
        }
        let marker = data[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        // Start of frame: baseline, extended, progressive, lossless (not DHT, JPG, DAC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let f = data
                .get(at + 4..at + 10)
                .ok_or_else(|| bad("a truncated JPEG frame"))?;
            let height = u32::from(u16::from_be_bytes([f[1], f[2]]));
            let width = u32::from(u16::from_be_bytes([f[3], f[4]]));
            return Ok((width, height, f[5]));
        }
        if len < 2 {
            return Err(bad("a damaged JPEG file"));
        }
        at += 2 + len;
    }
    Err(bad("a JPEG file without a frame"))
}

fn jpeg(data: &[u8]) -> Result<Stream, PdfError> {
    let (width, height, components) = jpeg_frame(data)?;
    check_size(width, height)?;
    let space = match components {
        1 => "DeviceGray",
        3 => "DeviceRGB",
        4 => "DeviceCMYK",
        n => return Err(bad(format!("a JPEG with {n} colour components"))),
    };
    let mut d = image_dict(width, height, space);
    d.set("Filter", Object::Name(b"DCTDecode".to_vec()));
    if components != 4 {
        d.set("Mask", white_key(usize::from(components)));
    }
    Ok(Stream::new(d, data.to_vec()).with_compression(false))
}

fn check_size(width: u32, height: u32) -> Result<(), PdfError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(bad(format!("a picture of {width}×{height} pixels")));
    }
    Ok(())
}

fn png_image(data: &[u8]) -> Result<(Stream, Option<Stream>), PdfError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(data));
    // Palette and low bit depths to 8-bit channels, 16-bit down to 8.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(format!("PNG: {e}")))?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_size(width, height)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG: too large"))?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("PNG: {e}")))?;
    let pixels = &buf[..frame.buffer_size()];
    let (color, alpha): (Vec<u8>, Option<Vec<u8>>) = match frame.color_type {
        png::ColorType::Rgb => (pixels.to_vec(), None),
        png::ColorType::Grayscale => (pixels.to_vec(), None),
        png::ColorType::Rgba => (
            pixels
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            Some(pixels.chunks_exact(4).map(|p| p[3]).collect()),
        ),
        png::ColorType::GrayscaleAlpha => (
            pixels.chunks_exact(2).map(|p| p[0]).collect(),
            Some(pixels.chunks_exact(2).map(|p| p[1]).collect()),
        ),
        png::ColorType::Indexed => return Err(bad("PNG: an unexpanded palette")),
    };
    let (space, components) = match frame.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => ("DeviceGray", 1),
        _ => ("DeviceRGB", 3),
    };
    let mut d = image_dict(width, height, space);
    d.set("Filter", Object::Name(b"FlateDecode".to_vec()));
    let mask = match alpha {
        Some(a) => {
            let mut m = image_dict(width, height, "DeviceGray");
            m.set("Filter", Object::Name(b"FlateDecode".to_vec()));
            Some(Stream::new(m, deflate(&a)?).with_compression(false))
        }
        None => {
            d.set("Mask", white_key(components));
            None
        }
    };
    Ok((
        Stream::new(d, deflate(&color)?).with_compression(false),
        mask,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn png_rgba(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, width, height);
            e.set_color(png::ColorType::Rgba);
            e.set_depth(png::BitDepth::Eight);
            let mut w = e.write_header().expect("header");
            let data: Vec<u8> = (0..width * height)
                .flat_map(|i| [200, 0, 0, if i % 2 == 0 { 255 } else { 0 }])
                .collect();
            w.write_image_data(&data).expect("data");
        }
        out
    }

    #[test]
    fn png_with_alpha_gets_a_soft_mask_and_the_same_bytes_each_time() {
        let data = png_rgba(8, 4);
        let p = SealPicture {
            data: &data,
            kind: ImageKind::Png,
            width_mm: 40.0,
            height_mm: 40.0,
        };
        let (img, mask) = xobjects(&p).expect("image");
        assert_eq!(
            img.dict.get(b"Width").and_then(Object::as_i64).ok(),
            Some(8)
        );
        let mask = mask.expect("alpha becomes a soft mask");
        let mut alpha = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&mask.content[..]),
            &mut alpha,
        )
        .expect("inflate");
        assert_eq!(alpha.len(), 32);
        assert_eq!(&alpha[..2], &[255, 0]);
        let (again, _) = xobjects(&p).expect("image");
        assert_eq!(again.content, img.content);
    }

    #[test]
    fn jpeg_frames_are_read_and_junk_is_refused() {
        // SOI, APP0 (length 4), SOF0 for 3×2, 3 components.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00,
            0x02, 0x00, 0x03, 0x03,
        ];
        assert_eq!(jpeg_frame(&jpeg).expect("frame"), (3, 2, 3));
        assert!(jpeg_frame(b"GIF89a").is_err());
        assert!(jpeg_frame(&jpeg[..10]).is_err());
        assert!(png_image(b"\x89PNG\r\n\x1a\nnot really").is_err());
        assert_eq!(ImageKind::from_seal_type("jpg"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::from_seal_type("OFD"), None);
    }
}

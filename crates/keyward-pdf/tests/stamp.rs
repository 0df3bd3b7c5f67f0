//! Stamps made with a software key, read back by keyward-pdf and by the outside checkers
//! (pdfsig, pyHanko): once, twice, across pages, over both kinds of cross-reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tools;

use keyward_pdf::{ImageKind, PdfError, Placement, SealPicture, StampSpec};
use keyward_pki::cms::{self, Content, Detached, SignOptions};
use keyward_pki::{KeySigner, PkiError, SignatureScheme};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SigningKey,
};
use time::OffsetDateTime;

struct Soft {
    key: KeyPair,
    spki: Vec<u8>,
}

impl KeySigner for Soft {
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::EcdsaP256Sha256
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        SigningKey::sign(&self.key, message).map_err(|e| PkiError::Signer(e.into()))
    }
}

struct World {
    dir: tempfile::TempDir,
    signer: Soft,
    cert: Vec<u8>,
    chain: Vec<Vec<u8>>,
    picture: Vec<u8>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// A red ring on transparency, like a scanned seal.
fn seal_png() -> Vec<u8> {
    let (w, h) = (120u32, 120u32);
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - 60.0, y as f64 - 60.0);
            let r = (dx * dx + dy * dy).sqrt();
            let on = (50.0..58.0).contains(&r) || (dx.abs() < 12.0 && dy.abs() < 12.0);
            data.extend([200, 20, 20, if on { 255 } else { 0 }]);
        }
    }
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(&data).unwrap();
    out
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let root_params = ca_params("Stamp Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let ik = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let ip = ca_params("Stamp Test Issuing");
        let issuing = ip.signed_by(&ik, &root_issuer).unwrap();
        let issuer = Issuer::new(ip, ik);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::OrganizationName, "广州市示例科技有限公司");
        p.distinguished_name
            .push(DnType::CommonName, "广州市示例科技有限公司");
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        let cert = p.signed_by(&key, &issuer).unwrap().der().to_vec();
        std::fs::write(dir.path().join("root.pem"), root.pem()).unwrap();
        let spki = key.subject_public_key_info();
        World {
            dir,
            signer: Soft { key, spki },
            cert,
            // The trust anchor is the verifier's, not carried.
            chain: vec![issuing.der().to_vec()],
            picture: seal_png(),
        }
    }

    fn spec(&self, placement: Placement) -> StampSpec<'_> {
        StampSpec {
            picture: SealPicture {
                data: &self.picture,
                kind: ImageKind::Png,
                width_mm: 40.0,
                height_mm: 40.0,
            },
            placement,
            seal_der: b"\x30\x03\x02\x01\x04",
            signer_name: "广州市示例科技有限公司",
            time: OffsetDateTime::now_utc(),
            reason: Some("盖章"),
        }
    }

    fn stamp(&self, pdf: &[u8], placement: Placement) -> Vec<u8> {
        let prepared = keyward_pdf::prepare(pdf, &self.spec(placement)).unwrap();
        let sig = cms::sign(
            &self.signer,
            &self.cert,
            &self.chain,
            Content::DetachedDigest(prepared.digest()),
            &SignOptions::pades(),
        )
        .unwrap();
        prepared.finish(&sig).unwrap()
    }

    fn save(&self, name: &str, pdf: &[u8]) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, pdf).unwrap();
        // To look at them: KEYWARD_TEST_OUT=DIR keeps a copy.
        if let Some(out) = std::env::var_os("KEYWARD_TEST_OUT") {
            std::fs::write(std::path::Path::new(&out).join(name), pdf).unwrap();
            std::fs::copy(self.root(), std::path::Path::new(&out).join("root.pem")).unwrap();
        }
        p
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root.pem")
    }
}

fn at(page: u32) -> Placement {
    Placement::Page {
        page,
        x_mm: 150.0,
        y_mm: 240.0,
    }
}

/// Every signature intact by keyward-pdf's reading and keyward-pki's CMS check; the last
/// covers the whole file.
fn check_own(pdf: &[u8], count: usize) {
    let sigs = keyward_pdf::signatures(pdf).unwrap();
    assert_eq!(sigs.len(), count);
    for (i, s) in sigs.iter().enumerate() {
        assert!(s.range_well_formed, "{i}");
        assert_eq!(s.sub_filter, "ETSI.CAdES.detached");
        cms::verify(&s.cms, Some(Detached::Digest(s.digest))).unwrap();
    }
    assert_eq!(sigs.iter().filter(|s| s.covers_whole_file).count(), 1);
}

fn check_outside(w: &World, path: &std::path::Path, count: usize) {
    let nss = tools::nss_store(w.dir.path(), &w.root());
    let report = tools::pdfsig(path, &nss);
    let sigs = tools::pdfsig_signatures(&report);
    assert_eq!(sigs.len(), count, "{report}");
    for s in &sigs {
        assert!(
            s.contains("Signature Validation: Signature is Valid."),
            "{report}"
        );
        assert!(
            s.contains("Certificate Validation: Certificate is Trusted."),
            "{report}"
        );
        assert!(
            s.contains("Signer Certificate Common Name: 广州市示例科技有限公司"),
            "{report}"
        );
        assert!(s.contains("ETSI.CAdES.detached"), "{report}");
    }
    let (ok, text) = tools::pyhanko(path, &w.root());
    assert!(ok, "{text}");
    assert_eq!(
        text.matches("The signature is cryptographically sound.")
            .count(),
        count,
        "{text}"
    );
    assert_eq!(
        text.matches("The signer's certificate is trusted.").count(),
        count,
        "{text}"
    );
}

#[test]
fn one_stamp_over_a_classic_table_and_over_a_cross_reference_stream() {
    let w = World::new();
    for modern in [false, true] {
        let original = keyward_pdf::sample_document(2, modern);
        let stamped = w.stamp(&original, at(2));
        assert!(
            stamped.starts_with(&original),
            "an incremental update keeps the original"
        );
        check_own(&stamped, 1);
        let info = keyward_pdf::inspect(&stamped).unwrap();
        assert_eq!(info.pages.len(), 2);
        assert_eq!(info.signatures, 1);
        let p = w.save(&format!("once-{modern}.pdf"), &stamped);
        check_outside(&w, &p, 1);
    }
}

#[test]
fn two_stamps_keep_the_first_signature_valid() {
    let w = World::new();
    let original = keyward_pdf::sample_document(3, true);
    let once = w.stamp(&original, at(1));
    let twice = w.stamp(&once, at(3));
    assert!(twice.starts_with(&once));
    check_own(&twice, 2);
    let sigs = keyward_pdf::signatures(&twice).unwrap();
    assert_eq!(sigs[0].field, "Keyward-Stamp-1");
    assert_eq!(sigs[1].field, "Keyward-Stamp-2");
    assert_eq!(sigs[0].pages, vec![1]);
    assert_eq!(sigs[1].pages, vec![3]);
    let p = w.save("twice.pdf", &twice);
    check_outside(&w, &p, 2);
}

#[test]
fn a_cross_page_seal_has_a_strip_on_every_page_and_one_signature() {
    let w = World::new();
    let original = keyward_pdf::sample_document(4, false);
    let stamped = w.stamp(&original, Placement::CrossPage { y_mm: 150.0 });
    check_own(&stamped, 1);
    let sigs = keyward_pdf::signatures(&stamped).unwrap();
    assert_eq!(sigs[0].pages, vec![1, 2, 3, 4]);
    assert!(sigs[0].shows_picture(&w.spec(at(1)).picture));
    assert_eq!(
        sigs[0].seal_der.as_deref(),
        Some(&b"\x30\x03\x02\x01\x04"[..])
    );
    let p = w.save("cross.pdf", &stamped);
    check_outside(&w, &p, 1);
    // A stamp after it is fine; a cross-page seal after a signature is refused.
    let twice = w.stamp(&stamped, at(4));
    check_own(&twice, 2);
    let p = w.save("cross-then-stamp.pdf", &twice);
    check_outside(&w, &p, 2);
    let once = w.stamp(&original, at(1));
    assert!(matches!(
        keyward_pdf::prepare(&once, &w.spec(Placement::CrossPage { y_mm: 150.0 })),
        Err(PdfError::CrossPageAfterSignature)
    ));
}

#[test]
fn a_change_after_stamping_is_seen() {
    let w = World::new();
    let stamped = w.stamp(&keyward_pdf::sample_document(1, false), at(1));
    let sigs = keyward_pdf::signatures(&stamped).unwrap();
    // One byte of the page text changed: the digest over the byte range no longer matches.
    let pos = stamped.windows(6).position(|x| x == b"sample").unwrap();
    let mut changed = stamped.clone();
    changed[pos] = b'S';
    let after = keyward_pdf::signatures(&changed).unwrap();
    assert_ne!(after[0].digest, sigs[0].digest);
    assert!(matches!(
        cms::verify(&after[0].cms, Some(Detached::Digest(after[0].digest))),
        Err(PkiError::Signature(_))
    ));
    let p = w.save("changed.pdf", &changed);
    let nss = tools::nss_store(w.dir.path(), &w.root());
    let report = tools::pdfsig(&p, &nss);
    assert!(!report.contains("Signature is Valid."), "{report}");
    let (ok, text) = tools::pyhanko(&p, &w.root());
    assert!(!ok || !text.contains("cryptographically sound"), "{text}");
}

#[test]
fn bad_input_gets_its_own_error() {
    let w = World::new();
    let doc = keyward_pdf::sample_document(2, false);
    let prep = |pdf: &[u8], p: Placement| keyward_pdf::prepare(pdf, &w.spec(p)).map(|_| ());
    assert!(matches!(
        prep(&doc, at(3)),
        Err(PdfError::PageOutOfRange { page: 3, pages: 2 })
    ));
    assert!(matches!(
        prep(&doc, at(0)),
        Err(PdfError::PageOutOfRange { .. })
    ));
    let off = Placement::Page {
        page: 1,
        x_mm: 200.0,
        y_mm: 100.0,
    };
    assert!(matches!(prep(&doc, off), Err(PdfError::OffPage)));
    let off = Placement::Page {
        page: 1,
        x_mm: 100.0,
        y_mm: 10.0,
    };
    assert!(matches!(prep(&doc, off), Err(PdfError::OffPage)));
    assert!(matches!(
        prep(&doc, Placement::CrossPage { y_mm: 290.0 }),
        Err(PdfError::OffPage)
    ));
    assert!(matches!(
        prep(b"not a pdf", at(1)),
        Err(PdfError::Damaged(_))
    ));
    assert!(matches!(
        prep(&doc[..doc.len() / 2], at(1)),
        Err(PdfError::Damaged(_))
    ));
    // An /Encrypt entry in the trailer.
    let text = String::from_utf8_lossy(&doc).replace("trailer\n<<", "trailer\n<</Encrypt 99 0 R");
    let encrypted = text.into_bytes();
    assert!(
        matches!(prep(&encrypted, at(1)), Err(PdfError::Encrypted)),
        "{:?}",
        prep(&encrypted, at(1))
    );
    let big = vec![b' '; keyward_pdf::MAX_PDF_BYTES + 1];
    assert!(matches!(prep(&big, at(1)), Err(PdfError::TooLarge { .. })));
}

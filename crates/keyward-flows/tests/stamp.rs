//! 盖章 with a simulated key (`kw-sealed`: RSA organisation certificate and an installed seal
//! bound to it), checked from outside: pdfsig (NSS trusting only the fixtures' root) and
//! pyHanko (the fixtures' root as its one trust anchor) accept the signature as valid and
//! trusted, once, twice and across pages; `stamp::verify` reports signer, time, coverage,
//! chain and seal. Every bad input is refused before the PIN reaches the key, and the input
//! stays as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../keyward-pdf/tests/tools/mod.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_flows::FlowError;
use keyward_flows::seal::{SEAL_APPLICATION, SEAL_LABEL};
use keyward_flows::stamp::{self, Place};
use keyward_pdf::PdfError;
use keyward_pki::Pin;
use keyward_token::{FinalTry, Module, PinState, TokenRef};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, USER_PIN};
use time::OffsetDateTime;

struct Keys {
    set: FixtureSet,
    module: Arc<Module>,
    manifest: Manifest,
    dir: tempfile::TempDir,
}

impl Keys {
    fn new(states: &[KeyState]) -> Keys {
        let (set, module, manifest) =
            FixtureSet::build(states, &softhsm_fixtures::sim_module()).expect("fixtures");
        Keys {
            set,
            module,
            manifest,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn token(&self, state: KeyState) -> TokenRef {
        let fx = self
            .manifest
            .tokens
            .iter()
            .find(|t| t.state == state)
            .unwrap();
        self.module.find(Some(&fx.serial)).unwrap()
    }

    fn root_pem(&self) -> PathBuf {
        self.set.dir().join("root.pem")
    }

    fn root_der(&self) -> Vec<u8> {
        keyward_pki::pem::decode(&self.manifest.root_pem, "CERTIFICATE").unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn stamp(
        &self,
        state: KeyState,
        input: &Path,
        output: &Path,
        place: Place,
    ) -> Result<stamp::StampedFile, FlowError> {
        stamp::stamp_file(
            &self.module,
            &self.token(state),
            &Pin::new(USER_PIN.to_owned()),
            FinalTry::Refuse,
            input,
            output,
            place,
            OffsetDateTime::now_utc(),
            None,
        )
    }

    fn outside(&self, pdf: &Path, count: usize) {
        let nss = tools::nss_store(self.dir.path(), &self.root_pem());
        let report = tools::pdfsig(pdf, &nss);
        let sigs = tools::pdfsig_signatures(&report);
        assert_eq!(sigs.len(), count, "{report}");
        let org = self
            .manifest
            .tokens
            .iter()
            .find(|t| t.state == KeyState::Sealed)
            .unwrap();
        for (i, s) in sigs.iter().enumerate() {
            tools::assert_pdfsig_signature(
                s,
                org.organization.as_deref().unwrap(),
                i == 0,
                &report,
            );
        }
        let (ok, text) = tools::pyhanko(pdf, &self.root_pem());
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
        assert_eq!(
            text.matches("The signature is judged VALID.").count(),
            count,
            "{text}"
        );
    }

    fn report(&self, pdf: &Path) -> stamp::StampReport {
        stamp::verify_file(pdf, &self.root_pem(), OffsetDateTime::now_utc()).unwrap()
    }

    fn pin_ok(&self, state: KeyState) -> bool {
        let s = stamp::pin_status(&self.module, &self.token(state)).unwrap();
        s.user == PinState::Ok && s.user_tries_left.is_none_or(|n| n >= 10)
    }
}

fn here(page: u32) -> Place {
    Place::At {
        page: Some(page),
        x_mm: 150.0,
        y_mm: 230.0,
    }
}

#[test]
fn a_stamp_by_the_key_is_valid_and_trusted_for_pdfsig_pyhanko_and_verify() {
    let k = Keys::new(&[KeyState::Sealed]);
    let input = k.write("bid.pdf", &keyward_pdf::sample_document(2, false));
    let original = std::fs::read(&input).unwrap();
    let out = k.path("bid-stamped.pdf");
    let done = k
        .stamp(KeyState::Sealed, &input, &out, Place::Usual { page: None })
        .unwrap();
    assert_eq!(done.stamped.pages, vec![2], "the last page by default");
    assert_eq!(
        std::fs::read(&input).unwrap(),
        original,
        "the input is untouched"
    );
    let stamped = std::fs::read(&out).unwrap();
    assert!(stamped.starts_with(&original), "an incremental update");
    k.outside(&out, 1);

    let report = k.report(&out);
    assert!(report.all_valid, "{report:#?}");
    let s = &report.signatures[0];
    let fx = k
        .manifest
        .tokens
        .iter()
        .find(|t| t.state == KeyState::Sealed)
        .unwrap();
    assert_eq!(s.organization, fx.organization);
    assert_eq!(s.credit_code, fx.credit_code);
    assert!(s.intact && s.unchanged_since && s.chain_trusted);
    let seal = s.seal.as_ref().unwrap();
    assert!(seal.made_under_root && seal.bound_to_signer && seal.picture_matches);
    assert_eq!(&seal.name, fx.organization.as_ref().unwrap());
    assert!(s.signed_at.as_deref().unwrap().starts_with("20"), "{s:?}");

    // Against another root the chain and the seal maker fail; the signature stays intact.
    let other = softhsm_fixtures::TestCa::new().unwrap();
    let r = stamp::verify(&stamped, &other.root_der, OffsetDateTime::now_utc()).unwrap();
    assert!(!r.all_valid);
    assert!(r.signatures[0].intact);
    assert!(!r.signatures[0].chain_trusted);
    assert!(!r.signatures[0].seal.as_ref().unwrap().made_under_root);
    // A changed byte inside the signed range: not intact.
    let pos = stamped.windows(6).position(|w| w == b"sample").unwrap();
    let mut changed = stamped.clone();
    changed[pos] = b'X';
    let r = stamp::verify(&changed, &k.root_der(), OffsetDateTime::now_utc()).unwrap();
    assert!(!r.signatures[0].intact && !r.all_valid);
}

#[test]
fn stamped_twice_both_signatures_hold() {
    let k = Keys::new(&[KeyState::Sealed]);
    let input = k.write("in.pdf", &keyward_pdf::sample_document(3, true));
    let once = k.path("once.pdf");
    k.stamp(KeyState::Sealed, &input, &once, here(1)).unwrap();
    let twice = k.path("twice.pdf");
    let done = k.stamp(KeyState::Sealed, &once, &twice, here(3)).unwrap();
    assert_eq!(done.stamped.field, "Keyward-Stamp-2");
    k.outside(&twice, 2);
    let report = k.report(&twice);
    assert!(report.all_valid, "{report:#?}");
    let [first, second] = report.signatures.as_slice() else {
        panic!("{report:?}")
    };
    assert_eq!(
        (first.pages.as_slice(), second.pages.as_slice()),
        (&[1][..], &[3][..])
    );
    assert!(
        !first.unchanged_since,
        "the second stamp came after the first"
    );
    assert!(second.unchanged_since);
}

#[test]
fn a_cross_page_seal_spans_every_page_with_one_signature() {
    let k = Keys::new(&[KeyState::Sealed]);
    let input = k.write("in.pdf", &keyward_pdf::sample_document(5, false));
    let out = k.path("cross.pdf");
    let done = k
        .stamp(
            KeyState::Sealed,
            &input,
            &out,
            Place::CrossPage { y_mm: None },
        )
        .unwrap();
    assert_eq!(done.stamped.pages, vec![1, 2, 3, 4, 5]);
    k.outside(&out, 1);
    let report = k.report(&out);
    assert!(report.all_valid, "{report:#?}");
    assert_eq!(report.signatures[0].pages, vec![1, 2, 3, 4, 5]);
    // Then a stamp on the last page: both hold.
    let more = k.path("cross-and-stamp.pdf");
    k.stamp(KeyState::Sealed, &out, &more, here(5)).unwrap();
    k.outside(&more, 2);
    assert!(k.report(&more).all_valid);
}

/// Each refusal: its own error, no output, the input as it was, and no PIN try spent (the
/// PIN given is wrong: had it reached the key, the key would count it).
#[test]
fn bad_input_is_refused_before_the_pin_and_the_input_is_untouched() {
    let k = Keys::new(&[KeyState::Sealed, KeyState::IssuedEc, KeyState::IssuedRsa]);
    let doc = keyward_pdf::sample_document(2, false);
    let wrong = Pin::new("Wrong#PIN2026".to_owned());
    let try_it = |state: KeyState, name: &str, bytes: &[u8], place: Place| -> FlowError {
        let input = k.write(name, bytes);
        let out = k.path(&format!("{name}.out.pdf"));
        let e = stamp::stamp_file(
            &k.module,
            &k.token(state),
            &wrong,
            FinalTry::Refuse,
            &input,
            &out,
            place,
            OffsetDateTime::now_utc(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            std::fs::read(&input).unwrap(),
            bytes,
            "{name}: input untouched"
        );
        assert!(!out.exists(), "{name}: nothing written");
        assert!(k.pin_ok(state), "{name}: no PIN try spent");
        e
    };
    let encrypted = String::from_utf8_lossy(&doc)
        .replace("trailer\n<<", "trailer\n<</Encrypt 99 0 R")
        .into_bytes();
    assert!(matches!(
        try_it(KeyState::Sealed, "encrypted.pdf", &encrypted, here(1)),
        FlowError::Pdf(PdfError::Encrypted)
    ));
    assert!(matches!(
        try_it(
            KeyState::Sealed,
            "damaged.pdf",
            &doc[..doc.len() / 3],
            here(1)
        ),
        FlowError::Pdf(PdfError::Damaged(_))
    ));
    assert!(matches!(
        try_it(KeyState::Sealed, "page.pdf", &doc, here(3)),
        FlowError::Pdf(PdfError::PageOutOfRange { page: 3, pages: 2 })
    ));
    let off = Place::At {
        page: Some(1),
        x_mm: 205.0,
        y_mm: 100.0,
    };
    assert!(matches!(
        try_it(KeyState::Sealed, "off.pdf", &doc, off),
        FlowError::Pdf(PdfError::OffPage)
    ));
    assert!(matches!(
        try_it(KeyState::IssuedEc, "noseal.pdf", &doc, here(1)),
        FlowError::NoSeal
    ));
    // The sealed key's seal written to another key: bound to another certificate.
    let seal = k
        .module
        .session(&k.token(KeyState::Sealed))
        .unwrap()
        .read_data(SEAL_APPLICATION, SEAL_LABEL)
        .unwrap()
        .unwrap();
    let other = k.module.session(&k.token(KeyState::IssuedRsa)).unwrap();
    other
        .login(&Pin::new(USER_PIN.to_owned()), FinalTry::Refuse)
        .unwrap();
    other
        .write_data(SEAL_APPLICATION, SEAL_LABEL, &seal, false)
        .unwrap();
    other.logout().unwrap();
    drop(other);
    assert!(matches!(
        try_it(KeyState::IssuedRsa, "other.pdf", &doc, here(1)),
        FlowError::SealOtherCertificate
    ));
    // Over the size limit: refused by its size, before it is read.
    let big = k.path("big.pdf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(stamp::MAX_DOCUMENT_BYTES as u64 + 1).unwrap();
    let e = k
        .stamp(KeyState::Sealed, &big, &k.path("big.out.pdf"), here(1))
        .unwrap_err();
    assert!(
        matches!(e, FlowError::Pdf(PdfError::TooLarge { .. })),
        "{e:?}"
    );
    assert!(!k.path("big.out.pdf").exists());
    assert!(k.pin_ok(KeyState::Sealed));
}

#[test]
fn the_original_and_existing_files_are_never_overwritten() {
    let k = Keys::new(&[KeyState::Sealed]);
    let doc = keyward_pdf::sample_document(1, false);
    let input = k.write("in.pdf", &doc);
    assert!(matches!(
        k.stamp(KeyState::Sealed, &input, &input, here(1)),
        Err(FlowError::OutputIsInput)
    ));
    // The same file by another name.
    let dotted = k.dir.path().join(".").join("in.pdf");
    assert!(matches!(
        k.stamp(KeyState::Sealed, &input, &dotted, here(1)),
        Err(FlowError::OutputIsInput)
    ));
    let existing = k.write("exists.pdf", b"keep me");
    assert!(matches!(
        k.stamp(KeyState::Sealed, &input, &existing, here(1)),
        Err(FlowError::OutputExists(_))
    ));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&input).unwrap(), doc);
    // A wrong PIN: reported by the guard, nothing written.
    let out = k.path("out.pdf");
    let e = stamp::stamp_file(
        &k.module,
        &k.token(KeyState::Sealed),
        &Pin::new("Wrong#PIN2026".to_owned()),
        FinalTry::Refuse,
        &input,
        &out,
        here(1),
        OffsetDateTime::now_utc(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            FlowError::Token(keyward_token::TokenError::PinIncorrect { .. })
        ),
        "{e:?}"
    );
    assert!(!out.exists());
}

/// Stamps made by hand outside the flow, as a forger would: the kw-sealed key's seal shown
/// under a signature by another key, and the right key's signature over a picture that is
/// not its seal's. Both signatures are sound; `verify` must still refuse each, by name.
#[test]
fn verify_refuses_a_seal_shown_by_another_signer_and_a_picture_not_the_seals() {
    use keyward_pdf::{ImageKind, Placement, SealPicture, StampSpec};
    use keyward_pki::cms::{self, Content, SignOptions};
    let k = Keys::new(&[KeyState::Sealed, KeyState::IssuedRsa]);
    let seal_der = k
        .module
        .session(&k.token(KeyState::Sealed))
        .unwrap()
        .read_data(SEAL_APPLICATION, SEAL_LABEL)
        .unwrap()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let forge = |state: KeyState, picture: &[u8]| -> Vec<u8> {
        let doc = keyward_pdf::sample_document(1, false);
        let spec = StampSpec {
            picture: SealPicture {
                data: picture,
                kind: ImageKind::Png,
                width_mm: 40.0,
                height_mm: 40.0,
            },
            placement: Placement::Page {
                page: 1,
                x_mm: 100.0,
                y_mm: 100.0,
            },
            seal_der: &seal_der,
            signer_name: "forger",
            time: now,
            reason: None,
        };
        let prepared = keyward_pdf::prepare(&doc, &spec).unwrap();
        let session = k.module.session(&k.token(state)).unwrap();
        session
            .login(&Pin::new(USER_PIN.to_owned()), FinalTry::Refuse)
            .unwrap();
        let certs = session.certificates().unwrap();
        let cert = certs
            .iter()
            .find(|c| c.id == softhsm_fixtures::KEY_ID)
            .unwrap();
        let chain: Vec<Vec<u8>> = certs
            .iter()
            .filter(|c| c.id == softhsm_fixtures::CHAIN_ID)
            .map(|c| c.der.clone())
            .collect();
        let signer = session.signer(softhsm_fixtures::KEY_ID).unwrap();
        let signature = cms::sign(
            &signer,
            &cert.der,
            &chain,
            Content::DetachedDigest(prepared.digest()),
            &SignOptions::pades(),
        )
        .unwrap();
        prepared.finish(&signature).unwrap()
    };

    // The seal of kw-sealed, signed by kw-issued-rsa.
    let r = stamp::verify(
        &forge(KeyState::IssuedRsa, &softhsm_fixtures::seal_png()),
        &k.root_der(),
        now,
    )
    .unwrap();
    let s = &r.signatures[0];
    assert!(s.intact && s.chain_trusted, "{s:#?}");
    let seal = s.seal.as_ref().unwrap();
    assert!(seal.made_under_root && seal.picture_matches, "{s:#?}");
    assert!(!seal.bound_to_signer, "{s:#?}");
    assert!(!s.valid && !r.all_valid);
    assert!(s.problems.iter().any(|p| p.contains("another certificate")));

    // The right signer, and a blue picture in place of the seal's red one.
    let r = stamp::verify(
        &forge(
            KeyState::Sealed,
            &softhsm_fixtures::stamp_png([20, 40, 200]),
        ),
        &k.root_der(),
        now,
    )
    .unwrap();
    let s = &r.signatures[0];
    assert!(s.intact && s.chain_trusted, "{s:#?}");
    let seal = s.seal.as_ref().unwrap();
    assert!(seal.made_under_root && seal.bound_to_signer, "{s:#?}");
    assert!(!seal.picture_matches, "{s:#?}");
    assert!(!s.valid && !r.all_valid);

    // The control: the same hand-made stamp with the seal's own picture and signer holds.
    let r = stamp::verify(
        &forge(KeyState::Sealed, &softhsm_fixtures::seal_png()),
        &k.root_der(),
        now,
    )
    .unwrap();
    assert!(r.all_valid, "{r:#?}");
}

//! The electronic seal end to end: 申请印章 with a stamped scan, the CA's reviewer approves,
//! 安装印章 writes the SM2-signed GM/T 0031 seal to the key, 变更印章 replaces it; the seal
//! read from outside with pkcs11-tool. Seals for another certificate or with a broken
//! signature are refused and leave the key as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../keyward-pdf/tests/tools/mod.rs"]
mod tools;

use std::process::Command;

use common::{PIN, World, organisation, pin};
use keyward_ca_api::{BusinessState, ReviewDecision, SealKind};
use keyward_flows::seal::{self, SEAL_APPLICATION, SEAL_LABEL};
use keyward_flows::{FlowError, Progress};
use keyward_pki::seal::Seal;
use keyward_token::{FinalTry, KeySpec, TokenRef};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR the stamped official seal";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF the stamped contract seal";

fn approve(w: &World, business_id: &str) {
    let b = w
        .admin
        .approve(
            business_id,
            &ReviewDecision {
                note: "印模清晰，与营业执照一致".into(),
            },
        )
        .unwrap();
    assert_eq!(
        b.state,
        BusinessState::CertificateIssued,
        "seal ready to install"
    );
}

fn on_key(w: &World, t: &TokenRef) -> Option<Vec<u8>> {
    w.module
        .session(t)
        .unwrap()
        .read_data(SEAL_APPLICATION, SEAL_LABEL)
        .unwrap()
}

/// Applies for the key's seal and has it approved; returns the business id.
fn applied_and_approved(w: &World, i: usize, change: bool, scan: &[u8], kind: SealKind) -> String {
    let t = &w.tokens[i];
    let name = match kind {
        SealKind::Official => organisation(i as u32 + 1).name,
        SealKind::Contract => format!("{}合同专用章", organisation(i as u32 + 1).name),
    };
    let ct = if scan.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    let b = seal::apply(
        &w.env,
        t,
        &pin(PIN),
        FinalTry::Refuse,
        &name,
        kind,
        change,
        scan,
        ct,
    )
    .unwrap();
    assert_eq!(b.state, BusinessState::UnderReview);
    approve(w, &b.id);
    b.id
}

fn pkcs11_tool(t: &TokenRef, args: &[&str]) -> std::process::Output {
    Command::new("pkcs11-tool")
        .arg("--module")
        .arg(common::sim_module())
        .args(["--token-label", &t.label])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn seal_is_applied_for_reviewed_installed_shown_and_changed() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let org = organisation(1).name;
    assert!(seal::status(&w.env, &t.serial).unwrap().is_none());
    assert!(matches!(seal::show(&w.env, t), Err(FlowError::NoSeal)));

    // A PDF cannot become the seal's picture: refused before anything reaches the CA.
    let pdf = seal::apply(
        &w.env,
        t,
        &pin(PIN),
        FinalTry::Refuse,
        &org,
        SealKind::Official,
        false,
        b"%PDF-1.7 stamped",
        "application/pdf",
    );
    assert!(matches!(pdf, Err(FlowError::SealScanNotImage)), "{pdf:?}");
    assert!(seal::status(&w.env, &t.serial).unwrap().is_none());

    // 申请印章 → under review: nothing to install yet.
    let b = seal::apply(
        &w.env,
        t,
        &pin(PIN),
        FinalTry::Refuse,
        &org,
        SealKind::Official,
        false,
        PNG,
        "image/png",
    )
    .unwrap();
    assert_eq!(b.state, BusinessState::UnderReview);
    assert!(matches!(
        seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None),
        Err(FlowError::AwaitingReview)
    ));
    let waits = |w: &World| {
        keyward_flows::standing::standing(&w.env.ca, &w.env.journal, &t.serial)
            .unwrap()
            .has(keyward_flows::standing::WaitingKind::InstallSeal)
    };
    assert!(
        !waits(&w),
        "a seal under review waits for the CA, not the operator"
    );
    approve(&w, &b.id);
    assert!(waits(&w), "the seal the CA made waits for 安装印章");

    // 安装印章.
    let mut steps = Vec::new();
    let mut on = |p: Progress| steps.push(p.step);
    let v = seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, Some(&mut on)).unwrap();
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert_eq!(v.summary.name, org);
    assert_eq!(v.kind, Some(SealKind::Official));
    assert!(v.verified);
    assert!(!waits(&w));
    assert_eq!(w.business(t, &b.id).state, BusinessState::Completed);
    // Nothing is left to follow on this computer.
    assert!(seal::status(&w.env, &t.serial).unwrap().is_none());
    assert!(w.env.journal.pending(&t.serial).is_empty());

    let shown = seal::show(&w.env, t).unwrap();
    assert_eq!(shown.summary.name, org);
    assert_eq!(shown.image, PNG);
    assert_eq!(shown.mime_type, Some("image/png"));
    assert!(shown.verified);

    // From outside: pkcs11-tool reads the one public seal object, without a PIN.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seal.der");
    let out = pkcs11_tool(
        t,
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            SEAL_LABEL,
            "--output-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(&file).unwrap();
    assert_eq!(Some(der.clone()), on_key(&w, t));
    let s = Seal::from_der(&der).unwrap();
    s.verify_signature().unwrap();
    let root = keyward_pki::pem::decode(w.server.root_pem(), "CERTIFICATE").unwrap();
    s.maker_issued_by(&root).unwrap();

    // 变更印章: the contract seal replaces the official one; still exactly one object.
    applied_and_approved(&w, 0, true, JPEG, SealKind::Contract);
    let v = seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    assert_eq!(v.kind, Some(SealKind::Contract));
    let shown = seal::show(&w.env, t).unwrap();
    assert_eq!(shown.image, JPEG);
    assert_eq!(shown.summary.name, format!("{org}合同专用章"));
    let out = pkcs11_tool(t, &["--list-objects", "--type", "data"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listing.matches(SEAL_LABEL).count(), 1, "{listing}");

    // Installing again is harmless: the same seal rewritten, the CA already done.
    let again = seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    assert_eq!(again.summary, v.summary);
}

#[test]
fn a_seal_for_another_certificate_or_with_a_bad_signature_changes_nothing() {
    let w = World::new(2, KeySpec::EcP256);
    let (a, b) = (&w.tokens[0], &w.tokens[1]);
    w.activate(a);
    w.activate(b);
    applied_and_approved(&w, 0, false, PNG, SealKind::Official);
    seal::install(&w.env, a, &pin(PIN), FinalTry::Refuse, None).unwrap();
    let a_seal = on_key(&w, a).unwrap();
    let b_business = applied_and_approved(&w, 1, false, PNG, SealKind::Official);
    let b_doc = w.seal_document(b);
    let b_seal = keyward_pki::pem::from_base64(&b_doc.seal_der_base64).unwrap();
    let tries_before = w.module.pin_status(a).unwrap();

    // Another organisation's genuine seal, offered to key A.
    let r = seal::install_seal(
        &w.env,
        a,
        &pin(PIN),
        FinalTry::Refuse,
        &b_business,
        &b_seal,
        None,
    );
    assert!(matches!(r, Err(FlowError::SealOtherCertificate)), "{r:?}");
    assert_eq!(on_key(&w, a).unwrap(), a_seal, "A's seal is untouched");

    // A's own seal with one byte of its picture changed: the signature no longer holds.
    let at = a_seal
        .windows(PNG.len())
        .position(|win| win == PNG)
        .unwrap();
    let mut tampered = a_seal.clone();
    tampered[at + PNG.len() - 1] ^= 0x01;
    let r = seal::install_seal(
        &w.env,
        a,
        &pin(PIN),
        FinalTry::Refuse,
        &b_business,
        &tampered,
        None,
    );
    assert!(matches!(r, Err(FlowError::SealInvalid(_))), "{r:?}");
    // And bytes that are no seal at all.
    let r = seal::install_seal(
        &w.env,
        a,
        &pin(PIN),
        FinalTry::Refuse,
        &b_business,
        &a_seal[..a_seal.len() / 2],
        None,
    );
    assert!(matches!(r, Err(FlowError::SealInvalid(_))), "{r:?}");
    assert_eq!(on_key(&w, a).unwrap(), a_seal, "A's seal is untouched");
    assert_eq!(
        w.module.pin_status(a).unwrap(),
        tries_before,
        "no login was spent"
    );
    assert!(w.env.journal.pending(&a.serial).is_empty());
    // Key B never got a seal written, and its business waits for its own key.
    assert!(on_key(&w, b).is_none());
    assert_eq!(
        w.business(b, &b_business).state,
        BusinessState::CertificateIssued
    );
    let msg = keyward_flows::user_error(&FlowError::SealOtherCertificate, keyward_pki::Lang::ZhCn);
    assert_eq!(msg.code, "seal_other_certificate");
}

/// The fault matrix for 安装印章: the key already holds a seal; a changed seal is installed
/// with the key pulled at its first PKCS#11 call, then its second, and so on. After each
/// pull the key holds one complete seal (the old or the new, never none and never a torn
/// one), and installing again finishes with exactly the new seal on the key.
#[test]
fn install_seal_survives_the_key_pulled_at_every_call() {
    use keyward_sim::control::{self, Effect, Fault};
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    applied_and_approved(&w, 0, false, PNG, SealKind::Official);
    seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    let state = w.fixtures.sim_state();
    let scan = |n: u64| {
        let mut s = PNG.to_vec();
        s.extend(format!(" change {n}").as_bytes());
        s
    };
    let arm = |at_call: u64| {
        control::clear_faults(&state).unwrap();
        control::arm_fault(
            &state,
            Fault {
                function: "*",
                at_call,
                effect: Effect::RemoveToken,
            },
        )
        .unwrap()
    };

    // How many calls one install makes.
    applied_and_approved(&w, 0, true, &scan(0), SealKind::Official);
    let id = arm(u64::MAX);
    seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    let calls = control::status(&state)
        .unwrap()
        .faults
        .iter()
        .find(|f| f.id == id)
        .unwrap()
        .calls;
    control::clear_faults(&state).unwrap();
    assert!(calls > 5, "{calls}");

    let mut pulled = 0;
    for n in 1..=calls {
        let old = on_key(&w, t).unwrap();
        let business = applied_and_approved(&w, 0, true, &scan(n), SealKind::Official);
        let new = keyward_pki::pem::from_base64(&w.seal_document(t).seal_der_base64).unwrap();
        arm(n);
        let first = seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None);
        control::clear_faults(&state).unwrap();
        control::insert(&state, &t.serial).unwrap();
        if let Err(e) = first {
            pulled += 1;
            assert!(
                matches!(&e, FlowError::Token(k) if k.is_key_removed()),
                "call {n}: {e:?}"
            );
            let held = on_key(&w, t).expect("a seal on the key");
            assert!(held == old || held == new, "call {n}: a torn seal");
            Seal::from_der(&held).unwrap().verify_signature().unwrap();
            seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None)
                .unwrap_or_else(|e| panic!("call {n}: resuming: {e:?}"));
        }
        assert_eq!(on_key(&w, t).unwrap(), new, "call {n}");
        assert_eq!(
            w.business(t, &business).state,
            BusinessState::Completed,
            "call {n}"
        );
    }
    // Every call but the last two (logout and closing the session, after the work is done,
    // whose failure changes nothing) interrupted the install.
    assert!(pulled + 2 >= calls, "{pulled} of {calls} calls interrupted");
    let out = pkcs11_tool(t, &["--list-objects", "--type", "data"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listing.matches(SEAL_LABEL).count(), 1, "{listing}");
}

/// 安装证书 replaces the certificate the seal is bound to; the CA re-makes the seal for the
/// new certificate and 安装印章 puts it on the key.
#[test]
fn after_a_renewal_the_seal_is_installed_again_for_the_new_certificate() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    applied_and_approved(&w, 0, false, PNG, SealKind::Official);
    seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    let first = on_key(&w, t).unwrap();

    w.enter_renewal_window(t);
    keyward_flows::renew::apply(&w.env, t, &pin(PIN), FinalTry::Refuse, 1, common::invoice())
        .unwrap();
    keyward_flows::renew::pay_sandbox(&w.env, &t.serial).unwrap();
    keyward_flows::renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    let stale = seal::show(&w.env, t).unwrap();
    assert!(
        !stale.verified,
        "the old seal is bound to the old certificate"
    );
    assert_eq!(
        seal::status(&w.env, &t.serial).unwrap().unwrap().state,
        BusinessState::CertificateIssued,
        "a seal for the new certificate is ready"
    );

    let v = seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    assert!(v.verified);
    let now = on_key(&w, t).unwrap();
    assert_ne!(now, first);
    let shown = seal::show(&w.env, t).unwrap();
    assert!(shown.verified);
    assert_eq!(shown.image, PNG);
}

/// The whole path of 盖章: a seal the reference CA made from a real scan (申请印章, review,
/// 安装印章) stamps a PDF with an EC key; pdfsig and pyHanko accept the signature under the
/// CA's own root, and `stamp::verify` finds the seal made under that root and bound to the
/// signer.
#[test]
fn a_seal_the_ca_made_stamps_a_pdf_accepted_under_the_cas_root() {
    use keyward_flows::stamp::{self, Place};
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let scan = softhsm_fixtures::seal_png();
    applied_and_approved(&w, 0, false, &scan, SealKind::Official);
    seal::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();

    let document = keyward_pdf::sample_document(2, false);
    let preview = stamp::preview(&w.module, t, &document, time::OffsetDateTime::now_utc())
        .expect("the installed seal can stamp");
    assert_eq!(preview.pages.len(), 2);
    assert_eq!(
        preview.seal_image, scan,
        "the picture is the scan the CA was given"
    );
    let done = stamp::stamp(
        &w.module,
        t,
        &pin(PIN),
        FinalTry::Refuse,
        &document,
        Place::Usual { page: None },
        time::OffsetDateTime::now_utc(),
        None,
    )
    .unwrap();
    assert!(done.document.starts_with(&document));

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ca-root.pem");
    std::fs::write(&root, w.server.root_pem()).unwrap();
    let pdf = dir.path().join("stamped.pdf");
    std::fs::write(&pdf, &done.document).unwrap();
    let nss = tools::nss_store(dir.path(), &root);
    let report = tools::pdfsig(&pdf, &nss);
    let sigs = tools::pdfsig_signatures(&report);
    assert_eq!(sigs.len(), 1, "{report}");
    tools::assert_pdfsig_signature(&sigs[0], &organisation(1).name, true, &report);
    let (ok, text) = tools::pyhanko(&pdf, &root);
    assert!(
        ok && text.contains("The signer's certificate is trusted."),
        "{text}"
    );

    let root_der = keyward_pki::pem::decode(w.server.root_pem(), "CERTIFICATE").unwrap();
    let r = stamp::verify(&done.document, &root_der, time::OffsetDateTime::now_utc()).unwrap();
    assert!(r.all_valid, "{r:#?}");
    let s = &r.signatures[0];
    assert_eq!(
        s.organization.as_deref(),
        Some(organisation(1).name.as_str())
    );
    let sealed = s.seal.as_ref().unwrap();
    assert!(sealed.made_under_root && sealed.bound_to_signer && sealed.picture_matches);
}

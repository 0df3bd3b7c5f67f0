//! 盖章 through the `keyward` binary with the `kw-sealed` fixture key, on a document another
//! program wrote (cairo, through poppler's `pdftocairo`): stamped once, twice and across
//! pages, then checked by parts Keyward did not write — pdfsig (NSS trusting only the
//! fixtures' root), pyHanko (that root as its one trust anchor), the seal each signature
//! keeps decoded by asn1tools from GB/T 38540's ASN.1 and its SM2 signature verified by
//! OpenSSL 3 and by gmssl — and by `keyward stamp verify`. Refusals exit 12 before the PIN
//! reaches the key and leave every file as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../keyward-pdf/tests/tools/mod.rs"]
mod tools;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use softhsm_fixtures::{FixtureSet, FixtureToken, KeyState, Manifest, USER_PIN};

struct World {
    set: FixtureSet,
    manifest: Manifest,
    dir: tempfile::TempDir,
}

impl World {
    fn new(states: &[KeyState]) -> World {
        let (set, _module, manifest) =
            FixtureSet::build(states, &softhsm_fixtures::sim_module()).unwrap();
        World {
            set,
            manifest,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn key(&self, state: KeyState) -> &FixtureToken {
        self.manifest
            .tokens
            .iter()
            .find(|t| t.state == state)
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root_pem(&self) -> PathBuf {
        self.set.dir().join("root.pem")
    }

    /// `keyward ARGS` with `stdin` on standard input (the PIN, for `--pin-fd 0`).
    fn keyward(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .envs(self.set.env())
            .env("KEYWARD_PKCS11_MODULE", softhsm_fixtures::sim_module())
            .env_remove("KEYWARD_CA_URL")
            .env_remove("KEYWARD_CA_ROOT")
            .env_remove("LANG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command refused before it reads the PIN closes the pipe: its exit code tells.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// `keyward stamp IN --output OUT --token SERIAL --pin-fd 0 --json EXTRA…` with `pin`.
    fn stamp(
        &self,
        state: KeyState,
        input: &Path,
        output: &Path,
        extra: &[&str],
        pin: &str,
    ) -> Output {
        let serial = self.key(state).serial.clone();
        let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
        let mut args = vec![
            "stamp", i, "--output", o, "--token", &serial, "--pin-fd", "0", "--json",
        ];
        args.extend_from_slice(extra);
        self.keyward(&args, &format!("{pin}\n"))
    }

    fn stamped(&self, input: &Path, output: &Path, extra: &[&str]) -> Value {
        let out = self.stamp(KeyState::Sealed, input, output, extra, USER_PIN);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The key's user PIN as the key reports it: state and tries left.
    fn pin(&self, state: KeyState) -> Value {
        let out = self.keyward(&["tokens", "--json"], "");
        assert!(out.status.success(), "{}", text(&out));
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let serial = &self.key(state).serial;
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["token"]["serial"] == serial.as_str())
            .unwrap()["token"]["pin"]
            .clone()
    }

    /// pdfsig and pyHanko on `pdf`: `count` signatures, each valid, by the sealed key's
    /// organisation, trusted under the fixtures' root.
    fn outside(&self, pdf: &Path, count: usize) {
        let nss = tools::nss_store(self.dir.path(), &self.root_pem());
        let report = tools::pdfsig(pdf, &nss);
        let sigs = tools::pdfsig_signatures(&report);
        assert_eq!(sigs.len(), count, "{report}");
        let org = self.key(KeyState::Sealed).organization.clone().unwrap();
        for (i, s) in sigs.iter().enumerate() {
            tools::assert_pdfsig_signature(s, &org, i == 0, &report);
        }
        let (ok, text) = tools::pyhanko(pdf, &self.root_pem());
        assert!(ok, "{text}");
        for line in [
            "The signature is cryptographically sound.",
            "The signer's certificate is trusted.",
            "The signature is judged VALID.",
        ] {
            assert_eq!(text.matches(line).count(), count, "{line}\n{text}");
        }
    }

    /// `keyward stamp verify FILE --ca-root ROOT --json`: its exit code and report.
    fn verify(&self, pdf: &Path, root: &Path) -> (Option<i32>, Value) {
        let out = self.keyward(
            &[
                "--ca-root",
                root.to_str().unwrap(),
                "stamp",
                "verify",
                pdf.to_str().unwrap(),
                "--json",
            ],
            "",
        );
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
        (out.status.code(), v)
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A plain document of `pages` A4 pages, written by hand, then rewritten by cairo: what the
/// stamp goes on is another program's PDF.
fn tender(dir: &Path, pages: usize) -> PathBuf {
    let mut objects = vec![
        "<</Type/Catalog/Pages 2 0 R>>".to_owned(),
        format!(
            "<</Type/Pages/Count {pages}/Kids[{}]>>",
            (0..pages)
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>".to_owned(),
    ];
    for i in 0..pages {
        let content = format!(
            "BT /F1 20 Tf 72 760 Td (Tender document, page {}) Tj ET",
            i + 1
        );
        objects.push(format!(
            "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 3 0 R>>>>/Contents {} 0 R>>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<</Length {}>>stream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n{o}\nendobj\n", n + 1).bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        pdf.extend(format!("{o:010} 00000 n \n").bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    let hand = dir.join(format!("hand-{pages}.pdf"));
    std::fs::write(&hand, pdf).unwrap();
    let out = dir.join(format!("tender-{pages}.pdf"));
    let o = Command::new("timeout")
        .args(["60", "pdftocairo", "-pdf"])
        .arg(&hand)
        .arg(&out)
        .output()
        .expect("pdftocairo (cargo xtask setup installs poppler-utils)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The signatures of `pdf` as pyHanko reads them, each with the seal its appearance keeps
/// written out (tests/standard/pdf_seals.py).
fn seals_by_pyhanko(pdf: &Path, root: &Path, out: &Path) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standard/pdf_seals.py");
    let o = Command::new("timeout")
        .args(["120", "python3"])
        .arg(script)
        .arg(pdf)
        .arg(root)
        .arg(out)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A seal decoded by asn1tools from GB/T 38540's module (keyward-ca's
/// tests/standard/check_seal.py), which also writes esealInfo, the signature and the
/// maker's certificate into `dir`.
fn decode_seal(seal: &Path, dir: &Path) -> Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyward-ca/tests/standard/check_seal.py");
    let o = Command::new("timeout")
        .args(["60", "python3"])
        .arg(script)
        .arg(seal)
        .arg(dir)
        .output()
        .expect("python3 (cargo xtask setup installs asn1tools)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// OpenSSL 3 verifies the SM2 signature (SM3, the default ID) of the seal `check_seal.py`
/// took apart in `dir`, over `message` (a file there).
fn sm2_verified_by_openssl(dir: &Path, message: &str) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl")
    };
    let key = run(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        "maker.der",
        "-pubkey",
        "-noout",
        "-out",
        "maker.pem",
    ]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let o = run(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "maker.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:1234567812345678",
        "-in",
        message,
        "-sigfile",
        "signature.der",
    ]);
    o.status.success()
        && String::from_utf8_lossy(&o.stdout).contains("Signature Verified Successfully")
}

/// gmssl's verdict, as [`sm2_verified_by_openssl`] (keyward-ca's tests/standard/sm2_gmssl.py).
fn sm2_verified_by_gmssl(dir: &Path, message: &str) -> bool {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyward-ca/tests/standard/sm2_gmssl.py");
    let o = Command::new("timeout")
        .args(["60", "python3"])
        .arg(script)
        .args([message, "signature.der", "maker.der"])
        .current_dir(dir)
        .output()
        .expect("python3 (cargo xtask setup installs gmssl)");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.trim() == "verified" || said.trim() == "not verified",
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.success() && said.trim() == "verified"
}

#[test]
fn stamped_once_twice_and_across_pages_from_the_command_line_and_checked_outside() {
    let w = World::new(&[KeyState::Sealed]);
    let key = w.key(KeyState::Sealed).clone();
    let input = tender(w.dir.path(), 3);
    let original = std::fs::read(&input).unwrap();

    // Once, at the usual place: the bottom right of the last page.
    let once = w.path("once.pdf");
    let v = w.stamped(&input, &once, &[]);
    assert_eq!(v["pages"], serde_json::json!([3]), "{v}");
    assert_eq!(v["field"], "Keyward-Stamp-1");
    assert_eq!(v["output"], once.to_str().unwrap());
    assert_eq!(
        std::fs::read(&input).unwrap(),
        original,
        "the input is untouched"
    );
    let once_bytes = std::fs::read(&once).unwrap();
    assert!(
        once_bytes.starts_with(&original),
        "an incremental update: the original bytes come first, unchanged"
    );
    assert_eq!(v["bytes"], once_bytes.len());
    w.outside(&once, 1);

    // Twice: page 1, 50 mm from the left and the top.
    let twice = w.path("twice.pdf");
    let v = w.stamped(&once, &twice, &["--page", "1", "--x", "50", "--y", "50"]);
    assert_eq!(v["pages"], serde_json::json!([1]), "{v}");
    assert_eq!(v["field"], "Keyward-Stamp-2");
    assert!(std::fs::read(&twice).unwrap().starts_with(&once_bytes));
    w.outside(&twice, 2);

    let (code, r) = w.verify(&twice, &w.root_pem());
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["all_valid"], true);
    let sigs = r["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    for (s, pages, last) in [(&sigs[0], [3], false), (&sigs[1], [1], true)] {
        assert_eq!(s["organization"].as_str(), key.organization.as_deref());
        assert_eq!(s["credit_code"].as_str(), key.credit_code.as_deref());
        assert_eq!(s["pages"], serde_json::json!(pages));
        assert_eq!(s["intact"], true);
        assert_eq!(s["chain_trusted"], true);
        assert_eq!(s["unchanged_since"], last, "{s}");
        assert_eq!(s["seal"]["bound_to_signer"], true);
        assert_eq!(s["seal"]["made_under_root"], true);
        assert_eq!(s["seal"]["picture_matches"], true);
        assert_eq!(s["seal"]["name"].as_str(), key.organization.as_deref());
    }
    // The same report for people, in Chinese by default.
    let out = w.keyward(
        &[
            "--ca-root",
            w.root_pem().to_str().unwrap(),
            "stamp",
            "verify",
            twice.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.matches("签名完好: 是").count(), 2, "{said}");
    assert!(said.contains(key.credit_code.as_deref().unwrap()), "{said}");

    // The seal each signature keeps, read by pyHanko out of the PDF, decoded by asn1tools
    // from the standard's ASN.1 and verified by OpenSSL and gmssl: version 4, the
    // organisation's name, bound to the very certificate that signed.
    let found = seals_by_pyhanko(&twice, &w.root_pem(), w.dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    for f in &found {
        assert_eq!(f["intact"], true, "{f}");
        assert_eq!(f["trusted"], true, "{f}");
        let seal = Path::new(f["seal"].as_str().expect("a seal kept with the signature"));
        let parts = tempfile::tempdir().unwrap();
        let read = decode_seal(seal, parts.path());
        assert_eq!(read["header_id"], "ES");
        assert_eq!(read["version"], 4);
        assert_eq!(read["name"].as_str(), key.organization.as_deref());
        assert_eq!(read["cert_list"], "CertInfoList");
        assert_eq!(read["cert_sha256"], serde_json::json!([f["signer_sha256"]]));
        assert!(sm2_verified_by_openssl(parts.path(), "info.der"));
        assert!(sm2_verified_by_gmssl(parts.path(), "info.der"));
        let mut changed = std::fs::read(parts.path().join("info.der")).unwrap();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        std::fs::write(parts.path().join("changed.der"), changed).unwrap();
        assert!(!sm2_verified_by_openssl(parts.path(), "changed.der"));
        assert!(!sm2_verified_by_gmssl(parts.path(), "changed.der"));
    }

    // Against another CA's root: the chain and the seal's maker fail, exit 13.
    let other = softhsm_fixtures::TestCa::new().unwrap();
    let other_root = w.path("other-root.pem");
    std::fs::write(
        &other_root,
        softhsm_fixtures::pem("CERTIFICATE", &other.root_der),
    )
    .unwrap();
    let (code, r) = w.verify(&twice, &other_root);
    assert_eq!(code, Some(13), "{r:#}");
    assert_eq!(r["all_valid"], false);
    assert_eq!(r["signatures"][0]["intact"], true);
    assert_eq!(r["signatures"][0]["chain_trusted"], false);
    assert_eq!(r["signatures"][0]["seal"]["made_under_root"], false);
    let (ok, said) = tools::pyhanko(&twice, &other_root);
    assert!(
        !ok || !said.contains("The signer's certificate is trusted."),
        "{said}"
    );

    // One byte changed inside what the first stamp covers (the producer's name in the
    // original's information dictionary): it no longer holds, exit 13.
    let mut changed = std::fs::read(&twice).unwrap();
    let at = changed.windows(5).position(|w| w == b"cairo").unwrap();
    assert!(at < original.len());
    changed[at] = b'C';
    let tampered = w.path("tampered.pdf");
    std::fs::write(&tampered, changed).unwrap();
    let (code, r) = w.verify(&tampered, &w.root_pem());
    assert_eq!(code, Some(13), "{r:#}");
    assert_eq!(r["signatures"][0]["intact"], false, "{r:#}");

    // 骑缝章: one signature, the seal on every page.
    let cross = w.path("cross.pdf");
    let v = w.stamped(&input, &cross, &["--cross-page"]);
    assert_eq!(v["pages"], serde_json::json!([1, 2, 3]), "{v}");
    w.outside(&cross, 1);
    let (code, r) = w.verify(&cross, &w.root_pem());
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["signatures"][0]["pages"], serde_json::json!([1, 2, 3]));
}

/// Each refusal: exit 12 (the document) or its own code, nothing written, every file as it
/// was, and the key's PIN counter untouched — the PIN given is wrong, so had it reached the
/// key the key would count it.
#[test]
fn refusals_come_before_the_pin_and_leave_every_file_as_it_was() {
    let w = World::new(&[KeyState::Sealed, KeyState::IssuedEc]);
    let input = tender(w.dir.path(), 2);
    let original = std::fs::read(&input).unwrap();
    let wrong = "Wrong#PIN2026";
    let untouched = |state: KeyState| {
        let pin = w.pin(state);
        assert_eq!(pin["user"], "ok", "{pin}");
    };
    let refused = |state: KeyState, input: &Path, output: &Path, extra: &[&str], code: i32| {
        let before = std::fs::read(input).unwrap();
        let out = w.stamp(state, input, output, extra, wrong);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {}", text(&out));
        assert!(!text(&out).contains(wrong));
        assert_eq!(std::fs::read(input).unwrap(), before);
        untouched(state);
        out
    };
    let out = w.path("out.pdf");
    // A page the document does not have, a place off the page.
    let e = refused(KeyState::Sealed, &input, &out, &["--page", "3"], 12);
    assert!(text(&e).contains("第 3 页"), "{}", text(&e));
    refused(
        KeyState::Sealed,
        &input,
        &out,
        &["--x", "209", "--y", "100"],
        12,
    );
    assert!(!out.exists());
    // An encrypted document, a damaged one.
    let encrypted = w.path("encrypted.pdf");
    let mut bytes = String::from_utf8_lossy(&original).into_owned();
    let trailer = bytes
        .rfind("trailer")
        .expect("cairo writes a classic trailer");
    bytes.insert_str(trailer + "trailer\n<<".len(), "/Encrypt 1 0 R");
    std::fs::write(&encrypted, bytes.as_bytes()).unwrap();
    let e = refused(KeyState::Sealed, &encrypted, &out, &[], 12);
    assert!(text(&e).contains("加密"), "{}", text(&e));
    let damaged = w.path("damaged.pdf");
    std::fs::write(&damaged, &original[..original.len() / 3]).unwrap();
    refused(KeyState::Sealed, &damaged, &out, &[], 12);
    assert!(!out.exists());
    // The output exists, or is the input itself.
    let existing = w.path("exists.pdf");
    std::fs::write(&existing, b"keep me").unwrap();
    refused(KeyState::Sealed, &input, &existing, &[], 12);
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    refused(KeyState::Sealed, &input, &input, &[], 12);
    assert_eq!(std::fs::read(&input).unwrap(), original);
    // A key without a seal: not at this step yet (exit 11), 申请印章 first.
    let e = refused(KeyState::IssuedEc, &input, &out, &[], 11);
    assert!(text(&e).contains("印章"), "{}", text(&e));
    assert!(!out.exists());

    // Everything in order but the PIN: the key counts it (exit 4), nothing is written.
    let e = w.stamp(KeyState::Sealed, &input, &out, &[], wrong);
    assert_eq!(e.status.code(), Some(4), "{}", text(&e));
    assert!(!out.exists());
    assert_eq!(w.pin(KeyState::Sealed)["user"], "count_low");

    // stamp verify needs the root it checks against.
    let e = w.keyward(&["stamp", "verify", input.to_str().unwrap()], "");
    assert_eq!(e.status.code(), Some(2), "{}", text(&e));
    // A document without stamps: nothing valid to report, exit 13.
    let (code, r) = w.verify(&input, &w.root_pem());
    assert_eq!(code, Some(13), "{r:#}");
    assert_eq!(r["signatures"], serde_json::json!([]));
}

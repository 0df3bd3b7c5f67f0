//! Token path overhead: each operation through `keyward-token` and as the bare cryptoki
//! calls a program would make for the same result, on the same key, one after the other in
//! one process. Benchmark ids are `token/<module>/<operation>/<key>/<keyward|bare>`, and
//! `cargo xtask bench` reports keyward ÷ bare of the medians.
//!
//! What each bare baseline does:
//! - `tokens`: C_GetSlotList(present) and one C_GetTokenInfo per slot.
//! - `session`: C_OpenSession and C_CloseSession.
//! - `login`: C_Login(user) and C_Logout.
//! - `open-login`: C_OpenSession, C_Login(user), C_Logout and C_CloseSession.
//! - `sign`: find the private key by CKA_ID, then C_Sign (CKM_SHA256_RSA_PKCS for RSA;
//!   SHA-256 in software and CKM_ECDSA for P-256, as Keyward does on SoftHSM).
//! - `sign-held`: C_Sign on a key handle found beforehand (Keyward's `TokenSigner`).
//! - `certificates`: find the X.509 certificates, then CKA_ID, CKA_LABEL and CKA_VALUE of each.

use std::hint::black_box;
use std::path::Path;

use anyhow::{Context, Result};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keyward_pki::{KeySigner, Pin};
use keyward_token::{FinalTry, TokenSession};
use sha2::{Digest, Sha256};
use softhsm_fixtures::{FixtureSet, KEY_ID, KeyState, USER_PIN};

use crate::{Bare, must, paired};

/// The message signed: the size of a certificate request's signed part.
const MESSAGE: [u8; 512] = [0x5a; 512];

fn bare_private_key(s: &Session) -> Result<ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(KEY_ID.to_vec()),
    ])?
    .into_iter()
    .next()
    .context("no private key with the fixture's CKA_ID")
}

fn bare_sign(
    s: &Session,
    rsa: bool,
    h: ObjectHandle,
) -> std::result::Result<Vec<u8>, cryptoki::error::Error> {
    if rsa {
        s.sign(&Mechanism::Sha256RsaPkcs, h, &MESSAGE)
    } else {
        s.sign(&Mechanism::Ecdsa, h, &Sha256::digest(MESSAGE))
    }
}

fn bare_certificates(
    s: &Session,
) -> std::result::Result<Vec<Vec<Attribute>>, cryptoki::error::Error> {
    let handles = s.find_objects(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
    ])?;
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let attrs = s.get_attributes(
            h,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Value,
            ],
        )?;
        out.push(attrs);
    }
    Ok(out)
}

fn bare_login(s: &Session) -> std::result::Result<(), cryptoki::error::Error> {
    let pin = AuthPin::new(USER_PIN.into());
    s.login(UserType::User, Some(&pin))?;
    s.logout()
}

fn keyward_login(s: &TokenSession, pin: &Pin) -> keyward_token::Result<()> {
    s.login(pin, FinalTry::Refuse)?;
    s.logout()
}

/// One operation both ways: criterion for each side, then the paired ratio.
fn pair(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    op_key: &str,
    keyward: &mut dyn FnMut(),
    bare: &mut dyn FnMut(),
) -> Result<()> {
    g.bench_function(format!("{op_key}/keyward"), |b| b.iter(&mut *keyward));
    g.bench_function(format!("{op_key}/bare"), |b| b.iter(&mut *bare));
    paired::compare(&format!("token/{name}/{op_key}"), keyward, bare)
}

/// Runs the comparison on the module at `module_path`, naming it `name` in the ids.
pub fn run(c: &mut Criterion, name: &str, module_path: &Path) -> Result<()> {
    let states = [KeyState::IssuedRsa, KeyState::IssuedEc];
    let (_set, module, manifest) =
        FixtureSet::build(&states, module_path).context("building the fixture keys")?;
    let bare = Bare::open(module_path)?;
    let pin = Pin::new(USER_PIN.to_owned());

    let mut g = c.benchmark_group(format!("token/{name}"));
    pair(
        &mut g,
        name,
        "tokens/all",
        &mut || drop(black_box(must("tokens", module.tokens()))),
        &mut || drop(black_box(must("tokens", bare.tokens()))),
    )?;

    for (key, state) in [
        ("rsa2048", KeyState::IssuedRsa),
        ("p256", KeyState::IssuedEc),
    ] {
        let serial = manifest
            .tokens
            .iter()
            .find(|t| t.state == state)
            .map(|t| t.serial.clone())
            .context("fixture key missing from the manifest")?;
        let token = module.find(Some(&serial))?;
        let rsa = state == KeyState::IssuedRsa;

        pair(
            &mut g,
            name,
            &format!("session/{key}"),
            &mut || drop(black_box(must("session", module.session(&token)))),
            &mut || {
                drop(black_box(must(
                    "session",
                    bare.ctx.open_rw_session(token.slot),
                )))
            },
        )?;

        // A workflow step: open a session and log in on it at once. The guard takes its
        // flags from the answer the opening's identity check read.
        pair(
            &mut g,
            name,
            &format!("open-login/{key}"),
            &mut || {
                let s = must("session", module.session(&token));
                must("login", keyward_login(&s, &pin));
            },
            &mut || {
                let s = must("session", bare.ctx.open_rw_session(token.slot));
                must("login", bare_login(&s));
            },
        )?;

        let ks = module.session(&token)?;
        let bs = bare.ctx.open_rw_session(token.slot)?;
        pair(
            &mut g,
            name,
            &format!("certificates/{key}"),
            &mut || drop(black_box(must("certificates", ks.certificates()))),
            &mut || drop(black_box(must("certificates", bare_certificates(&bs)))),
        )?;
        pair(
            &mut g,
            name,
            &format!("login/{key}"),
            &mut || must("login", keyward_login(&ks, &pin)),
            &mut || must("login", bare_login(&bs)),
        )?;

        // A login holds for every session of the process on this key.
        ks.login(&pin, FinalTry::Refuse)?;
        pair(
            &mut g,
            name,
            &format!("sign/{key}"),
            &mut || drop(black_box(must("sign", ks.sign(KEY_ID, &MESSAGE)))),
            &mut || {
                let h = must("find key", bare_private_key(&bs));
                drop(black_box(must("sign", bare_sign(&bs, rsa, h))));
            },
        )?;
        let signer = ks.signer(KEY_ID)?;
        let held = bare_private_key(&bs)?;
        pair(
            &mut g,
            name,
            &format!("sign-held/{key}"),
            &mut || drop(black_box(must("sign", signer.sign(&MESSAGE)))),
            &mut || drop(black_box(must("sign", bare_sign(&bs, rsa, held)))),
        )?;
        drop(signer);
        ks.logout()?;
    }
    g.finish();
    Ok(())
}

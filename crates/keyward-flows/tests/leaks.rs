//! The PIN-leak check: every workflow runs with logging at trace level — Keyward's own, the
//! CA's and the simulator's — and each is interrupted once by the key pulled out mid-step,
//! when its journal entry is there to be read. No user PIN (taken, changed, wrong or
//! rejected), SO PIN (the factory one, the one the station generated and escrowed, and each
//! one an unlock rotated to), transport PIN or SMS code may be found — as text, in hex, in
//! base64 or as a list of byte values — in the logs, the journal as it stood at each
//! interruption and at the end, the errors the workflows returned, the command line's output
//! and log, a document stamped on the key, the CA's data folder (its database holds PINs only encrypted; it is the SMS
//! outbox, so codes are looked for everywhere else) or the simulator's state and log. The
//! business secrets and code tickets the CA hands out are looked for everywhere but the
//! journal, which needs them to carry on (the CA keeps only their hashes).
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{PIN, World, handler, organisation, pin};
use keyward_ca_api::ErrorCode;
use keyward_flows::activate::{ActivateInput, activate};
use keyward_flows::{FlowError, renew, unlock};
use keyward_sim::control::{self, Effect, Fault};
use keyward_token::{FinalTry, KeySpec, TokenRef};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p.display().to_string(), bytes));
        }
    }
}

/// Where a secret is looked for, and whether SMS codes are too (not in the CA's own data
/// folder, whose outbox is the SMS channel).
struct Place {
    name: String,
    bytes: Vec<u8>,
    codes_too: bool,
    /// A journal, which must keep the business secrets and code tickets to carry on.
    journal: bool,
}

#[derive(Default)]
struct Evidence {
    places: Vec<Place>,
    /// Secret texts by what they are.
    secrets: Vec<(String, String)>,
    /// Business secrets and code tickets: only the journal may hold them.
    credentials: Vec<(String, String)>,
    /// The SMS codes seen, looked for as whole numbers.
    codes: Vec<String>,
}

impl Evidence {
    fn secret(&mut self, what: &str, value: &str) {
        self.secrets.push((what.to_owned(), value.to_owned()));
    }

    fn credential(&mut self, what: &str, value: &str) {
        self.credentials.push((what.to_owned(), value.to_owned()));
    }

    fn place(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.places.push(Place {
            name: name.into(),
            bytes,
            codes_too: true,
            journal: false,
        });
    }

    /// Every file under `dir`, named `what: path`.
    fn folder(&mut self, what: &str, dir: &Path, codes_too: bool) -> usize {
        let mut files = Vec::new();
        files_under(dir, &mut files);
        let n = files.len();
        for (path, bytes) in files {
            self.places.push(Place {
                name: format!("{what}: {path}"),
                bytes,
                codes_too,
                journal: what.starts_with("journal"),
            });
        }
        n
    }

    /// A workflow's error, as shown and as debugged.
    fn error(&mut self, what: &str, e: &FlowError) {
        self.place(format!("{what} error"), format!("{e}\n{e:?}").into_bytes());
    }
}

/// The forms a secret may take when something writes it out: its text, hex in either case,
/// base64 at each of the three alignments it can have inside a longer encoding (only the
/// characters the secret alone decides), and its bytes as a list of numbers (`[79, 112, …`,
/// as `{:?}` of a byte slice prints them), with and without spaces.
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let mut out = vec![
        secret.to_owned(),
        hex::encode(b),
        hex::encode_upper(b),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
    ];
    for k in 0..3usize {
        let mut padded = vec![0u8; k];
        padded.extend_from_slice(b);
        let enc = keyward_pki::pem::base64(&padded);
        let start = (8 * k).div_ceil(6);
        let end = (8 * (k + b.len())) / 6;
        if end > start + 4 {
            out.push(enc[start..end].to_owned());
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `needle` (digits) in `hay` as a whole number: no digit right before or after it.
fn find_number(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = find(&hay[from..], needle).map(|i| i + from) {
        let before = i.checked_sub(1).map(|j| hay[j].is_ascii_digit());
        let after = hay.get(i + needle.len()).map(u8::is_ascii_digit);
        if before != Some(true) && after != Some(true) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// `hay` with the fractions of seconds of its timestamps (`09:03:48.123456`) blanked: they
/// are six digits like an SMS code.
fn without_second_fractions(hay: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    let mut i = 0;
    while i + 9 <= out.len() {
        let t = &out[i..i + 9];
        let is_time = t[0].is_ascii_digit()
            && t[1].is_ascii_digit()
            && t[2] == b':'
            && t[3].is_ascii_digit()
            && t[4].is_ascii_digit()
            && t[5] == b':'
            && t[6].is_ascii_digit()
            && t[7].is_ascii_digit()
            && t[8] == b'.';
        if is_time {
            let mut j = i + 9;
            while j < out.len() && out[j].is_ascii_digit() {
                out[j] = b'x';
                j += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn context(bytes: &[u8], at: usize) -> String {
    let from = at.saturating_sub(60);
    let to = (at + 80).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..to]).into_owned()
}

impl Evidence {
    /// Every place against every secret in every form: where each was found.
    fn findings(&self) -> Vec<String> {
        let mut found = Vec::new();
        for place in &self.places {
            let credentials = self.credentials.iter().filter(|_| !place.journal);
            for (what, secret) in self.secrets.iter().chain(credentials) {
                for form in forms(secret) {
                    if let Some(at) = find(&place.bytes, form.as_bytes()) {
                        found.push(format!(
                            "the {what} ({form}) is in {}: …{}…",
                            place.name,
                            context(&place.bytes, at)
                        ));
                    }
                }
            }
            if !place.codes_too {
                continue;
            }
            let scrubbed = without_second_fractions(&place.bytes);
            for code in &self.codes {
                for (i, form) in forms(code).into_iter().enumerate() {
                    let at = if i == 0 {
                        find_number(&scrubbed, form.as_bytes())
                    } else {
                        find(&place.bytes, form.as_bytes())
                    };
                    if let Some(at) = at {
                        found.push(format!(
                            "the SMS code {code} ({form}) is in {}: …{}…",
                            place.name,
                            context(&place.bytes, at)
                        ));
                    }
                }
            }
        }
        found
    }

    fn check(&self) {
        let found = self.findings();
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

/// Pulls key `t` at the first call of `function` that runs next.
fn pull_at(w: &World, function: &'static str) {
    control::clear_faults(w.fixtures.sim_state()).unwrap();
    control::arm_fault(
        w.fixtures.sim_state(),
        Fault {
            function,
            at_call: 1,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
}

fn plug_back(w: &World, t: &TokenRef) {
    control::clear_faults(w.fixtures.sim_state()).unwrap();
    control::insert(w.fixtures.sim_state(), &t.serial).unwrap();
}

/// The workflow stopped because the key was pulled out; the journal, as it stands now with
/// the interrupted step in it, is kept to be searched.
fn interrupted<T>(ev: &mut Evidence, w: &World, what: &str, first: Result<T, FlowError>) {
    let Err(e) = first else {
        panic!("{what}: the pulled key did not interrupt the workflow");
    };
    assert!(
        matches!(&e, FlowError::Token(t) if t.is_key_removed()),
        "{what}: {e}"
    );
    ev.error(what, &e);
    let entries = ev.folder(
        &format!("journal while {what} was interrupted"),
        w.env.journal.dir(),
        true,
    );
    assert!(entries > 0, "{what}: nothing journaled at the interruption");
}

/// Whether the code cannot be used again: the CA refused it (spent by the interrupted run,
/// or expired), or the interrupted run spent its ticket, so a fresh code must be asked for.
fn code_refused(r: &Result<impl Sized, FlowError>) -> bool {
    match r {
        Err(FlowError::CodeNotRequested) => true,
        Err(FlowError::Ca(c)) => matches!(
            c.api_code(),
            Some(ErrorCode::CodeInvalid | ErrorCode::CodeExpired)
        ),
        _ => false,
    }
}

/// The `keyward` command line, built beside this test.
fn keyward_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join("keyward");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p keyward-cli` (cargo xtask test does)",
        p.display()
    );
    p
}

/// Runs `keyward pin change` with `lines` on its PIN descriptor and Keyward's log at trace
/// level; keeps its output and returns its exit code.
fn cli_pin_change(ev: &mut Evidence, w: &World, what: &str, lines: &str) -> Option<i32> {
    let mut child = Command::new(keyward_binary())
        .args(["pin", "change", "--pin-fd", "0"])
        .envs(w.fixtures.env())
        .env("KEYWARD_PKCS11_MODULE", common::sim_module())
        .env("KEYWARD_LOG", "trace")
        .env("KEYWARD_SIM_LOG", "trace")
        .env("KEYWARD_DATA_DIR", w.fixtures.dir().join("cli"))
        .env_remove("LANG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading its input closes the pipe: that is its answer.
    let _ = child.stdin.take().unwrap().write_all(lines.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.stderr.is_empty(),
        "{what}: the command line logged nothing at trace level"
    );
    ev.place(format!("keyward {what}: stdout"), out.stdout);
    ev.place(format!("keyward {what}: stderr"), out.stderr);
    out.status.code()
}

#[test]
fn no_pin_of_any_kind_reaches_a_log_a_journal_or_a_database() {
    // SAFETY: first thing in this test's own process (nextest), before any thread starts.
    unsafe { std::env::set_var("KEYWARD_SIM_LOG", "trace") };
    let logs = Captured::default();
    let sink = logs.clone();
    // Installed for the whole process, so the CA's and the runtime's threads log here too.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || sink.clone())
        .init();

    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    let admin = &w.admin;
    let mut ev = Evidence::default();
    ev.secret("user PIN", PIN);
    ev.secret("factory SO PIN", softhsm_fixtures::SO_PIN);

    // The transport PIN, learned the way the client learns it, to look for it afterwards.
    let sent = w.env.ca.send_activation_code(&t.serial).unwrap();
    ev.credential(
        "activation code ticket",
        sent.ticket.as_ref().unwrap().expose(),
    );
    let code = w.sms_code(&t.serial);
    let transport = w
        .env
        .ca
        .redeem_activation_code(&t.serial, &code, sent.ticket.as_ref().unwrap())
        .unwrap()
        .transport_pin
        .expose()
        .to_owned();
    ev.secret("transport PIN", &transport);

    // 激活证书, the key pulled as the transport PIN is replaced.
    w.server.clock().advance(time::Duration::minutes(2));
    keyward_flows::activate::send_code(&w.env, &t.serial).unwrap();
    let code = w.sms_code(&t.serial);
    let input = |code: &str| ActivateInput {
        code: Some(code.to_owned()),
        new_pin: pin(PIN),
    };
    pull_at(&w, "C_SetPIN");
    let first = activate(&w.env, t, &input(&code), None);
    plug_back(&w, t);
    interrupted(&mut ev, &w, "activation", first);
    let again = activate(&w.env, t, &input(&code), None);
    if code_refused(&again) {
        w.server.clock().advance(time::Duration::minutes(2));
        keyward_flows::activate::send_code(&w.env, &t.serial).unwrap();
        activate(&w.env, t, &input(&w.sms_code(&t.serial)), None).unwrap();
    } else {
        again.unwrap();
    }

    // 修改密码: a wrong old PIN, a new PIN the policy rejects, then a change.
    let changed = "Changed#2026pin";
    let wrong = "Wrong#PIN0001";
    let refused_new = "Never#2026pin";
    let weak = "nospecialchar2026";
    ev.secret("changed PIN", changed);
    ev.secret("wrong PIN", wrong);
    ev.secret("new PIN refused with a wrong old PIN", refused_new);
    ev.secret("new PIN the policy rejects", weak);
    let e =
        keyward_flows::pin::change_pin(&w.env, t, &pin(wrong), &pin(refused_new), FinalTry::Refuse)
            .unwrap_err();
    ev.error("PIN change with a wrong PIN", &e);
    let e = keyward_flows::pin::change_pin(&w.env, t, &pin(PIN), &pin(weak), FinalTry::Refuse)
        .unwrap_err();
    ev.error("PIN change to a weak PIN", &e);
    keyward_flows::pin::change_pin(&w.env, t, &pin(PIN), &pin(changed), FinalTry::Refuse).unwrap();

    // 忘记密码. The SO PIN the station generated and escrowed is the one the CA releases for
    // the first unlock; the workflow then runs with the key pulled as it rotates the SO PIN.
    let unlocked = "Unlocked#2026pin";
    ev.secret("unlock PIN", unlocked);
    w.advance_days(1);
    let b = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    let code = w.sms_code(&t.serial);
    let auth = admin
        .unlock_authorisation(&t.serial, &b.id, &unlock_secret(&mut ev, &w, t), &code)
        .unwrap();
    ev.secret("station SO PIN", auth.so_pin.expose());
    ev.secret("first rotated SO PIN", auth.new_so_pin.expose());
    pull_at(&w, "C_SetPIN");
    let first = unlock::finish(&w.env, t, Some(&code), &pin(unlocked), None);
    plug_back(&w, t);
    if code_refused(&first) {
        // The authorisation above spent the code: a fresh one, and the pull still to come.
        if let Err(e) = &first {
            ev.error("unlock with a spent code", e);
        }
        w.server.clock().advance(time::Duration::minutes(2));
        unlock::send_code(&w.env, &t.serial).unwrap();
        let code = w.sms_code(&t.serial);
        pull_at(&w, "C_SetPIN");
        let first = unlock::finish(&w.env, t, Some(&code), &pin(unlocked), None);
        plug_back(&w, t);
        interrupted(&mut ev, &w, "unlock", first);
        finish_unlock(&mut ev, &w, t, &code, unlocked);
    } else {
        interrupted(&mut ev, &w, "unlock", first);
        finish_unlock(&mut ev, &w, t, &code, unlocked);
    }

    // 证书续期 · 安装证书, the key pulled as the new certificate is written.
    w.advance_days(300);
    renew::apply(
        &w.env,
        t,
        &pin(unlocked),
        FinalTry::Refuse,
        1,
        common::invoice(),
    )
    .unwrap();
    renew::pay_sandbox(&w.env, &t.serial).unwrap();
    let renewal = renew::pending(&w.env, &t.serial).unwrap().unwrap();
    ev.credential("renewal business secret", renewal.secret.unwrap().expose());
    pull_at(&w, "C_CreateObject");
    let first = renew::install(&w.env, t, &pin(unlocked), FinalTry::Refuse, None);
    plug_back(&w, t);
    interrupted(&mut ev, &w, "renewal install", first);
    renew::install(&w.env, t, &pin(unlocked), FinalTry::Refuse, None).unwrap();

    // 申请印章 · 安装印章, then 盖章: a stamp refused for a wrong PIN, one made; the stamped
    // document is searched too.
    let b = keyward_flows::seal::apply(
        &w.env,
        t,
        &pin(unlocked),
        FinalTry::Refuse,
        &organisation(1).name,
        keyward_ca_api::SealKind::Official,
        false,
        &softhsm_fixtures::seal_png(),
        "image/png",
    )
    .unwrap();
    admin
        .approve(
            &b.id,
            &keyward_ca_api::ReviewDecision {
                note: "印模清晰".into(),
            },
        )
        .unwrap();
    keyward_flows::seal::install(&w.env, t, &pin(unlocked), FinalTry::Refuse, None).unwrap();
    let document = keyward_pdf::sample_document(1, false);
    let stamp_wrong = "Wrong#Stamp2026";
    ev.secret("wrong PIN given to stamp", stamp_wrong);
    let place = keyward_flows::stamp::Place::Usual { page: None };
    let now = time::OffsetDateTime::now_utc();
    let e = keyward_flows::stamp::stamp(
        &w.module,
        t,
        &pin(stamp_wrong),
        FinalTry::Refuse,
        &document,
        place,
        now,
        None,
    )
    .unwrap_err();
    ev.error("stamp with a wrong PIN", &e);
    let stamped = keyward_flows::stamp::stamp(
        &w.module,
        t,
        &pin(unlocked),
        FinalTry::Refuse,
        &document,
        place,
        now,
        None,
    )
    .unwrap();
    ev.place("stamped document", stamped.document);

    // The SO PINs after that: the one the unlock rotated to is the one the CA releases next.
    w.advance_days(1);
    let b = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    let code = w.sms_code(&t.serial);
    let auth = admin
        .unlock_authorisation(&t.serial, &b.id, &unlock_secret(&mut ev, &w, t), &code)
        .unwrap();
    ev.secret("SO PIN", auth.so_pin.expose());
    ev.secret("next SO PIN", auth.new_so_pin.expose());

    // The command line: a wrong PIN, a PIN the policy rejects, a change.
    let cli_wrong = "Wrong#CLI2026x";
    let cli_weak = "clinospecial2026";
    let cli_new = "Cli#Changed2026";
    ev.secret("wrong PIN typed at the command line", cli_wrong);
    ev.secret("rejected PIN typed at the command line", cli_weak);
    ev.secret("PIN changed at the command line", cli_new);
    let wrong_lines = format!("{cli_wrong}\n{cli_new}\n");
    assert_eq!(
        cli_pin_change(&mut ev, &w, "wrong PIN", &wrong_lines),
        Some(4)
    );
    let weak_lines = format!("{unlocked}\n{cli_weak}\n");
    assert_eq!(
        cli_pin_change(&mut ev, &w, "weak PIN", &weak_lines),
        Some(7)
    );
    let change_lines = format!("{unlocked}\n{cli_new}\n");
    assert_eq!(
        cli_pin_change(&mut ev, &w, "change", &change_lines),
        Some(0)
    );

    // The codes of every SMS that carried one (activation, unlock; the notice that a
    // certificate was issued only tells the handler to ask for a code).
    let outbox = admin.sms_outbox().unwrap();
    for m in &outbox.messages {
        if let Some(after) = m.text.split("验证码 ").nth(1) {
            let code: String = after
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            assert!(code.len() >= 4, "{}", m.text);
            ev.codes.push(code);
        }
    }
    assert!(ev.codes.len() >= 5, "{:?}", ev.codes);

    // The check can see a secret where there is one: a canary logged on purpose is found.
    tracing::info!(canary = "Canary#2026pin", "canary");
    let log = logs.0.lock().unwrap().clone();
    assert!(log.len() > 10_000, "the trace log captured the run");
    let canary = Evidence {
        places: vec![Place {
            name: "trace log".into(),
            bytes: log.clone(),
            codes_too: true,
            journal: false,
        }],
        secrets: vec![("canary".into(), "Canary#2026pin".into())],
        credentials: Vec::new(),
        codes: Vec::new(),
    };
    assert_eq!(canary.findings().len(), 1, "the canary is found");
    ev.place("trace log", log);
    ev.folder("journal at the end", w.env.journal.dir(), true);
    ev.folder("CA data", w.server.data_dir(), false);
    ev.folder("simulator state", &w.fixtures.sim_state(), true);
    let sim_log = std::fs::read(w.fixtures.dir().join("keyward-sim.log")).unwrap();
    // Its most detailed events are at debug level, which the configured `info` would drop.
    assert!(
        find(&sim_log, b" DEBUG ").is_some(),
        "the simulator logged at trace level"
    );
    ev.place("keyward-sim.log", sim_log);
    ev.check();
}

/// The business secret of the unlock under way, as the client journaled it; it is then
/// looked for outside the journal.
fn unlock_secret(ev: &mut Evidence, w: &World, t: &TokenRef) -> keyward_ca_api::Secret {
    let secret = w
        .env
        .journal
        .load::<unlock::UnlockJournal>(keyward_flows::FlowKind::Unlock, &t.serial)
        .unwrap()
        .unwrap()
        .secret;
    ev.credential("unlock business secret", secret.expose());
    secret
}

/// Resumes the interrupted unlock; a code the interrupted run spent is replaced.
fn finish_unlock(ev: &mut Evidence, w: &World, t: &TokenRef, code: &str, new_pin: &str) {
    let again = unlock::finish(&w.env, t, Some(code), &pin(new_pin), None);
    if let Some(e) = again.as_ref().err().filter(|_| code_refused(&again)) {
        ev.error("resumed unlock", e);
        w.server.clock().advance(time::Duration::minutes(2));
        unlock::send_code(&w.env, &t.serial).unwrap();
        let code = w.sms_code(&t.serial);
        unlock::finish(&w.env, t, Some(&code), &pin(new_pin), None).unwrap();
    } else {
        again.unwrap();
    }
}

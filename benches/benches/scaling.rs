//! Scaling through keyward-sim: a full refresh (`tokens()` and `describe()` of each key, what
//! the watcher does on every rescan) with 1, 4 and 16 keys plugged in, and reading the
//! certificates of a key holding 1, 8 and 64 of them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use criterion::BenchmarkId;
use keyward_bench::must;
use keyward_pki::Pin;
use keyward_sim::control;
use keyward_token::{FinalTry, Module, TokenRef};
use softhsm_fixtures::{FixtureSet, KEY_ID, KeyState, USER_PIN};

const KEYS: [usize; 3] = [1, 4, 16];
const OBJECTS: [usize; 3] = [1, 8, 64];

fn refresh(module: &Module) -> keyward_token::Result<usize> {
    let mut n = 0;
    for t in module.tokens()? {
        black_box(module.describe(&t)?);
        n += 1;
    }
    Ok(n)
}

/// Plugs in the first `n` keys and pulls out the rest, then waits until the module sees it.
fn present(set: &FixtureSet, module: &Module, serials: &[String], n: usize) -> Result<()> {
    for (i, s) in serials.iter().enumerate() {
        if i < n {
            control::insert(set.sim_state(), s)?;
        } else {
            control::remove(set.sim_state(), s)?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while module.tokens()?.len() != n {
        if Instant::now() > deadline {
            bail!("the module does not show {n} keys");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut c = keyward_bench::criterion();
    let mut states = vec![KeyState::IssuedEc];
    states.extend(std::iter::repeat_n(KeyState::Blank, 15));
    let (set, module, _manifest) = FixtureSet::build(&states, &keyward_bench::sim_module()?)
        .context("building the fixture keys")?;
    let pin = Pin::new(USER_PIN.to_owned());

    let tokens: Vec<TokenRef> = module.tokens()?;
    if tokens.len() != KEYS[2] {
        bail!(
            "expected {} keys, the module shows {}",
            KEYS[2],
            tokens.len()
        );
    }
    let issued = tokens
        .iter()
        .find(|t| t.label.starts_with(KeyState::IssuedEc.label()))
        .context("the issued key")?;
    let cert = {
        let s = module.session(issued)?;
        s.certificates()?
            .into_iter()
            .find(|c| c.id == KEY_ID)
            .context("the issued key's certificate")?
            .der
    };

    // Blank keys with 1, 8 and 64 certificates.
    let blanks: Vec<&TokenRef> = tokens
        .iter()
        .filter(|t| t.label.starts_with(KeyState::Blank.label()))
        .collect();
    if blanks.len() < OBJECTS.len() {
        bail!("only {} blank keys for the object counts", blanks.len());
    }
    let mut loaded = Vec::new();
    for (&count, token) in OBJECTS.iter().zip(&blanks) {
        let s = module.session(token)?;
        s.login(&pin, FinalTry::Refuse)?;
        for i in 0..count {
            let id = [0x10, u8::try_from(i).context("object id")?];
            s.write_certificate(&cert, &id, &format!("certificate {i}"))?;
        }
        s.logout()?;
        loaded.push((count, (*token).clone()));
    }

    let mut g = c.benchmark_group("scaling/objects");
    for (count, token) in &loaded {
        let s = module.session(token)?;
        g.bench_with_input(BenchmarkId::new("certificates", count), count, |b, &n| {
            b.iter(|| {
                let certs = must("certificates", s.certificates());
                assert_eq!(certs.len(), n, "certificates on the key");
                black_box(certs)
            })
        });
    }
    g.finish();

    let mut serials: Vec<String> = tokens.iter().map(|t| t.serial.clone()).collect();
    serials.sort();
    let mut g = c.benchmark_group("scaling/refresh");
    for n in KEYS.iter().rev().copied() {
        present(&set, &module, &serials, n)?;
        g.bench_with_input(BenchmarkId::new("keys", n), &n, |b, &n| {
            b.iter(|| {
                let seen = must("refresh", refresh(&module));
                assert_eq!(seen, n, "keys seen");
            })
        });
    }
    g.finish();
    c.final_summary();
    Ok(())
}

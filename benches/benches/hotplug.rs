//! Hot-plug latency: from `keyward_sim::control::insert` to the `Watcher`'s `Inserted`
//! event, with the watcher's default options, by slot events and by polling; and, below the
//! watcher, to the return of a `C_WaitForSlotEvent` blocked in the module.
//!
//! Each sample pulls the key out, waits for the `Removed` event, waits a pseudo-random
//! 0–150 ms (so inserts land at every phase of the watcher's period, as a person's do), then
//! times one insert. Samples per mode: `KEYWARD_BENCH_HOTPLUG_SAMPLES` (default 40), and at
//! most 60 s per mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_bench::latency::{Jitter, Samples};
use keyward_sim::control;
use keyward_token::{Module, TokenEvent, WatchMode, WatchOptions, Watcher};
use serde_json::json;
use softhsm_fixtures::{FixtureSet, KeyState};

type Stamped = (Instant, TokenEvent);

fn wait_for(
    rx: &Receiver<Stamped>,
    what: &str,
    mut want: impl FnMut(&TokenEvent) -> bool,
) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, e)) if want(&e) => return Ok(at),
            Ok(_) => {}
            Err(_) => bail!("no {what} event within 5 s"),
        }
    }
}

fn main() -> Result<()> {
    let samples_wanted: usize = std::env::var("KEYWARD_BENCH_HOTPLUG_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let budget = Duration::from_secs(60);
    let (set, module, manifest) = FixtureSet::build(
        &[KeyState::IssuedEc, KeyState::IssuedRsa],
        &keyward_bench::sim_module()?,
    )
    .context("building the fixture keys")?;
    let serial = manifest
        .tokens
        .first()
        .map(|t| t.serial.clone())
        .context("no fixture key")?;

    module_wait(&set, &module, &serial, samples_wanted, budget)?;

    // Polling first: a slot-event watcher leaves a thread blocked in the module until the
    // next event, which could take an event meant for the watcher after it.
    for (name, force_polling) in [("hotplug-polling", true), ("hotplug-slot-events", false)] {
        let options = WatchOptions {
            force_polling,
            ..WatchOptions::default()
        };
        let (tx, rx) = mpsc::channel::<Stamped>();
        let watcher = Watcher::spawn(module.clone(), options, move |e| {
            let _ = tx.send((Instant::now(), e));
        })?;
        let mode = watcher.mode();
        let expected = if force_polling {
            WatchMode::Polling
        } else {
            WatchMode::SlotEvents
        };
        if mode != expected {
            bail!("{name}: the watcher chose {mode:?}");
        }
        for _ in 0..manifest.tokens.len() {
            wait_for(&rx, "initial Inserted", |e| {
                matches!(e, TokenEvent::Inserted { .. })
            })?;
        }
        let mut jitter = Jitter::new(0x6b65_7977_6172_6421);
        let mut samples = Samples::new();
        let start = Instant::now();
        while samples.len() < samples_wanted && start.elapsed() < budget {
            control::remove(set.sim_state(), &serial)?;
            wait_for(
                &rx,
                "Removed",
                |e| matches!(e, TokenEvent::Removed { serial: s } if *s == serial),
            )?;
            std::thread::sleep(jitter.next(Duration::from_millis(150)));
            let t0 = Instant::now();
            control::insert(set.sim_state(), &serial)?;
            let t1 = wait_for(
                &rx,
                "Inserted",
                |e| matches!(e, TokenEvent::Inserted { token } if token.serial == serial),
            )?;
            samples.push(t1.duration_since(t0));
        }
        watcher.stop();
        samples.write(
            name,
            &format!("keyward_sim::control::insert → Watcher Inserted event ({mode:?})"),
            json!({
                "mode": mode,
                "poll_ms": options.poll.as_millis() as u64,
                "state_poll_ms": options.state_poll.as_millis() as u64,
                "keys_present": manifest.tokens.len(),
            }),
        )?;
    }
    Ok(())
}

/// `keyward_sim::control::insert` → the return of a `C_WaitForSlotEvent` that was blocked in
/// the module, with nothing of Keyward's above it. The waiting thread stops on the last
/// sample's event, so no call is left blocked in the module for what runs next.
fn module_wait(
    set: &FixtureSet,
    module: &Arc<Module>,
    serial: &str,
    samples_wanted: usize,
    budget: Duration,
) -> Result<()> {
    let (tx, rx) = mpsc::channel::<Instant>();
    let stop = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (module, stop) = (module.clone(), stop.clone());
        std::thread::spawn(move || -> Result<()> {
            loop {
                if module.wait_for_slot_event()?.is_none() {
                    bail!("the module has no blocking C_WaitForSlotEvent");
                }
                if tx.send(Instant::now()).is_err() || stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
        })
    };
    let event = |what: &str| {
        rx.recv_timeout(Duration::from_secs(5))
            .with_context(|| format!("no slot event within 5 s for the {what}"))
    };
    let mut jitter = Jitter::new(0x736c_6f74_2d77_6169);
    let mut samples = Samples::new();
    let start = Instant::now();
    loop {
        control::remove(set.sim_state(), serial)?;
        event("removal")?;
        std::thread::sleep(jitter.next(Duration::from_millis(150)));
        let last = samples.len() + 1 >= samples_wanted || start.elapsed() >= budget;
        if last {
            stop.store(true, Ordering::SeqCst);
        }
        let t0 = Instant::now();
        control::insert(set.sim_state(), serial)?;
        let t1 = event("insert")?;
        samples.push(t1.duration_since(t0));
        if last {
            break;
        }
    }
    waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the waiting thread panicked"))??;
    samples.write(
        "hotplug-module",
        "keyward_sim::control::insert → blocked C_WaitForSlotEvent returns",
        json!({ "keys_present": 2 }),
    )
}

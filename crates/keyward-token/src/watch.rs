//! Watching keys come and go.
//!
//! A [`Watcher`] reports keys inserted, removed and changed (PIN status, label) to its
//! subscriber. Where the module blocks in C_WaitForSlotEvent (keyward-sim, most vendor
//! drivers), a thread waits there and every event triggers a rescan at once, with a slow
//! rescan besides for PIN state changes that raise no slot event. Where it does not (SoftHSM,
//! kryoptic, p11-kit's proxy), the watcher rescans on a short period; a rescan is one
//! C_GetSlotList and one C_GetTokenInfo per key. Nothing is replayed: a removed key's handles
//! are dead, and whoever held one gets `KeyRemoved` on its next call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use cryptoki::error::{Error as CkError, RvError};
use serde::Serialize;

use crate::info::TokenDescription;
use crate::module::Module;

/// Something that happened to a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenEvent {
    /// A key appeared (also reported for every key present when watching starts).
    Inserted {
        /// The key.
        token: TokenDescription,
    },
    /// A key went away.
    Removed {
        /// Its serial number.
        serial: String,
    },
    /// A key's description changed (PIN status, flags, label).
    Changed {
        /// The key as it is now.
        token: TokenDescription,
    },
}

/// How the watcher learns of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// Blocking C_WaitForSlotEvent, plus a slow rescan for PIN state.
    SlotEvents,
    /// Rescanning on a period.
    Polling,
}

/// Watching options.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Rescan period when the module has no slot events.
    pub poll: Duration,
    /// Rescan period for PIN state changes when it has.
    pub state_poll: Duration,
    /// Never use C_WaitForSlotEvent, even if the module answers it. A module whose profile
    /// has the `no-wait-for-slot-event` quirk is polled whatever this says.
    pub force_polling: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll: Duration::from_millis(100),
            state_poll: Duration::from_secs(1),
            force_polling: false,
        }
    }
}

/// A running watcher; dropping it stops it.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    mode: WatchMode,
    handle: Option<JoinHandle<()>>,
}

/// Does the module answer C_WaitForSlotEvent at all?
fn has_slot_events(module: &Module) -> bool {
    match module.ctx.get_slot_event() {
        Ok(_) => true,
        Err(CkError::Pkcs11(RvError::FunctionNotSupported, _)) | Err(CkError::NotSupported) => {
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "C_WaitForSlotEvent probe failed; polling");
            false
        }
    }
}

fn scan(module: &Module) -> Option<BTreeMap<String, TokenDescription>> {
    let tokens = match module.tokens() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "listing keys failed; will try again");
            return None;
        }
    };
    let mut out = BTreeMap::new();
    for t in tokens {
        match module.describe(&t) {
            Ok(d) => {
                out.insert(d.serial.clone(), d);
            }
            Err(e) if e.is_key_removed() => {}
            Err(e) => tracing::warn!(serial = %t.serial, error = %e, "reading a key failed"),
        }
    }
    Some(out)
}

/// The events that turn `old` into `new`.
pub fn diff(
    old: &BTreeMap<String, TokenDescription>,
    new: &BTreeMap<String, TokenDescription>,
) -> Vec<TokenEvent> {
    let mut events = Vec::new();
    for serial in old.keys().filter(|s| !new.contains_key(*s)) {
        events.push(TokenEvent::Removed {
            serial: serial.clone(),
        });
    }
    for (serial, d) in new {
        match old.get(serial) {
            None => events.push(TokenEvent::Inserted { token: d.clone() }),
            Some(before) if before != d => events.push(TokenEvent::Changed { token: d.clone() }),
            Some(_) => {}
        }
    }
    events
}

impl Watcher {
    /// Starts watching `module`, calling `on_event` from the watcher's thread.
    pub fn spawn(
        module: Arc<Module>,
        options: WatchOptions,
        mut on_event: impl FnMut(TokenEvent) + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let force_polling =
            options.force_polling || module.has_quirk(crate::profile::Quirk::NoWaitForSlotEvent);
        let mode = if !force_polling && has_slot_events(&module) {
            WatchMode::SlotEvents
        } else {
            WatchMode::Polling
        };
        if mode == WatchMode::SlotEvents {
            let m = Arc::clone(&module);
            let stop = Arc::clone(&stop);
            // Blocked in the module until the next event; it ends at the first event after
            // the watcher stops, or when the module is finalised.
            std::thread::Builder::new()
                .name("keyward-slot-events".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match m.ctx.wait_for_slot_event() {
                            Ok(_) => {
                                if wake_tx.send(()).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "slot event wait ended");
                                break;
                            }
                        }
                    }
                })?;
        } else {
            drop(wake_tx);
        }
        let period = match mode {
            WatchMode::SlotEvents => options.state_poll,
            WatchMode::Polling => options.poll,
        };
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("keyward-watcher".into())
            .spawn(move || {
                let mut known = BTreeMap::new();
                let mut events_open = mode == WatchMode::SlotEvents;
                while !stop_flag.load(Ordering::Relaxed) {
                    if let Some(now) = scan(&module) {
                        for e in diff(&known, &now) {
                            on_event(e);
                        }
                        known = now;
                    }
                    if events_open {
                        match wake_rx.recv_timeout(period) {
                            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => events_open = false,
                        }
                    } else {
                        std::thread::sleep(if mode == WatchMode::SlotEvents {
                            options.poll
                        } else {
                            period
                        });
                    }
                }
            })?;
        tracing::info!(?mode, "watching keys");
        Ok(Watcher {
            stop,
            mode,
            handle: Some(handle),
        })
    }

    /// How this watcher learns of changes.
    pub fn mode(&self) -> WatchMode {
        self.mode
    }

    /// Stops watching and waits for the watcher thread to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

//! What the CA knows of the keys plugged in, kept beside what the keys say themselves.
//!
//! The home page must show a key fresh from the issuing station as "激活证书" and a paid
//! renewal or a made seal as waiting for 安装证书 / 安装印章; only the CA knows either
//! ([`keyward_flows::standing`]). Asking it must never slow a key's appearance or block a
//! command, so one worker thread does it: a key plugged in, listed, or just used by a
//! workflow is queued; requests arriving together are asked once; every key plugged in is
//! asked again every [`POLL`] so a reviewer's approval shows without a click. When the
//! answer differs from the last one, the `changed` callback re-sends the key's view.
//!
//! With no CA address set, or the CA unreachable, the last answer (or none) stays: the home
//! page then shows what the key alone says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keyward_flows::Journal;
use keyward_flows::connect::CaClient;
use keyward_flows::keys::KeyView;
use keyward_flows::standing::Standing;

/// How often the keys plugged in are asked about again.
pub const POLL: Duration = Duration::from_secs(120);

/// The last answers, and the queue to the worker.
#[derive(Debug, Default)]
pub struct Standings {
    known: Mutex<BTreeMap<String, Standing>>,
    present: Mutex<BTreeSet<String>>,
    queue: Mutex<Option<Sender<String>>>,
}

impl Standings {
    /// The last answer for a key.
    pub fn get(&self, serial: &str) -> Option<Standing> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(serial)
            .cloned()
    }

    /// The key's view with the last answer in it, and its next step decided from both.
    pub fn enrich(&self, view: KeyView) -> KeyView {
        let standing = self.get(&view.token.serial);
        view.with_standing(standing)
    }

    /// A key is plugged in (inserted, or listed): polled from now on, and asked about at once.
    pub fn plugged(&self, serial: &str) {
        self.present
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(serial.to_owned());
        self.ask(serial);
    }

    /// Queues one question about a key, e.g. after a workflow used it (no-op before
    /// [`Standings::start`]). Only [`Standings::plugged`] makes a key one that is polled, so
    /// a workflow that failed because its key was pulled out does not bring the key back.
    pub fn ask(&self, serial: &str) {
        if let Some(tx) = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = tx.send(serial.to_owned());
        }
    }

    /// Queues every key plugged in (the CA address changed).
    pub fn ask_all(&self) {
        let present: Vec<String> = self
            .present
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for s in present {
            self.ask(&s);
        }
    }

    /// The key was pulled out: no more polling for it (its last answer is kept, so it shows
    /// at once when it comes back).
    pub fn gone(&self, serial: &str) {
        self.present
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(serial);
    }

    /// Stores an answer; true when it differs from the last one.
    pub fn store(&self, serial: &str, answer: Option<Standing>) -> bool {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let before = known.get(serial);
        if before == answer.as_ref() {
            return false;
        }
        match answer {
            Some(s) => known.insert(serial.to_owned(), s),
            None => known.remove(serial),
        };
        true
    }

    /// Starts the worker. `client` gives the CA client for the current settings (none when
    /// no CA is set) and the journal of this computer's workflows; `changed` is called with
    /// a serial whose answer changed.
    pub fn start<C, F>(self: &std::sync::Arc<Self>, client: C, changed: F) -> std::io::Result<()>
    where
        C: Fn() -> Option<(CaClient, Journal)> + Send + 'static,
        F: Fn(&str) + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.queue.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        let me = std::sync::Arc::clone(self);
        std::thread::Builder::new()
            .name("keyward-standing".into())
            .spawn(move || me.work(&rx, &client, &changed))?;
        // Keys listed before the worker existed.
        self.ask_all();
        Ok(())
    }

    fn work(
        &self,
        rx: &Receiver<String>,
        client: &dyn Fn() -> Option<(CaClient, Journal)>,
        changed: &dyn Fn(&str),
    ) {
        loop {
            let mut batch = BTreeSet::new();
            match rx.recv_timeout(POLL) {
                Ok(s) => {
                    batch.insert(s);
                    // Requests that arrive together (a list of keys, a burst of events)
                    // are asked once.
                    std::thread::sleep(Duration::from_millis(50));
                    batch.extend(rx.try_iter());
                }
                Err(RecvTimeoutError::Timeout) => {
                    batch.extend(
                        self.present
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter()
                            .cloned(),
                    );
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some((ca, journal)) = client() else {
                continue;
            };
            for serial in batch {
                match keyward_flows::standing::standing(&ca, &journal, &serial) {
                    Ok(answer) => {
                        if self.store(&serial, Some(answer)) {
                            tracing::info!(%serial, standing = ?self.get(&serial), "the CA's view of a key changed");
                            changed(&serial);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%serial, error = %e, "cannot ask the CA about a key");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyward_ca_api::KeyState;
    use keyward_flows::standing::{Waiting, WaitingKind};

    #[test]
    fn an_answer_counts_as_a_change_only_when_it_differs() {
        let s = Standings::default();
        let a = Standing {
            state: KeyState::Active,
            waiting: vec![Waiting {
                kind: WaitingKind::InstallSeal,
                business_id: Some("b1".into()),
            }],
        };
        assert!(!s.store("K", None), "nothing known, nothing known");
        assert!(s.store("K", Some(a.clone())));
        assert!(!s.store("K", Some(a.clone())));
        assert_eq!(s.get("K"), Some(a));
        assert!(s.store("K", None), "the CA forgot the key");
        assert_eq!(s.get("K"), None);
        // Only a plugged-in key is polled; asking about one (after a workflow) is not
        // plugging it in, and a pulled-out key is polled no more.
        let polled = |s: &Standings| {
            s.present
                .lock()
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        s.ask("J");
        assert!(polled(&s).is_empty());
        s.plugged("K");
        assert_eq!(polled(&s), ["K"]);
        s.gone("K");
        assert!(polled(&s).is_empty());
        assert!(s.get("K").is_none());
    }
}

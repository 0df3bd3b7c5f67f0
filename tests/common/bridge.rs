//! The browser bridge in this process on a loopback port over simulator keys, an operator
//! who answers from a script, and a WebSocket client that sends whatever headers and frames
//! a test wants; the Web eID token verifier written from the specification.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use keyward_bridge::agent::{Agent, Answer, Confirmation, Consent, KeyShown};
use keyward_bridge::audit::Audit;
use keyward_bridge::consent::Grants;
use keyward_bridge::protocol::Screen;
use keyward_bridge::{Config, Origin, Running, parse_origin};
use keyward_flows::Module;
use keyward_flows::usekey::WebKeys;
use keyward_flows::{FinalTry, Pin};
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

pub const PORTAL: &str = "https://portal.test";
pub const NONCE: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

/// What the scripted operator does when asked to confirm.
#[derive(Debug)]
pub enum Reply {
    /// Types this PIN.
    Pin(&'static str, FinalTry),
    /// Cancels.
    Cancel,
    /// Waits this long, then types the PIN.
    Slowly(Duration, &'static str),
    /// Waits until the test says so, then types the PIN.
    WhenReleased(std::sync::mpsc::Receiver<()>, &'static str),
}

/// The operator, answering from a script; what it was shown is kept.
#[derive(Default)]
pub struct Scripted {
    pub consents: Mutex<VecDeque<Consent>>,
    pub replies: Mutex<VecDeque<Reply>>,
    pub asked_consent: Mutex<Vec<String>>,
    pub shown: Mutex<Vec<Confirmation>>,
    pub opened: Mutex<Vec<(String, Screen, Option<String>)>>,
}

impl Scripted {
    pub fn consent(&self, c: Consent) {
        self.consents.lock().unwrap().push_back(c);
    }
    pub fn reply(&self, r: Reply) {
        self.replies.lock().unwrap().push_back(r);
    }
    pub fn shown(&self) -> Vec<Confirmation> {
        self.shown.lock().unwrap().clone()
    }
    pub fn consents_asked(&self) -> usize {
        self.asked_consent.lock().unwrap().len()
    }
}

impl Agent for Scripted {
    fn consent(&self, origin: &Origin, _deadline: Instant) -> Consent {
        self.asked_consent.lock().unwrap().push(origin.to_string());
        self.consents
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Consent::Deny)
    }

    fn confirm(&self, c: &Confirmation) -> Answer {
        self.shown.lock().unwrap().push(c.clone());
        let reply = self.replies.lock().unwrap().pop_front();
        match reply {
            Some(Reply::Pin(p, f)) => Answer::Pin {
                pin: Pin::new(p.to_owned()),
                final_try: f,
            },
            Some(Reply::Slowly(d, p)) => {
                std::thread::sleep(d);
                Answer::Pin {
                    pin: Pin::new(p.to_owned()),
                    final_try: FinalTry::Refuse,
                }
            }
            Some(Reply::WhenReleased(rx, p)) => {
                let _ = rx.recv();
                Answer::Pin {
                    pin: Pin::new(p.to_owned()),
                    final_try: FinalTry::Refuse,
                }
            }
            Some(Reply::Cancel) | None => Answer::Cancel,
        }
    }

    fn open(&self, origin: &Origin, screen: Screen, key: Option<&KeyShown>) -> Result<(), String> {
        self.opened.lock().unwrap().push((
            origin.to_string(),
            screen,
            key.map(|k| k.serial.clone()),
        ));
        Ok(())
    }
}

pub struct BridgeWorld {
    pub fixtures: FixtureSet,
    pub module: Arc<Module>,
    pub manifest: Manifest,
    pub runtime: tokio::runtime::Runtime,
    pub bridge: Option<Running>,
    pub addr: SocketAddr,
    pub agent: Arc<Scripted>,
    pub audit: PathBuf,
    pub grants: PathBuf,
}

impl BridgeWorld {
    /// A bridge over keys in `states`, `PORTAL` granted by the deployment unless `managed`
    /// says otherwise, with `tune` applied to its configuration.
    pub fn new(
        states: &[KeyState],
        managed: &[&str],
        tune: impl FnOnce(&mut Config),
    ) -> BridgeWorld {
        let (fixtures, module, manifest) =
            FixtureSet::build(states, &softhsm_fixtures::sim_module()).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        tune(&mut config);
        let agent = Arc::new(Scripted::default());
        let audit = fixtures.dir().join("bridge-audit.jsonl");
        let grants_file = fixtures.dir().join("bridge-grants.json");
        let managed = managed
            .iter()
            .map(|o| parse_origin(Some(o), false).unwrap())
            .collect();
        let grants = Grants::load(Some(grants_file.clone()), managed).unwrap();
        let running = runtime
            .block_on(keyward_bridge::start(
                config,
                WebKeys::new(vec![Arc::clone(&module)]),
                agent.clone(),
                grants,
                Audit::to_file(audit.clone()),
            ))
            .unwrap();
        BridgeWorld {
            addr: running.addr(),
            fixtures,
            module,
            manifest,
            runtime,
            bridge: Some(running),
            agent,
            audit,
            grants: grants_file,
        }
    }

    /// Connects as a page of `origin` would.
    pub fn connect(&self, origin: &str) -> Client {
        self.try_connect(&[("Origin", origin)]).unwrap()
    }

    /// Connects with exactly these headers added (Host is the bridge's unless given): the
    /// client, or the HTTP status of the refused handshake.
    pub fn try_connect(&self, headers: &[(&str, &str)]) -> Result<Client, u16> {
        connect(&self.runtime, self.addr, headers)
    }

    pub fn serial(&self, i: usize) -> String {
        self.manifest.tokens[i].serial.clone()
    }

    pub fn sim_state(&self) -> PathBuf {
        self.fixtures.sim_state()
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn connect(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<Client, u16> {
    runtime.block_on(async {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        match client_async(req, tcp).await {
            Ok((ws, _)) => Ok(Client {
                ws,
                next_id: 1,
                handle: runtime.handle().clone(),
            }),
            Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
        }
    })
}

pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
    next_id: u64,
    handle: tokio::runtime::Handle,
}

impl Client {
    /// Sends a request and returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&text.to_string());
        id
    }

    pub fn send_text(&mut self, text: &str) {
        let ws = &mut self.ws;
        self.handle
            .block_on(ws.send(Message::text(text.to_owned())))
            .unwrap();
    }

    /// The next message (an answer, or the close frame), within `wait`.
    pub fn next(&mut self, wait: Duration) -> Option<Message> {
        let ws = &mut self.ws;
        self.handle
            .block_on(async { tokio::time::timeout(wait, ws.next()).await.ok().flatten() })
            .map(|m| {
                m.unwrap_or_else(|e| Message::text(format!("{{\"transport_error\":\"{e}\"}}")))
            })
    }

    /// The next answer, as JSON.
    pub fn answer(&mut self) -> Value {
        match self.next(Duration::from_secs(30)) {
            Some(Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("no answer: {other:?}"),
        }
    }

    /// Calls `method` and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let a = self.answer();
        assert_eq!(a["id"], id, "{a}");
        a
    }
}

/// The `error.data.code` of an answer, or `ok`.
pub fn code(answer: &Value) -> String {
    match answer.get("error") {
        Some(e) => e["data"]["code"].as_str().unwrap_or("?").to_owned(),
        None => "ok".to_owned(),
    }
}

/// Checks an authentication token with the verifier written from the Web eID specification
/// (Python `cryptography`); its verdict line.
pub fn verify_token(
    dir: &std::path::Path,
    token: &Value,
    origin: &str,
    nonce: &str,
) -> Result<String, String> {
    let file = dir.join("token.json");
    std::fs::write(&file, token.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("webeid/verify_token.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(origin)
        .arg(nonce)
        .output()
        .expect("python3 with cryptography (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned()
        + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Fixture keys of each kind the bridge signs with.
pub const KEYS: [KeyState; 2] = [KeyState::IssuedRsa, KeyState::IssuedEc];

//! The bridge as the desktop app hosts it, without a window: the host's agent ([`Prompts`])
//! behind the real bridge on a loopback port, simulator keys, and a page's WebSocket client.
//! The operator's answers come from the test through the same calls the window's commands
//! make; what the window would be sent is recorded and checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_bridge::Outcome;
use keyward_desktop::bridge::{BridgeHost, Ended, PromptView, Question, Reply, Status, Window};
use keyward_desktop::deeplink::Navigate;
use keyward_flows::usekey::WebKeys;
use keyward_flows::{FinalTry, Pin};
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, USER_PIN};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

const PORTAL: &str = "https://www.ggzy.gov.cn";
const NONCE: &str = "u5mZ0aK1lqV0v3n8S3b3xg5bq0c2c0Jt1b7s4Yc9u7E=";

#[derive(Default)]
struct Seen {
    prompts: Mutex<Vec<Vec<PromptView>>>,
    raised: Mutex<usize>,
    ended: Mutex<Vec<(u64, Ended)>>,
}

struct Recorder(Arc<Seen>);

impl Window for Recorder {
    fn prompts(&self, prompts: Vec<PromptView>, raise: bool) {
        self.0.prompts.lock().unwrap().push(prompts);
        if raise {
            *self.0.raised.lock().unwrap() += 1;
        }
    }
    fn ended(&self, id: u64, reason: Ended) {
        self.0.ended.lock().unwrap().push((id, reason));
    }
    fn navigate(&self, _to: Navigate) {}
}

struct World {
    _fixtures: FixtureSet,
    serial: String,
    host: BridgeHost,
    seen: Arc<Seen>,
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn host_at(dir: &Path, listen: SocketAddr, seen: &Arc<Seen>) -> BridgeHost {
    BridgeHost::at(
        dir,
        dir,
        Box::new(Recorder(Arc::clone(seen))),
        listen,
        Duration::from_secs(20),
    )
}

impl World {
    fn new() -> World {
        let (fixtures, module, manifest) =
            FixtureSet::build(&[KeyState::IssuedEc], &softhsm_fixtures::sim_module()).unwrap();
        let serial = manifest.tokens[0].serial.clone();
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen::default());
        let host = host_at(dir.path(), "127.0.0.1:0".parse().unwrap(), &seen);
        let rt = runtime();
        let status = rt.block_on(host.start(WebKeys::new(vec![module])));
        let Status::Listening { url } = status else {
            panic!("the bridge does not listen: {status:?}");
        };
        let addr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        World {
            _fixtures: fixtures,
            serial,
            host,
            seen,
            addr,
            rt,
            dir,
        }
    }

    /// The prompt the window shows once one is up.
    fn prompt(&self) -> PromptView {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(p) = self.host.prompts().list().into_iter().next() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no prompt came up");
    }

    fn no_prompt(&self) -> bool {
        self.host.prompts().list().is_empty()
    }
}

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr, origin: &str) -> Ws {
    let stream = TcpStream::connect(addr).unwrap();
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    let (ws, _) = tungstenite::client::client(req, stream).unwrap();
    ws
}

fn send(ws: &mut Ws, id: u64, method: &str, params: Value) {
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::text(req.to_string())).unwrap();
}

fn read(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A request on its own thread, so the test can answer in the window meanwhile.
fn ask(
    mut ws: Ws,
    id: u64,
    method: &'static str,
    params: Value,
) -> std::thread::JoinHandle<(Ws, Value)> {
    std::thread::spawn(move || {
        send(&mut ws, id, method, params);
        let v = read(&mut ws);
        (ws, v)
    })
}

fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("")
}

#[test]
fn consent_then_a_login_confirmed_with_the_pin_in_the_window() {
    let w = World::new();
    let ws = connect(w.addr, PORTAL);

    // First contact: a consent prompt, the window raised, the domain split for emphasis.
    let t = ask(ws, 1, "keyward.certificates", json!({}));
    let p = w.prompt();
    assert!(matches!(p.question, Question::Consent));
    assert_eq!(p.origin.registrable, "ggzy.gov.cn");
    assert_eq!(p.origin.prefix, "www.");
    assert!(
        *w.seen.raised.lock().unwrap() >= 1,
        "the window was not raised"
    );
    assert!(w.host.prompts().answer(p.id, Reply::Always));
    let (ws, listed) = t.join().unwrap();
    assert_eq!(listed["result"][0]["key_serial"], w.serial.as_str());

    // 始终允许 is kept, in the file and in what 设置 lists.
    let info = w.host.info();
    assert_eq!(info.grants.len(), 1);
    assert_eq!(info.grants[0].origin.origin, PORTAL);
    assert!(!info.grants[0].granted_at.is_empty() && !info.grants[0].last_used.is_empty());
    let file = std::fs::read_to_string(w.dir.path().join("bridge-grants.json")).unwrap();
    assert!(file.contains(PORTAL), "{file}");

    // A login: confirmed in the window, the PIN from there; a wrong one first.
    let t = ask(
        ws,
        2,
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": w.serial}),
    );
    let p = w.prompt();
    let Question::Confirm { key, action, pin } = &p.question else {
        panic!("not a confirmation: {p:?}");
    };
    assert_eq!(key.serial, w.serial);
    assert!(!key.organisation.is_empty());
    assert_eq!(serde_json::to_value(action).unwrap()["kind"], "login");
    assert_eq!(pin.user_tries_left, Some(10));
    assert_eq!(p.timeout_seconds, 20);
    let outcome = w
        .host
        .prompts()
        .confirm_with_pin(p.id, Pin::new("Wrong#0001".into()), FinalTry::Refuse)
        .unwrap();
    let (ws, wrong) = t.join().unwrap();
    assert_eq!(code(&wrong), "PIN_INCORRECT");
    assert_eq!(wrong["error"]["data"]["tries_left"], 9);
    match outcome.recv_timeout(Duration::from_secs(10)).unwrap() {
        Outcome::PinIncorrect { pin } => assert_eq!(pin.user_tries_left, Some(9)),
        other => panic!("the window heard {other:?}"),
    }

    let t = ask(
        ws,
        3,
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": w.serial}),
    );
    let p = w.prompt();
    let outcome = w
        .host
        .prompts()
        .confirm_with_pin(p.id, Pin::new(USER_PIN.into()), FinalTry::Refuse)
        .unwrap();
    let (mut ws, token) = t.join().unwrap();
    assert_eq!(token["result"]["format"], "web-eid:1.0", "{token}");
    assert_eq!(
        outcome.recv_timeout(Duration::from_secs(10)).unwrap(),
        Outcome::Done
    );

    // Nothing the window was sent carries the PIN.
    let sent = format!("{:?}", w.seen.prompts.lock().unwrap());
    assert!(!sent.contains(USER_PIN) && !sent.contains("Wrong#0001"));

    // Revoked in 设置: the next connection is asked again.
    assert!(w.host.revoke(PORTAL).unwrap());
    assert!(w.host.info().grants.is_empty());
    ws.close(None).unwrap();
    let t = ask(
        connect(w.addr, PORTAL),
        4,
        "keyward.certificates",
        json!({}),
    );
    let p = w.prompt();
    assert!(matches!(p.question, Question::Consent), "not asked again");
    assert!(w.host.prompts().answer(p.id, Reply::Deny));
    let (_ws, denied) = t.join().unwrap();
    assert_eq!(code(&denied), "ORIGIN_NOT_ALLOWED");
    w.rt.block_on(w.host.stop());
    assert_eq!(w.host.status(), Status::Stopped);
}

#[test]
fn a_page_that_leaves_takes_its_prompt_down_and_quitting_cancels_the_rest() {
    let w = World::new();
    // Deny answers nothing a page wants; a page going away withdraws its question.
    let mut ws = connect(w.addr, PORTAL);
    send(&mut ws, 1, "keyward.certificates", json!({}));
    let p = w.prompt();
    drop(ws);
    let until = Instant::now() + Duration::from_secs(10);
    while !w.no_prompt() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(w.no_prompt(), "the prompt stayed up after the page left");
    assert!(
        w.seen
            .ended
            .lock()
            .unwrap()
            .contains(&(p.id, Ended::Withdrawn))
    );
    assert!(!w.host.prompts().answer(p.id, Reply::Once), "answered late");

    // Quitting while a page waits: its question is cancelled and the port is freed.
    let mut ws = connect(w.addr, "https://other.example.com");
    send(&mut ws, 2, "keyward.certificates", json!({}));
    let t = std::thread::spawn(move || {
        // A refusal, or the connection closed by the stopping bridge: never the keys.
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str::<Value>(t.as_str()).unwrap());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    });
    let p = w.prompt();
    w.rt.block_on(w.host.stop());
    if let Some(answer) = t.join().unwrap() {
        assert_eq!(code(&answer), "ORIGIN_NOT_ALLOWED", "{answer}");
    }
    assert!(
        w.seen
            .ended
            .lock()
            .unwrap()
            .contains(&(p.id, Ended::Closed))
    );
    assert!(
        TcpListener::bind(w.addr).is_ok(),
        "the bridge's port is still held after quitting"
    );
}

#[test]
fn a_second_copy_or_another_program_on_the_port_is_named_not_hidden() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());

    // Another program holds the port: it is named as such.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = other.local_addr().unwrap();
    let busy = host_at(dir.path(), addr, &seen);
    match rt.block_on(busy.start(WebKeys::new(Vec::new()))) {
        Status::PortBusy { addr: a, .. } => assert_eq!(a, addr.to_string()),
        s => panic!("{s:?}"),
    }
    assert!(matches!(busy.info().status, Status::PortBusy { .. }));
    drop(other);

    // The first copy of Keyward listens; a second one finds it, by its version.
    let first = host_at(dir.path(), "127.0.0.1:0".parse().unwrap(), &seen);
    let Status::Listening { url } = rt.block_on(first.start(WebKeys::new(Vec::new()))) else {
        panic!("the first copy does not listen");
    };
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let second = host_at(dir.path(), addr, &seen);
    match rt.block_on(second.start(WebKeys::new(Vec::new()))) {
        Status::OtherKeyward { version, .. } => assert_eq!(version, env!("CARGO_PKG_VERSION")),
        s => panic!("{s:?}"),
    }
    assert!(
        Status::OtherKeyward {
            addr: addr.to_string(),
            version: "x".into()
        }
        .tray_line(keyward_pki::Lang::ZhCn)
        .is_some()
    );
    rt.block_on(first.stop());
}

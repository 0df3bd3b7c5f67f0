//! `keyward bridge serve`, the headless host, as an IT admin runs it: granted origins on the
//! command line, one PIN line per private-key operation on a descriptor, over a real
//! loopback WebSocket against simulator keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, USER_PIN};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PORTAL: &str = "https://portal.test";
const NONCE: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

struct Serve {
    child: Child,
    pins: ChildStdin,
    url: String,
    audit: PathBuf,
    set: FixtureSet,
    manifest: Manifest,
    rt: tokio::runtime::Runtime,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Serve {
    let sim = softhsm_fixtures::sim_module();
    let (set, _module, manifest) =
        FixtureSet::build(&[KeyState::IssuedRsa, KeyState::IssuedEc], &sim).unwrap();
    let data = set.dir().join("keyward");
    let mut child = Command::new(common::binary("keyward"))
        .args([
            "bridge",
            "serve",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--pin-fd",
            "0",
        ])
        .args(["--allow-origin", PORTAL])
        .args(extra)
        .envs(set.env())
        .env("KEYWARD_PKCS11_MODULE", &sim)
        .env("KEYWARD_DATA_DIR", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the bridge did not say where it listens ({e}): {line}"));
    let pins = child.stdin.take().unwrap();
    Serve {
        child,
        pins,
        url: started["listening"].as_str().unwrap().to_owned(),
        audit: PathBuf::from(started["audit_log"].as_str().unwrap()),
        set,
        manifest,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

impl Serve {
    fn connect(&self, origin: &str) -> Ws {
        self.rt.block_on(async {
            let mut req = self.url.as_str().into_client_request().unwrap();
            req.headers_mut().insert("Origin", origin.parse().unwrap());
            let addr = self.url.trim_start_matches("ws://").trim_end_matches('/');
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_tungstenite::client_async(req, tcp).await.unwrap().0
        })
    }

    fn call(&self, ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
        self.rt.block_on(async {
            let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            ws.send(Message::text(req.to_string())).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
            assert_eq!(v["id"], id, "{v}");
            v
        })
    }

    fn pin_line(&mut self, line: &str) {
        writeln!(self.pins, "{line}").unwrap();
        self.pins.flush().unwrap();
    }
}

fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("ok")
}

fn verify(dir: &Path, token: &Value, origin: &str) -> bool {
    let file = dir.join("token.json");
    std::fs::write(&file, token.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webeid/verify_token.py");
    Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(origin)
        .arg(NONCE)
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_granted_origin_is_served_with_the_pin_line_and_any_other_is_refused() {
    let mut s = serve(&[]);
    let mut portal = s.connect(PORTAL);
    let list = s.call(&mut portal, 1, "keyward.certificates", json!({}));
    assert_eq!(list["result"].as_array().unwrap().len(), 2, "{list}");
    for (i, fx) in s.manifest.tokens.clone().iter().enumerate() {
        s.pin_line(USER_PIN);
        let a = s.call(
            &mut portal,
            10 + i as u64,
            "keyward.authenticate",
            json!({"nonce": NONCE, "key_serial": fx.serial}),
        );
        assert_eq!(code(&a), "ok", "{a}");
        assert!(verify(s.set.dir(), &a["result"], PORTAL), "{}", fx.label);
        assert!(!verify(s.set.dir(), &a["result"], "https://evil.test"));
    }
    let mut evil = s.connect("https://evil.test");
    let a = s.call(&mut evil, 1, "keyward.certificates", json!({}));
    assert_eq!(code(&a), "ORIGIN_NOT_ALLOWED", "{a}");
    let a = s.call(&mut portal, 20, "keyward.open", json!({"screen": "renew"}));
    assert_eq!(code(&a), "NOT_SUPPORTED", "{a}");
    let audit = std::fs::read_to_string(&s.audit).unwrap();
    assert_eq!(audit.lines().count(), 5, "{audit}");
    assert!(!audit.contains(USER_PIN) && !audit.contains(NONCE));
}

#[test]
fn a_pin_line_that_comes_too_late_is_dropped_and_an_empty_one_cancels() {
    let mut s = serve(&["--user-timeout", "1"]);
    let serial = s.manifest.tokens[1].serial.clone();
    let mut portal = s.connect(PORTAL);
    let auth = json!({"nonce": NONCE, "key_serial": serial});
    let a = s.call(&mut portal, 1, "keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "USER_TIMEOUT", "{a}");
    // The line for the timed-out operation arrives late: it must not answer the next one.
    s.pin_line("Wrong#2026late");
    s.pin_line(USER_PIN);
    let a = s.call(&mut portal, 2, "keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "ok", "the late line was kept and used: {a}");
    let tries = keyward_sim::control::tries(s.set.sim_state(), &serial).unwrap();
    assert_eq!(tries.user_left, 10, "the late wrong PIN reached the key");
    s.pin_line("");
    let a = s.call(&mut portal, 3, "keyward.authenticate", auth);
    assert_eq!(code(&a), "USER_CANCELLED", "{a}");
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    let sim = softhsm_fixtures::sim_module();
    let (set, _m, _) = FixtureSet::build(&[KeyState::IssuedEc], &sim).unwrap();
    let run = |args: &[&str]| {
        Command::new(common::binary("keyward"))
            .args(["bridge", "serve"])
            .args(args)
            .envs(set.env())
            .env("KEYWARD_PKCS11_MODULE", &sim)
            .env("KEYWARD_DATA_DIR", set.dir().join("keyward"))
            .env_remove("LANG")
            .output()
            .unwrap()
    };
    let out = run(&["--allow-origin", "http://portal.test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https"),
        "{out:?}"
    );
    let out = run(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{out:?}"
    );
    // A busy port: another program holds it.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(&["--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&port),
        "{out:?}"
    );
}

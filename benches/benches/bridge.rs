//! The browser bridge: what it adds to the key's own work, and its handshake.
//!
//! - `bridge-authenticate`: one `keyward.authenticate` round trip, as a page sees it: the
//!   request over a loopback WebSocket, the origin's grant, the key looked up by serial, its
//!   PIN state read, the operator's confirmation (answered at once by an in-process agent),
//!   the token made on the key, the answer back.
//! - `bridge-direct`: the same token made by `keyward_flows::usekey::WebKeys::authenticate`
//!   called directly, in the same process, on the same key: the key's own part (log in, sign,
//!   log out, through the guard).
//! - `bridge-handshake`: TCP connect and the WebSocket handshake with its Host and Origin
//!   checks, up to the first frame that may be sent.
//!
//! The two sides alternate sample by sample, so both see the same machine; the overhead is
//! the difference of their medians. The key is the EC fixture key through keyward-sim.
//! Samples: `KEYWARD_BENCH_BRIDGE_SAMPLES` (default 200), at most 60 s in all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use keyward_bench::latency::Samples;
use keyward_bridge::agent::{Agent, Answer, Confirmation, Consent, KeyShown};
use keyward_bridge::audit::Audit;
use keyward_bridge::consent::Grants;
use keyward_bridge::protocol::Screen;
use keyward_bridge::{Config, Origin, parse_origin};
use keyward_flows::usekey::WebKeys;
use keyward_flows::{FinalTry, Pin};
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, USER_PIN};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ORIGIN: &str = "https://portal.test";
const NONCE: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

/// An operator who confirms at once with the right PIN.
struct AtOnce;

impl Agent for AtOnce {
    fn consent(&self, _: &Origin, _: Instant) -> Consent {
        Consent::Deny
    }
    fn confirm(&self, _: &Confirmation) -> Answer {
        Answer::Pin {
            pin: Pin::new(USER_PIN.to_owned()),
            final_try: FinalTry::Refuse,
        }
    }
    fn open(&self, _: &Origin, _: Screen, _: Option<&KeyShown>) -> Result<(), String> {
        Err("no window".into())
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(addr: std::net::SocketAddr) -> Result<Ws> {
    let mut req = format!("ws://{addr}/").into_client_request()?;
    req.headers_mut().insert("Origin", ORIGIN.parse()?);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    Ok(tokio_tungstenite::client_async(req, tcp).await?.0)
}

async fn call(ws: &mut Ws, id: u64, params: Value) -> Result<Value> {
    let req =
        json!({"jsonrpc": "2.0", "id": id, "method": "keyward.authenticate", "params": params});
    ws.send(Message::text(req.to_string())).await?;
    let answer = ws.next().await.context("connection closed")??;
    let v: Value = serde_json::from_str(answer.to_text()?)?;
    if v.get("result").is_none() {
        bail!("authenticate failed: {v}");
    }
    Ok(v)
}

fn main() -> Result<()> {
    let wanted: usize = std::env::var("KEYWARD_BENCH_BRIDGE_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let budget = Duration::from_secs(60);
    let (_set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &keyward_bench::sim_module()?)
            .context("building the fixture key")?;
    let serial = manifest
        .tokens
        .first()
        .context("no fixture key")?
        .serial
        .clone();
    let keys = WebKeys::new(vec![module]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let grants = Grants::load(None, vec![parse_origin(Some(ORIGIN), false)?])?;
    let running = runtime.block_on(keyward_bridge::start(
        config,
        keys.clone(),
        Arc::new(AtOnce),
        grants,
        Audit::none(),
    ))?;
    let addr = running.addr();
    let params = json!({"nonce": NONCE, "key_serial": serial});
    let (mut round_trip, mut direct, mut handshake) =
        (Samples::new(), Samples::new(), Samples::new());
    let started = Instant::now();
    runtime.block_on(async {
        let mut ws = connect(addr).await?;
        // Warm both paths.
        call(&mut ws, 0, params.clone()).await?;
        let pin = Pin::new(USER_PIN.to_owned());
        for i in 0..wanted {
            if started.elapsed() > budget {
                break;
            }
            let t = Instant::now();
            call(&mut ws, i as u64 + 1, params.clone()).await?;
            round_trip.push(t.elapsed());
            let t = Instant::now();
            keys.authenticate(&serial, &pin, FinalTry::Refuse, ORIGIN, NONCE, "urn:bench")?;
            direct.push(t.elapsed());
            let t = Instant::now();
            let mut fresh = connect(addr).await?;
            handshake.push(t.elapsed());
            let _ = fresh.close(None).await;
        }
        anyhow::Ok(())
    })?;
    let median = |s: &Samples| s.percentile(50.0).unwrap_or(0) as f64;
    let overhead_ns = median(&round_trip) - median(&direct);
    let extra =
        json!({ "overhead_ns": overhead_ns, "key": "EC P-256 fixture key through keyward-sim" });
    round_trip.write(
        "bridge-authenticate",
        "keyward.authenticate round trip over the loopback WebSocket",
        extra.clone(),
    )?;
    direct.write(
        "bridge-direct",
        "the same token made by keyward-flows directly (the key's own part)",
        extra,
    )?;
    handshake.write(
        "bridge-handshake",
        "TCP connect and WebSocket handshake with the Host and Origin checks",
        json!({}),
    )?;
    runtime.block_on(running.stop());
    Ok(())
}

//! The loopback WebSocket: the handshake's checks, the limits, and the operations.
//!
//! Before the upgrade: the path is `/`, `Host` is this bridge on loopback, `Origin` is a
//! serialised https origin, and the origin has fewer than the connections it may hold. After
//! it: text frames of at most 64 KiB, one request each, answered as they finish (a slow one
//! does not hold up `keyward.version`); one operation per origin waiting for the operator at
//! a time; a connection quiet for the idle time is closed.
//!
//! Every method but `keyward.version` needs the origin granted: by the deployment, by a kept
//! grant, or by the operator's answer now. Every private-key operation is then confirmed by
//! the operator with the PIN, through the login guard, and the key logs out afterwards.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use keyward_flows::usekey::{KeyCertificate, WebKeys};
use keyward_flows::{FinalTry, FlowError, PinState};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::BridgeError;
use crate::agent::{Action, Agent, Answer, Confirmation, Consent, KeyShown, Outcome};
use crate::audit::{Audit, Entry};
use crate::consent::{Grants, Standing};
use crate::origin::{Origin, check_host, parse_origin};
use crate::protocol::{self, Call, ErrorCode, MAX_MESSAGE, Purpose, RpcError};

/// The port the bridge listens on unless told otherwise (documented in `docs/bridge.md`).
pub const DEFAULT_PORT: u16 = 28231;

/// How the bridge runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens: a loopback address.
    pub listen: SocketAddr,
    /// Lets `http://localhost` and `http://127.0.0.1` origins through (portal developers).
    pub allow_http_localhost: bool,
    /// How long the operator has to answer.
    pub user_timeout: Duration,
    /// How long a connection may stay quiet with nothing pending.
    pub idle_timeout: Duration,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// Connections one origin may hold at once.
    pub connections_per_origin: usize,
    /// Connections in all, handshakes included.
    pub connections: usize,
    /// What `appVersion` of authentication tokens says.
    pub app_version: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            allow_http_localhost: false,
            user_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            connections_per_origin: 4,
            connections: 64,
            app_version: format!("urn:keyward:bridge:{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What every connection shares.
struct Shared {
    config: Config,
    port: u16,
    keys: WebKeys,
    agent: Arc<dyn Agent + Send + Sync>,
    grants: Arc<Mutex<Grants>>,
    audit: Audit,
    /// Open connections by origin.
    per_origin: Mutex<HashMap<Origin, usize>>,
    /// Origins with an operation waiting for the operator.
    pending: Mutex<HashSet<Origin>>,
    /// Connections in all.
    open: AtomicUsize,
}

/// A running bridge; dropping it (or [`Running::stop`]) stops it.
pub struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl Running {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and closes every connection.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Waits until the bridge stops (it does not, unless stopped or the runtime ends).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts the bridge: listens on `config.listen` (loopback only) and serves until stopped.
pub async fn start(
    config: Config,
    keys: WebKeys,
    agent: Arc<dyn Agent + Send + Sync>,
    grants: Grants,
    audit: Audit,
) -> Result<Running, BridgeError> {
    start_with_grants(config, keys, agent, Arc::new(Mutex::new(grants)), audit).await
}

/// [`start`] with grants the host shares: a host that lists and revokes grants while the
/// bridge runs (设置) holds the same [`Grants`], so a revocation counts at the next request
/// and a grant's last use is never written back over it.
pub async fn start_with_grants(
    config: Config,
    keys: WebKeys,
    agent: Arc<dyn Agent + Send + Sync>,
    grants: Arc<Mutex<Grants>>,
    audit: Audit,
) -> Result<Running, BridgeError> {
    if !config.listen.ip().is_loopback() {
        return Err(BridgeError::NotLoopback(config.listen));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| BridgeError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| BridgeError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    tracing::info!(%addr, "browser bridge listening");
    let shared = Arc::new(Shared {
        port: addr.port(),
        config,
        keys,
        agent,
        grants,
        audit,
        per_origin: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashSet::new()),
        open: AtomicUsize::new(0),
    });
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if shared.open.load(Ordering::SeqCst) >= shared.config.connections {
                            tracing::warn!(%peer, "too many connections; one refused");
                            drop(stream);
                            continue;
                        }
                        shared.open.fetch_add(1, Ordering::SeqCst);
                        let s = Arc::clone(&shared);
                        connections.spawn(async move {
                            connection(&s, stream).await;
                            s.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.shutdown().await;
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// The origin a probe presents: a reserved name (RFC 2606) that no site can have.
const PROBE_ORIGIN: &str = "https://keyward-probe.invalid";

/// Who answers on `addr` when the bridge cannot listen there: `Some(version)` when it is a
/// Keyward bridge (another copy of Keyward, or `keyward bridge serve`), `None` when it is
/// another program or nothing answers within two seconds. Asks `keyward.version` only, which
/// needs no grant.
pub async fn probe(addr: SocketAddr) -> Option<String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ask = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut req = format!("ws://{addr}/").into_client_request().ok()?;
        req.headers_mut()
            .insert("origin", PROBE_ORIGIN.parse().ok()?);
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.ok()?;
        let ask = json!({"jsonrpc": "2.0", "id": 1, "method": "keyward.version"});
        ws.send(Message::text(ask.to_string())).await.ok()?;
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(text.as_str()).ok()?;
                let _ = ws.close(None).await;
                return v["result"]["version"].as_str().map(str::to_owned);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// Holds one of an origin's connections; gives it back when dropped.
struct Slot {
    shared: Arc<Shared>,
    origin: Origin,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.origin) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.origin);
            }
        }
    }
}

/// A refused handshake: its HTTP status and why.
type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, why: &str) -> Refusal {
    (status, why.to_owned())
}

/// The handshake's checks; the origin and its slot on success.
fn admit(shared: &Arc<Shared>, req: &Request) -> Result<Slot, Refusal> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if req.uri() != "/" {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "the bridge answers at / only",
        ));
    }
    check_host(header("host"), shared.port)
        .map_err(|e| refuse(StatusCode::FORBIDDEN, &e.to_string()))?;
    if req.headers().get_all("origin").iter().count() > 1 {
        return Err(refuse(StatusCode::FORBIDDEN, "more than one Origin header"));
    }
    let origin = parse_origin(header("origin"), shared.config.allow_http_localhost)
        .map_err(|e| refuse(StatusCode::FORBIDDEN, &e.to_string()))?;
    let mut map = shared
        .per_origin
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = map.entry(origin.clone()).or_insert(0);
    if *n >= shared.config.connections_per_origin {
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "this origin holds as many connections as it may",
        ));
    }
    *n += 1;
    Ok(Slot {
        shared: Arc::clone(shared),
        origin,
    })
}

async fn connection(shared: &Arc<Shared>, stream: TcpStream) {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let admitted: Arc<Mutex<Option<Slot>>> = Arc::new(Mutex::new(None));
    let out = Arc::clone(&admitted);
    let s = Arc::clone(shared);
    // The callback's error type is tungstenite's: the HTTP answer to a refused handshake.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match admit(&s, req) {
            Ok(slot) => {
                *out.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(slot);
                Ok(resp)
            }
            Err((status, why)) => {
                tracing::info!(status = status.as_u16(), why, "bridge handshake refused");
                let mut r = ErrorResponse::new(Some(why));
                *r.status_mut() = status;
                Err(r)
            }
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let ws = match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "bridge handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("bridge handshake timed out");
            return;
        }
    };
    let Some(slot) = admitted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    else {
        return;
    };
    let origin = slot.origin.clone();
    tracing::info!(%origin, "bridge connection opened");
    let (mut sink, mut source) = ws.split();
    let (answers, mut to_send) = mpsc::channel::<Message>(16);
    let once = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let mut requests = tokio::task::JoinSet::new();
    loop {
        let idle = tokio::time::sleep(shared.config.idle_timeout);
        tokio::select! {
            Some(msg) = to_send.recv() => {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let (s, o, a, once, busy) = (
                        Arc::clone(shared),
                        origin.clone(),
                        answers.clone(),
                        Arc::clone(&once),
                        Arc::clone(&busy),
                    );
                    busy.fetch_add(1, Ordering::SeqCst);
                    requests.spawn(async move {
                        let answer = request(&s, &o, &once, text.as_str()).await;
                        busy.fetch_sub(1, Ordering::SeqCst);
                        let _ = a.send(Message::text(answer)).await;
                    });
                }
                Some(Ok(Message::Binary(_))) => {
                    let e = RpcError::new(ErrorCode::InvalidRequest, "text frames only");
                    if sink.send(Message::text(protocol::error(&Value::Null, &e))).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(e))) => {
                    tracing::info!(%origin, error = %e, "bridge frame over the limit; connection closed");
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Size,
                            reason: "frames and messages are at most 64 KiB".into(),
                        })))
                        .await;
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!(%origin, error = %e, "bridge connection failed");
                    break;
                }
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            _ = idle, if busy.load(Ordering::SeqCst) == 0 => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "idle".into(),
                    })))
                    .await;
                break;
            }
        }
    }
    requests.abort_all();
    tracing::info!(%origin, "bridge connection closed");
    drop(slot);
}

/// A question put to the operator for an origin. Dropped before it was settled (the page's
/// connection closed, so its request was abandoned), it tells the agent the question is
/// withdrawn.
struct Asking<'a> {
    shared: &'a Shared,
    origin: &'a Origin,
    settled: bool,
}

impl<'a> Asking<'a> {
    fn new(shared: &'a Shared, origin: &'a Origin) -> Self {
        Asking {
            shared,
            origin,
            settled: false,
        }
    }

    /// Answered, or timed out: nothing to withdraw.
    fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.agent.withdrawn(self.origin);
        }
    }
}

/// Holds an origin's one pending operation; released when dropped.
struct Pending<'a> {
    shared: &'a Shared,
    origin: Origin,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.origin);
    }
}

fn pending<'a>(shared: &'a Shared, origin: &Origin) -> Result<Pending<'a>, RpcError> {
    let mut set = shared
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !set.insert(origin.clone()) {
        return Err(RpcError::new(
            ErrorCode::ActionPending,
            "another operation of this origin is waiting for the operator",
        ));
    }
    Ok(Pending {
        shared,
        origin: origin.clone(),
    })
}

/// Answers one frame.
async fn request(
    shared: &Arc<Shared>,
    origin: &Origin,
    once: &Arc<AtomicBool>,
    text: &str,
) -> String {
    let req = protocol::parse(text);
    let (method, serial, outcome) = match req.call {
        Ok(call) => {
            let method = call.method();
            let serial = call.key_serial().map(str::to_owned);
            let outcome = dispatch(shared, origin, once, call).await;
            (method, serial, outcome)
        }
        Err(e) => ("(invalid)", None, Err(e)),
    };
    let (code, answer) = match &outcome {
        Ok(v) => ("ok".to_owned(), protocol::result(&req.id, v.clone())),
        Err(e) => (e.code.as_str(), protocol::error(&req.id, e)),
    };
    tracing::info!(%origin, method, outcome = %code, "bridge request");
    shared.audit.record(&Entry {
        time: OffsetDateTime::now_utc(),
        origin,
        method,
        key_serial: serial.as_deref(),
        outcome: &code,
    });
    answer
}

/// Runs blocking work (the key, the operator) off the network threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RpcError::new(ErrorCode::InternalError, format!("a worker failed: {e}")))
}

async fn dispatch(
    shared: &Arc<Shared>,
    origin: &Origin,
    once: &Arc<AtomicBool>,
    call: Call,
) -> Result<Value, RpcError> {
    if call == Call::Version {
        return Ok(version());
    }
    let _pending = pending(shared, origin)?;
    consent(shared, origin, once).await?;
    match call {
        Call::Version => Ok(version()),
        Call::Certificates => {
            let keys = shared.keys.clone();
            let list = blocking(move || {
                keys.certificates().map(|list| {
                    list.into_iter()
                        .map(|c| {
                            // A key whose state cannot be read still lists; its PIN state is
                            // then unknown.
                            let pin = keys.pin_status(&c.serial).ok();
                            (c, pin)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .await?
            .map_err(flow_error)?;
            Ok(Value::Array(
                list.iter()
                    .map(|(c, pin)| certificate_json(c, pin.as_ref()))
                    .collect(),
            ))
        }
        Call::Authenticate {
            nonce,
            key_serial,
            purpose,
        } => {
            let cert = choose_key(shared, key_serial).await?;
            let action = match purpose {
                Purpose::Login => Action::Login,
                Purpose::Bind => Action::Bind,
            };
            let (pin, final_try) = confirm(shared, origin, &cert, action).await?;
            let (o, app) = (
                origin.as_str().to_owned(),
                shared.config.app_version.clone(),
            );
            let serial = cert.serial.clone();
            let token = operate(shared, origin, move |keys| {
                keys.authenticate(&serial, &pin, final_try, &o, &nonce, &app)
            })
            .await?;
            serde_json::to_value(token)
                .map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string()))
        }
        Call::Sign {
            key_serial,
            hash,
            hash_function,
        } => {
            let cert = choose_key(shared, Some(key_serial)).await?;
            let action = Action::SignDigest {
                hash: hash_function,
                digest_hex: hex(&hash),
            };
            let (pin, final_try) = confirm(shared, origin, &cert, action).await?;
            let serial = cert.serial.clone();
            let signed = operate(shared, origin, move |keys| {
                keys.sign_digest(&serial, &pin, final_try, hash_function, &hash)
            })
            .await?;
            Ok(signature_answer(&signed))
        }
        Call::SignData {
            key_serial,
            data,
            hash_function,
        } => {
            let cert = choose_key(shared, Some(key_serial)).await?;
            let action = message_action(&data);
            let (pin, final_try) = confirm(shared, origin, &cert, action).await?;
            let serial = cert.serial.clone();
            // The digest is made here, from the data the operator was shown.
            let hash = hash_function.hash(&data);
            let signed = operate(shared, origin, move |keys| {
                keys.sign_digest(&serial, &pin, final_try, hash_function, &hash)
            })
            .await?;
            Ok(signature_answer(&signed))
        }
        Call::SignMessage {
            key_serial,
            data,
            detached,
        } => {
            let cert = choose_key(shared, Some(key_serial)).await?;
            let action = message_action(&data);
            let (pin, final_try) = confirm(shared, origin, &cert, action).await?;
            let serial = cert.serial.clone();
            let cms = operate(shared, origin, move |keys| {
                keys.sign_message(&serial, &pin, final_try, &data, detached)
            })
            .await?;
            Ok(json!({ "cms": STANDARD.encode(&cms) }))
        }
        Call::Open { screen, key_serial } => {
            let key = match key_serial {
                Some(s) => Some(shown(&choose_key(shared, Some(s)).await?)),
                None => None,
            };
            let (agent, o) = (Arc::clone(&shared.agent), origin.clone());
            let mut asking = Asking::new(shared, origin);
            let opened = blocking(move || agent.open(&o, screen, key.as_ref())).await;
            asking.settle();
            opened?.map_err(|why| RpcError::new(ErrorCode::NotSupported, why))?;
            Ok(json!({}))
        }
    }
}

/// `keyward.version`: Keyward's version and the protocol's.
fn version() -> Value {
    json!({ "version": env!("CARGO_PKG_VERSION"), "protocol": 1 })
}

/// The origin's consent: granted, cooling off after a refusal, or asked now.
async fn consent(
    shared: &Arc<Shared>,
    origin: &Origin,
    once: &Arc<AtomicBool>,
) -> Result<(), RpcError> {
    if once.load(Ordering::SeqCst) {
        return Ok(());
    }
    let not_allowed = || {
        RpcError::new(
            ErrorCode::OriginNotAllowed,
            "this origin may not use the key (not granted, or refused by the operator)",
        )
    };
    let standing = shared
        .grants
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .standing(origin, OffsetDateTime::now_utc());
    match standing {
        Standing::Granted => return Ok(()),
        Standing::CoolingOff(left) => {
            return Err(not_allowed().with("retry_after_seconds", json!(left.as_secs().max(1))));
        }
        Standing::Ask => {}
    }
    let deadline = Instant::now() + shared.config.user_timeout;
    let (agent, o) = (Arc::clone(&shared.agent), origin.clone());
    let mut asking = Asking::new(shared, origin);
    let asked = tokio::time::timeout(
        shared.config.user_timeout,
        blocking(move || agent.consent(&o, deadline)),
    )
    .await;
    asking.settle();
    let answer = match asked {
        Ok(a) => a?,
        Err(_) => return Err(timeout()),
    };
    let mut grants = shared
        .grants
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match answer {
        Consent::Once => {
            once.store(true, Ordering::SeqCst);
            Ok(())
        }
        Consent::Always => grants
            .grant(origin, OffsetDateTime::now_utc())
            .map_err(|e| RpcError::new(ErrorCode::InternalError, e.to_string())),
        Consent::Deny => {
            grants.refuse(origin);
            Err(not_allowed())
        }
    }
}

fn timeout() -> RpcError {
    RpcError::new(
        ErrorCode::UserTimeout,
        "the operator did not answer in time",
    )
}

fn shown(c: &KeyCertificate) -> KeyShown {
    KeyShown {
        serial: c.serial.clone(),
        organisation: c
            .summary
            .organization
            .clone()
            .unwrap_or_else(|| c.summary.subject.clone()),
        credit_code: c.summary.credit_code.clone(),
    }
}

/// The key named, or the one key plugged in.
async fn choose_key(
    shared: &Arc<Shared>,
    serial: Option<String>,
) -> Result<KeyCertificate, RpcError> {
    let keys = shared.keys.clone();
    match serial {
        Some(s) => blocking(move || keys.certificate(&s))
            .await?
            .map_err(flow_error),
        None => {
            let mut all = blocking(move || keys.certificates())
                .await?
                .map_err(flow_error)?;
            match all.len() {
                0 => Err(RpcError::new(
                    ErrorCode::KeyNotFound,
                    "no key with an organisation certificate is plugged in",
                )),
                1 => Ok(all.remove(0)),
                n => Err(RpcError::new(
                    ErrorCode::KeyAmbiguous,
                    format!(
                        "{n} keys are plugged in: name one with key_serial (keyward.certificates lists them)"
                    ),
                )),
            }
        }
    }
}

/// Shows the operation to the operator and takes the PIN. A locked key is refused first.
async fn confirm(
    shared: &Arc<Shared>,
    origin: &Origin,
    cert: &KeyCertificate,
    action: Action,
) -> Result<(keyward_flows::Pin, FinalTry), RpcError> {
    let keys = shared.keys.clone();
    let serial = cert.serial.clone();
    let pin = blocking(move || keys.pin_status(&serial))
        .await?
        .map_err(flow_error)?;
    if pin.user == PinState::Locked {
        let (agent, o, key) = (Arc::clone(&shared.agent), origin.clone(), shown(cert));
        blocking(move || agent.locked(&o, &key)).await?;
        return Err(RpcError::new(
            ErrorCode::PinLocked,
            "the key's PIN is locked; the operator must unlock it in Keyward (忘记密码)",
        ));
    }
    let confirmation = Confirmation {
        origin: origin.clone(),
        key: shown(cert),
        action,
        pin,
        deadline: Instant::now() + shared.config.user_timeout,
    };
    let agent = Arc::clone(&shared.agent);
    let mut asking = Asking::new(shared, origin);
    let answer = tokio::time::timeout(
        shared.config.user_timeout,
        blocking(move || agent.confirm(&confirmation)),
    )
    .await;
    asking.settle();
    match answer.map_err(|_| timeout())?? {
        Answer::Pin { pin, final_try } => Ok((pin, final_try)),
        Answer::Cancel => Err(RpcError::new(
            ErrorCode::UserCancelled,
            "the operator cancelled",
        )),
        Answer::TimedOut => Err(timeout()),
        Answer::KeyRemoved => Err(RpcError::new(
            ErrorCode::KeyRemoved,
            "the key was pulled out while the operator was asked",
        )),
    }
}

/// Runs a confirmed operation on the key, off the network threads, and tells the agent how
/// it ended — from the worker itself, so the agent hears of it even when the page has gone
/// meanwhile.
async fn operate<T: Send + 'static>(
    shared: &Arc<Shared>,
    origin: &Origin,
    work: impl FnOnce(&WebKeys) -> Result<T, FlowError> + Send + 'static,
) -> Result<T, RpcError> {
    let (keys, agent, o) = (
        shared.keys.clone(),
        Arc::clone(&shared.agent),
        origin.clone(),
    );
    blocking(move || {
        let result = work(&keys);
        agent.finished(&o, &outcome(&result));
        result
    })
    .await?
    .map_err(flow_error)
}

/// How an operation ended, as the host tells the operator.
fn outcome<T>(result: &Result<T, FlowError>) -> Outcome {
    use keyward_flows::TokenError as T;
    match result {
        Ok(_) => Outcome::Done,
        Err(FlowError::Token(T::PinIncorrect { status, .. })) => {
            Outcome::PinIncorrect { pin: *status }
        }
        Err(FlowError::Token(T::PinLocked { .. })) => Outcome::PinLocked,
        Err(FlowError::Token(T::FinalTryUnconfirmed { .. })) => Outcome::FinalTryUnconfirmed,
        Err(FlowError::Token(t)) if t.is_key_removed() => Outcome::KeyRemoved,
        Err(e) => Outcome::Failed {
            code: flow_code(e).as_str(),
        },
    }
}

fn certificate_json(c: &KeyCertificate, pin: Option<&keyward_flows::PinStatus>) -> Value {
    json!({
        "pin": pin.map(|p| json!({ "state": p.user, "tries_left": p.user_tries_left })),
        "key_serial": c.serial,
        "certificate": STANDARD.encode(&c.certificate_der),
        "organisation": c.summary.organization,
        "uscc": c.summary.credit_code,
        "not_after": c
            .summary
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// What the operator is shown before `signData` or `signMessage`: the data itself where it
/// reads as text, its size and SHA-256 always.
fn message_action(data: &[u8]) -> Action {
    Action::SignMessage {
        text: shown_text(data),
        bytes: data.len(),
        sha256_hex: hex(&keyward_flows::HashAlg::Sha256.hash(data)),
    }
}

/// The answer to `sign` and `signData`.
fn signature_answer(signed: &keyward_flows::usekey::DigestSignature) -> Value {
    json!({
        "signature": STANDARD.encode(&signed.signature),
        "algorithm": signed.algorithm(),
    })
}

/// The data as the operator reads it: UTF-8 text with no control characters but line
/// breaks and tabs; anything else is shown by its length and digest only.
fn shown_text(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .then(|| text.to_owned())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The error code a failure other than the PIN's reaches the page with (as [`flow_error`]).
fn flow_code(e: &FlowError) -> ErrorCode {
    use keyward_flows::TokenError as T;
    match e {
        FlowError::NoCertificate | FlowError::Token(T::NoSuchToken(_)) => ErrorCode::KeyNotFound,
        FlowError::Token(t) if t.is_key_removed() => ErrorCode::KeyRemoved,
        FlowError::Token(_) => ErrorCode::TokenError,
        _ => ErrorCode::InternalError,
    }
}

/// A workflow's failure as the page receives it: the key's state, never more.
fn flow_error(e: FlowError) -> RpcError {
    use keyward_flows::TokenError as T;
    match e {
        FlowError::NoCertificate => RpcError::new(
            ErrorCode::KeyNotFound,
            "the key holds no organisation certificate",
        ),
        FlowError::Token(T::NoSuchToken(_)) => RpcError::new(
            ErrorCode::KeyNotFound,
            "no key with that serial is plugged in",
        ),
        FlowError::Token(t) if t.is_key_removed() => {
            RpcError::new(ErrorCode::KeyRemoved, "the key was pulled out")
        }
        FlowError::Token(T::PinLocked { .. }) => RpcError::new(
            ErrorCode::PinLocked,
            "the key's PIN is locked; the operator must unlock it in Keyward (忘记密码)",
        ),
        FlowError::Token(T::PinIncorrect { status, .. }) => {
            RpcError::new(ErrorCode::PinIncorrect, "wrong PIN")
                .with("tries_left", json!(status.user_tries_left))
                .with("final_try", json!(status.user == PinState::FinalTry))
        }
        FlowError::Token(T::FinalTryUnconfirmed { .. }) => RpcError::new(
            ErrorCode::FinalTryUnconfirmed,
            "one PIN try is left and the operator did not confirm spending it",
        ),
        FlowError::Token(t) => RpcError::new(ErrorCode::TokenError, t.to_string()),
        other => {
            tracing::warn!(error = %other, "bridge operation failed");
            RpcError::new(
                ErrorCode::InternalError,
                "the operation failed inside Keyward",
            )
        }
    }
}

//! A TCP proxy in front of the CA's TLS port that can cut one connection. The client's TLS,
//! with the CA's root pinned, runs end to end through it: the proxy never sees a request in
//! clear, it only follows the TLS records to know when the answer starts.
//!
//! A cut is a TCP reset, as a dropped network path gives. A plain close without TLS
//! close_notify reaches the client as a TLS failure, which it reports as an identity problem
//! and does not retry; these tests are about resuming after a cut, not about that report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How the proxy cuts the connection it is told to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Reset at once (TCP RST, before the TLS handshake): the request never reaches the CA.
    Refuse,
    /// The request reaches the CA, which acts on it; its answer is thrown away (reset at the
    /// answer's first byte).
    LoseAnswer,
}

/// TLS record type of application data (in TLS 1.3 also every encrypted handshake message).
const APPLICATION_DATA: u8 = 0x17;

/// How long the server must have been silent after the client's Finished before the request
/// is let through: the server's session tickets answer the Finished at once, so what the
/// server sends after the request is the answer.
const QUIET: Duration = Duration::from_millis(100);

/// A TCP proxy between the client and the CA that can cut one connection (the client opens
/// one per request in these tests), and counts the cuts it made.
pub struct Proxy {
    pub url: String,
    connections: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
    lose: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on loopback in front of the CA at `upstream`; the client reaches it as
    /// `https://localhost:<port>`, a name on the CA's service certificate.
    pub fn start(rt: &tokio::runtime::Runtime, upstream: SocketAddr) -> Proxy {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let connections = Arc::new(AtomicU64::new(0));
        let cut_at = Arc::new(AtomicU64::new(0));
        let lose = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let (c, at, l, made) = (
            connections.clone(),
            cut_at.clone(),
            lose.clone(),
            cuts.clone(),
        );
        rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                let cut = at.load(Ordering::SeqCst) == n;
                let lose = l.load(Ordering::SeqCst);
                let made = made.clone();
                tokio::spawn(async move {
                    if cut && !lose {
                        let _ = inbound.set_zero_linger();
                        made.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let mut inbound = inbound;
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if cut {
                        if lose_answer(inbound, outbound).await {
                            made.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy {
            url,
            connections,
            cut_at,
            lose,
            cuts,
        }
    }

    /// Connections through the proxy so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections the proxy has cut so far (refused, or whose answer it threw away).
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Cuts the `n`-th connection from now (1: the next one).
    pub fn cut(&self, n: u64, how: Cut) {
        self.lose.store(how == Cut::LoseAnswer, Ordering::SeqCst);
        self.cut_at.store(self.connections() + n, Ordering::SeqCst);
    }

    pub fn clear(&self) {
        self.cut_at.store(0, Ordering::SeqCst);
    }
}

/// Milliseconds since `base`, for the last time the server sent something.
fn since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lets the TLS handshake through, then the request; resets the connection at the first byte
/// of the server's answer. `true` when an answer was thrown away.
async fn lose_answer(inbound: TcpStream, outbound: TcpStream) -> bool {
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    let base = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let answering = Arc::new(AtomicBool::new(false));
    let up = client_to_server(
        client_read,
        server_write,
        base,
        last_heard.clone(),
        answering.clone(),
    );
    let down = server_to_client(server_read, client_write, base, last_heard, answering);
    tokio::select! {
        () = up => false,
        lost = down => lost,
    }
}

/// Forwards the client's records; after its first application-data record (its Finished),
/// waits for the server to fall quiet, marks the answer phase, then forwards the request.
/// Returns when the client closes (the answer is `server_to_client`'s to judge).
async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    base: Instant,
    last_heard: Arc<AtomicU64>,
    answering: Arc<AtomicBool>,
) {
    loop {
        let mut header = [0u8; 5];
        if from.read_exact(&mut header).await.is_err() {
            let _ = to.shutdown().await;
            return pending_forever().await;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut body = vec![0u8; len];
        if from.read_exact(&mut body).await.is_err()
            || to.write_all(&header).await.is_err()
            || to.write_all(&body).await.is_err()
        {
            return pending_forever().await;
        }
        if header[0] == APPLICATION_DATA {
            break;
        }
    }
    let finished = since(base);
    loop {
        let now = since(base);
        let quiet_ms = u64::try_from(QUIET.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(finished) >= quiet_ms
            && now.saturating_sub(last_heard.load(Ordering::SeqCst)) >= quiet_ms
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    answering.store(true, Ordering::SeqCst);
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
    pending_forever().await
}

/// Forwards what the server sends until the answer phase; the first byte after it is the
/// answer, which is thrown away with the connection (`true`). `false` when the server closed
/// before answering.
async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    base: Instant,
    last_heard: Arc<AtomicU64>,
    answering: Arc<AtomicBool>,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if answering.load(Ordering::SeqCst) {
            // Closed with the read half, which `lose_answer` drops next: a reset.
            let _ = to.as_ref().set_zero_linger();
            to.forget();
            return true;
        }
        last_heard.store(since(base), Ordering::SeqCst);
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

/// The client side is done; the server side decides when the connection ends.
async fn pending_forever() {
    std::future::pending::<()>().await;
}

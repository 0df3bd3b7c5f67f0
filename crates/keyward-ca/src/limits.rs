//! Limits: request rates per client address and overall (in memory, per instance, before
//! any handler), and caps on what a caller can make the CA keep or send (in the database,
//! so they hold across instances): codes sent, businesses opened, attachments, nonces.
//!
//! The request rates are per instance by design: they keep one instance out of overload
//! and make guessing slow, and behind a balancer spreading over N instances an address
//! gets up to N times the rate. Nothing a stranger could win by going faster rests on
//! them: code guesses void a code after a few tries, and every daily cap, cool-down and
//! single-use rule is in the database, checked under a lock taken in the transaction.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use keyward_ca_api::ErrorCode;
use sqlx::AnyConnection;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::{GlobalKeyExtractor, KeyExtractor};

use crate::config::RateLimit;
use crate::error::{CaError, CaResult, reject};

/// What one client address may make the CA do in a day, kept in the database so the caps
/// hold across instances. The per-key caps (codes per key, unlocks per key, open
/// businesses per organisation) are fixed: they protect the handler whoever asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressCaps {
    /// Codes one address may have sent for one key and purpose. With the per-key cap, one
    /// stranger alone cannot use up a key's codes for the day.
    pub codes_per_key: i64,
    /// Codes one address may have sent, all keys together.
    pub codes: i64,
    /// Businesses one address may open without a key's signature.
    pub public_businesses: i64,
}

impl AddressCaps {
    /// For a service facing the network.
    pub const DEFAULT: AddressCaps = AddressCaps {
        codes_per_key: 3,
        codes: 20,
        public_businesses: 10,
    };
    /// For tests and benchmarks, where every client is one loopback address (the fault
    /// matrices ask for a code for each of dozens of keys).
    pub const LOOPBACK_TESTS: AddressCaps = AddressCaps {
        codes_per_key: 3,
        codes: 10_000,
        public_businesses: 10_000,
    };
}
/// Open businesses one organisation may have at once.
pub const OPEN_BUSINESSES_PER_ORGANISATION: i64 = 20;
/// Unlock applications for one key in a day.
pub const UNLOCKS_PER_KEY_DAILY: i64 = 5;
/// Attachments one business may hold.
pub const ATTACHMENTS_PER_BUSINESS: i64 = 20;
/// Unused nonces one key may have outstanding; older ones are dropped.
pub const NONCES_PER_KEY: i64 = 16;

/// The peer of a connection, as the server hands it to every request (TLS or plain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::tls::PlainListener>,
    > for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, crate::tls::PlainListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// The client's address: the peer of the connection, or, when that peer is a trusted
/// balancer, the last entry of the `X-Forwarded-For` it set (loopback when the request did
/// not come over a socket, as in router-level tests; those may put a `ConnectInfo<Peer>` in
/// the request to speak for another address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    fn of<T>(req: &Request<T>) -> Self {
        Self::from_extensions(req.extensions())
    }

    fn from_extensions(ext: &axum::http::Extensions) -> Self {
        if let Some(addr) = ext.get::<ClientAddr>() {
            return *addr;
        }
        ClientAddr(Self::peer(ext))
    }

    fn peer(ext: &axum::http::Extensions) -> IpAddr {
        ext.get::<ConnectInfo<Peer>>()
            .map(|c| c.0.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Who sent `req`: the balancer's word for it only when the peer is one of `trusted`.
    /// The last `X-Forwarded-For` entry is the one the trusted balancer added (whatever a
    /// client put before it is ignored); an entry that is not an address leaves the peer.
    pub fn resolve(
        ext: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
        trusted: &[IpAddr],
    ) -> Self {
        let peer = Self::peer(ext);
        if !trusted.contains(&peer) {
            return ClientAddr(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .and_then(|v| v.parse::<IpAddr>().ok());
        ClientAddr(forwarded.unwrap_or(peer))
    }

    /// As stored in the database.
    pub fn text(&self) -> String {
        self.0.to_string()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_extensions(&parts.extensions))
    }
}

/// The middleware that settles the client's address once, before the rate limits and every
/// handler read it.
pub async fn client_address(
    axum::extract::State(trusted): axum::extract::State<Arc<Vec<IpAddr>>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only this layer sets it: one a request carried in could not get here.
    req.extensions_mut().remove::<ClientAddr>();
    let addr = ClientAddr::resolve(req.extensions(), req.headers(), &trusted);
    req.extensions_mut().insert(addr);
    next.run(req).await
}

/// The rate-limit key: the client's address.
#[derive(Debug, Clone, Copy)]
pub struct ByAddress;

impl KeyExtractor for ByAddress {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        Ok(ClientAddr::of(req).0)
    }
}

fn limited(e: GovernorError) -> Response {
    let wait = match e {
        GovernorError::TooManyRequests { wait_time, .. } => wait_time,
        _ => 1,
    };
    CaError::rejected(
        ErrorCode::RateLimited,
        format!("too many requests; try again in {wait} s"),
    )
    .into_response()
}

fn period(per_second: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)))
}

/// A rate-limit layer keyed by `K`.
pub type RateLayer<K> =
    tower_governor::GovernorLayer<K, governor::middleware::NoOpMiddleware, axum::body::Body>;

/// The two rate-limit layers (per address, then overall), and a task that forgets idle
/// addresses every minute.
pub fn rate_layers(
    limit: RateLimit,
) -> CaResult<(RateLayer<ByAddress>, RateLayer<GlobalKeyExtractor>)> {
    let bad = || CaError::Config("a rate limit must be at least 1".into());
    let per_address = Arc::new(
        GovernorConfigBuilder::default()
            .key_extractor(ByAddress)
            .period(period(limit.per_address_per_second))
            .burst_size(limit.per_address_burst.max(1))
            .finish()
            .ok_or_else(bad)?,
    );
    let overall = Arc::new(
        GovernorConfigBuilder::default()
            .key_extractor(GlobalKeyExtractor)
            .period(period(limit.overall_per_second))
            .burst_size(limit.overall_burst.max(1))
            .finish()
            .ok_or_else(bad)?,
    );
    // Forget addresses that have been quiet, so the table does not grow with every client
    // ever seen. Only when a runtime is there to run it (the router is also built outside
    // one, for tests).
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&per_address);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(config) = weak.upgrade() else { return };
                config.limiter().retain_recent();
            }
        });
    }
    Ok((
        tower_governor::GovernorLayer::new(per_address).error_handler(limited),
        tower_governor::GovernorLayer::new(overall).error_handler(limited),
    ))
}

/// Records that `addr` did `action` (for the daily caps below).
pub async fn record(
    conn: &mut AnyConnection,
    addr: &ClientAddr,
    action: &str,
    key_serial: Option<&str>,
    now: i64,
) -> CaResult<()> {
    sqlx::query(
        "INSERT INTO address_events (id, address, action, key_serial, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::db::new_id("ae")?)
    .bind(addr.text())
    .bind(action)
    .bind(key_serial.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets what no rule reads any more: nonces expired more than a day ago (a nonce is
/// refused once expired, swept or not) and address events older than two days (the caps
/// count one day). Run by each instance's heartbeat rather than on every request, so a
/// request never pays for a scan of the whole table.
pub async fn sweep(conn: &mut AnyConnection, now: i64) -> CaResult<()> {
    sqlx::query("DELETE FROM nonces WHERE expires_at < $1")
        .bind(now - 86_400)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM address_events WHERE at < $1")
        .bind(now - 2 * 86_400)
        .execute(conn)
        .await?;
    Ok(())
}

/// How often `addr` did `action` (for `key_serial`, when given) in the last day.
pub async fn count_today(
    conn: &mut AnyConnection,
    addr: &ClientAddr,
    action: &str,
    key_serial: Option<&str>,
    now: i64,
) -> CaResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM address_events WHERE address = $1 AND action = $2 AND ($3 = '' OR key_serial = $3) AND at > $4",
    )
    .bind(addr.text())
    .bind(action)
    .bind(key_serial.unwrap_or_default())
    .bind(now - 86_400)
    .fetch_one(conn)
    .await?;
    crate::db::int(&row, "n")
}

/// Refuses when `addr` already did `action` `cap` times today, then records this one.
/// Requests from one address racing on several instances are taken one at a time.
pub async fn spend(
    conn: &mut AnyConnection,
    addr: &ClientAddr,
    action: &str,
    key_serial: Option<&str>,
    cap: i64,
    now: i64,
) -> CaResult<()> {
    crate::db::lock(&mut *conn, &format!("address:{}", addr.text())).await?;
    if count_today(&mut *conn, addr, action, key_serial, now).await? >= cap {
        return reject(
            ErrorCode::RateLimited,
            "this address has done this often enough today; try tomorrow",
        );
    }
    record(conn, addr, action, key_serial, now).await
}

/// Refuses a new business when the organisation already has too many open.
pub async fn check_open_businesses(conn: &mut AnyConnection, uscc: &str) -> CaResult<()> {
    crate::db::lock(&mut *conn, &format!("organisation:{uscc}")).await?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM businesses WHERE uscc = $1 AND state NOT IN ('completed', 'rejected', 'cancelled')",
    )
    .bind(uscc)
    .fetch_one(conn)
    .await?;
    if crate::db::int(&row, "n")? >= OPEN_BUSINESSES_PER_ORGANISATION {
        return reject(
            ErrorCode::RateLimited,
            "this organisation has too many businesses open; finish or cancel some first",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sweep_forgets_only_what_no_rule_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(None, dir.path()).await.unwrap();
        let mut conn = db.acquire().await.unwrap();
        let now = 10_000_000;
        for (nonce, expires) in [
            ("old", now - 86_401),
            ("recent", now - 60),
            ("live", now + 300),
        ] {
            sqlx::query("INSERT INTO nonces (nonce, key_serial, expires_at, used_at, created_at) VALUES ($1, 'K1', $2, NULL, $3)")
                .bind(nonce)
                .bind(expires)
                .bind(expires - 300)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let addr = ClientAddr(IpAddr::V4(Ipv4Addr::LOCALHOST));
        record(&mut conn, &addr, "code", None, now - 2 * 86_400 - 1)
            .await
            .unwrap();
        record(&mut conn, &addr, "code", None, now - 3600)
            .await
            .unwrap();
        sweep(&mut conn, now).await.unwrap();
        let nonces: Vec<String> = sqlx::query("SELECT nonce FROM nonces ORDER BY nonce")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| crate::db::text(r, "nonce").unwrap())
            .collect();
        assert_eq!(nonces, ["live", "recent"]);
        // The caps still count the day's event.
        assert_eq!(
            count_today(&mut conn, &addr, "code", None, now)
                .await
                .unwrap(),
            1
        );
        let events = sqlx::query("SELECT COUNT(*) AS n FROM address_events")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(crate::db::int(&events, "n").unwrap(), 1);
    }

    fn from(peer: [u8; 4], forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
        let mut ext = axum::http::Extensions::new();
        ext.insert(ConnectInfo(Peer(SocketAddr::from((peer, 40000)))));
        let mut headers = axum::http::HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        ClientAddr::resolve(&ext, &headers, trusted).0
    }

    #[test]
    fn the_forwarded_address_counts_only_from_a_trusted_balancer_and_only_its_own_entry() {
        let lb = IpAddr::from([127, 0, 0, 2]);
        // Not the balancer: whatever the header says, the peer is the client.
        assert_eq!(
            from([127, 0, 0, 9], &["198.51.100.7"], &[lb]),
            IpAddr::from([127, 0, 0, 9])
        );
        // The balancer: the entry it added last, not what the client put before it.
        assert_eq!(
            from([127, 0, 0, 2], &["198.51.100.7, 203.0.113.5"], &[lb]),
            IpAddr::from([203, 0, 113, 5])
        );
        assert_eq!(
            from([127, 0, 0, 2], &["198.51.100.7", "203.0.113.6"], &[lb]),
            IpAddr::from([203, 0, 113, 6])
        );
        // Nothing usable: the balancer itself.
        assert_eq!(from([127, 0, 0, 2], &["nonsense"], &[lb]), lb);
        assert_eq!(from([127, 0, 0, 2], &[], &[lb]), lb);
    }
}

//! Queries shared by the handlers: keys, businesses, audit, SMS codes, nonces.

use crate::db::{self, instant, int, opt_int, opt_text, text};
use crate::error::{CaError, CaResult, reject};
use crate::pki::ParsedCert;
use keyward_ca_api::ids::mask_mobile;
use keyward_ca_api::{
    Business, BusinessEvent, BusinessKind, BusinessState, CertificateInfo, CodeSent, ErrorCode,
    KeyState, KeyStatus,
};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

/// How long a verification code lives.
pub const CODE_TTL_SECONDS: i64 = 10 * 60;
/// Wrong attempts before a code is void.
pub const CODE_MAX_ATTEMPTS: i64 = 5;
/// No new code for the same key and purpose before this many seconds.
pub const CODE_RESEND_COOLDOWN_SECONDS: i64 = 60;
/// Codes per key and purpose in any 24 hours.
pub const CODE_DAILY_CAP: i64 = 10;
/// How long a nonce lives.
pub const NONCE_TTL_SECONDS: i64 = 5 * 60;

/// One business event's columns (`e`), as [`group_with_events`] reads them.
macro_rules! event_columns {
    () => {
        "e.id AS event_id, e.at AS event_at, e.state AS event_state, e.note AS event_note"
    };
}

/// A certificate's columns (`c`), as `cert_from_row(row, "cert_")` reads them.
macro_rules! cert_columns {
    () => {
        concat!(
            "c.serial AS cert_serial, c.pem AS cert_pem, c.not_before AS cert_not_before, ",
            "c.not_after AS cert_not_after, c.key_serial AS cert_key_serial, c.uscc AS cert_uscc"
        )
    };
}

/// The query for the businesses a condition selects (over `b`), each with its timeline, in
/// one statement: a business's columns, then one event's (none for a business without
/// events), ordered by business and event. One round trip whatever the number of events.
macro_rules! with_events {
    ($filter:literal) => {
        concat!(
            "SELECT b.*, ",
            event_columns!(),
            " FROM businesses b ",
            "LEFT JOIN business_events e ON e.business_id = b.id WHERE ",
            $filter,
            " ORDER BY b.id, e.id"
        )
    };
}

/// Records one decision or state change; called inside the transaction that makes it.
pub async fn audit(
    conn: &mut AnyConnection,
    now: i64,
    actor: &str,
    action: &str,
    key_serial: Option<&str>,
    business_id: Option<&str>,
    detail: &str,
) -> CaResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(db::new_id("au")?)
    .bind(now)
    .bind(actor)
    .bind(action)
    .bind(key_serial.map(str::to_owned))
    .bind(business_id.map(str::to_owned))
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// An audit line written with the change it records (its business is the change's).
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub key_serial: Option<&'a str>,
    pub detail: &'a str,
}

/// What [`open_business`] creates.
#[derive(Debug, Clone, Copy)]
pub struct NewBusiness<'a> {
    pub kind: BusinessKind,
    pub state: BusinessState,
    pub key_serial: Option<&'a str>,
    pub uscc: &'a str,
    pub handler_id: Option<&'a str>,
    pub fee_fen: i64,
    pub details: &'a serde_json::Value,
    pub note: &'a str,
    /// Refuse when the key already has a business of this kind that is not completed.
    pub unless_open: bool,
}

/// Creates a business with its first timeline entry, its secret and its audit line, and
/// answers with what was written; or, for [`NewBusiness::unless_open`], the id of the
/// business of its kind the key already has open. On PostgreSQL one statement (so atomic
/// without a transaction); on SQLite up to four, in the caller's transaction. Two requests
/// racing past the check meet at the index of open businesses.
pub async fn open_business(
    conn: &mut AnyConnection,
    new: &NewBusiness<'_>,
    audit_line: &Audit<'_>,
    now: i64,
) -> CaResult<Result<keyward_ca_api::CreatedBusiness, String>> {
    let id = db::new_id("bz")?;
    let secret = crate::crypto::random_hex(32)?;
    let secret_hash = crate::crypto::sha256_hex(secret.as_bytes());
    let postgres = db::is_postgres(conn);
    if new.unless_open && !postgres {
        let open = sqlx::query(
            "SELECT id FROM businesses WHERE key_serial = $1 AND kind = $2 AND state <> $3",
        )
        .bind(new.key_serial.map(str::to_owned))
        .bind(new.kind.as_str())
        .bind(BusinessState::Completed.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = open {
            return Ok(Err(text(&row, "id")?));
        }
    }
    let sql = if postgres {
        "WITH o AS (SELECT id FROM businesses WHERE $18 AND key_serial = $4 AND kind = $2 AND state <> $19 LIMIT 1), \
         b AS (INSERT INTO businesses (id, kind, state, key_serial, uscc, handler_id, fee_fen, details, created_at, updated_at, secret_hash) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10 WHERE NOT EXISTS (SELECT 1 FROM o) RETURNING id), \
         e AS (INSERT INTO business_events (id, business_id, at, state, note) SELECT $11, id, $9, $3, $12 FROM b), \
         a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) SELECT $13, $9, $14, $15, $16, id, $17 FROM b) \
         SELECT id FROM o"
    } else {
        "INSERT INTO businesses (id, kind, state, key_serial, uscc, handler_id, fee_fen, details, created_at, updated_at, secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)"
    };
    let mut q = sqlx::query(sql)
        .bind(&id)
        .bind(new.kind.as_str())
        .bind(new.state.as_str())
        .bind(new.key_serial.map(str::to_owned))
        .bind(new.uscc)
        .bind(new.handler_id.map(str::to_owned))
        .bind(new.fee_fen)
        .bind(new.details.to_string())
        .bind(now)
        .bind(&secret_hash);
    if postgres {
        q = q
            .bind(db::new_id("ev")?)
            .bind(new.note)
            .bind(db::new_id("au")?)
            .bind(audit_line.actor)
            .bind(audit_line.action)
            .bind(audit_line.key_serial.map(str::to_owned))
            .bind(audit_line.detail)
            .bind(new.unless_open)
            .bind(BusinessState::Completed.as_str());
    }
    let open = q.fetch_optional(&mut *conn).await.map_err(|e| match &e {
        // Two requests racing past the "already under way" checks: the index decides.
        sqlx::Error::Database(d) if d.is_unique_violation() => CaError::rejected(
            ErrorCode::WrongState,
            format!(
                "a {} business for this key is already under way",
                new.kind.as_str()
            ),
        ),
        _ => CaError::from(e),
    })?;
    if let Some(row) = open {
        return Ok(Err(text(&row, "id")?));
    }
    if !postgres {
        add_event(conn, &id, now, new.state, new.note).await?;
        audit(
            conn,
            now,
            audit_line.actor,
            audit_line.action,
            audit_line.key_serial,
            Some(&id),
            audit_line.detail,
        )
        .await?;
    }
    let at = instant(now)?;
    Ok(Ok(keyward_ca_api::CreatedBusiness {
        business: Business {
            id,
            kind: new.kind,
            state: new.state,
            key_serial: new.key_serial.map(str::to_owned),
            uscc: new.uscc.to_owned(),
            fee_fen: new.fee_fen,
            created_at: at,
            updated_at: at,
            timeline: vec![BusinessEvent {
                at,
                state: new.state,
                note: new.note.to_owned(),
            }],
        },
        secret: keyward_ca_api::Secret::new(secret),
    }))
}

/// Creates a business with its first timeline entry.
#[allow(clippy::too_many_arguments)]
pub async fn create_business(
    conn: &mut AnyConnection,
    kind: BusinessKind,
    state: BusinessState,
    key_serial: Option<&str>,
    uscc: &str,
    handler_id: Option<&str>,
    fee_fen: i64,
    details: &serde_json::Value,
    now: i64,
    note: &str,
) -> CaResult<String> {
    let id = db::new_id("bz")?;
    sqlx::query(
        "INSERT INTO businesses (id, kind, state, key_serial, uscc, handler_id, fee_fen, details, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(state.as_str())
    .bind(key_serial.map(str::to_owned))
    .bind(uscc)
    .bind(handler_id.map(str::to_owned))
    .bind(fee_fen)
    .bind(details.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        // Two requests racing past the "already under way" checks: the index decides.
        sqlx::Error::Database(d) if d.is_unique_violation() => CaError::rejected(
            ErrorCode::WrongState,
            format!("a {} business for this key is already under way", kind.as_str()),
        ),
        _ => CaError::from(e),
    })?;
    add_event(conn, &id, now, state, note).await?;
    Ok(id)
}

async fn add_event(
    conn: &mut AnyConnection,
    business_id: &str,
    now: i64,
    state: BusinessState,
    note: &str,
) -> CaResult<()> {
    sqlx::query("INSERT INTO business_events (id, business_id, at, state, note) VALUES ($1, $2, $3, $4, $5)")
        .bind(db::new_id("ev")?)
        .bind(business_id)
        .bind(now)
        .bind(state.as_str())
        .bind(note)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a business to `to`, only from `from` (compare-and-set); `wrong_state` otherwise.
pub async fn transition(
    conn: &mut AnyConnection,
    business_id: &str,
    from: BusinessState,
    to: BusinessState,
    now: i64,
    note: &str,
) -> CaResult<()> {
    transition_with_details(conn, business_id, from, to, now, note, None).await
}

/// [`transition`], setting the business's details JSON in the same statement.
pub async fn transition_with_details(
    conn: &mut AnyConnection,
    business_id: &str,
    from: BusinessState,
    to: BusinessState,
    now: i64,
    note: &str,
    details: Option<&serde_json::Value>,
) -> CaResult<()> {
    let done = sqlx::query(
        "UPDATE businesses SET state = $1, updated_at = $2, details = COALESCE($5, details) WHERE id = $3 AND state = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(business_id)
    .bind(from.as_str())
    .bind(details.map(|d| d.to_string()))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return reject(
            ErrorCode::WrongState,
            format!("business {business_id} is not {}", from.as_str()),
        );
    }
    add_event(conn, business_id, now, to, note).await
}

/// [`transition_with_details`] and its audit line: on PostgreSQL one statement (the
/// audit line and the event written only if the business was in `from`), on SQLite three
/// in the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn transition_audited(
    conn: &mut AnyConnection,
    business_id: &str,
    from: BusinessState,
    to: BusinessState,
    now: i64,
    note: &str,
    details: Option<&serde_json::Value>,
    audit_line: &Audit<'_>,
) -> CaResult<()> {
    if !db::is_postgres(conn) {
        transition_with_details(&mut *conn, business_id, from, to, now, note, details).await?;
        return audit(
            conn,
            now,
            audit_line.actor,
            audit_line.action,
            audit_line.key_serial,
            Some(business_id),
            audit_line.detail,
        )
        .await;
    }
    let done = sqlx::query(
        "WITH b AS (UPDATE businesses SET state = $1, updated_at = $2, details = COALESCE($5, details) WHERE id = $3 AND state = $4 RETURNING id), \
         e AS (INSERT INTO business_events (id, business_id, at, state, note) SELECT $6, id, $2, $1, $7 FROM b), \
         a AS (INSERT INTO audit_log (id, at, actor, action, key_serial, business_id, detail) SELECT $8, $2, $9, $10, $11, id, $12 FROM b) \
         SELECT id FROM b",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(business_id)
    .bind(from.as_str())
    .bind(details.map(|d| d.to_string()))
    .bind(db::new_id("ev")?)
    .bind(note)
    .bind(db::new_id("au")?)
    .bind(audit_line.actor)
    .bind(audit_line.action)
    .bind(audit_line.key_serial.map(str::to_owned))
    .bind(audit_line.detail)
    .fetch_optional(conn)
    .await?;
    if done.is_none() {
        return reject(
            ErrorCode::WrongState,
            format!("business {business_id} is not {}", from.as_str()),
        );
    }
    Ok(())
}

/// Moves a business to `to` from whatever state it is in (refund cancellations).
pub async fn force_state(
    conn: &mut AnyConnection,
    business_id: &str,
    to: BusinessState,
    now: i64,
    note: &str,
) -> CaResult<()> {
    sqlx::query("UPDATE businesses SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(now)
        .bind(business_id)
        .execute(&mut *conn)
        .await?;
    add_event(conn, business_id, now, to, note).await
}

/// Every business of an organisation, oldest first, with timelines.
pub async fn businesses_of_organisation(
    conn: &mut AnyConnection,
    uscc: &str,
) -> CaResult<Vec<Business>> {
    let rows = sqlx::query(with_events!("b.uscc = $1"))
        .bind(uscc)
        .fetch_all(&mut *conn)
        .await?;
    Ok(group_with_events(&rows)?
        .into_iter()
        .map(|b| b.business)
        .collect())
}

/// A business row with its parsed details.
#[derive(Debug, Clone)]
pub struct BusinessRow {
    pub business: Business,
    pub details: serde_json::Value,
    pub handler_id: Option<String>,
    /// SHA-256 of the business's secret, for a business created with one.
    pub secret_hash: Option<String>,
}

impl BusinessRow {
    /// Whether `secret` is this business's secret.
    pub fn secret_matches(&self, secret: &str) -> bool {
        // Both sides are hashes of high-entropy values; comparing them says nothing of the
        // secret.
        self.secret_hash
            .as_deref()
            .is_some_and(|h| h == crate::crypto::sha256_hex(secret.as_bytes()))
    }
}

/// Gives a business its secret: returned this once, only its hash is kept.
pub async fn issue_secret(
    conn: &mut AnyConnection,
    business_id: &str,
) -> CaResult<keyward_ca_api::Secret> {
    let secret = crate::crypto::random_hex(32)?;
    sqlx::query("UPDATE businesses SET secret_hash = $1 WHERE id = $2")
        .bind(crate::crypto::sha256_hex(secret.as_bytes()))
        .bind(business_id)
        .execute(conn)
        .await?;
    Ok(keyward_ca_api::Secret::new(secret))
}

/// A business just created, with its fresh secret.
pub async fn created(
    conn: &mut AnyConnection,
    business_id: &str,
) -> CaResult<keyward_ca_api::CreatedBusiness> {
    let secret = issue_secret(&mut *conn, business_id).await?;
    let business = load_business(conn, business_id).await?.business;
    Ok(keyward_ca_api::CreatedBusiness { business, secret })
}

fn business_from_row(row: &AnyRow) -> CaResult<(Business, serde_json::Value, Option<String>)> {
    let kind = text(row, "kind")?;
    let state = text(row, "state")?;
    let details: serde_json::Value = serde_json::from_str(&text(row, "details")?)
        .map_err(|_| CaError::Corrupt("business details".into()))?;
    Ok((
        Business {
            id: text(row, "id")?,
            kind: BusinessKind::parse(&kind)
                .ok_or_else(|| CaError::Corrupt(format!("business kind {kind}")))?,
            state: BusinessState::parse(&state)
                .ok_or_else(|| CaError::Corrupt(format!("business state {state}")))?,
            key_serial: opt_text(row, "key_serial")?,
            uscc: text(row, "uscc")?,
            fee_fen: int(row, "fee_fen")?,
            created_at: instant(int(row, "created_at")?)?,
            updated_at: instant(int(row, "updated_at")?)?,
            timeline: Vec::new(),
        },
        details,
        opt_text(row, "handler_id")?,
    ))
}

/// Folds the rows of `with_events!` into businesses with their timelines, in order.
pub(crate) fn group_with_events(rows: &[AnyRow]) -> CaResult<Vec<BusinessRow>> {
    let mut out: Vec<BusinessRow> = Vec::new();
    for row in rows {
        let id = text(row, "id")?;
        if out.last().is_none_or(|b| b.business.id != id) {
            let (business, details, handler_id) = business_from_row(row)?;
            out.push(BusinessRow {
                business,
                details,
                handler_id,
                secret_hash: opt_text(row, "secret_hash")?,
            });
        }
        if opt_text(row, "event_id")?.is_none() {
            continue;
        }
        let state = text(row, "event_state")?;
        let event = BusinessEvent {
            at: instant(int(row, "event_at")?)?,
            state: BusinessState::parse(&state)
                .ok_or_else(|| CaError::Corrupt(format!("event state {state}")))?,
            note: text(row, "event_note")?,
        };
        if let Some(b) = out.last_mut() {
            b.business.timeline.push(event);
        }
    }
    Ok(out)
}

/// Loads one business with its timeline.
pub async fn load_business(conn: &mut AnyConnection, id: &str) -> CaResult<BusinessRow> {
    let rows = sqlx::query(with_events!("b.id = $1"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    group_with_events(&rows)?
        .pop()
        .ok_or_else(|| CaError::rejected(ErrorCode::BusinessNotFound, format!("no business {id}")))
}

/// A business with its timeline, its key and the certificate `$cert` names, by id.
macro_rules! business_and_key {
    ($cert:literal) => {
        concat!(
            "SELECT b.*, ",
            event_columns!(),
            ", k.key_serial AS key_key_serial, k.uscc AS key_uscc, ",
            "k.handler_id AS key_handler_id, k.state AS key_state, ",
            "k.current_cert AS key_current_cert, k.so_pin_enc AS key_so_pin_enc, ",
            "k.transport_pin_enc AS key_transport_pin_enc, k.delivered_at AS key_delivered_at, ",
            "k.activated_at AS key_activated_at, ",
            cert_columns!(),
            " FROM businesses b LEFT JOIN business_events e ON e.business_id = b.id ",
            "LEFT JOIN keys k ON k.key_serial = b.key_serial ",
            "LEFT JOIN certificates c ON c.serial = ",
            $cert,
            " WHERE b.id = $1 ORDER BY b.id, e.id"
        )
    };
}

/// Which certificate of a business's key [`load_business_and_key`] reads with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCertificate {
    /// The key's current certificate.
    Current,
    /// The certificate a renewal issued for the new pair (`details.new_certificate`).
    RenewalsNew,
}

/// Business `id` with its timeline, its key (none for a business without one) and the key's
/// certificate `which` (none when the business names none), in one statement; `None` for
/// an unknown business. For a request signed by a business's key.
pub async fn load_business_and_key(
    conn: &mut AnyConnection,
    id: &str,
    which: KeyCertificate,
) -> CaResult<Option<(BusinessRow, Option<(KeyRow, Option<CertRow>)>)>> {
    let sql = match (which, db::is_postgres(conn)) {
        (KeyCertificate::Current, _) => business_and_key!("k.current_cert"),
        (KeyCertificate::RenewalsNew, true) => {
            business_and_key!("(b.details::json ->> 'new_certificate')")
        }
        (KeyCertificate::RenewalsNew, false) => {
            business_and_key!("json_extract(b.details, '$.new_certificate')")
        }
    };
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut *conn).await?;
    let (Some(first), Some(business)) = (rows.first(), group_with_events(&rows)?.pop()) else {
        return Ok(None);
    };
    if opt_text(first, "key_key_serial")?.is_none() {
        return Ok(Some((business, None)));
    }
    let key = key_from_row(first, "key_")?;
    let cert = match opt_text(first, "cert_serial")? {
        Some(_) => Some(cert_from_row(first, "cert_")?),
        None => None,
    };
    Ok(Some((business, Some((key, cert)))))
}

/// Business `id` of kind `kind` belonging to key `serial`; any other is "not found", so one
/// key can never reach another's business by its id.
pub async fn business_of_key(
    conn: &mut AnyConnection,
    serial: &str,
    id: &str,
    kind: keyward_ca_api::BusinessKind,
) -> CaResult<BusinessRow> {
    let b = load_business(conn, id).await?;
    if b.business.kind != kind || b.business.key_serial.as_deref() != Some(serial) {
        return crate::error::reject(
            keyward_ca_api::ErrorCode::BusinessNotFound,
            format!("key {serial} has no {} {id}", kind.as_str()),
        );
    }
    Ok(b)
}

/// Every business of a key, oldest first, with timelines.
pub async fn businesses_of_key(
    conn: &mut AnyConnection,
    key_serial: &str,
) -> CaResult<Vec<Business>> {
    let rows = sqlx::query(with_events!("b.key_serial = $1"))
        .bind(key_serial)
        .fetch_all(&mut *conn)
        .await?;
    Ok(group_with_events(&rows)?
        .into_iter()
        .map(|b| b.business)
        .collect())
}

/// A key row.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_serial: String,
    pub uscc: String,
    pub handler_id: String,
    pub state: KeyState,
    pub current_cert: String,
    pub so_pin_enc: String,
    pub transport_pin_enc: Option<String>,
    pub delivered_at: i64,
    pub activated_at: Option<i64>,
}

/// Loads a key, or `key_not_found`.
pub async fn load_key(conn: &mut AnyConnection, key_serial: &str) -> CaResult<KeyRow> {
    let row = sqlx::query("SELECT * FROM keys WHERE key_serial = $1")
        .bind(key_serial)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| CaError::rejected(ErrorCode::KeyNotFound, format!("no key {key_serial}")))?;
    key_from_row(&row, "")
}

fn key_from_row(row: &AnyRow, prefix: &str) -> CaResult<KeyRow> {
    let col = |name: &str| format!("{prefix}{name}");
    let state = text(row, &col("state"))?;
    Ok(KeyRow {
        key_serial: text(row, &col("key_serial"))?,
        uscc: text(row, &col("uscc"))?,
        handler_id: text(row, &col("handler_id"))?,
        state: match state.as_str() {
            "awaiting_activation" => KeyState::AwaitingActivation,
            "active" => KeyState::Active,
            other => return Err(CaError::Corrupt(format!("key state {other}"))),
        },
        current_cert: text(row, &col("current_cert"))?,
        so_pin_enc: text(row, &col("so_pin_enc"))?,
        transport_pin_enc: opt_text(row, &col("transport_pin_enc"))?,
        delivered_at: int(row, &col("delivered_at"))?,
        activated_at: opt_int(row, &col("activated_at"))?,
    })
}

/// A key and its current certificate in one statement, or nothing for an unknown key.
pub async fn load_key_and_current(
    conn: &mut AnyConnection,
    key_serial: &str,
) -> CaResult<Option<(KeyRow, CertRow)>> {
    let row = sqlx::query(concat!(
        "SELECT k.*, ",
        cert_columns!(),
        " FROM keys k LEFT JOIN certificates c ON c.serial = k.current_cert ",
        "WHERE k.key_serial = $1"
    ))
    .bind(key_serial)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key = key_from_row(&row, "")?;
    if opt_text(&row, "cert_serial")?.is_none() {
        return Err(CaError::Corrupt(format!(
            "certificate {} missing",
            key.current_cert
        )));
    }
    let cert = cert_from_row(&row, "cert_")?;
    Ok(Some((key, cert)))
}

/// A stored certificate.
#[derive(Debug, Clone)]
pub struct CertRow {
    pub info: CertificateInfo,
    pub parsed: ParsedCert,
    pub key_serial: Option<String>,
    pub uscc: String,
}

/// Loads a certificate by serial.
pub async fn load_cert(conn: &mut AnyConnection, serial: &str) -> CaResult<CertRow> {
    let row = sqlx::query("SELECT * FROM certificates WHERE serial = $1")
        .bind(serial)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| CaError::Corrupt(format!("certificate {serial} missing")))?;
    cert_from_row(&row, "")
}

/// A certificate from a row whose certificate columns are named with `prefix`.
fn cert_from_row(row: &AnyRow, prefix: &str) -> CaResult<CertRow> {
    let col = |name: &str| format!("{prefix}{name}");
    let pem = text(row, &col("pem"))?;
    let parsed = ParsedCert::from_pem(&pem)?;
    Ok(CertRow {
        info: CertificateInfo {
            serial: text(row, &col("serial"))?,
            not_before: instant(int(row, &col("not_before"))?)?,
            not_after: instant(int(row, &col("not_after"))?)?,
            pem,
        },
        parsed,
        key_serial: opt_text(row, &col("key_serial"))?,
        uscc: text(row, &col("uscc"))?,
    })
}

/// Stores an issued certificate.
pub async fn insert_cert(
    conn: &mut AnyConnection,
    cert: &crate::pki::IssuedCert,
    uscc: &str,
    key_serial: Option<&str>,
    now: i64,
) -> CaResult<()> {
    sqlx::query(
        "INSERT INTO certificates (serial, uscc, key_serial, pem, spki_sha256, not_before, not_after, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&cert.serial)
    .bind(uscc)
    .bind(key_serial.map(str::to_owned))
    .bind(&cert.pem)
    .bind(&cert.spki_sha256)
    .bind(cert.not_before.unix_timestamp())
    .bind(cert.not_after.unix_timestamp())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The public view of a key.
pub async fn key_status(conn: &mut AnyConnection, key_serial: &str) -> CaResult<KeyStatus> {
    let key = load_key(&mut *conn, key_serial).await?;
    let cert = load_cert(&mut *conn, &key.current_cert).await?;
    let org = sqlx::query("SELECT name FROM organisations WHERE uscc = $1")
        .bind(&key.uscc)
        .fetch_one(&mut *conn)
        .await?;
    Ok(KeyStatus {
        key_serial: key.key_serial,
        state: key.state,
        organisation_name: text(&org, "name")?,
        uscc: key.uscc,
        certificate: cert.info,
        delivered_at: instant(key.delivered_at)?,
        activated_at: key.activated_at.map(instant).transpose()?,
    })
}

/// Makes `handler_id` the key's handler of record: only for a business a reviewer approved
/// (or the station completed).
pub async fn set_handler_of_record(
    conn: &mut AnyConnection,
    key_serial: &str,
    handler_id: &str,
    now: i64,
) -> CaResult<()> {
    sqlx::query("UPDATE keys SET handler_id = $1, updated_at = $2 WHERE key_serial = $3")
        .bind(handler_id)
        .bind(now)
        .bind(key_serial)
        .execute(conn)
        .await?;
    Ok(())
}

/// The handler's phone number.
pub async fn handler_phone(conn: &mut AnyConnection, handler_id: &str) -> CaResult<String> {
    let row = sqlx::query("SELECT phone FROM handlers WHERE id = $1")
        .bind(handler_id)
        .fetch_one(conn)
        .await?;
    text(&row, "phone")
}

fn code_hash(key_serial: &str, purpose: &str, code: &str) -> String {
    let mut msg = Vec::new();
    for part in [key_serial, purpose, code] {
        msg.extend_from_slice(part.as_bytes());
        msg.push(0);
    }
    crate::crypto::sha256_hex(&msg)
}

/// What a verification code is sent for and how it is bound.
#[derive(Debug)]
pub struct CodeRequest<'a> {
    pub key_serial: &'a str,
    pub purpose: &'a str,
    /// The phone of record the code goes to.
    pub phone: &'a str,
    /// A business-bound code (unlock): only that business's secret holder redeems it, so
    /// it needs no ticket; a new one voids the older codes of the business.
    pub business_id: Option<&'a str>,
    /// Who asked, for the per-address caps and cool-down (a public request), or `None`
    /// when the CA sends on its own (an approval).
    pub address: Option<&'a crate::limits::ClientAddr>,
    /// The per-address caps in force.
    pub caps: &'a crate::limits::AddressCaps,
}

/// Sends a fresh verification code. A code not bound to a business comes with a ticket
/// that must be presented with it, so nobody but the asker can guess against it, and
/// it leaves other live codes alone: a stranger asking for codes cannot void the
/// handler's. Honours the cool-down (per business, or per key and address), the daily cap
/// per key and purpose, and for public requests the caps per address. The code appears
/// only in the SMS (the outbox).
pub async fn send_code(
    conn: &mut AnyConnection,
    req: &CodeRequest<'_>,
    text_for: impl Fn(&str, &str) -> String,
    now: i64,
) -> CaResult<CodeSent> {
    let key_serial = req.key_serial;
    let purpose = req.purpose;
    let address = req.address.map(crate::limits::ClientAddr::text);
    // Requests for one key's codes racing on several instances pass the cool-down and the
    // caps one at a time. The address's lock first, then the key's, as everywhere.
    if let Some(addr) = &address {
        db::lock(&mut *conn, &format!("address:{addr}")).await?;
    }
    db::lock(&mut *conn, &format!("codes:{key_serial}")).await?;
    let day = sqlx::query(
        "SELECT COUNT(*) AS n FROM sms_codes WHERE key_serial = $1 AND purpose = $2 AND created_at > $3",
    )
    .bind(key_serial)
    .bind(purpose)
    .bind(now - 86_400)
    .fetch_one(&mut *conn)
    .await?;
    let last = sqlx::query(
        "SELECT MAX(created_at) AS last FROM sms_codes WHERE key_serial = $1 AND purpose = $2 AND (($3 <> '' AND business_id = $3) OR ($3 = '' AND business_id IS NULL AND address = $4))",
    )
    .bind(key_serial)
    .bind(purpose)
    .bind(req.business_id.unwrap_or_default())
    .bind(address.clone().unwrap_or_default())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(last) = opt_int(&last, "last")?
        && now < last + CODE_RESEND_COOLDOWN_SECONDS
    {
        return reject(
            ErrorCode::CodeCooldown,
            format!(
                "a code was sent moments ago; ask again in {} s",
                last + CODE_RESEND_COOLDOWN_SECONDS - now
            ),
        );
    }
    if int(&day, "n")? >= CODE_DAILY_CAP {
        return reject(
            ErrorCode::CodeDailyLimit,
            "today's codes for this key are used up; try tomorrow",
        );
    }
    if let Some(addr) = req.address {
        let action = format!("code:{purpose}");
        if crate::limits::count_today(&mut *conn, addr, &action, Some(key_serial), now).await?
            >= req.caps.codes_per_key
            || crate::limits::count_today(&mut *conn, addr, &action, None, now).await?
                >= req.caps.codes
        {
            return reject(
                ErrorCode::CodeDailyLimit,
                "today's codes asked from this address are used up; try tomorrow",
            );
        }
        crate::limits::record(&mut *conn, addr, &action, Some(key_serial), now).await?;
    }
    if let Some(business) = req.business_id {
        sqlx::query("UPDATE sms_codes SET void = 1 WHERE business_id = $1 AND void = 0")
            .bind(business)
            .execute(&mut *conn)
            .await?;
    }
    let code = crate::crypto::random_digits(6)?;
    let reference = crate::crypto::random_digits(2)?;
    let ticket = match req.business_id {
        Some(_) => None,
        None => Some(keyward_ca_api::Secret::new(crate::crypto::random_hex(24)?)),
    };
    sqlx::query(
        "INSERT INTO sms_codes (id, key_serial, purpose, code_hash, expires_at, attempts, used_at, void, created_at, business_id, ticket_hash, reference, address) VALUES ($1, $2, $3, $4, $5, 0, NULL, 0, $6, $7, $8, $9, $10)",
    )
    .bind(db::new_id("sc")?)
    .bind(key_serial)
    .bind(purpose)
    .bind(code_hash(key_serial, purpose, &code))
    .bind(now + CODE_TTL_SECONDS)
    .bind(now)
    .bind(req.business_id.map(str::to_owned))
    .bind(
        ticket
            .as_ref()
            .map(|t| crate::crypto::sha256_hex(t.expose().as_bytes())),
    )
    .bind(reference.as_str())
    .bind(address)
    .execute(&mut *conn)
    .await?;
    send_sms(
        conn,
        req.phone,
        Some(key_serial),
        purpose,
        &text_for(&code, &reference),
        now,
    )
    .await?;
    Ok(CodeSent {
        phone_masked: mask_mobile(req.phone),
        reference: reference.to_string(),
        ticket,
        expires_at: instant(now + CODE_TTL_SECONDS)?,
        resend_after: instant(now + CODE_RESEND_COOLDOWN_SECONDS)?,
    })
}

/// Puts a text message in the outbox (the SMS gateway's queue).
pub async fn send_sms(
    conn: &mut AnyConnection,
    phone: &str,
    key_serial: Option<&str>,
    purpose: &str,
    text: &str,
    now: i64,
) -> CaResult<()> {
    sqlx::query("INSERT INTO sms_outbox (id, phone, key_serial, purpose, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(db::new_id("sm")?)
        .bind(phone)
        .bind(key_serial.map(str::to_owned))
        .bind(purpose)
        .bind(text)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Which code a redemption is for: the one bound to a business, or the one sent under a
/// ticket.
#[derive(Debug, Clone, Copy)]
pub enum CodeBinding<'a> {
    Business(&'a str),
    Ticket(&'a str),
}

/// Checks a code. `Ok(Ok(()))` marks it used; `Ok(Err(code))` is a refusal whose counter
/// update the caller must still commit. Wrong guesses count against the one code they were
/// made for, which only its business's secret holder or its ticket's holder can reach.
pub async fn redeem_code(
    conn: &mut AnyConnection,
    key_serial: &str,
    purpose: &str,
    binding: CodeBinding<'_>,
    code: &str,
    now: i64,
) -> CaResult<Result<(), ErrorCode>> {
    let (sql, bound) = match binding {
        CodeBinding::Business(id) => (
            "SELECT id, code_hash, expires_at, attempts FROM sms_codes WHERE key_serial = $1 AND purpose = $2 AND business_id = $3 AND void = 0 AND used_at IS NULL ORDER BY id DESC",
            id.to_owned(),
        ),
        CodeBinding::Ticket(t) => (
            "SELECT id, code_hash, expires_at, attempts FROM sms_codes WHERE key_serial = $1 AND purpose = $2 AND ticket_hash = $3 AND void = 0 AND used_at IS NULL ORDER BY id DESC",
            crate::crypto::sha256_hex(t.as_bytes()),
        ),
    };
    let row = sqlx::query(sql)
        .bind(key_serial)
        .bind(purpose)
        .bind(bound)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Err(ErrorCode::CodeExpired));
    };
    let id = text(&row, "id")?;
    if now >= int(&row, "expires_at")? {
        return Ok(Err(ErrorCode::CodeExpired));
    }
    let attempts = int(&row, "attempts")?;
    if attempts >= CODE_MAX_ATTEMPTS {
        return Ok(Err(ErrorCode::CodeAttemptsExhausted));
    }
    if code_hash(key_serial, purpose, code) != text(&row, "code_hash")? {
        // Counted in the database, so concurrent wrong guesses all count.
        sqlx::query(
            "UPDATE sms_codes SET attempts = attempts + 1, void = CASE WHEN attempts + 1 >= $1 THEN 1 ELSE 0 END WHERE id = $2",
        )
        .bind(CODE_MAX_ATTEMPTS)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query("SELECT void FROM sms_codes WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(Err(if int(&row, "void")? == 1 {
            ErrorCode::CodeAttemptsExhausted
        } else {
            ErrorCode::CodeInvalid
        }));
    }
    // Single use even when two right answers race: only one update finds it unused.
    let done = sqlx::query(
        "UPDATE sms_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND void = 0",
    )
    .bind(now)
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(Err(ErrorCode::CodeExpired));
    }
    Ok(Ok(()))
}

/// Whether a code for `purpose` was ever redeemed for this key.
pub async fn code_was_redeemed(
    conn: &mut AnyConnection,
    key_serial: &str,
    purpose: &str,
) -> CaResult<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM sms_codes WHERE key_serial = $1 AND purpose = $2 AND used_at IS NOT NULL")
        .bind(key_serial)
        .bind(purpose)
        .fetch_one(conn)
        .await?;
    Ok(int(&row, "n")? > 0)
}

/// Issues a nonce for a key: the one `POST /v1/nonces` grants. A key has a few unused
/// nonces outstanding at most; asking for more drops the oldest. On PostgreSQL one
/// statement (a new nonce that would itself be among the dropped is not written); on
/// SQLite two, in the caller's transaction.
pub async fn new_nonce(
    conn: &mut AnyConnection,
    key_serial: &str,
    now: i64,
) -> CaResult<(String, i64)> {
    let (nonce, expires) = fresh_nonce(now)?;
    // (Nonces long expired are swept by the instance's heartbeat, not here: see
    // `limits::sweep`.)
    if db::is_postgres(conn) {
        sqlx::query(
            "WITH keep AS (SELECT nonce FROM (SELECT nonce, created_at FROM nonces WHERE key_serial = $2 AND used_at IS NULL UNION ALL SELECT $1, $4) k ORDER BY created_at DESC, nonce DESC LIMIT $5), \
             i AS (INSERT INTO nonces (nonce, key_serial, expires_at, used_at, created_at) SELECT $1, $2, $3, NULL, $4 WHERE $1 IN (SELECT nonce FROM keep)) \
             DELETE FROM nonces WHERE key_serial = $2 AND used_at IS NULL AND nonce NOT IN (SELECT nonce FROM keep)",
        )
        .bind(&nonce)
        .bind(key_serial)
        .bind(expires)
        .bind(now)
        .bind(crate::limits::NONCES_PER_KEY)
        .execute(conn)
        .await?;
        return Ok((nonce, expires));
    }
    insert_nonce(&mut *conn, key_serial, (&nonce, expires), now).await?;
    sqlx::query(
        "DELETE FROM nonces WHERE key_serial = $1 AND used_at IS NULL AND nonce NOT IN (SELECT nonce FROM nonces WHERE key_serial = $1 AND used_at IS NULL ORDER BY created_at DESC, nonce DESC LIMIT $2)",
    )
    .bind(key_serial)
    .bind(crate::limits::NONCES_PER_KEY)
    .execute(conn)
    .await?;
    Ok((nonce, expires))
}

/// A new nonce and when it expires. Time first (16 hex digits of nanoseconds), so "the
/// oldest" is exact within a second too; then 24 random bytes, which are what makes it
/// unguessable.
fn fresh_nonce(now: i64) -> CaResult<(String, i64)> {
    let nanos = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0);
    let nonce = format!("{nanos:016x}{}", crate::crypto::random_hex(24)?);
    Ok((nonce, now + NONCE_TTL_SECONDS))
}

async fn insert_nonce(
    conn: &mut AnyConnection,
    key_serial: &str,
    (nonce, expires): (&str, i64),
    now: i64,
) -> CaResult<()> {
    sqlx::query("INSERT INTO nonces (nonce, key_serial, expires_at, used_at, created_at) VALUES ($1, $2, $3, NULL, $4)")
        .bind(nonce)
        .bind(key_serial)
        .bind(expires)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends a nonce for a key and issues the next one for the same key, atomically and
/// committed before any handler runs: a request the handler refuses has still used its
/// nonce, and the next nonce costs no commit of its own. One spent, one issued: the key's
/// unused nonces are no more than before, so there is nothing to drop. Returns the next
/// nonce.
pub async fn spend_nonce(
    conn: &mut AnyConnection,
    now: i64,
    key_serial: &str,
    nonce: &str,
) -> CaResult<String> {
    use sqlx::Connection;
    let (next, expires) = fresh_nonce(now)?;
    let spent = if db::is_postgres(conn) {
        // One statement, so one round trip, where the engine allows a change in a `WITH`.
        sqlx::query(
            "WITH spent AS (UPDATE nonces SET used_at = $1 WHERE nonce = $2 AND key_serial = $3 AND used_at IS NULL AND expires_at > $1 RETURNING key_serial) \
             INSERT INTO nonces (nonce, key_serial, expires_at, used_at, created_at) SELECT $4, key_serial, $5, NULL, $1 FROM spent",
        )
        .bind(now)
        .bind(nonce)
        .bind(key_serial)
        .bind(&next)
        .bind(expires)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1
    } else {
        let mut tx = conn.begin().await?;
        let done = sqlx::query(
            "UPDATE nonces SET used_at = $1 WHERE nonce = $2 AND key_serial = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(nonce)
        .bind(key_serial)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            insert_nonce(&mut tx, key_serial, (&next, expires), now).await?;
            tx.commit().await?;
            true
        } else {
            false
        }
    };
    if spent {
        return Ok(next);
    }
    // Refused, and nothing written: which way, for the client's message only.
    let row = sqlx::query("SELECT used_at FROM nonces WHERE nonce = $1 AND key_serial = $2")
        .bind(nonce)
        .bind(key_serial)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) if opt_int(&r, "used_at")?.is_some() => reject(
            ErrorCode::NonceReplayed,
            "this nonce was already used; ask for a new one",
        ),
        _ => reject(
            ErrorCode::NonceInvalid,
            "unknown or expired nonce; ask for a new one",
        ),
    }
}

/// A handler row.
pub async fn load_handler(conn: &mut AnyConnection, id: &str) -> CaResult<keyward_ca_api::Handler> {
    let row = sqlx::query("SELECT name, id_number, phone FROM handlers WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(keyward_ca_api::Handler {
        name: text(&row, "name")?,
        id_number: text(&row, "id_number")?,
        phone: text(&row, "phone")?,
    })
}

/// Inserts a handler for an organisation and returns its id.
pub async fn insert_handler(
    conn: &mut AnyConnection,
    uscc: &str,
    h: &keyward_ca_api::Handler,
    now: i64,
) -> CaResult<String> {
    let id = db::new_id("hd")?;
    sqlx::query("INSERT INTO handlers (id, uscc, name, id_number, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(uscc)
        .bind(&h.name)
        .bind(&h.id_number)
        .bind(&h.phone)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(id)
}

/// The attachments of a business.
pub async fn attachments_of(
    conn: &mut AnyConnection,
    business_id: &str,
) -> CaResult<Vec<keyward_ca_api::Attachment>> {
    let rows = sqlx::query("SELECT * FROM attachments WHERE business_id = $1 ORDER BY id")
        .bind(business_id)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let kind = text(r, "kind")?;
            Ok(keyward_ca_api::Attachment {
                id: text(r, "id")?,
                business_id: text(r, "business_id")?,
                kind: keyward_ca_api::AttachmentKind::parse(&kind)
                    .ok_or_else(|| CaError::Corrupt(format!("attachment kind {kind}")))?,
                content_type: text(r, "content_type")?,
                sha256: text(r, "sha256")?,
                size: int(r, "size")?,
            })
        })
        .collect()
}

/// The organisation's name.
pub async fn organisation_name(conn: &mut AnyConnection, uscc: &str) -> CaResult<String> {
    let row = sqlx::query("SELECT name FROM organisations WHERE uscc = $1")
        .bind(uscc)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| {
            CaError::rejected(
                ErrorCode::OrganisationNotFound,
                format!("no organisation {uscc}"),
            )
        })?;
    text(&row, "name")
}

//! Staff accounts: every staff action is taken under a named account with a role, whose
//! bearer token is shown once when the account is made and kept only as a hash, with an
//! expiry, revocable. The audit log names the account that acted.
//!
//! A data directory used alone (`serve --data-dir DIR`) gets a bootstrap account `admin`
//! whose token is the file `DIR/admin.token`, as the demo and the tests use it; revoking
//! `admin` ends it, and it is not made again.

use keyward_ca_api::{ErrorCode, StaffRole};
use sqlx::AnyConnection;

use crate::db::{self, int, opt_int, text};
use crate::error::{CaError, CaResult, reject};

/// Prefix of every staff token, so one is recognised in a config file or a log scan.
pub const TOKEN_PREFIX: &str = "kws_";
/// The bootstrap account's name.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// Default lifetime of a new account's token.
pub const DEFAULT_DAYS: i64 = 90;

/// A staff account that authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAccount {
    pub id: String,
    pub name: String,
    pub role: StaffRole,
}

impl StaffAccount {
    /// How the audit log names it.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.name)
    }

    /// Whether the role may act where `roles` are allowed (`admin` always may).
    pub fn may(&self, roles: &[StaffRole]) -> bool {
        self.role == StaffRole::Admin || roles.contains(&self.role)
    }
}

/// One account as `staff list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaffListing {
    pub name: String,
    pub role: StaffRole,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn token_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

fn check_name(name: &str) -> CaResult<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !ok {
        return reject(
            ErrorCode::InvalidRequest,
            "a staff name is 1 to 64 letters, digits, '-', '_', '.' or '@'",
        );
    }
    Ok(())
}

/// Makes an account and returns its token (shown once; only its hash is kept).
pub async fn add(
    conn: &mut AnyConnection,
    name: &str,
    role: StaffRole,
    days: Option<i64>,
    now: i64,
) -> CaResult<zeroize::Zeroizing<String>> {
    check_name(name)?;
    let token =
        zeroize::Zeroizing::new(format!("{TOKEN_PREFIX}{}", crate::crypto::random_hex(32)?));
    insert(
        conn,
        name,
        role,
        &token,
        days.map(|d| now + d * 86_400),
        now,
    )
    .await?;
    Ok(token)
}

async fn insert(
    conn: &mut AnyConnection,
    name: &str,
    role: StaffRole,
    token: &str,
    expires_at: Option<i64>,
    now: i64,
) -> CaResult<()> {
    sqlx::query("INSERT INTO staff (id, name, role, token_hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)")
        .bind(db::new_id("st")?)
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash(token))
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => CaError::rejected(
                ErrorCode::InvalidRequest,
                format!("a staff account named {name} exists already"),
            ),
            _ => CaError::from(e),
        })?;
    Ok(())
}

/// Revokes an account; its token stops working at once.
pub async fn revoke(conn: &mut AnyConnection, name: &str, now: i64) -> CaResult<()> {
    let done =
        sqlx::query("UPDATE staff SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(name)
            .execute(conn)
            .await?;
    if done.rows_affected() != 1 {
        return reject(
            ErrorCode::InvalidRequest,
            format!("no active staff account named {name}"),
        );
    }
    Ok(())
}

/// Every account, by name.
pub async fn list(conn: &mut AnyConnection) -> CaResult<Vec<StaffListing>> {
    let rows = sqlx::query("SELECT * FROM staff ORDER BY name")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let role = text(r, "role")?;
            Ok(StaffListing {
                name: text(r, "name")?,
                role: StaffRole::parse(&role)
                    .ok_or_else(|| CaError::Corrupt(format!("staff role {role}")))?,
                created_at: int(r, "created_at")?,
                expires_at: opt_int(r, "expires_at")?,
                revoked_at: opt_int(r, "revoked_at")?,
            })
        })
        .collect()
}

/// The account a bearer token belongs to, if it is valid now.
pub async fn authenticate(
    conn: &mut AnyConnection,
    token: &str,
    now: i64,
) -> CaResult<StaffAccount> {
    let refused = || {
        CaError::rejected(
            ErrorCode::Unauthorized,
            "this endpoint needs a valid staff token",
        )
    };
    if !token.starts_with(TOKEN_PREFIX) && token.len() != 64 {
        return Err(refused());
    }
    let row = sqlx::query("SELECT * FROM staff WHERE token_hash = $1")
        .bind(token_hash(token))
        .fetch_optional(conn)
        .await?
        .ok_or_else(refused)?;
    if opt_int(&row, "revoked_at")?.is_some() {
        return Err(refused());
    }
    if opt_int(&row, "expires_at")?.is_some_and(|at| at <= now) {
        return Err(CaError::rejected(
            ErrorCode::Unauthorized,
            "this staff token has expired; ask an admin for a new one",
        ));
    }
    let role = text(&row, "role")?;
    Ok(StaffAccount {
        id: text(&row, "id")?,
        name: text(&row, "name")?,
        role: StaffRole::parse(&role)
            .ok_or_else(|| CaError::Corrupt(format!("staff role {role}")))?,
    })
}

/// Makes the bootstrap `admin` account for the token in the data directory, unless an
/// account of that name exists (revoked or not).
pub async fn bootstrap(conn: &mut AnyConnection, token: &str, now: i64) -> CaResult<()> {
    let exists = sqlx::query("SELECT id FROM staff WHERE name = $1")
        .bind(BOOTSTRAP_ADMIN)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        match insert(conn, BOOTSTRAP_ADMIN, StaffRole::Admin, token, None, now).await {
            Ok(()) => tracing::info!("bootstrap admin account made from admin.token"),
            // Another instance starting at the same moment made it.
            Err(CaError::Rejected { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

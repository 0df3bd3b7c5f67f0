//! The portal's routes: its pages, the SDK's files, and a JSON API whose refusals carry a
//! stable `code`, a sentence in Chinese for the supplier, and the `rule` that failed when
//! keyward-verify refused.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Portal;
use crate::store::{Bid, Binding, Refused, Session};

const COOKIE: &str = "kw_portal";

const PORTAL_HTML: &str = include_str!("../web/portal.html");
const PORTAL_JS: &str = include_str!("../web/portal.js");
const HOSTILE_HTML: &str = include_str!("../web/hostile.html");
const HOSTILE_JS: &str = include_str!("../web/hostile.js");
const STYLE: &str = include_str!("../web/style.css");

type Shared = Arc<Portal>;

pub(crate) fn router(portal: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/portal.js", get(|| async { script(PORTAL_JS) }))
        .route("/hostile.js", get(|| async { script(HOSTILE_JS) }))
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route("/sdk/{file}", get(sdk_file))
        .route("/api/accounts", post(register))
        .route("/api/login/password", post(login_password))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/challenge", post(challenge))
        .route("/api/bind", post(bind))
        .route("/api/login/key", post(login_key))
        .route("/api/bids/draft", post(bid_draft))
        .route("/api/bids", post(bid_submit).get(bid_list))
        .with_state(portal)
}

/// A refusal as the page receives it.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    rule: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            rule: None,
        }
    }

    fn verify(e: &keyward_verify::VerifyError) -> Self {
        tracing::info!(rule = %e.rule, detail = %e.detail, "keyward-verify refused");
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "verification_failed",
            message: format!(
                "证书验证未通过（{}）。请重新操作；如仍失败，请联系平台客服。",
                e.rule
            ),
            rule: Some(e.rule.as_str()),
        }
    }

    fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "平台暂时无法处理，请稍后再试。",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message, "rule": self.rule });
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn script(body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
}

/// The host the request names, without its port.
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(n, _)| n)
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn hostile(p: &Portal, headers: &HeaderMap) -> bool {
    let host = host_of(headers);
    p.config.hostile_hosts.contains(&host)
}

fn page(p: &Portal, html: &str) -> Response {
    let bridge = p.config.bridge_url.trim_end_matches('/');
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' {bridge}; frame-ancestors 'none'"
    );
    let body = html.replace("{{BRIDGE_URL}}", &p.config.bridge_url);
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

async fn index(State(p): State<Shared>, headers: HeaderMap) -> Response {
    if hostile(&p, &headers) {
        page(&p, HOSTILE_HTML)
    } else {
        page(&p, PORTAL_HTML)
    }
}

async fn sdk_file(State(p): State<Shared>, Path(file): Path<String>) -> Response {
    let ok = file.ends_with(".js")
        && file.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
        && !file.starts_with('.');
    if !ok {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(p.config.sdk_dir.join(&file)).await {
        Ok(body) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The session the cookie names, if it exists.
fn session(p: &Portal, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())?;
    let s = p.store.session(&id)?;
    Some((id, s))
}

fn cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("kw_portal=; Path=/"))
}

/// The API answers only on the portal's own host.
fn api_host(p: &Portal, headers: &HeaderMap) -> Result<(), ApiError> {
    if hostile(p, headers) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这个接口。",
        ));
    }
    Ok(())
}

fn logged_in(p: &Portal, headers: &HeaderMap) -> Result<(String, Session, String), ApiError> {
    api_host(p, headers)?;
    let (id, s) = session(p, headers).ok_or_else(not_logged_in)?;
    let account = s.account.clone().ok_or_else(not_logged_in)?;
    Ok((id, s, account))
}

fn not_logged_in() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "not_logged_in", "请先登录。")
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::AccountExists => {
            ApiError::new(StatusCode::CONFLICT, "account_exists", "该账户名已被注册。")
        }
        Refused::BadPassword => {
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_password", "账户或密码错误。")
        }
        Refused::AlreadyBound => ApiError::new(
            StatusCode::CONFLICT,
            "already_bound",
            "此账户已绑定证书：一个供应商账户只能绑定一张证书。",
        ),
        Refused::CertificateTaken => ApiError::new(
            StatusCode::CONFLICT,
            "certificate_taken",
            "该证书已绑定其他供应商账户。",
        ),
        Refused::NoSuchAccount => not_logged_in(),
        Refused::Unavailable => ApiError::unavailable(),
    }
}

#[derive(Deserialize)]
struct Credentials {
    account: String,
    password: String,
}

fn check_account_name(name: &str) -> Result<(), ApiError> {
    let ok = (3..=32).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_account",
            "账户名为 3 到 32 个字母、数字或 _ - .",
        ))
    }
}

async fn register(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(c): axum::Json<Credentials>,
) -> ApiResult {
    api_host(&p, &headers)?;
    check_account_name(&c.account)?;
    if c.password.chars().count() < 8 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "weak_password",
            "密码至少 8 位。",
        ));
    }
    let (pw, name, store) = (c.password, c.account.clone(), Arc::clone(&p));
    tokio::task::spawn_blocking(move || store.store.register(&name, &pw))
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(refused)?;
    tracing::info!(account = %c.account, "supplier account registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "account": c.account })),
    )
        .into_response())
}

/// A new session for `account` (the old one ends: no session survives a login).
fn start_session(p: &Portal, old: Option<&str>, account: &str) -> ApiResult {
    if let Some(id) = old {
        p.store.end_session(id);
    }
    let id = p
        .store
        .new_session(Session {
            account: Some(account.to_owned()),
            ..Session::default()
        })
        .map_err(refused)?;
    let mut r = axum::Json(json!({ "account": account })).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(&id));
    Ok(r)
}

async fn login_password(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(c): axum::Json<Credentials>,
) -> ApiResult {
    api_host(&p, &headers)?;
    let (pw, name, store) = (c.password, c.account.clone(), Arc::clone(&p));
    tokio::task::spawn_blocking(move || store.store.check_password(&name, &pw))
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(refused)?;
    let old = session(&p, &headers).map(|(id, _)| id);
    start_session(&p, old.as_deref(), &c.account)
}

async fn logout(State(p): State<Shared>, headers: HeaderMap) -> ApiResult {
    api_host(&p, &headers)?;
    if let Some((id, _)) = session(&p, &headers) {
        p.store.end_session(&id);
    }
    let mut r = axum::Json(json!({})).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "kw_portal=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(r)
}

async fn me(State(p): State<Shared>, headers: HeaderMap) -> ApiResult {
    let (_, _, account) = logged_in(&p, &headers)?;
    Ok(axum::Json(json!({
        "account": account,
        "binding": p.store.binding(&account),
    }))
    .into_response())
}

/// A fresh nonce for this browser session (a session is made for a browser that has none):
/// the one its next token must answer.
async fn challenge(State(p): State<Shared>, headers: HeaderMap) -> ApiResult {
    api_host(&p, &headers)?;
    let c = p
        .nonces
        .issue(p.now())
        .map_err(|_| ApiError::unavailable())?;
    let nonce = c.nonce.clone();
    let mut r = axum::Json(json!({ "nonce": c.nonce })).into_response();
    match session(&p, &headers) {
        Some((id, _)) => p.store.update(&id, |s| s.nonce = Some(nonce)),
        None => {
            let id = p
                .store
                .new_session(Session {
                    nonce: Some(nonce),
                    ..Session::default()
                })
                .map_err(refused)?;
            r.headers_mut().insert(header::SET_COOKIE, cookie(&id));
        }
    }
    Ok(r)
}

#[derive(Deserialize)]
struct TokenBody {
    token: Value,
}

/// Checks the token against the nonce this session was given, the portal's own origin and
/// its roots. The session keeps its nonce: the verifier's store spends it, so the same token
/// again is `nonce_reused`.
fn verify_token(
    p: &Portal,
    s: &Session,
    token: &Value,
) -> Result<keyward_verify::Identity, ApiError> {
    let nonce = s.nonce.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_challenge",
            "请刷新页面后重试（没有待验证的挑战码）。",
        )
    })?;
    let text = serde_json::to_string(token).map_err(|_| ApiError::unavailable())?;
    p.verifier
        .verify(&text, nonce, &p.nonces, p.now())
        .map_err(|e| ApiError::verify(&e))
}

async fn bind(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(b): axum::Json<TokenBody>,
) -> ApiResult {
    let (_, s, account) = logged_in(&p, &headers)?;
    let id = verify_token(&p, &s, &b.token)?;
    let binding = Binding {
        issuer: id.issuer.clone(),
        serial: id.serial.clone(),
        credit_code: id.credit_code.clone(),
        organisation: id.organisation.clone(),
        certificate: STANDARD.encode(&id.certificate_der),
        bound_at: p.now(),
    };
    p.store.bind(&account, binding.clone()).map_err(refused)?;
    tracing::info!(%account, serial = %binding.serial, "certificate bound");
    Ok(axum::Json(json!({ "binding": binding })).into_response())
}

async fn login_key(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(b): axum::Json<TokenBody>,
) -> ApiResult {
    api_host(&p, &headers)?;
    let (sid, s) = session(&p, &headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_challenge",
            "请刷新页面后重试（没有待验证的挑战码）。",
        )
    })?;
    let id = verify_token(&p, &s, &b.token)?;
    let account = p.store.account_of(&id.issuer, &id.serial).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_bound",
            "该证书尚未绑定供应商账户：请先用账户和密码登录，再绑定证书。",
        )
    })?;
    tracing::info!(%account, serial = %id.serial, "logged in with the key");
    start_session(&p, Some(&sid), &account)
}

#[derive(Deserialize)]
struct DraftBody {
    project: String,
    amount: String,
}

fn check_bid(d: &DraftBody) -> Result<(), ApiError> {
    let project_ok =
        (1..=64).contains(&d.project.chars().count()) && d.project.chars().all(|c| !c.is_control());
    let amount_ok = (1..=15).contains(&d.amount.len())
        && d.amount.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && d.amount.bytes().filter(|b| *b == b'.').count() <= 1
        && !d.amount.starts_with('.');
    if project_ok && amount_ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_bid",
            "请填写项目编号和投标报价（元，数字）。",
        ))
    }
}

/// Writes the bid's text, which the key will sign: the server's own copy is what the
/// signature is checked against.
async fn bid_draft(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(d): axum::Json<DraftBody>,
) -> ApiResult {
    let (sid, _, account) = logged_in(&p, &headers)?;
    check_bid(&d)?;
    let binding = p.store.binding(&account).ok_or_else(|| {
        ApiError::new(StatusCode::FORBIDDEN, "not_bound", "请先绑定证书，再投标。")
    })?;
    let draft = crate::store::random_id().ok_or_else(ApiError::unavailable)?;
    let now = p
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "投标确认书\n投标人：{}\n统一社会信用代码：{}\n项目编号：{}\n投标报价（元）：{}\n供应商账户：{}\n平台：{}\n编号：{}\n时间：{}\n",
        binding.organisation.as_deref().unwrap_or("-"),
        binding.credit_code.as_deref().unwrap_or("-"),
        d.project,
        d.amount,
        account,
        p.config.origin,
        &draft[..16],
        now,
    );
    let (t, proj, amt) = (text.clone(), d.project.clone(), d.amount.clone());
    let key = draft.clone();
    p.store.update(&sid, |s| {
        s.drafts.insert(key, (t, proj, amt));
    });
    Ok(axum::Json(json!({ "draft": draft, "text": text })).into_response())
}

#[derive(Deserialize)]
struct BidBody {
    draft: String,
    cms: String,
}

async fn bid_submit(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::Json(b): axum::Json<BidBody>,
) -> ApiResult {
    let (sid, s, account) = logged_in(&p, &headers)?;
    let (text, project, amount) = s.drafts.get(&b.draft).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_draft",
            "投标书已失效，请重新填写。",
        )
    })?;
    let binding = p.store.binding(&account).ok_or_else(|| {
        ApiError::new(StatusCode::FORBIDDEN, "not_bound", "请先绑定证书，再投标。")
    })?;
    let cms = STANDARD.decode(b.cms.as_bytes()).map_err(|_| {
        ApiError::verify(&keyward_verify::VerifyError {
            rule: keyward_verify::Rule::CmsMalformed,
            detail: "not base64".into(),
        })
    })?;
    let signed = keyward_verify::verify_cms(&cms, Some(text.as_bytes()), &p.anchors, p.now())
        .map_err(|e| ApiError::verify(&e))?;
    if signed.signer.serial != binding.serial || signed.signer.issuer != binding.issuer {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "signer_not_bound",
            message: "签名所用的证书不是本账户绑定的证书。".into(),
            rule: Some("signer_not_bound"),
        });
    }
    // A draft is signed once.
    p.store.update(&sid, |s| {
        s.drafts.remove(&b.draft);
    });
    let bid = Bid {
        project,
        amount,
        text,
        signer_serial: signed.signer.serial,
        signing_time: signed.signing_time,
        cms: b.cms,
    };
    tracing::info!(%account, project = %bid.project, "signed bid accepted");
    p.store.add_bid(&account, bid.clone());
    Ok(axum::Json(json!({ "bid": bid })).into_response())
}

async fn bid_list(State(p): State<Shared>, headers: HeaderMap) -> ApiResult {
    let (_, _, account) = logged_in(&p, &headers)?;
    Ok(axum::Json(json!({ "bids": p.store.bids(&account) })).into_response())
}

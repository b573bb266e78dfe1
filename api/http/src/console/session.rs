//! Console sessions: a signed token (the API's HS256 JWTs, for their own
//! audience, so a console cookie is no bearer token and a bearer token no
//! console cookie) in an `HttpOnly`, `SameSite=Strict` cookie, `Secure`
//! when Kassa is reached over https, expiring with the token. Every request
//! checks the account as the API does (a disabled or demoted admin loses
//! the console at once), and the CSRF token of every form is derived from
//! the session's token id, so no server state is kept.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use kassa_common::domain::account::Role;
use kassa_common::store::users;
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::auth::tokens::{TokenKeys, VerifiedToken};
use crate::auth::{AdminUser, AuthUser};
use crate::config::ConsoleArgs;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "kassa_console";
/// The audience of console session tokens.
pub const AUDIENCE: &str = "kassa-console";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Keys and settings of console sessions.
pub struct ConsoleKeys {
    tokens: TokenKeys,
    csrf: EncodingKey,
    secure_cookie: bool,
    session_secs: u64,
    /// `scheme://host[:port]` of `KASSA_PUBLIC_URL`, lowercased.
    public_origin: String,
}

impl ConsoleKeys {
    /// Keys from the API's JWT secret and the console's settings.
    pub fn new(secret: &[u8], args: &ConsoleArgs) -> Self {
        // No leeway: a session ends when it says it does.
        let tokens = TokenKeys::for_audience(secret, Duration::from_secs(args.console_session_secs), AUDIENCE, 0);
        let csrf = EncodingKey::from_secret(&[b"kassa-console-csrf:".as_slice(), secret].concat());
        let public_url = args.console_public_url.trim().to_ascii_lowercase();
        let public_origin = match public_url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or_default()),
            None => public_url,
        };
        Self { tokens, csrf, secure_cookie: args.https(), session_secs: args.console_session_secs, public_origin }
    }

    /// The CSRF token of the session whose token id is `token_id`.
    fn csrf_token(&self, token_id: &str) -> Result<String, ConsoleError> {
        jsonwebtoken::crypto::sign(token_id.as_bytes(), &self.csrf, Algorithm::HS256)
            .map_err(|e| ConsoleError::Internal(e.into()))
    }

    /// A `Set-Cookie` value starting a session with `token`.
    fn session_cookie(&self, token: &str) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}", self.session_secs)
    }

    /// A `Set-Cookie` value ending the session.
    pub fn clearing_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }

    /// Issues a session for an admin; the `Set-Cookie` value.
    pub fn start(&self, user_id: i64, generation: i64) -> Result<String, ConsoleError> {
        let token =
            self.tokens.issue(user_id, Role::Admin, generation).map_err(|e| ConsoleError::Internal(e.into()))?;
        Ok(self.session_cookie(&token.access_token))
    }
}

/// An admin signed in to the console, with the CSRF token their forms carry.
#[derive(Clone, Debug)]
pub struct ConsoleAdmin {
    /// The admin, as the API's admin routes see them.
    pub admin: AdminUser,
    /// Their login name.
    pub username: String,
    /// The CSRF token of this session.
    pub csrf_token: String,
}

impl ConsoleAdmin {
    /// Checks a submitted CSRF token; 403 when missing or wrong.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), ConsoleError> {
        let submitted = submitted.unwrap_or_default().as_bytes();
        if submitted.is_empty() || !bool::from(submitted.ct_eq(self.csrf_token.as_bytes())) {
            return Err(ConsoleError::Forbidden("the form's CSRF token is missing or wrong: reload the page".into()));
        }
        Ok(())
    }

    /// The session's token id and expiry, for signing out.
    pub fn token(&self) -> (Option<String>, i64) {
        (self.admin.0.token_id.clone(), self.admin.0.token_expires_at_ms)
    }
}

/// The session token in the request's cookies, if any.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        // Pages send visitors to the sign-in form; actions refuse outright.
        let unauthenticated =
            || if parts.method == Method::GET { ConsoleError::SignInRequired } else { ConsoleError::Unauthenticated };
        let Some(token) = session_token(&parts.headers) else { return Err(unauthenticated()) };
        let verified: VerifiedToken = state.console.tokens.verify(token).map_err(|_| unauthenticated())?;
        let role = match state.sessions.check(&state.db, &verified).await {
            Ok(role) => role,
            Err(crate::error::ApiError::Unauthorized(_)) => return Err(unauthenticated()),
            Err(other) => return Err(ConsoleError::Api(other)),
        };
        if role != Role::Admin {
            return Err(ConsoleError::Forbidden("the console is for admins".into()));
        }
        let Some(token_id) = verified.token_id.clone() else { return Err(unauthenticated()) };
        let mut conn = state.db.pool().acquire().await.map_err(crate::error::ApiError::from)?;
        let username = users::get_user(&mut conn, verified.user_id)
            .await
            .map_err(crate::error::ApiError::from)?
            .map(|user| user.username)
            .unwrap_or_default();
        Ok(ConsoleAdmin {
            csrf_token: state.console.csrf_token(&token_id)?,
            username,
            admin: AdminUser(AuthUser {
                user_id: verified.user_id,
                role,
                token_id: verified.token_id,
                token_expires_at_ms: verified.expires_at_ms,
            }),
        })
    }
}

/// Whether a form post comes from a page of ours: browsers send `Origin` on
/// cross-site posts, so one naming another site than this host (as the
/// request addressed it, or as `KASSA_PUBLIC_URL` names it behind a proxy)
/// is refused (sign-in CSRF). Clients that send no `Origin` are not
/// browsers acting for someone else.
pub fn same_origin(headers: &HeaderMap, keys: &ConsoleKeys) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let origin = origin.trim().to_ascii_lowercase();
    if origin == keys.public_origin {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    origin.split_once("://").is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host))
}

/// A header value from text we built ourselves.
pub fn header_value(text: &str) -> Result<HeaderValue, ConsoleError> {
    HeaderValue::from_str(text).map_err(|e| ConsoleError::Internal(e.into()))
}

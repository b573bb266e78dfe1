//! `AuthUser` and `AdminUser`: a handler taking one of these can only run
//! for a caller with a valid bearer token that its account still accepts
//! (and, for `AdminUser`, whose account has the admin role now).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kassa_common::domain::account::Role;

use crate::error::ApiError;
use crate::state::AppState;

/// A caller with a valid bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthUser {
    /// The caller's user id.
    pub user_id: i64,
    /// The caller's role, as the account has it now.
    pub role: Role,
    /// The token's id, for logout (absent in tokens from before logout existed).
    pub token_id: Option<String>,
    /// When the token expires (Unix ms).
    pub token_expires_at_ms: i64,
}

impl AuthUser {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may act for `user_id`: it is them, or an admin.
    pub fn may_act_for(&self, user_id: i64) -> bool {
        self.user_id == user_id || self.is_admin()
    }
}

/// A caller with a valid bearer token and the admin role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        let verified =
            state.tokens.verify(token).map_err(|_| ApiError::Unauthorized("the bearer token is invalid or expired"))?;
        let role = state.sessions.check(&state.db, &verified).await?;
        Ok(AuthUser {
            user_id: verified.user_id,
            role,
            token_id: verified.token_id,
            token_expires_at_ms: verified.expires_at_ms,
        })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::Forbidden("this action needs the admin role".into()))
        }
    }
}

//! Accounts as admins manage them: list them, create one (any role — how
//! further admins are made once the bootstrap secret is spent), and disable
//! or re-enable one or change its role. Disabling revokes every token of
//! the account at once; a role change takes effect on its next request.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kassa_common::domain::account::Role;
use kassa_common::store::users::{self, AccountChange, ChangeError, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::routes::auth::{create_account, new_account};
use crate::routes::orders::PageParams;
use crate::state::AppState;

/// A page of accounts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Accounts on this page.
    pub items: Vec<User>,
    /// Accounts in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Every account, oldest first.
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    security(("bearer_auth" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of accounts", body = UserList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<UserList>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let mut conn = state.db.pool().acquire().await?;
    let (items, total) = users::list_users(&mut conn, limit, offset).await?;
    Ok(axum::Json(UserList { items, total, limit, offset }))
}

/// A new account made by an admin.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUserBody {
    /// 3–32 characters of `[A-Za-z0-9_.-]`.
    pub username: String,
    /// Where its e-mails go.
    pub email: String,
    /// 8–128 characters, not all whitespace, not a common password.
    pub password: String,
    /// `customer` (default) or `admin`.
    pub role: Option<Role>,
}

/// Create an account of any role (admin).
#[utoipa::path(post, path = "/admin/users", tag = "admin",
    security(("bearer_auth" = [])),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or e-mail already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
pub(super) async fn create_user(
    State(state): State<AppState>,
    admin: AdminUser,
    Json(body): Json<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let account = new_account(&state, &body.username, &body.email, &body.password).await?;
    let user = create_account(&state, account, body.role.unwrap_or(Role::Customer)).await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// What an admin changes about an account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChangeBody {
    /// `true` disables the account and revokes all its tokens; `false` enables it again.
    pub disabled: Option<bool>,
    /// `customer` or `admin`.
    pub role: Option<Role>,
}

/// Disable or enable an account, or change its role (admin). The shop's
/// last enabled admin cannot be disabled or demoted (409).
#[utoipa::path(put, path = "/admin/users/{id}", tag = "admin",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "The account")),
    request_body = UserChangeBody,
    responses(
        (status = 200, description = "The account after the change", body = User),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would leave the shop without an enabled admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id, user_id = id))]
pub(super) async fn change_user(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    Json(body): Json<UserChangeBody>,
) -> Result<axum::Json<User>, ApiError> {
    let change = AccountChange { disabled: body.disabled, role: body.role };
    let user = state
        .db
        .write(move |tx| {
            Box::pin(async move {
                users::change_account(tx, id, change).await.map_err(|error| match error {
                    ChangeError::NotFound => ApiError::NotFound("user not found".into()),
                    ChangeError::LastAdmin => ApiError::conflict("the shop needs at least one enabled admin"),
                    ChangeError::Database(error) => error.into(),
                })
            })
        })
        .await?;
    state.sessions.forget(id);
    tracing::info!(disabled = ?body.disabled, role = ?body.role, "account changed by an admin");
    Ok(axum::Json(user))
}

//! `/auth/*`: registration, admin bootstrap, login. Rate limited per client
//! IP; failures are uniform so they reveal nothing about which accounts exist.

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kassa_common::domain::account::{Email, Password, Role, Username};
use kassa_common::domain::validation::ValidationErrors;
use kassa_common::store::StoreError;
use kassa_common::store::users::{self, Bootstrap, User};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::auth::passwords::HashError;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::state::AppState;

/// The `/auth` routes (without their rate limit, which `routes::router` adds).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(register_admin))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 characters of `[A-Za-z0-9_.-]`.
    #[schema(example = "ana")]
    pub username: String,
    /// Where order e-mails go.
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// 8–128 characters; not only whitespace, not a commonly used password.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// A new admin account, authorised by the bootstrap secret.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterAdminRequest {
    /// 3–32 characters of `[A-Za-z0-9_.-]`.
    pub username: String,
    /// Where operator e-mails go.
    pub email: String,
    /// 8–128 characters; not only whitespace, not a commonly used password.
    pub password: String,
    /// `KASSA_ADMIN_SECRET`, or the secret printed at start.
    pub secret_key: String,
}

/// Credentials, as JSON or as an OAuth2 password form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or e-mail address.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

fn hash_error(error: HashError) -> ApiError {
    match error {
        HashError::Saturated => ApiError::TooManyRequests { retry_after_secs: 1 },
        HashError::Failed(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
    }
}

/// A validated account with its password hashed, ready to insert.
pub(crate) struct NewAccount {
    pub(crate) username: Username,
    pub(crate) email: Email,
    pub(crate) password_hash: String,
}

/// Validates an account's fields (all errors at once) and hashes its password.
pub(crate) async fn new_account(
    state: &AppState,
    username: &str,
    email: &str,
    password: &str,
) -> Result<NewAccount, ApiError> {
    let mut errors = ValidationErrors::default();
    let username = errors.check("username", Username::parse(username));
    let email = errors.check("email", Email::parse(email));
    let password = errors.check("password", Password::parse(password));
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(errors.into());
    };
    let password_hash = state.passwords.hash(password.expose().to_owned()).await.map_err(hash_error)?;
    Ok(NewAccount { username, email, password_hash })
}

/// Inserts a validated account with `role`.
pub(crate) async fn create_account(state: &AppState, account: NewAccount, role: Role) -> Result<User, ApiError> {
    let NewAccount { username, email, password_hash } = account;
    let user = state
        .db
        .write(move |tx| {
            let (username, email, hash) = (username.clone(), email.clone(), password_hash.clone());
            Box::pin(async move {
                users::insert_user(tx, &username, &email, &hash, role).await.map_err(registration_conflict)
            })
        })
        .await?;
    tracing::info!(user_id = user.id, role = role.as_str(), "account created");
    Ok(user)
}

/// Every taken username or e-mail address gets the same 409, so registration
/// cannot be used to learn which of the two a stranger's account uses.
fn registration_conflict(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict(_) => ApiError::conflict(REGISTRATION_CONFLICT),
        other => other.into(),
    }
}

/// The one answer to a registration that collides with an existing account.
const REGISTRATION_CONFLICT: &str = "username or e-mail already registered";

/// Register a customer account.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 409, description = "Username or e-mail already registered (the same answer for either)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let account = new_account(&state, &body.username, &body.email, &body.password).await?;
    let user = create_account(&state, account, Role::Customer).await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// Register the shop's first admin with the bootstrap secret. The secret
/// creates admins only while no admin exists; after that, admins create
/// further admins (`POST /admin/users`) or an operator runs `kassa-api create-admin`.
#[utoipa::path(post, path = "/auth/register-admin", tag = "auth",
    request_body = RegisterAdminRequest,
    responses(
        (status = 201, description = "Admin created", body = User),
        (status = 403, description = "Wrong secret, or an admin exists already; nothing created", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or e-mail taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn register_admin(
    State(state): State<AppState>,
    Json(body): Json<RegisterAdminRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let expected = state.settings.admin_secret.as_bytes();
    if !bool::from(body.secret_key.as_bytes().ct_eq(expected)) {
        tracing::warn!("admin registration with a wrong secret");
        return Err(ApiError::Forbidden("the admin secret is wrong".into()));
    }
    let NewAccount { username, email, password_hash } =
        new_account(&state, &body.username, &body.email, &body.password).await?;
    let created = state
        .db
        .write(move |tx| {
            let (username, email, hash) = (username.clone(), email.clone(), password_hash.clone());
            Box::pin(async move {
                users::insert_first_admin(tx, &username, &email, &hash).await.map_err(registration_conflict)
            })
        })
        .await?;
    match created {
        Bootstrap::Created(user) => {
            tracing::info!(user_id = user.id, "first admin created with the bootstrap secret");
            Ok((StatusCode::CREATED, axum::Json(user)))
        }
        Bootstrap::AdminExists => Err(ApiError::Forbidden(
            "an admin exists already: the bootstrap secret no longer creates admins; \
             an admin can create one (POST /admin/users), or run kassa-api create-admin"
                .into(),
        )),
    }
}

/// A login body in either of the two accepted encodings.
pub struct LoginForm(LoginRequest);

impl<S: Send + Sync> FromRequest<S> for LoginForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let axum::Form(body) = axum::Form::<LoginRequest>::from_request(req, state)
                .await
                .map_err(|e| ApiError::invalid("body", &e.body_text()))?;
            Ok(LoginForm(body))
        } else {
            let Json(body) = Json::<LoginRequest>::from_request(req, state).await?;
            Ok(LoginForm(body))
        }
    }
}

/// Log in with a username (or e-mail) and password; returns a bearer token.
/// Accepts JSON or the OAuth2 password form (`application/x-www-form-urlencoded`).
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Unknown user or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    LoginForm(body): LoginForm,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    match check_password(&state, &body.username, &body.password).await? {
        Some(credentials) => {
            let token = state
                .tokens
                .issue(credentials.id, credentials.role, credentials.token_generation)
                .map_err(|e| ApiError::Internal(e.into()))?;
            Ok(axum::Json(TokenResponse {
                access_token: token.access_token,
                token_type: "bearer",
                expires_in: token.expires_in,
            }))
        }
        None => Err(ApiError::Unauthorized("invalid username or password")),
    }
}

/// The account `login` (username or e-mail) names, if `password` is its
/// password: the Argon2id check of `POST /auth/login` and of the operator
/// console's sign-in. An unknown account takes as long to refuse as a wrong
/// password; every refusal counts in `kassa_login_failures_total`.
pub(crate) async fn check_password(
    state: &AppState,
    login: &str,
    password: &str,
) -> Result<Option<users::Credentials>, ApiError> {
    let credentials = if login.len() > 254 || password.len() > 1024 {
        None
    } else {
        let mut conn = state.db.pool().acquire().await?;
        users::find_credentials(&mut conn, login).await?
    };
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let password = password.chars().take(1024).collect();
    let verified = state.passwords.verify(password, hash).await.map_err(hash_error)?;
    match credentials {
        Some(credentials) if verified => Ok(Some(credentials)),
        _ => {
            metrics::counter!("kassa_login_failures_total").increment(1);
            Ok(None)
        }
    }
}

/// Log out: the presented token stops working at once, on every API
/// process within a few seconds (other tokens of the account are unaffected).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "The token is revoked"),
        (status = 401, description = "Missing, invalid or already revoked token", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = user.user_id))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    let (user_id, expires_at_ms) = (user.user_id, user.token_expires_at_ms);
    let token_id = user.token_id.clone();
    state
        .db
        .write(move |tx| {
            let token_id = token_id.clone();
            Box::pin(async move {
                match &token_id {
                    Some(token_id) => users::revoke_token(tx, user_id, token_id, expires_at_ms).await,
                    // A token from before token ids existed can only be
                    // revoked with all of the account's tokens.
                    None => users::revoke_all_tokens(tx, user_id).await,
                }
            })
        })
        .await?;
    state.sessions.forget(user_id);
    tracing::info!("logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// The account behind the bearer token.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The caller's account", body = User),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<axum::Json<User>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    users::get_user(&mut conn, user.user_id)
        .await?
        .map(axum::Json)
        .ok_or(ApiError::Unauthorized("the account no longer exists"))
}

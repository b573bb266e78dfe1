//! Signing in with an admin's username (or e-mail) and password, checked
//! exactly as `POST /auth/login` checks them, and signing out, which
//! revokes the session's token as `POST /auth/logout` does.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kassa_common::domain::account::Role;
use kassa_common::store::users;
use serde::Deserialize;

use super::session::{CSRF_FIELD, ConsoleAdmin, header_value, same_origin};
use super::{ConsoleError, templates};
use crate::routes::auth::check_password;
use crate::state::AppState;

/// The sign-in form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    /// Username or e-mail address.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

fn form_page(status: StatusCode, message: Option<&str>, username: &str) -> Result<Response, ConsoleError> {
    let html = templates::render("login.html", minijinja::context! { message, username })?;
    Ok((status, Html(html)).into_response())
}

/// `GET /console/login`: the sign-in form.
pub async fn form() -> Result<Response, ConsoleError> {
    form_page(StatusCode::OK, None, "")
}

/// `POST /console/login`: on success a session cookie and a redirect to
/// the overview; a wrong password is 401 and a customer's account 403,
/// both without a cookie.
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    if !same_origin(&headers, &state.console) {
        return Err(ConsoleError::Forbidden("sign-in forms are accepted from this site only".into()));
    }
    let Form(form) = form.unwrap_or_default();
    let Some(credentials) = check_password(&state, &form.username, &form.password).await? else {
        return form_page(StatusCode::UNAUTHORIZED, Some("Wrong username or password."), &form.username);
    };
    if credentials.role != Role::Admin {
        return form_page(StatusCode::FORBIDDEN, Some("The console is for admins only."), &form.username);
    }
    let cookie = state.console.start(credentials.id, credentials.token_generation)?;
    tracing::info!(admin_id = credentials.id, "signed in to the console");
    Ok(([(header::SET_COOKIE, header_value(&cookie)?)], Redirect::to("/console/")).into_response())
}

/// `POST /console/logout`: revokes the session's token and clears the cookie.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id))]
pub async fn sign_out(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let fields = form.map(|Form(fields)| fields).unwrap_or_default();
    admin.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
    let user_id = admin.admin.0.user_id;
    let (token_id, expires_at_ms) = admin.token();
    state
        .db
        .write(move |tx| {
            let token_id = token_id.clone();
            Box::pin(async move {
                match &token_id {
                    Some(token_id) => users::revoke_token(tx, user_id, token_id, expires_at_ms).await,
                    None => Ok(()),
                }
            })
        })
        .await
        .map_err(crate::error::ApiError::from)?;
    state.sessions.forget(user_id);
    let cookie = state.console.clearing_cookie();
    Ok(([(header::SET_COOKIE, header_value(&cookie)?)], Redirect::to("/console/login")).into_response())
}
